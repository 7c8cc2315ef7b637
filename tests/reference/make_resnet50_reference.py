#!/usr/bin/python3
"""Independent numerical reference for the C++ tf.keras ResNet50 fine-tuning code.

Builds a tf.keras-style ``ResNet50(include_top=False)`` (v1, keras/applications/
resnet.py; ``--depth 101|152`` for ResNet101 / ResNet152) plus the fine-tuning head

    global_average_pooling2d -> dense (U, relu) -> dense_1 (C, softmax)

functionally in PyTorch with explicit ops (no torchvision), computing in float64
from float32-stored weights, and writes two HDF5 files:

* ``--out-weights W.h5``: seeded random weights in the layout of tf.keras
  ``model.save_weights('m.h5')`` (HWIO conv kernels, [in, out] dense kernels,
  BN vars gamma, beta, moving_mean, moving_variance), all float32.
* ``--out-ref R.h5``: input batch, labels, and the float64 results of ONE
  training-mode forward/backward pass: logits, probs, loss (categorical
  cross-entropy, mean over the batch), pooled (GAP output), base_output (NHWC),
  grads of every trainable weight (same layout as the weights) and the updated
  moving statistics of every trainable BatchNormalization layer.

Trainable layers are the last ``--unfreeze-last`` entries of the 175-entry
(345 for ResNet101, 515 for ResNet152) ``base.layers`` list plus the three head layers.  Trainable BN layers run in
training mode (batch statistics, biased variance for normalisation, Keras
momentum 0.99 update with the Bessel-corrected variance); frozen BN layers run
in inference mode with their moving statistics.

Usage (always with /usr/bin/python3, which has torch + h5py):

    /usr/bin/python3 tests/reference/make_resnet50_reference.py \
        --out-weights /tmp/w.h5 --out-ref /tmp/r.h5 \
        --image-size 32 --width 8 --batch 3 --self-check

Random draw order (single ``np.random.default_rng(seed)`` stream): layer weights
in layer order (conv: kernel, bias; BN: gamma, beta; dense: kernel, bias), then
the input batch, then the labels, then the BN calibration factors (in BN layer
order).  The finite-difference self-check uses its own ``default_rng(seed + 1)``.
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

BN_EPSILON = 1.001e-5
BN_MOMENTUM = 0.99

# (stack index s, number of blocks, filter multiplier of F, stride of block1), per depth as
# keras.applications.resnet's ResNet50 / ResNet101 / ResNet152 stack_fn.
RESNET_STACKS = {
    50: [(2, 3, 1, 1), (3, 4, 2, 2), (4, 6, 4, 2), (5, 3, 8, 2)],
    101: [(2, 3, 1, 1), (3, 4, 2, 2), (4, 23, 4, 2), (5, 3, 8, 2)],
    152: [(2, 3, 1, 1), (3, 8, 2, 2), (4, 36, 4, 2), (5, 3, 8, 2)],
}
RESNET_BASE_LAYERS = {50: 175, 101: 345, 152: 515}

# Variable order per layer kind, as tf.keras stores them.
VAR_NAMES = {
    "conv": ["kernel", "bias"],
    "bn": ["gamma", "beta", "moving_mean", "moving_variance"],
    "dense": ["kernel", "bias"],
}
# Variables that are trained (get gradients) when the layer is trainable.
TRAINABLE_VARS = {"conv": ["kernel", "bias"], "bn": ["gamma", "beta"],
                  "dense": ["kernel", "bias"]}


# --------------------------------------------------------------------------
# Graph description
# --------------------------------------------------------------------------

@dataclass
class Layer:
    """One Keras layer: name, kind, names of its input layers, config."""
    name: str
    kind: str  # input|zeropad|conv|bn|relu|maxpool|add|gap|dense
    inputs: list
    cfg: dict = field(default_factory=dict)


class GraphBuilder:
    def __init__(self):
        self.layers = []

    def add(self, name, kind, inputs, **cfg):
        self.layers.append(Layer(name, kind, list(inputs), cfg))
        return name


def _block1(g, x, filters, stride, conv_shortcut, name):
    """keras.applications.resnet.block1, in tf.keras base.layers order."""
    y = g.add(name + "_1_conv", "conv", [x], filters=filters, kernel=1, stride=stride, pad=0)
    y = g.add(name + "_1_bn", "bn", [y])
    y = g.add(name + "_1_relu", "relu", [y])
    y = g.add(name + "_2_conv", "conv", [y], filters=filters, kernel=3, stride=1, pad=1)  # 'same'
    y = g.add(name + "_2_bn", "bn", [y])
    y = g.add(name + "_2_relu", "relu", [y])
    if conv_shortcut:
        s = g.add(name + "_0_conv", "conv", [x], filters=4 * filters, kernel=1, stride=stride, pad=0)
        y = g.add(name + "_3_conv", "conv", [y], filters=4 * filters, kernel=1, stride=1, pad=0)
        s = g.add(name + "_0_bn", "bn", [s])
        y = g.add(name + "_3_bn", "bn", [y])
    else:
        s = x
        y = g.add(name + "_3_conv", "conv", [y], filters=4 * filters, kernel=1, stride=1, pad=0)
        y = g.add(name + "_3_bn", "bn", [y])
    y = g.add(name + "_add", "add", [s, y])  # shortcut + main
    return g.add(name + "_out", "relu", [y])


def build_base(width, depth=50):
    """ResNet50/101/152(include_top=False) base, 175/345/515 layers in tf.keras order."""
    g = GraphBuilder()
    x = g.add("input_1", "input", [])
    x = g.add("conv1_pad", "zeropad", [x], pad=3)
    x = g.add("conv1_conv", "conv", [x], filters=width, kernel=7, stride=2, pad=0)
    x = g.add("conv1_bn", "bn", [x])
    x = g.add("conv1_relu", "relu", [x])
    x = g.add("pool1_pad", "zeropad", [x], pad=1)
    x = g.add("pool1_pool", "maxpool", [x], size=3, stride=2)
    for s, blocks, mult, stride in RESNET_STACKS[depth]:
        filters = mult * width
        x = _block1(g, x, filters, stride, True, f"conv{s}_block1")
        for b in range(2, blocks + 1):
            x = _block1(g, x, filters, 1, False, f"conv{s}_block{b}")
    return g.layers


def build_model(width, head_units, classes, depth=50):
    """Base + head.  Returns (all layers, number of base layers)."""
    layers = build_base(width, depth)
    g = GraphBuilder()
    g.layers = layers
    n_base = len(layers)
    x = g.add("global_average_pooling2d", "gap", [layers[-1].name])
    x = g.add("dense", "dense", [x], units=head_units, activation="relu")
    g.add("dense_1", "dense", [x], units=classes, activation="softmax")
    return g.layers, n_base


def infer_shapes(layers, image_size):
    """Output shape of every layer: (C, H, W) for 4-D tensors, (D,) for 2-D."""
    shapes = {}
    for L in layers:
        if L.kind == "input":
            shapes[L.name] = (3, image_size, image_size)
            continue
        src = shapes[L.inputs[0]]
        if L.kind == "zeropad":
            c, h, w = src
            p = L.cfg["pad"]
            shapes[L.name] = (c, h + 2 * p, w + 2 * p)
        elif L.kind == "conv":
            c, h, w = src
            k, s, p = L.cfg["kernel"], L.cfg["stride"], L.cfg["pad"]
            shapes[L.name] = (L.cfg["filters"], (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1)
        elif L.kind == "maxpool":
            c, h, w = src
            k, s = L.cfg["size"], L.cfg["stride"]
            shapes[L.name] = (c, (h - k) // s + 1, (w - k) // s + 1)
        elif L.kind == "add":
            assert shapes[L.inputs[0]] == shapes[L.inputs[1]], L.name
            shapes[L.name] = src
        elif L.kind == "gap":
            shapes[L.name] = (src[0],)
        elif L.kind == "dense":
            shapes[L.name] = (L.cfg["units"],)
        else:  # bn, relu
            shapes[L.name] = src
    return shapes


# --------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------

def init_weights(layers, shapes, rng):
    """{layer: {var: float32 array}} in Keras layouts (HWIO, [in, out]).

    BN moving statistics are placeholders (0 / 1) until calibrate_bn() runs."""
    weights = {}
    for L in layers:
        if L.kind == "conv":
            cin = shapes[L.inputs[0]][0]
            k, cout = L.cfg["kernel"], L.cfg["filters"]
            weights[L.name] = {
                "kernel": files.glorot_uniform(rng, (k, k, cin, cout), k * k * cin, k * k * cout),
                "bias": rng.uniform(-0.1, 0.1, size=cout).astype(np.float32),
            }
        elif L.kind == "bn":
            c = shapes[L.name][0]
            weights[L.name] = {
                "gamma": rng.uniform(0.5, 1.5, size=c).astype(np.float32),
                "beta": rng.uniform(-0.2, 0.2, size=c).astype(np.float32),
                "moving_mean": np.zeros(c, np.float32),
                "moving_variance": np.ones(c, np.float32),
            }
        elif L.kind == "dense":
            din, dout = shapes[L.inputs[0]][0], L.cfg["units"]
            weights[L.name] = {
                "kernel": files.glorot_uniform(rng, (din, dout), din, dout),
                "bias": rng.uniform(-0.1, 0.1, size=dout).astype(np.float32),
            }
    return weights


def to_torch_params(layers, weights, trainable):
    """float32 numpy weights -> float64 torch leaves; TRAINABLE_VARS of trainable layers get
    requires_grad."""
    return files.to_torch_params(layers, weights, trainable, TRAINABLE_VARS)


# --------------------------------------------------------------------------
# Forward pass (NCHW, float64)
# --------------------------------------------------------------------------

def _channel(v):
    """[C] -> [1, C, 1, 1] for broadcasting over NCHW."""
    return v.view(1, -1, 1, 1)


def batch_norm(x, mean, var, gamma, beta):
    """x: [N,C,H,W]; mean/var/gamma/beta: [C]."""
    return (x - _channel(mean)) * _channel(torch.rsqrt(var + BN_EPSILON)) * _channel(gamma) + _channel(beta)


def conv2d(x, kernel_hwio, bias, stride, pad):
    """x: [N,Cin,H,W]; kernel: [kh,kw,Cin,Cout] (Keras HWIO) -> OIHW for torch."""
    w_oihw = kernel_hwio.permute(3, 2, 0, 1)
    return F.conv2d(x, w_oihw, bias, stride=stride, padding=pad)


class _RoundToBfloat16(torch.autograd.Function):
    """A cast to bfloat16 in a float64 graph: the value rounded (nearest even), and the
    gradient flowing back through it rounded too, as a bfloat16 tensor's gradient is."""

    @staticmethod
    def forward(ctx, x):
        return x.to(torch.bfloat16).to(x.dtype)

    @staticmethod
    def backward(ctx, g):
        return g.to(torch.bfloat16).to(g.dtype)


