#!/usr/bin/python3
"""Independent numerical reference for parafine's VGG16 / VGG19 (keras.applications vgg16.py
and vgg19.py with include_top=False, pooling=None) plus the fine-tuning head

    global_average_pooling2d -> dense (U, relu) -> dense_1 (C, softmax)

computed in float64 PyTorch from float32-stored seeded weights. The base, as vgg16.py /
vgg19.py build it: five blocks of Conv2D(filters, (3, 3), activation="relu", padding="same",
name="block{B}_conv{K}") (bias included) closed by MaxPooling2D((2, 2), strides=(2, 2),
name="block{B}_pool"); filters 64, 128, 256, 512, 512; convolutions per block 2, 2, 3, 3, 3
(VGG16) or 2, 2, 4, 4, 4 (VGG19). base.layers has 19 / 22 entries with the InputLayer.

Writes the same two files as every reference (keras_reference_files.py; the graph evaluation,
weight initialisation and training step are make_resnet50_reference.py's): ``--out-weights``
in the tf.keras ``save_weights`` layout and ``--out-ref`` with /input, /labels, /logits, /probs, /loss,
/pooled, /base_output, /boundary, /grads/<layer>/<var> and the attributes trainable_layers
and boundary_layer (VGG has no BatchNormalization: no /moving entries).

    /usr/bin/python3 tests/reference/make_vgg_reference.py --depth 16 \
        --out-weights /tmp/w.h5 --out-ref /tmp/r.h5 --image-size 32 --batch 2 --self-check

Random draw order (one np.random.default_rng(seed) stream): layer weights in layer order
(conv: kernel, bias; dense: kernel, bias), then the input batch, then the labels.
"""

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import keras_reference_files as files  # noqa: E402
import make_resnet50_reference as ref  # noqa: E402

VGG_CONVS = {16: [2, 2, 3, 3, 3], 19: [2, 2, 4, 4, 4]}
VGG_FILTERS = [64, 128, 256, 512, 512]
VGG_BASE_LAYERS = {16: 19, 19: 22}
# include_top=False parameter totals as Keras reports them (model.count_params()).
VGG_BASE_PARAMS = {16: 14714688, 19: 20024384}


def build_base(depth):
    """VGG16/19(include_top=False) base in tf.keras base.layers order."""
    g = ref.GraphBuilder()
    x = g.add("input_1", "input", [])
    for b, (convs, filters) in enumerate(zip(VGG_CONVS[depth], VGG_FILTERS), start=1):
        for k in range(1, convs + 1):
            # 3x3 stride 1 'same': one zero row/column on every side (TF puts an odd total's
            # extra at the bottom/right; here the total is 2).
            x = g.add(f"block{b}_conv{k}", "conv", [x], filters=filters, kernel=3, stride=1,
                      pad=1, activation="relu")
        x = g.add(f"block{b}_pool", "maxpool", [x], size=2, stride=2)
    return g.layers


def build_model(depth, head_units, classes):
    layers = build_base(depth)
    g = ref.GraphBuilder()
    g.layers = layers
    n_base = len(layers)
    x = g.add("global_average_pooling2d", "gap", [layers[-1].name])
    x = g.add("dense", "dense", [x], units=head_units, activation="relu")
    g.add("dense_1", "dense", [x], units=classes, activation="softmax")
    return g.layers, n_base


def boundary_layer(base_names, first_trainable):
    """The layer before the first trainable one (VGG is a chain): its output feeds the
    trainable suffix."""
    if first_trainable is None:
        return base_names[-1]
    return base_names[max(base_names.index(first_trainable) - 1, 0)]


