#!/usr/bin/python3
"""Independent numerical reference for parafine's MobileNetV2 fine-tuning.

Builds keras.applications.mobilenet_v2.MobileNetV2(include_top=False, alpha=A) as the Keras
source writes it (tf.keras keras/applications/mobilenet_v2.py and Keras 3
keras/src/applications/mobilenet_v2.py build the same 154 layers: Conv1 'same' stride 2 with
no padding layer, then _inverted_res_block 0..16, Conv_1, Conv_1_bn, out_relu; the stride-2
depthwise convolutions get ZeroPadding2D(imagenet_utils.correct_pad(x, 3)) and 'valid'
padding; every conv use_bias=False; BN epsilon 1e-3, momentum 0.999; ReLU(6.)) plus the
fine-tuning head

    global_average_pooling2d -> dense (U, relu) -> dense_1 (C, softmax)

in PyTorch with explicit ops, in float64 from float32-stored weights, and writes the same two
HDF5 files as every reference (keras_reference_files.py describes them): the weights in the
tf.keras save_weights layout under Keras's names (DepthwiseConv2D's variable is
depthwise_kernel [3,3,C,1]), and one training step's results: /input, /labels, /logits,
/probs, /loss, /pooled, /base_output, /boundary (+ attribute boundary_layer), /grads/L/V,
/moving/L/V, attribute trainable_layers.

The boundary is the latest node before the first trainable layer with weights such that no
later layer reads anything before it (what Model::forward_from accepts).

--print-param-counts prints len(base.layers) and the total parameter count (BN moving
statistics included, as Keras's model.count_params()) for each alpha Keras has weights for,
from this graph, and exits.

BN moving statistics are calibrated on --calibration-batch other images (the statistics of
each BN's input, variance times U(0.8, 1.2)): at 32x32 the last blocks are 1x1, and statistics
of the 3 training images alone make a chaotic network (float32 and float64 PyTorch then differ
by 1.2 at out_relu; with 16 calibration images by 6e-5, and 2% of out_relu sits at 6).

Random draws (np.random.default_rng(seed)): weights in layer order, the input batch, the
labels, the calibration images, then the BN calibration factors in BN order.
"""

import argparse
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import keras_reference_files as files  # noqa: E402

BN_EPSILON = 1e-3
BN_MOMENTUM = 0.999
VAR_NAMES = {
    "conv": ["kernel"],  # use_bias=False everywhere in MobileNetV2
    "depthwise": ["depthwise_kernel"],
    "bn": ["gamma", "beta", "moving_mean", "moving_variance"],
    "dense": ["kernel", "bias"],
}
TRAINABLE_VARS = {"conv": ["kernel"], "depthwise": ["depthwise_kernel"], "bn": ["gamma", "beta"],
                  "dense": ["kernel", "bias"]}
# (filters, stride, expansion) of _inverted_res_block 0..16, from MobileNetV2()
BLOCKS = [(16, 1, 1), (24, 2, 6), (24, 1, 6), (32, 2, 6), (32, 1, 6), (32, 1, 6),
          (64, 2, 6), (64, 1, 6), (64, 1, 6), (64, 1, 6), (96, 1, 6), (96, 1, 6),
          (96, 1, 6), (160, 2, 6), (160, 1, 6), (160, 1, 6), (320, 1, 6)]


@dataclass
class Layer:
    name: str
    kind: str  # input|zeropad|conv|depthwise|bn|relu6|add|gap|dense
    inputs: list
    cfg: dict = field(default_factory=dict)
    shape: tuple = ()  # output (C, H, W) or (D,)