def bf16(x):
    return _RoundToBfloat16.apply(x)


def forward(layers, params, x_nchw, trainable, keep=(), calibrate=None, mixed_bfloat16=False):
    """Run the graph.

    x_nchw: [B,3,S,S] float64.  Trainable BN layers use batch statistics;
    frozen ones use moving statistics.  If `calibrate` is given (a callback
    (layer_name, x) -> None), it is called before every BN so it can set that
    BN's moving statistics from its input, and all BNs then run in inference
    mode.  Returns (outputs of the layers in `keep` + the final layer,
    {bn_name: (batch_mean, biased_batch_var, n)} for trainable BNs).

    mixed_bfloat16: Keras's mixed_bfloat16 policy (keras/mixed_precision/policy.py,
    autocast_variable.py; BatchNormalization.call computes in float32): every layer's
    inputs are cast to bfloat16; Conv2D and Dense multiply by kernels cast to bfloat16,
    round the product, add the bias cast to bfloat16 and round again (conv / matmul, then
    bias_add, each a bfloat16 op); BatchNormalization computes in float32 (here float64)
    from its bfloat16 input with float32 gamma, beta and statistics and casts its output
    to bfloat16; Add and GlobalAveragePooling2D round their results; ReLU, padding and
    max pooling are exact on bfloat16.  The dense_1 logits are bfloat16; the softmax and
    the loss are float (the Keras mixed-precision guide's float32 output)."""
    r = bf16 if mixed_bfloat16 else (lambda t: t)
    last = files.last_use(layers)
    keep = set(keep) | {layers[-1].name}
    acts, bn_stats = {}, {}
    for i, L in enumerate(layers):
        ins = [r(acts[n]) for n in L.inputs]
        p = params.get(L.name)
        if L.kind == "input":
            y = r(x_nchw)
        elif L.kind == "zeropad":
            q = L.cfg["pad"]
            y = F.pad(ins[0], (q, q, q, q))  # zeros on W then H, both sides
        elif L.kind == "conv":
            if mixed_bfloat16:
                y = r(conv2d(ins[0], r(p["kernel"]), None, L.cfg["stride"], L.cfg["pad"]))
                y = r(y + _channel(r(p["bias"])))
            else:
                y = conv2d(ins[0], p["kernel"], p["bias"], L.cfg["stride"], L.cfg["pad"])
            if L.cfg.get("activation") == "relu":  # Conv2D(activation='relu'), as VGG's (exact
                y = F.relu(y)                      # on bfloat16 values)
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
            y = r(batch_norm(x, mean, var, p["gamma"], p["beta"]))
        elif L.kind == "relu":
            y = F.relu(ins[0])
        elif L.kind == "maxpool":
            y = F.max_pool2d(ins[0], L.cfg["size"], L.cfg["stride"])  # valid
        elif L.kind == "add":
            y = r(ins[0] + ins[1])
        elif L.kind == "gap":
            y = r(ins[0].mean(dim=(2, 3)))  # [B, C]
        elif L.kind == "dense":
            if mixed_bfloat16:
                y = r(r(ins[0] @ r(p["kernel"])) + r(p["bias"]))
            else:
                y = ins[0] @ p["kernel"] + p["bias"]  # logits for dense_1 (softmax applied later)
            if L.cfg["activation"] == "relu":
                y = F.relu(y)
        else:
            raise ValueError(L.kind)
        acts[L.name] = y
        # Free activations nobody needs any more (the 224 run is memory heavy).
        for src in L.inputs:
            if last[src] == i and src not in keep:
                del acts[src]
    return {k: acts[k] for k in keep}, bn_stats


