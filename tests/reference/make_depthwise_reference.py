#!/usr/bin/python3
"""Independent float64 PyTorch reference for parafine's DepthwiseConv2D (Keras semantics).

For each case below, draws float32 x [N,H,W,C], depthwise_kernel [K,K,C,M], bias [C*M]
(or none) and an upstream gradient R [N,Ho,Wo,C*M] from np.random.default_rng(seed), and
computes in float64 with torch:

    y = F.conv2d(pad(x_nchw), w, bias, stride, groups=C)   (NCHW, weights [C*M, 1, K, K])

where the Keras kernel [K,K,C,M] becomes [C*M,1,K,K] (output channel c*M+m reads input
channel c, as tf.nn.depthwise_conv2d orders them), and TensorFlow 'same' padding is applied
explicitly with F.pad as (left, right, top, bottom), the extra row/column at the bottom/right.
Then L = sum(y * R) is differentiated by autograd: dx, dkernel (back in Keras layout), dbias.

Writes <out-dir>/<name>.bin per case, little-endian: int32 n,h,w,c,k,stride,same,mult,bias,
ho,wo; then float32 x, kernel[, bias], R; then float64 y, dx, dkernel[, dbias] (NHWC / Keras
layouts). Usage: /usr/bin/python3 make_depthwise_reference.py --out-dir DIR
"""

import argparse
import os

import numpy as np
import torch
import torch.nn.functional as F

# name, n, h, w, c, k, stride, same, mult, bias
CASES = [
    ("k3_same_s1_bias", 2, 6, 5, 4, 3, 1, True, 1, True),
    ("k3_same_s2_nobias", 2, 8, 7, 5, 3, 2, True, 1, False),
    ("k3_same_s2_odd_bias", 1, 9, 7, 3, 3, 2, True, 1, True),
    ("k3_valid_s1_nobias", 2, 5, 6, 3, 3, 1, False, 1, False),
    ("k3_valid_s2_odd_bias", 1, 9, 8, 3, 3, 2, False, 1, True),
    ("k3_same_s2_mult2_bias", 2, 7, 6, 3, 3, 2, True, 2, True),
    # MobileNetV2 block_1_depthwise at a small size: 3x3/2 'same'-like, no bias, 32 channels.
    ("mobilenet_like_s2_c32", 2, 15, 14, 32, 3, 2, True, 1, False),
]


def tf_same_padding(size, k, s):
    out = (size + s - 1) // s
    total = max((out - 1) * s + k - size, 0)
    return out, total // 2, total - total // 2  # out, before (top/left), after (bottom/right)


def one_case(name, n, h, w, c, k, s, same, mult, use_bias, seed, out_dir):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(n, h, w, c)).astype(np.float32)
    kern = rng.uniform(-1, 1, size=(k, k, c, mult)).astype(np.float32)
    bias = rng.uniform(-1, 1, size=(c * mult,)).astype(np.float32) if use_bias else None
    if same:
        ho, top, bottom = tf_same_padding(h, k, s)
        wo, left, right = tf_same_padding(w, k, s)
    else:
        ho, wo, top, bottom, left, right = (h - k) // s + 1, (w - k) // s + 1, 0, 0, 0, 0
    r = rng.uniform(-1, 1, size=(n, ho, wo, c * mult)).astype(np.float32)

    xt = torch.tensor(x, dtype=torch.float64).permute(0, 3, 1, 2).contiguous().requires_grad_()
    # [K,K,C,M] -> [K,K,C*M] -> [C*M,1,K,K]
    wt = torch.tensor(kern, dtype=torch.float64).requires_grad_()
    w_oihw = wt.reshape(k, k, c * mult).permute(2, 0, 1).unsqueeze(1)
    bt = torch.tensor(bias, dtype=torch.float64).requires_grad_() if use_bias else None
    y = F.conv2d(F.pad(xt, (left, right, top, bottom)), w_oihw, bt, stride=s, groups=c)
    assert y.shape == (n, c * mult, ho, wo), (name, y.shape)
    rt = torch.tensor(r, dtype=torch.float64).permute(0, 3, 1, 2)
    (y * rt).sum().backward()

    path = os.path.join(out_dir, name + ".bin")
    with open(path, "wb") as f:
        np.array([n, h, w, c, k, s, int(same), mult, int(use_bias), ho, wo], "<i4").tofile(f)
        for a in [x, kern] + ([bias] if use_bias else []) + [r]:
            a.astype("<f4").tofile(f)
        outs = [y.detach().permute(0, 2, 3, 1), xt.grad.permute(0, 2, 3, 1), wt.grad]
        if use_bias:
            outs.append(bt.grad)
        for t in outs:
            t.contiguous().numpy().astype("<f8").tofile(f)
    print(f"{path}: y {tuple(y.shape)} max |y| {y.abs().max().item():.3f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "cases.txt"), "w") as f:
        for i, case in enumerate(CASES):
            one_case(*case, seed=args.seed + i, out_dir=args.out_dir)
            f.write(case[0] + "\n")


if __name__ == "__main__":
    main()