def self_check(args, layers, n_base, weights):
    names = [L.name for L in layers[:n_base]]
    assert len(names) == VGG_BASE_LAYERS[args.depth], len(names)
    last_block = VGG_CONVS[args.depth][-1]
    assert names[-2:] == [f"block5_conv{last_block}", "block5_pool"], names[-2:]
    params = sum(v.size for n in names if n in weights for v in weights[n].values())
    assert params == VGG_BASE_PARAMS[args.depth], params
    for size, expect in ((224, (512, 7, 7)), (32, (512, 1, 1))):
        got = ref.infer_shapes(build_base(args.depth), size)["block5_pool"]
        assert got == expect, (size, got)
    print(f"[check] VGG{args.depth} base: {len(names)} layers, {params} parameters, "
          f"output 7x7x512 at 224 and 1x1x512 at 32 OK")


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-weights", required=True)
    ap.add_argument("--out-ref", required=True)
    ap.add_argument("--depth", type=int, choices=sorted(VGG_CONVS), default=16)
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--classes", type=int, default=3)
    ap.add_argument("--head-units", type=int, default=32)
    ap.add_argument("--unfreeze-last", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--self-check", action="store_true")
    ap.add_argument("--precision", choices=["float32", "mixed_bfloat16"], default="float32",
                    help="the policy of the reference training step (see "
                         "make_resnet50_reference.forward: the conv's bfloat16 result, the "
                         "bfloat16 bias add, then the ReLU, exact on bfloat16)")
    return ap.parse_args()


def main():
    args = parse_args()
    t0 = time.time()
    torch.manual_seed(args.seed)
    layers, n_base = build_model(args.depth, args.head_units, args.classes)
    base_names = [L.name for L in layers[:n_base]]
    n_unfreeze = max(0, min(args.unfreeze_last, n_base))
    trainable_order = base_names[n_base - n_unfreeze:] + files.HEAD_LAYER_NAMES
    trainable = set(trainable_order)

    shapes = ref.infer_shapes(layers, args.image_size)
    rng = np.random.default_rng(args.seed)
    weights = ref.init_weights(layers, shapes, rng)
    if args.self_check:
        self_check(args, layers, n_base, weights)
    x_nhwc, labels = files.make_inputs(rng, args.batch, args.image_size, args.classes)
    x_nchw = files.nhwc_to_nchw(x_nhwc)
    params = ref.to_torch_params(layers, weights, trainable)

    first_trainable = next((n for n in base_names if n in trainable and weights.get(n)), None)
    boundary = boundary_layer(base_names, first_trainable)
    result = ref.train_step_reference(layers, params, x_nchw, labels, trainable, base_names[-1],
                                      boundary,
                                      mixed_bfloat16=args.precision == "mixed_bfloat16")
    t_ref = time.time()
    files.save_keras_weights(args.out_weights, layers, weights, ref.VAR_NAMES)
    files.save_reference(args.out_ref, args, x_nhwc, labels, result, trainable_order)

    base = result["base_output"]
    print(f"VGG{args.depth} base_output {base.shape}: max|act| = {np.abs(base).max():.4g}, "
          f"zeros {np.mean(base == 0):.2f}; loss = {result['loss']:.10f}; labels = {labels.tolist()}")
    print(f"trainable layers ({len(trainable_order)}): {trainable_order[0]} ... "
          f"{trainable_order[-1]}; boundary {boundary}; "
          f"{sum(len(v) for v in result['grads'].values())} grad tensors")
    if args.self_check and args.precision == "float32":
        lname = next(n for n in trainable_order if n.startswith("block") and n in weights)
        g = result["grads"][lname]["kernel"]
        h, rng_fd, lab = 1e-6, np.random.default_rng(args.seed + 1), torch.from_numpy(labels.astype(np.int64))
        t = params[lname]["kernel"]
        worst = 0.0
        for flat in rng_fd.choice(np.flatnonzero(g), size=5, replace=False):
            idx = np.unravel_index(flat, tuple(t.shape))
            values = []
            for d in (h, -h):
                with torch.no_grad():
                    orig = t[idx].item()
                    t[idx] = orig + d
                    outs, _ = ref.forward(layers, params, x_nchw, trainable)
                    values.append(files.cross_entropy(outs["dense_1"], lab).item())
                    t[idx] = orig
            fd = (values[0] - values[1]) / (2 * h)
            rel = abs(fd - g[idx]) / max(abs(fd), abs(g[idx]), 1e-30)
            worst = max(worst, rel)
            assert rel < 1e-5, (lname, idx, g[idx], fd)
        print(f"[check] finite differences on {lname}/kernel OK, worst rel_err={worst:.2e}")
    print(f"wrote {args.out_weights} and {args.out_ref} in {time.time() - t0:.2f} s "
          f"(reference step {t_ref - t0:.2f} s)")


if __name__ == "__main__":
    main()