def calibrate_bn(layers, weights, params, x_nchw, rng):
    """Set every BN's moving stats from its input on the batch (see docstring).

    moving_mean = batch mean, moving_variance = biased batch var * U(0.8, 1.2),
    rounded to float32; the rounded values are used for later layers."""
    callback = files.bn_calibration_callback(weights, params, rng)
    with torch.no_grad():
        forward(layers, params, x_nchw, trainable=set(), calibrate=callback)


def moving_update(mm, mv, mean, var_biased, n):
    """Keras BN update with Bessel-corrected batch variance."""
    var_unbiased = var_biased * n / (n - 1)
    return (BN_MOMENTUM * mm + (1 - BN_MOMENTUM) * mean,
            BN_MOMENTUM * mv + (1 - BN_MOMENTUM) * var_unbiased)


# --------------------------------------------------------------------------
# Main computation
# --------------------------------------------------------------------------

def boundary_layer(base_names, first_trainable):
    """The input of the earliest residual block that holds a trainable layer: the previous
    block's `_out` (pool1_pool before conv2_block1, input_1 for the stem)."""
    if first_trainable is None:
        return base_names[-1]
    i = base_names.index(first_trainable)
    if not first_trainable.startswith("conv") or "_block" not in first_trainable:
        return base_names[0]
    block = first_trainable.rsplit("_", 2)[0]  # e.g. conv4_block6
    while i > 0 and base_names[i - 1].startswith(block + "_"):
        i -= 1
    return base_names[i - 1]


