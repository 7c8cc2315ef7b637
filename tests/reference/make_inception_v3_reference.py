#!/usr/bin/python3
"""Independent numerical reference for parafine's tf.keras InceptionV3 (include_top=False).

Transcribes keras/applications/inception_v3.py (tf.keras 2.x) into a layer graph, naming every
layer as a fresh tf.keras session does (Input -> input_1; unnamed layers take
backend.unique_object_name of their snake-cased class, zero-based: conv2d, conv2d_1, ...; named
ones mixed0..mixed10, mixed9_0, mixed9_1 keep their names and use no counter), then orders
base.layers as keras/engine/functional.py `_map_graph_network` does: layers sorted by depth
(longest path to the output) from deepest to shallowest, ties broken by the order in which the
depth-first `_build_map` from the output first reaches them (inputs of a node visited in list
order). The fine-tuning head global_average_pooling2d -> dense (U, relu) -> dense_1 (C, softmax)
follows. PyTorch computes in float64 from float32-stored weights; two HDF5 files are written,
in the schema of keras_reference_files.py:

* ``--out-weights W.h5``: seeded random weights in the tf.keras model.save_weights('m.h5')
  layout (HWIO conv kernels without bias; BatchNormalization(scale=False) variables beta,
  moving_mean, moving_variance; dense kernel [in, out] and bias), all float32.
* ``--out-ref R.h5``: /input (NHWC), /labels and the float64 results of ONE training step:
  /logits, /probs, /loss (mean categorical cross-entropy), /pooled, /base_output (NHWC),
  /grads/<layer>/<var> for every trained variable, /moving/<layer>/moving_{mean,variance} of
  every trainable BN after Keras's momentum-0.99 update (Bessel-corrected batch variance),
  /boundary (NHWC) and the attributes trainable_layers and boundary_layer (the latest base node
  before the first trainable layer that no later layer reads past: a mixedK output, the stem's
  last max_pooling2d, or input_1).

Trainable: the last --unfreeze-last entries of base.layers (311 entries) plus the head. Frozen
BNs run in inference mode (moving statistics, epsilon 1e-3), trainable ones on batch statistics.
Padding is TensorFlow's: 'same' puts the extra cell of an even total at the bottom/right, and
AveragePooling2D 'same' divides by the number of real cells in each window.

Usage:  /usr/bin/python3 tests/reference/make_inception_v3_reference.py --out-weights w.h5 \
            --out-ref r.h5 --image-size 75 --batch 2 --unfreeze-last 10 --self-check

Random draw order (one np.random.default_rng(seed) stream): weights in base.layers order then
the head (conv: kernel; BN: beta; dense: kernel, bias), the input batch, the labels, the
--calibration-images extra images, then the BN calibration factors in base.layers order. BN
moving statistics come from the batch plus those images (mean, biased variance times
U(0.8, 1.2)). The finite-difference check uses default_rng(seed+1).
"""

import argparse
import collections
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

BN_EPSILON = 1e-3  # tf.keras BatchNormalization default; inception_v3.conv2d_bn sets no other
BN_MOMENTUM = 0.99
BASE_LAYERS = 311
BASE_PARAMS = 21802784  # InceptionV3(include_top=False).count_params(), moving statistics included

VAR_NAMES = {"conv": ["kernel"], "bn": ["beta", "moving_mean", "moving_variance"],
             "dense": ["kernel", "bias"]}
TRAINABLE_VARS = {"conv": ["kernel"], "bn": ["beta"], "dense": ["kernel", "bias"]}
# tf.keras class name -> the snake-case prefix of its auto name
CLASS_OF_KIND = {"conv": "Conv2D", "bn": "BatchNormalization", "relu": "Activation",
                 "maxpool": "MaxPooling2D", "avgpool": "AveragePooling2D",
                 "concat": "Concatenate"}
AUTO_PREFIX = {"conv": "conv2d", "bn": "batch_normalization", "relu": "activation",
               "maxpool": "max_pooling2d", "avgpool": "average_pooling2d",
               "concat": "concatenate"}


@dataclass
class Layer:
    name: str
    kind: str  # input|conv|bn|relu|maxpool|avgpool|concat|gap|dense
    inputs: list
    cfg: dict = field(default_factory=dict)