def make_divisible(v, divisor, min_value=None):
    """mobilenet_v2._make_divisible, verbatim."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class Graph:
    def __init__(self):
        self.layers = []
        self.by_name = {}

    def add(self, name, kind, inputs, shape, **cfg):
        L = Layer(name, kind, list(inputs), cfg, shape)
        self.layers.append(L)
        self.by_name[name] = L
        return name

    def shape(self, name):
        return self.by_name[name].shape


def same_out(size, stride):
    return -(-size // stride)


def conv(g, name, x, filters, kernel, stride):
    """Conv2D(filters, kernel, strides, padding='same', use_bias=False)."""
    c, h, w = g.shape(x)
    return g.add(name, "conv", [x], (filters, same_out(h, stride), same_out(w, stride)),
                 filters=filters, kernel=kernel, stride=stride, cin=c)


def inverted_res_block(g, inputs, expansion, stride, alpha, filters, block_id):
    """mobilenet_v2._inverted_res_block, in the Keras source's layer order."""
    in_channels = g.shape(inputs)[0]
    pointwise_filters = make_divisible(int(filters * alpha), 8)
    x = inputs
    prefix = f"block_{block_id}_"
    if block_id:
        x = conv(g, prefix + "expand", x, expansion * in_channels, 1, 1)
        x = g.add(prefix + "expand_BN", "bn", [x], g.shape(x))
        x = g.add(prefix + "expand_relu", "relu6", [x], g.shape(x))
    else:
        prefix = "expanded_conv_"
    c, h, w = g.shape(x)
    if stride == 2:
        # imagenet_utils.correct_pad(x, 3): adjust = 1 - size % 2, ((1 - adjust, 1), ...)
        pad = ((1 - (1 - h % 2), 1), (1 - (1 - w % 2), 1))
        x = g.add(prefix + "pad", "zeropad", [x],
                  (c, h + pad[0][0] + pad[0][1], w + pad[1][0] + pad[1][1]), pad=pad)
        _, h, w = g.shape(x)
        out = (c, (h - 3) // 2 + 1, (w - 3) // 2 + 1)  # 'valid'
    else:
        out = (c, h, w)  # 'same', stride 1
    x = g.add(prefix + "depthwise", "depthwise", [x], out, stride=stride,
              same=stride == 1)
    x = g.add(prefix + "depthwise_BN", "bn", [x], out)
    x = g.add(prefix + "depthwise_relu", "relu6", [x], out)
    x = conv(g, prefix + "project", x, pointwise_filters, 1, 1)
    x = g.add(prefix + "project_BN", "bn", [x], g.shape(x))
    if in_channels == pointwise_filters and stride == 1:
        return g.add(prefix + "add", "add", [inputs, x], g.shape(x))
    return x


def build_base(alpha, size):
    g = Graph()
    x = g.add("input_1", "input", [], (3, size, size))
    first_block_filters = make_divisible(32 * alpha, 8)
    x = conv(g, "Conv1", x, first_block_filters, 3, 2)
    x = g.add("bn_Conv1", "bn", [x], g.shape(x))
    x = g.add("Conv1_relu", "relu6", [x], g.shape(x))
    for block_id, (filters, stride, expansion) in enumerate(BLOCKS):
        x = inverted_res_block(g, x, expansion, stride, alpha, filters, block_id)
    last_block_filters = make_divisible(1280 * alpha, 8) if alpha > 1.0 else 1280
    x = conv(g, "Conv_1", x, last_block_filters, 1, 1)
    x = g.add("Conv_1_bn", "bn", [x], g.shape(x))
    g.add("out_relu", "relu6", [x], g.shape(x))
    return g


def build_model(alpha, size, head_units, classes):
    g = build_base(alpha, size)
    n_base = len(g.layers)
    c = g.shape(g.layers[-1].name)[0]
    x = g.add("global_average_pooling2d", "gap", [g.layers[-1].name], (c,))
    x = g.add("dense", "dense", [x], (head_units,), units=head_units, activation="relu", din=c)
    g.add("dense_1", "dense", [x], (classes,), units=classes, activation="softmax",
          din=head_units)
    return g, n_base


def count_params(g):
    """model.count_params(): every variable, BN moving statistics included."""
    total = 0
    for L in g.layers:
        if L.kind == "conv":
            total += L.cfg["kernel"] ** 2 * L.cfg["cin"] * L.cfg["filters"]
        elif L.kind == "depthwise":
            total += 9 * L.shape[0]
        elif L.kind == "bn":
            total += 4 * L.shape[0]
        elif L.kind == "dense":
            total += (L.cfg["din"] + 1) * L.cfg["units"]
    return total


# --------------------------------------------------------------------------

def init_weights(g, rng):
    weights = {}
    for L in g.layers:
        if L.kind == "conv":
            k, cin, cout = L.cfg["kernel"], L.cfg["cin"], L.cfg["filters"]
            weights[L.name] = {"kernel": files.glorot_uniform(rng, (k, k, cin, cout), k * k * cin,
                                                        k * k * cout)}
        elif L.kind == "depthwise":
            c = L.shape[0]
            weights[L.name] = {"depthwise_kernel": files.glorot_uniform(rng, (3, 3, c, 1), 9, 9)}
        elif L.kind == "bn":
            c = L.shape[0]
            # gamma up to 2.5: some normalised values pass 6, so ReLU6's clip is exercised.
            weights[L.name] = {
                "gamma": rng.uniform(0.5, 2.5, size=c).astype(np.float32),
                "beta": rng.uniform(-0.5, 0.5, size=c).astype(np.float32),
                "moving_mean": np.zeros(c, np.float32),
                "moving_variance": np.ones(c, np.float32),
            }
        elif L.kind == "dense":
            din, dout = L.cfg["din"], L.cfg["units"]
            weights[L.name] = {"kernel": files.glorot_uniform(rng, (din, dout), din, dout),
                               "bias": rng.uniform(-0.1, 0.1, size=dout).astype(np.float32)}
    return weights


def _channel(v):
    return v.view(1, -1, 1, 1)


def tf_same_pad(x, k, stride):
    """TensorFlow 'same': total = max((out-1)*s + k - in, 0), the smaller half top/left."""
    _, _, h, w = x.shape
    ph = max((same_out(h, stride) - 1) * stride + k - h, 0)
    pw = max((same_out(w, stride) - 1) * stride + k - w, 0)
    return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))