def train_step_reference(layers, params, x_nchw, labels, trainable, base_out_name, boundary,
                         mixed_bfloat16=False):
    """One training-mode forward + backward; returns numpy results."""
    def run_forward(keep):
        return forward(layers, params, x_nchw, trainable, keep=keep, mixed_bfloat16=mixed_bfloat16)

    return files.train_step(run_forward, params, labels, trainable, base_out_name, boundary,
                            moving_update)


# --------------------------------------------------------------------------
# Self-checks
# --------------------------------------------------------------------------

def check_layer_list(layers, n_base, args):
    names = [L.name for L in layers[:n_base]]
    assert len(names) == RESNET_BASE_LAYERS[args.depth], len(names)
    assert names[0] == "input_1" and names[-1] == "conv5_block3_out", (names[0], names[-1])
    expected_last10 = ["conv5_block3_" + s for s in
                       ("1_conv", "1_bn", "1_relu", "2_conv", "2_bn", "2_relu",
                        "3_conv", "3_bn", "add", "out")]
    assert names[-10:] == expected_last10, names[-10:]
    assert len(set(n.name for n in layers)) == len(layers), "duplicate layer names"
    n_bn = sum(L.kind == "bn" for L in layers)
    n_conv = sum(L.kind == "conv" for L in layers)
    print(f"[check] base has {len(names)} layers ({n_conv} conv, {n_bn} bn), "
          f"first={names[0]} last={names[-1]}; last 10 OK")