class Session:
    """Layers in creation order, named as a fresh tf.keras session names them."""

    def __init__(self):
        self.layers = []
        self.uids = collections.defaultdict(int)

    def add(self, kind, inputs, name=None, **cfg):
        if name is None:
            prefix = AUTO_PREFIX[kind]
            n = self.uids[prefix]
            self.uids[prefix] += 1
            name = prefix if n == 0 else f"{prefix}_{n}"
        self.layers.append(Layer(name, kind, list(inputs), cfg))
        return name


# --------------------------------------------------------------------------
# keras/applications/inception_v3.py, transcribed
# --------------------------------------------------------------------------

def conv2d_bn(s, x, filters, num_row, num_col, padding="same", strides=1):
    x = s.add("conv", [x], filters=filters, kh=num_row, kw=num_col, stride=strides, padding=padding)
    x = s.add("bn", [x])
    return s.add("relu", [x])


def avg_pool(s, x):
    return s.add("avgpool", [x], size=3, stride=1, padding="same")


def max_pool(s, x):
    return s.add("maxpool", [x], size=3, stride=2)


def concat(s, xs, name=None):
    return s.add("concat", xs, name=name)


def inception_v3_creation_order():
    s = Session()
    img = s.add("input", [], name="input_1")
    x = conv2d_bn(s, img, 32, 3, 3, strides=2, padding="valid")
    x = conv2d_bn(s, x, 32, 3, 3, padding="valid")
    x = conv2d_bn(s, x, 64, 3, 3)
    x = max_pool(s, x)
    x = conv2d_bn(s, x, 80, 1, 1, padding="valid")
    x = conv2d_bn(s, x, 192, 3, 3, padding="valid")
    x = max_pool(s, x)

    # mixed 0, 1, 2: 35 x 35 x 256 (at 299)
    for i, pool_filters in enumerate((32, 64, 64)):
        b1 = conv2d_bn(s, x, 64, 1, 1)
        b5 = conv2d_bn(s, x, 48, 1, 1)
        b5 = conv2d_bn(s, b5, 64, 5, 5)
        b3 = conv2d_bn(s, x, 64, 1, 1)
        b3 = conv2d_bn(s, b3, 96, 3, 3)
        b3 = conv2d_bn(s, b3, 96, 3, 3)
        bp = avg_pool(s, x)
        bp = conv2d_bn(s, bp, pool_filters, 1, 1)
        x = concat(s, [b1, b5, b3, bp], name=f"mixed{i}")

    # mixed 3: 17 x 17 x 768
    b3 = conv2d_bn(s, x, 384, 3, 3, strides=2, padding="valid")
    bd = conv2d_bn(s, x, 64, 1, 1)
    bd = conv2d_bn(s, bd, 96, 3, 3)
    bd = conv2d_bn(s, bd, 96, 3, 3, strides=2, padding="valid")
    bp = max_pool(s, x)
    x = concat(s, [b3, bd, bp], name="mixed3")

    # mixed 4, 5, 6, 7: 17 x 17 x 768
    for i, f7 in ((4, 128), (5, 160), (6, 160), (7, 192)):
        b1 = conv2d_bn(s, x, 192, 1, 1)
        b7 = conv2d_bn(s, x, f7, 1, 1)
        b7 = conv2d_bn(s, b7, f7, 1, 7)
        b7 = conv2d_bn(s, b7, 192, 7, 1)
        bd = conv2d_bn(s, x, f7, 1, 1)
        bd = conv2d_bn(s, bd, f7, 7, 1)
        bd = conv2d_bn(s, bd, f7, 1, 7)
        bd = conv2d_bn(s, bd, f7, 7, 1)
        bd = conv2d_bn(s, bd, 192, 1, 7)
        bp = avg_pool(s, x)
        bp = conv2d_bn(s, bp, 192, 1, 1)
        x = concat(s, [b1, b7, bd, bp], name=f"mixed{i}")

    # mixed 8: 8 x 8 x 1280
    b3 = conv2d_bn(s, x, 192, 1, 1)
    b3 = conv2d_bn(s, b3, 320, 3, 3, strides=2, padding="valid")
    b7 = conv2d_bn(s, x, 192, 1, 1)
    b7 = conv2d_bn(s, b7, 192, 1, 7)
    b7 = conv2d_bn(s, b7, 192, 7, 1)
    b7 = conv2d_bn(s, b7, 192, 3, 3, strides=2, padding="valid")
    bp = max_pool(s, x)
    x = concat(s, [b3, b7, bp], name="mixed8")

    # mixed 9, 10: 8 x 8 x 2048
    for i in range(2):
        b1 = conv2d_bn(s, x, 320, 1, 1)
        b3 = conv2d_bn(s, x, 384, 1, 1)
        b3_1 = conv2d_bn(s, b3, 384, 1, 3)
        b3_2 = conv2d_bn(s, b3, 384, 3, 1)
        b3 = concat(s, [b3_1, b3_2], name=f"mixed9_{i}")
        bd = conv2d_bn(s, x, 448, 1, 1)
        bd = conv2d_bn(s, bd, 384, 3, 3)
        bd_1 = conv2d_bn(s, bd, 384, 1, 3)
        bd_2 = conv2d_bn(s, bd, 384, 3, 1)
        bd = concat(s, [bd_1, bd_2])
        bp = avg_pool(s, x)
        bp = conv2d_bn(s, bp, 192, 1, 1)
        x = concat(s, [b1, b3, bd, bp], name=f"mixed{9 + i}")
    return s.layers, x