def relu6(x):
    """Keras ReLU(6.) is tf.nn.relu6: gradient passes where 0 < x < 6 (Relu6Grad)."""
    return torch.clamp(x, 0.0, 6.0)  # clamp's gradient at the ends: torch passes at x == 0/6;
    # exact ties have probability zero with random float inputs.


def forward(g, params, x_nchw, trainable, keep=(), calibrate=None):
    last = files.last_use(g.layers)
    keep = set(keep) | {g.layers[-1].name}
    acts, bn_stats = {}, {}
    for i, L in enumerate(g.layers):
        ins = [acts[n] for n in L.inputs]
        p = params.get(L.name)
        if L.kind == "input":
            y = x_nchw
        elif L.kind == "zeropad":
            (top, bottom), (left, right) = L.cfg["pad"]
            y = F.pad(ins[0], (left, right, top, bottom))
        elif L.kind == "conv":
            x = tf_same_pad(ins[0], L.cfg["kernel"], L.cfg["stride"])
            y = F.conv2d(x, p["kernel"].permute(3, 2, 0, 1), None, stride=L.cfg["stride"])
        elif L.kind == "depthwise":
            x = ins[0]
            if L.cfg["same"]:
                x = tf_same_pad(x, 3, L.cfg["stride"])
            c = x.shape[1]
            w = p["depthwise_kernel"].permute(2, 3, 0, 1)  # [3,3,C,1] -> [C,1,3,3]
            y = F.conv2d(x, w, None, stride=L.cfg["stride"], groups=c)
        elif L.kind == "bn":
            x = ins[0]
            if calibrate is not None:
                calibrate(L.name, x)
            if L.name in trainable and calibrate is None:
                mean = x.mean(dim=(0, 2, 3))
                var = x.var(dim=(0, 2, 3), unbiased=False)
                bn_stats[L.name] = (mean.detach(), var.detach(), x.numel() // x.shape[1])
            else:
                mean, var = p["moving_mean"], p["moving_variance"]
            y = ((x - _channel(mean)) * _channel(torch.rsqrt(var + BN_EPSILON)) *
                 _channel(p["gamma"]) + _channel(p["beta"]))
        elif L.kind == "relu6":
            y = relu6(ins[0])
        elif L.kind == "add":
            y = ins[0] + ins[1]
        elif L.kind == "gap":
            y = ins[0].mean(dim=(2, 3))
        elif L.kind == "dense":
            y = ins[0] @ p["kernel"] + p["bias"]
            if L.cfg["activation"] == "relu":
                y = F.relu(y)
        else:
            raise ValueError(L.kind)
        acts[L.name] = y
        for src in L.inputs:
            if last[src] == i and src not in keep:
                del acts[src]
    return {k: acts[k] for k in keep}, bn_stats


def calibrate_bn(g, weights, params, x_nchw, rng):
    """moving_mean = batch mean, moving_variance = biased batch var * U(0.8, 1.2), float32."""
    callback = files.bn_calibration_callback(weights, params, rng)
    with torch.no_grad():
        forward(g, params, x_nchw, trainable=set(), calibrate=callback)


def moving_update(mm, mv, mean, var_biased, n):
    """Keras BN update (momentum 0.999) with the Bessel-corrected batch variance."""
    return (BN_MOMENTUM * mm + (1 - BN_MOMENTUM) * mean,
            BN_MOMENTUM * mv + (1 - BN_MOMENTUM) * var_biased * n / (n - 1))


def boundary_layer(g, first_trainable):
    """The latest node b before the first trainable layer such that no later layer reads a
    node before b (Model::forward_from's block boundary)."""
    names = [L.name for L in g.layers]
    index = {n: i for i, n in enumerate(names)}
    if first_trainable is None:
        return names[-4]  # the base output: only the head trains
    for b in range(index[first_trainable] - 1, -1, -1):
        if all(index[s] >= b for L in g.layers[b + 1:] for s in L.inputs):
            return names[b]
    return names[0]


def check_structure(g, n_base, alpha):
    names = [L.name for L in g.layers[:n_base]]
    assert n_base == 154, n_base
    assert names[:4] == ["input_1", "Conv1", "bn_Conv1", "Conv1_relu"], names[:4]
    assert names[-3:] == ["Conv_1", "Conv_1_bn", "out_relu"], names[-3:]
    assert len(set(L.name for L in g.layers)) == len(g.layers)
    print(f"[check] alpha {alpha}: {n_base} base layers, {count_params(g)} parameters with head")


def check_finite_differences(g, params, x_nchw, labels, trainable, result, seed, h=1e-6):
    rng = np.random.default_rng(seed + 1)
    lab = torch.from_numpy(labels.astype(np.int64))

    def loss_value():
        with torch.no_grad():
            outs, _ = forward(g, params, x_nchw, trainable)
            return files.cross_entropy(outs["dense_1"], lab).item()

    worst = 0.0
    for lname, grads in list(result["grads"].items())[:6]:
        for vname, gr in grads.items():
            t = params[lname][vname]
            cand = np.flatnonzero(gr) if np.count_nonzero(gr) >= 3 else np.arange(gr.size)
            for flat in rng.choice(cand, size=3, replace=False):
                idx = np.unravel_index(flat, tuple(t.shape))
                with torch.no_grad():
                    orig = t[idx].item()
                    t[idx] = orig + h
                    lp = loss_value()
                    t[idx] = orig - h
                    lm = loss_value()
                    t[idx] = orig
                fd, an = (lp - lm) / (2 * h), gr[idx]
                # (A beta whose shift the next batch-statistics BN removes has a zero gradient:
                # FD's rounding there is ~1e-9, hence the absolute floor.)
                rel = abs(fd - an) / max(abs(fd), abs(an), 1e-4)
                worst = max(worst, rel)
                assert rel < 1e-4, (lname, vname, idx, an, fd, rel)
    print(f"[check] finite differences OK, worst rel_err={worst:.2e}")


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-weights")
    ap.add_argument("--out-ref")
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=3)
    ap.add_argument("--classes", type=int, default=3)
    ap.add_argument("--head-units", type=int, default=32)
    ap.add_argument("--unfreeze-last", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--calibration-batch", type=int, default=16)
    ap.add_argument("--self-check", action="store_true")
    ap.add_argument("--print-param-counts", action="store_true")
    return ap.parse_args()


def main():
    args = parse_args()
    if args.print_param_counts:
        for alpha in (0.35, 0.5, 0.75, 1.0, 1.3, 1.4):
            g = build_base(alpha, 224)
            print(f"alpha {alpha}: {len(g.layers)} base layers, {count_params(g)} parameters, "
                  f"output {g.shape(g.layers[-1].name)}")
        return
    t0 = time.time()
    torch.manual_seed(args.seed)
    g, n_base = build_model(args.alpha, args.image_size, args.head_units, args.classes)
    base_names = [L.name for L in g.layers[:n_base]]
    n_unfreeze = max(0, min(args.unfreeze_last, n_base))
    trainable_order = base_names[n_base - n_unfreeze:] + files.HEAD_LAYER_NAMES
    trainable = set(trainable_order)
    if args.self_check:
        check_structure(g, n_base, args.alpha)

    rng = np.random.default_rng(args.seed)
    weights = init_weights(g, rng)
    # MobileNetV2's 'tf' preprocessing range (-1, 1); labels as drawn
    x_nhwc, labels = files.make_inputs(rng, args.batch, args.image_size, args.classes,
                                       scale=1.0, distinct_labels=False)
    x_nchw = files.nhwc_to_nchw(x_nhwc)
    params = files.to_torch_params(g.layers, weights, trainable, TRAINABLE_VARS)
    x_cal = rng.uniform(-1.0, 1.0, size=(args.calibration_batch,) + x_nhwc.shape[1:])
    calibrate_bn(g, weights, params, files.nhwc_to_nchw(x_cal.astype(np.float32)), rng)

    first_trainable = next((n for n in base_names if n in trainable and n in weights), None)
    boundary = boundary_layer(g, first_trainable)
    base_out = base_names[-1]
    result = files.train_step(lambda keep: forward(g, params, x_nchw, trainable, keep=keep),
                              params, labels, trainable_order, base_out, boundary, moving_update)
    if args.out_weights:
        files.save_keras_weights(args.out_weights, g.layers, weights, VAR_NAMES)
        files.save_reference(args.out_ref, args, x_nhwc, labels, result, trainable_order)
    base = result["base_output"]
    clipped = float((base >= 6.0).mean())
    print(f"alpha {args.alpha} size {args.image_size}: base_output {base.shape}, "
          f"fraction at 6: {clipped:.3f}; loss {result['loss']:.8f}; boundary {boundary}; "
          f"{len(result['grads'])} layers with gradients, {len(result['moving'])} trainable BNs")
    if args.self_check:
        check_finite_differences(g, params, x_nchw, labels, trainable, result, args.seed)
    print(f"done in {time.time() - t0:.2f} s")


if __name__ == "__main__":
    main()