def check_output_shapes(args):
    for size, width, expect in ((224, 64, (2048, 7, 7)), (32, args.width, (32 * args.width, 1, 1))):
        layers = build_base(width, args.depth)
        got = infer_shapes(layers, size)["conv5_block3_out"]
        assert got == expect, (size, width, got, expect)
        print(f"[check] image {size} width {width}: base output HxWxC = {got[1]}x{got[2]}x{got[0]} OK")


def check_finite_differences(layers, params, x_nchw, labels, trainable, result, seed, h=1e-6):
    """Central differences on 5 random entries of a few trainable kernels."""
    rng = np.random.default_rng(seed + 1)
    lab = torch.from_numpy(labels.astype(np.int64))

    def loss_value():
        with torch.no_grad():
            outs, _ = forward(layers, params, x_nchw, trainable)
            return files.cross_entropy(outs["dense_1"], lab).item()

    worst = 0.0
    for lname, vname in (("conv5_block3_3_conv", "kernel"), ("dense_1", "kernel"),
                         ("conv5_block3_1_conv", "kernel"), ("conv5_block3_3_bn", "gamma")):
        if lname not in result["grads"]:
            continue
        t = params[lname][vname]
        g = result["grads"][lname][vname]
        # Sample among non-zero gradients (dead ReLU units give trivial 0 == 0).
        candidates = np.flatnonzero(g) if np.count_nonzero(g) >= 5 else np.arange(g.size)
        for flat in rng.choice(candidates, size=5, replace=False):
            idx = np.unravel_index(flat, tuple(t.shape))
            with torch.no_grad():
                orig = t[idx].item()
                t[idx] = orig + h
                lp = loss_value()
                t[idx] = orig - h
                lm = loss_value()
                t[idx] = orig
            fd = (lp - lm) / (2 * h)
            an = g[idx]
            rel = abs(fd - an) / max(abs(fd), abs(an), 1e-30)
            worst = max(worst, rel)
            print(f"[check] FD {lname}/{vname}{tuple(int(i) for i in idx)}: "
                  f"analytic={an:+.10e} fd={fd:+.10e} rel_err={rel:.2e}")
            assert rel < 1e-5, (lname, vname, idx, an, fd, rel)
    print(f"[check] finite differences OK, worst rel_err={worst:.2e}")


def check_bias_grads(result):
    for i in (1, 2, 3):
        lname = f"conv5_block3_{i}_conv"
        if lname not in result["grads"]:
            continue
        g = np.abs(result["grads"][lname]["bias"]).max()
        print(f"[check] max |grad {lname}/bias| = {g:.3e} (conv followed by training-mode BN)")
        assert g < 1e-10, (lname, g)


# --------------------------------------------------------------------------