def keras_layer_order(layers, output):
    """tf.keras functional._map_graph_network's `layers` for one input and one output."""
    by_name = {L.name: L for L in layers}
    finished, order, index = set(), [], {}

    def visit(name):  # _build_map_helper
        if name in finished:
            return
        index.setdefault(name, len(index))
        for src in by_name[name].inputs:
            visit(src)
        finished.add(name)
        order.append(name)  # nodes_in_decreasing_depth

    visit(output)
    depth = {}
    for name in reversed(order):
        d = depth.setdefault(name, 0)
        for src in by_name[name].inputs:
            depth[src] = max(depth.get(src, 0), d + 1)
    ranked = sorted(order, key=lambda n: (-depth[n], index[n]))
    return [by_name[n] for n in ranked]


def build_model(head_units, classes):
    created, out = inception_v3_creation_order()
    base = keras_layer_order(created, out)
    layers = list(base)
    layers.append(Layer("global_average_pooling2d", "gap", [out]))
    layers.append(Layer("dense", "dense", ["global_average_pooling2d"], {"units": head_units, "act": "relu"}))
    layers.append(Layer("dense_1", "dense", ["dense"], {"units": classes, "act": "softmax"}))
    return layers, len(base), created


def tf_same_pads(size, k, s):
    """TensorFlow 'same': out = ceil(size/s); the odd cell of the total padding goes after."""
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def infer_shapes(layers, size):
    shapes = {}
    for L in layers:
        if L.kind == "input":
            shapes[L.name] = (3, size, size)
            continue
        c, h, w = shapes[L.inputs[0]] if len(shapes[L.inputs[0]]) == 3 else (shapes[L.inputs[0]][0], 0, 0)
        if L.kind in ("conv", "maxpool", "avgpool"):
            kh, kw = (L.cfg["kh"], L.cfg["kw"]) if L.kind == "conv" else (L.cfg["size"],) * 2
            st = L.cfg["stride"]
            if L.cfg.get("padding", "valid") == "same":
                ho, wo = -(-h // st), -(-w // st)
            else:
                ho, wo = (h - kh) // st + 1, (w - kw) // st + 1
            assert ho > 0 and wo > 0, f"{L.name}: no output at image size {size}"
            shapes[L.name] = (L.cfg["filters"] if L.kind == "conv" else c, ho, wo)
        elif L.kind == "concat":
            ins = [shapes[n] for n in L.inputs]
            assert all(i[1:] == ins[0][1:] for i in ins), L.name
            shapes[L.name] = (sum(i[0] for i in ins), h, w)
        elif L.kind == "gap":
            shapes[L.name] = (c,)
        elif L.kind == "dense":
            shapes[L.name] = (L.cfg["units"],)
        else:  # bn, relu
            shapes[L.name] = (c, h, w)
    return shapes


# --------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------

def init_weights(layers, shapes, rng):
    weights = {}
    for L in layers:
        if L.kind == "conv":
            cin, kh, kw, cout = shapes[L.inputs[0]][0], L.cfg["kh"], L.cfg["kw"], L.cfg["filters"]
            weights[L.name] = {"kernel": files.glorot_uniform(rng, (kh, kw, cin, cout), kh * kw * cin, kh * kw * cout)}
        elif L.kind == "bn":
            c = shapes[L.name][0]
            weights[L.name] = {"beta": rng.uniform(-0.2, 0.2, size=c).astype(np.float32),
                               "moving_mean": np.zeros(c, np.float32),
                               "moving_variance": np.ones(c, np.float32)}
        elif L.kind == "dense":
            din, dout = shapes[L.inputs[0]][0], L.cfg["units"]
            weights[L.name] = {"kernel": files.glorot_uniform(rng, (din, dout), din, dout),
                               "bias": rng.uniform(-0.1, 0.1, size=dout).astype(np.float32)}
    return weights


# --------------------------------------------------------------------------
# Forward (NCHW, float64)
# --------------------------------------------------------------------------

def _channel(v):
    return v.view(1, -1, 1, 1)


def pad_same(x, kh, kw, stride):
    """x [N,C,H,W] zero-padded as TensorFlow's 'same' pads it."""
    top, bottom = tf_same_pads(x.shape[2], kh, stride)
    left, right = tf_same_pads(x.shape[3], kw, stride)
    return F.pad(x, (left, right, top, bottom))


def conv2d(x, kernel_hwio, cfg):
    kh, kw, st = cfg["kh"], cfg["kw"], cfg["stride"]
    if cfg["padding"] == "same":
        x = pad_same(x, kh, kw, st)
    return F.conv2d(x, kernel_hwio.permute(3, 2, 0, 1), None, stride=st)


def avg_pool_same(x, k, stride):
    """TF AvgPool 'same': each window's sum over its real cells divided by their count."""
    sums = F.avg_pool2d(pad_same(x, k, k, stride), k, stride) * (k * k)
    ones = torch.ones(1, 1, x.shape[2], x.shape[3], dtype=x.dtype)
    counts = F.avg_pool2d(pad_same(ones, k, k, stride), k, stride) * (k * k)
    return sums / counts


def forward(layers, params, x_nchw, trainable, keep=(), calibrate=None):
    last = files.last_use(layers)
    keep = set(keep) | {layers[-1].name}
    acts, bn_stats = {}, {}
    for i, L in enumerate(layers):
        ins = [acts[n] for n in L.inputs]
        p = params.get(L.name)
        if L.kind == "input":
            y = x_nchw
        elif L.kind == "conv":
            y = conv2d(ins[0], p["kernel"], L.cfg)
        elif L.kind == "bn":  # scale=False: no gamma
            x = ins[0]
            if calibrate is not None:
                calibrate(L.name, x)
            if L.name in trainable and calibrate is None:
                mean = x.mean(dim=(0, 2, 3))
                var = x.var(dim=(0, 2, 3), unbiased=False)
                bn_stats[L.name] = (mean.detach(), var.detach(), x.numel() // x.shape[1])
            else:
                mean, var = p["moving_mean"], p["moving_variance"]
            y = (x - _channel(mean)) * _channel(torch.rsqrt(var + BN_EPSILON)) + _channel(p["beta"])
        elif L.kind == "relu":
            y = F.relu(ins[0])
        elif L.kind == "maxpool":
            y = F.max_pool2d(ins[0], L.cfg["size"], L.cfg["stride"])  # 'valid'
        elif L.kind == "avgpool":
            y = avg_pool_same(ins[0], L.cfg["size"], L.cfg["stride"])
        elif L.kind == "concat":
            y = torch.cat(ins, dim=1)
        elif L.kind == "gap":
            y = ins[0].mean(dim=(2, 3))
        elif L.kind == "dense":
            y = ins[0] @ p["kernel"] + p["bias"]
            if L.cfg["act"] == "relu":
                y = F.relu(y)
        else:
            raise ValueError(L.kind)
        acts[L.name] = y
        for src in L.inputs:
            if last[src] == i and src not in keep:
                del acts[src]
    return {k: acts[k] for k in keep}, bn_stats


def calibrate_bn(layers, weights, params, x_nchw, rng):
    """Every BN's moving statistics from its input on this batch (variance times U(0.8, 1.2)),
    rounded to float32, layer by layer in base.layers order."""
    callback = files.bn_calibration_callback(weights, params, rng)
    with torch.no_grad():
        forward(layers, params, x_nchw, trainable=set(), calibrate=callback)


def moving_update(mm, mv, mean, var_biased, n):
    return (BN_MOMENTUM * mm + (1 - BN_MOMENTUM) * mean,
            BN_MOMENTUM * mv + (1 - BN_MOMENTUM) * var_biased * n / (n - 1))


# --------------------------------------------------------------------------
# Main computation
# --------------------------------------------------------------------------

def boundary_layer(base, first_trainable):
    """The latest base node before the first trainable layer such that no later base layer
    reads a node before it (where Model::forward_from can start); the base output when nothing
    in the base is trainable."""
    names = [L.name for L in base]
    if first_trainable is None:
        return names[-1]
    pos = {n: i for i, n in enumerate(names)}
    earliest_read_after = [len(names)] * (len(names) + 1)  # min input index over layers >= i
    for i in range(len(names) - 1, -1, -1):
        m = min((pos[s] for s in base[i].inputs), default=i)
        earliest_read_after[i] = min(earliest_read_after[i + 1], m)
    for k in range(pos[first_trainable] - 1, -1, -1):
        if earliest_read_after[k + 1] >= k:
            return names[k]
    return names[0]


def train_step_reference(layers, params, x_nchw, labels, trainable, base_out, boundary):
    def run_forward(keep):
        return forward(layers, params, x_nchw, trainable, keep=keep)

    return files.train_step(run_forward, params, labels, trainable, base_out, boundary,
                            moving_update)


# --------------------------------------------------------------------------
# Self-checks
# --------------------------------------------------------------------------

def check_structure(layers, n_base, created):
    base = layers[:n_base]
    names = [L.name for L in base]
    assert n_base == BASE_LAYERS, n_base
    assert len(set(L.name for L in layers)) == len(layers), "duplicate names"
    assert sorted(names) == sorted(L.name for L in created)
    assert names[0] == "input_1" and names[-1] == "mixed10", (names[0], names[-1])
    counts = collections.Counter(L.kind for L in base)
    assert counts["conv"] == counts["bn"] == counts["relu"] == 94, counts
    assert counts["maxpool"] == 4 and counts["avgpool"] == 9 and counts["concat"] == 15, counts
    # Every layer reads only earlier ones (a topological order).
    pos = {n: i for i, n in enumerate(names)}
    assert all(pos[s] < pos[L.name] for L in base for s in L.inputs)
    shapes = infer_shapes(base, 299)
    total = 0
    for L in base:
        if L.kind == "conv":
            total += L.cfg["kh"] * L.cfg["kw"] * shapes[L.inputs[0]][0] * L.cfg["filters"]
        elif L.kind == "bn":
            total += 3 * shapes[L.name][0]
    assert total == BASE_PARAMS, total
    assert shapes["mixed10"] == (2048, 8, 8), shapes["mixed10"]
    assert infer_shapes(base, 75)["mixed10"] == (2048, 1, 1)
    try:
        infer_shapes(base, 74)
        refused = False
    except AssertionError as e:
        refused = "no output at image size 74" in str(e)
    assert refused, "74 should leave a layer without output"
    print(f"[check] {n_base} base layers, {total} parameters, 299 -> 8x8x2048, 75 -> 1x1x2048, "
          f"74 has no output")
    for i in (0, 1, 2, 3, 4, 10, 11, 12, 40, 41, 100, 228, 229, 270, 271, 290, 300, 309, 310):
        print(f"[order] {i}: {names[i]} {CLASS_OF_KIND.get(base[i].kind, base[i].kind)} "
              f"<- {base[i].inputs}")


def check_finite_differences(layers, params, x_nchw, labels, trainable, result, seed, h=1e-6):
    rng = np.random.default_rng(seed + 1)
    lab = torch.from_numpy(labels.astype(np.int64))

    def loss_value():
        with torch.no_grad():
            outs, _ = forward(layers, params, x_nchw, trainable)
            return files.cross_entropy(outs["dense_1"], lab).item()

    kinds = {L.name: L.kind for L in layers}
    checked = [next((n for n in result["grads"] if kinds[n] == k), None) for k in ("conv", "bn")]
    for lname in [n for n in checked if n] + ["dense_1"]:
        vname = "kernel" if "kernel" in result["grads"][lname] else "beta"
        t, g = params[lname][vname], result["grads"][lname][vname]
        candidates = np.flatnonzero(g) if np.count_nonzero(g) >= 3 else np.arange(g.size)
        for flat in rng.choice(candidates, size=3, replace=False):
            idx = np.unravel_index(flat, tuple(t.shape))
            with torch.no_grad():
                orig = t[idx].item()
                t[idx] = orig + h
                lp = loss_value()
                t[idx] = orig - h
                lm = loss_value()
                t[idx] = orig
            fd, an = (lp - lm) / (2 * h), g[idx]
            rel = abs(fd - an) / max(abs(fd), abs(an), 1e-30)
            print(f"[check] FD {lname}/{vname}{tuple(int(i) for i in idx)}: analytic={an:+.10e} "
                  f"fd={fd:+.10e} rel_err={rel:.2e}")
            assert rel < 1e-5, (lname, vname, idx, an, fd, rel)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-weights", required=True)
    ap.add_argument("--out-ref", required=True)
    ap.add_argument("--image-size", type=int, default=75)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--classes", type=int, default=3)
    ap.add_argument("--head-units", type=int, default=32)
    ap.add_argument("--unfreeze-last", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--calibration-images", type=int, default=8,
                    help="random images besides the batch that BN calibration sees")
    ap.add_argument("--self-check", action="store_true")
    return ap.parse_args()


def main():
    args = parse_args()
    t0 = time.time()
    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    layers, n_base, created = build_model(args.head_units, args.classes)
    base = layers[:n_base]
    base_names = [L.name for L in base]
    n_unfreeze = max(0, min(args.unfreeze_last, n_base))
    trainable_order = base_names[n_base - n_unfreeze:] + files.HEAD_LAYER_NAMES
    trainable = set(trainable_order)
    if args.self_check:
        check_structure(layers, n_base, created)

    shapes = infer_shapes(layers, args.image_size)
    rng = np.random.default_rng(args.seed)
    weights = init_weights(layers, shapes, rng)
    x_nhwc, labels = files.make_inputs(rng, args.batch, args.image_size, args.classes)
    x_nchw = files.nhwc_to_nchw(x_nhwc)
    params = files.to_torch_params(layers, weights, trainable, TRAINABLE_VARS)
    # Calibrated on the batch and --calibration-images more: at 75 the last blocks are 1x1, and
    # statistics of 3 values leave channels with a near-zero moving variance that amplify any
    # rounding (float32 PyTorch is then 0.37 from float64 at mixed10); 8 more keep it ~1e-3.
    extra = (rng.uniform(-1.0, 1.0, size=(args.calibration_images,) + x_nhwc.shape[1:]) * 50.0)
    x_cal = np.concatenate([x_nhwc, extra.astype(np.float32)])
    calibrate_bn(layers, weights, params, files.nhwc_to_nchw(x_cal), rng)
    t_cal = time.time()

    first_trainable = next((n for n in base_names if n in trainable), None)
    boundary = boundary_layer(base, first_trainable)
    result = train_step_reference(layers, params, x_nchw, labels, trainable, base_names[-1], boundary)
    t_ref = time.time()
    files.save_keras_weights(args.out_weights, layers, weights, VAR_NAMES)
    files.save_reference(args.out_ref, args, x_nhwc, labels, result, trainable_order)

    b = result["base_output"]
    print(f"base_output {b.shape}: max|act| {np.abs(b).max():.4g}, mean {b.mean():.4g}; "
          f"loss {result['loss']:.10f}; labels {labels.tolist()}")
    print(f"trainable ({len(trainable_order)}): {trainable_order[0]} ... {trainable_order[-1]}; "
          f"boundary {boundary}; {sum(len(v) for v in result['grads'].values())} grad tensors, "
          f"{len(result['moving'])} trainable BNs")
    print(f"time: setup+calibration {t_cal - t0:.2f} s, train step {t_ref - t_cal:.2f} s")
    if args.self_check:
        check_finite_differences(layers, params, x_nchw, labels, trainable, result, args.seed)
        print("[check] all self-checks passed")
    print(f"wrote {args.out_weights} and {args.out_ref} in {time.time() - t0:.2f} s")


if __name__ == "__main__":
    main()