def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-weights", required=True)
    ap.add_argument("--out-ref", required=True)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--width", type=int, default=64, help="base filter count F")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--classes", type=int, default=3)
    ap.add_argument("--head-units", type=int, default=1024)
    ap.add_argument("--unfreeze-last", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--depth", type=int, choices=sorted(RESNET_STACKS), default=50,
                    help="ResNet50, ResNet101 or ResNet152")
    ap.add_argument("--self-check", action="store_true")
    ap.add_argument("--residual-gamma", type=float, default=1.0,
                    help="scale of the gamma of every block's last BatchNormalization (convN_blockK_3_bn)")
    ap.add_argument("--precision", choices=["float32", "mixed_bfloat16"], default="float32",
                    help="the policy of the reference training step (weights and BN "
                         "calibration are float64 either way, so a seed gives the same weights)")
    return ap.parse_args()


def main():
    args = parse_args()
    t0 = time.time()
    torch.manual_seed(args.seed)

    layers, n_base = build_model(args.width, args.head_units, args.classes, args.depth)
    base_names = [L.name for L in layers[:n_base]]
    base_out_name = base_names[-1]
    n_unfreeze = max(0, min(args.unfreeze_last, n_base))
    trainable_order = base_names[n_base - n_unfreeze:] + files.HEAD_LAYER_NAMES
    trainable = set(trainable_order)
    if args.self_check:
        check_layer_list(layers, n_base, args)
        check_output_shapes(args)

    shapes = infer_shapes(layers, args.image_size)
    rng = np.random.default_rng(args.seed)
    weights = init_weights(layers, shapes, rng)
    if args.residual_gamma != 1.0:
        # Each residual block's last BN scaled down: every block a small step from the identity,
        # as in a trained ResNet, so a rounding early in the network is not amplified into an
        # unrelated output (seeded random networks are chaotic: float32 against float64 drifts
        # by ~1e-4 after ~45 layers, bfloat16 decorrelates completely).
        for L in layers:
            if L.kind == "bn" and L.name.endswith("_3_bn"):
                weights[L.name]["gamma"] = (weights[L.name]["gamma"] * args.residual_gamma).astype(np.float32)
    x_nhwc, labels = files.make_inputs(rng, args.batch, args.image_size, args.classes)
    x_nchw = files.nhwc_to_nchw(x_nhwc)

    params = to_torch_params(layers, weights, trainable)
    calibrate_bn(layers, weights, params, x_nchw, rng)
    t_cal = time.time()

    first_trainable = next((n for n in base_names if n in trainable and weights.get(n)), None)
    boundary = boundary_layer(base_names, first_trainable)
    result = train_step_reference(layers, params, x_nchw, labels, trainable, base_out_name, boundary,
                                  mixed_bfloat16=args.precision == "mixed_bfloat16")
    t_ref = time.time()

    c, h, w = shapes[base_out_name]
    assert result["base_output"].shape == (args.batch, h, w, c), result["base_output"].shape
    files.save_keras_weights(args.out_weights, layers, weights, VAR_NAMES)
    files.save_reference(args.out_ref, args, x_nhwc, labels, result, trainable_order)

    base = result["base_output"]
    print(f"base_output {base.shape}: max|act| = {np.abs(base).max():.4g}, "
          f"mean = {base.mean():.4g}, std = {base.std():.4g}")
    print(f"loss = {result['loss']:.10f}; labels = {labels.tolist()}")
    print(f"trainable layers ({len(trainable_order)}): {trainable_order[0]} ... {trainable_order[-1]}; "
          f"{sum(len(v) for v in result['grads'].values())} grad tensors, "
          f"{len(result['moving'])} trainable BNs")
    print(f"time: setup+calibration {t_cal - t0:.2f} s, train-step reference {t_ref - t_cal:.2f} s")

    if args.self_check:
        check_bias_grads(result)
        check_finite_differences(layers, params, x_nchw, labels, trainable, result, args.seed)
        print("[check] all self-checks passed")
    print(f"wrote {args.out_weights} and {args.out_ref} in {time.time() - t0:.2f} s")


if __name__ == "__main__":
    main()
