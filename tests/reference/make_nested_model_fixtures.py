"""Nested Keras models in Keras's file formats, with float64 PyTorch predictions (issue 14).

1. The Keras transfer-learning guide's model (keras.io/guides/transfer_learning):

       base = <a small Functional model built as keras.applications builds one>
       base.trainable = False
       inputs = keras.Input((32, 32, 3))
       x = layers.Rescaling(1 / 127.5, offset=-1)(inputs)
       x = base(x, training=False)
       x = layers.GlobalAveragePooling2D()(x)
       x = layers.Dropout(0.2)(x)
       outputs = layers.Dense(3, activation="softmax")(x)
       model = keras.Model(inputs, outputs)

   base "mini_resnet" (11 layers): input_layer, conv1_conv (8, 3x3 stride 2 "same": TF pads
   0 before and 1 after), conv1_bn, conv1_relu (Activation), block1_1_conv, block1_1_bn,
   block1_1_relu (ReLU), block1_2_conv, block1_2_bn, block1_add (Add with conv1_relu),
   block1_out (Activation). Written as nested.keras / nested_k2.h5 (+ the other two formats
   and the two configs); the base is frozen, so the Keras 2 group of mini_resnet lists its
   weights layer by layer (tf-keras _legacy_weights of a frozen model).
2. The same weights as one flat Functional model (the base's layers inlined, same names, the
   base's InputLayer gone): flat.keras (+ the other formats). It must predict what nested does.
3. A Teachable-Machine-like export: Sequential[ Sequential[ base (trainable) ],
   Sequential[ GlobalAveragePooling2D, Dense(16, relu), Dense(3, softmax, use_bias=False) ] ]:
   tm.keras, tm_k2.h5 (+ the others); the Keras 2 group of the inner Sequential lists every
   trainable variable first, then the BN moving statistics.

nested_ref.h5: /images uint8 [4,32,32,3], /input (the same as float64: the models rescale
inside), /probs_nested [4,3] (== the flat model's, checked here), /input_tm (x / 127.5 - 1 in
float32, as Teachable Machine's apps feed its exports), /probs_tm [4,3], datasets (and attributes)
float32_distance_nested / _tm (max |float32 - float64| of the PyTorch forward).
"""

import argparse
import os
import sys

import h5py
import numpy as np

import keras_model_writer as kw
from make_small_cnn_reference import bn_weights, float32_distance, glorot, predict, uniform


def base_weights(rng):
    """{layer: {var: array}} of mini_resnet."""
    w = {}
    for name, cin in (("conv1", 3), ("block1_1", 8), ("block1_2", 8)):
        w[f"{name}_conv"] = {"kernel": glorot(rng, (3, 3, cin, 8)),
                             "bias": uniform(rng, (8,), 0.05)}
        w[f"{name}_bn"] = bn_weights(rng, 8)
        # keras.applications' BN epsilon; moving statistics near the conv outputs' scale
        w[f"{name}_bn"]["moving_variance"] *= np.float32(20.0)
    return w


def base_layers(w, first_inbound):
    """mini_resnet's layers after its InputLayer, the first fed by `first_inbound`."""
    L = kw.Layer
    conv = lambda name, inb, **o: L("Conv2D", name, dict(filters=8, kernel_size=3,
                                                          padding="same", **o), [inb], w[name])
    bn = lambda name, inb: L("BatchNormalization", name, {"epsilon": 1.001e-5}, [inb], w[name])
    return [
        conv("conv1_conv", first_inbound, strides=2),
        bn("conv1_bn", "conv1_conv"),
        L("Activation", "conv1_relu", {"activation": "relu"}, ["conv1_bn"]),
        conv("block1_1_conv", "conv1_relu"),
        bn("block1_1_bn", "block1_1_conv"),
        L("ReLU", "block1_1_relu", {}, ["block1_1_bn"]),
        conv("block1_2_conv", "block1_1_relu"),
        bn("block1_2_bn", "block1_2_conv"),
        L("Add", "block1_add", {}, ["conv1_relu", "block1_2_bn"]),
        L("Activation", "block1_out", {"activation": "relu"}, ["block1_add"]),
    ]


def base_model(w, trainable, inbound=(), call_kwargs=None):
    layers = [kw.Layer("InputLayer", "input_layer", shape=(32, 32, 3))]
    layers += base_layers(w, "input_layer")
    return kw.Model("Functional", "mini_resnet", layers, inbound=inbound,
                    call_kwargs=call_kwargs, trainable=trainable)


def head_layers(rng, first_inbound):
    return [
        kw.Layer("GlobalAveragePooling2D", "global_average_pooling2d", {}, [first_inbound]),
        kw.Layer("Dropout", "dropout", {"rate": 0.2}, ["global_average_pooling2d"]),
        kw.Layer("Dense", "dense", {"units": 3, "activation": "softmax"}, ["dropout"],
                 {"kernel": glorot(rng, (8, 3)) * np.float32(4), "bias": uniform(rng, (3,), 0.1)}),
    ]


def guide_models(rng, w):
    """(nested, flat): the guide's model and its inlined twin, the same weights."""
    head = head_layers(rng, "mini_resnet")
    outer_in = kw.Layer("InputLayer", "input_layer_1", shape=(32, 32, 3))
    rescale = lambda: kw.Layer("Rescaling", "rescaling", {"scale": 1 / 127.5, "offset": -1.0},
                               ["input_layer_1"])
    base = base_model(w, False, inbound=["rescaling"], call_kwargs={"training": False})
    nested = kw.Model("Functional", "functional", [outer_in, rescale(), base] + head)
    inlined = base_layers(w, "rescaling")
    for L in inlined:
        L.trainable = False
    flat_head = [kw.Layer(L.cls, L.name, L.options, L.inbound, L.weights) for L in head]
    flat_head[0].inbound = ["block1_out"]
    flat = kw.Model("Functional", "functional",
                    [kw.Layer("InputLayer", "input_layer_1", shape=(32, 32, 3)), rescale()]
                    + inlined + flat_head)
    return nested, flat


def teachable_machine_model(rng, w):
    inner = kw.Model("Sequential", "sequential_1", [
        kw.Layer("InputLayer", "input_layer_3", shape=(32, 32, 3)), base_model(w, True)])
    head = kw.Model("Sequential", "sequential_3", [
        kw.Layer("InputLayer", "input_layer_4", shape=(16, 16, 8)),
        kw.Layer("GlobalAveragePooling2D", "global_average_pooling2d_1"),
        kw.Layer("Dense", "dense_Dense1", {"units": 16, "activation": "relu"},
                 weights={"kernel": glorot(rng, (8, 16)), "bias": uniform(rng, (16,), 0.1)}),
        kw.Layer("Dense", "dense_Dense2", {"units": 3, "activation": "softmax",
                                           "use_bias": False},
                 weights={"kernel": glorot(rng, (16, 3))}),
    ])
    return kw.Model("Sequential", "sequential_2", [
        kw.Layer("InputLayer", "input_layer_2", shape=(32, 32, 3)), inner, head])


def test_images(rng, n):
    """[n,32,32,3] uint8: a colour and a gradient per image, plus noise (i.i.d. noise alone
    would give every image the same pooled features)."""
    yy, xx = np.mgrid[0:32, 0:32] / 31.0
    out = np.empty((n, 32, 32, 3))
    for i in range(n):
        colour = rng.uniform(0, 255, 3)
        slope = rng.uniform(-120, 120, (2, 3))
        out[i] = colour + yy[..., None] * slope[0] + xx[..., None] * slope[1]
    out += rng.normal(0, 20, out.shape)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    w = base_weights(rng)
    nested, flat = guide_models(rng, w)
    tm = teachable_machine_model(rng, w)
    counts = {}
    for name, model in (("nested", nested), ("flat", flat), ("tm", tm)):
        prefix = os.path.join(args.out_dir, name)
        kw.write_all(prefix, model)
        counts[name] = kw.self_check(prefix, model)

    images = test_images(rng, 4)
    x = images.astype(np.float64)
    # Teachable Machine's exports expect [-1, 1] inputs (its apps scale x / 127.5 - 1)
    x_tm = (images.astype(np.float32) / np.float32(127.5) - np.float32(1)).astype(np.float64)
    p_nested, p_flat, p_tm = predict(nested, x), predict(flat, x), predict(tm, x_tm)
    assert np.array_equal(p_nested, p_flat), np.abs(p_nested - p_flat).max()
    with h5py.File(os.path.join(args.out_dir, "nested_ref.h5"), "w") as f:
        f.create_dataset("images", data=images)
        f.create_dataset("input", data=x)
        f.create_dataset("probs_nested", data=p_nested)
        f.create_dataset("input_tm", data=x_tm)
        f.create_dataset("probs_tm", data=p_tm)
        for name, model, inp in (("nested", nested, x), ("tm", tm, x_tm)):
            d = float32_distance(model, inp)
            f.attrs[f"float32_distance_{name}"] = d
            f.create_dataset(f"float32_distance_{name}", data=d)
    print(f"nested models: variables per model {counts}; nested == flat in float64; "
          f"probs_nested {np.round(p_nested, 4).tolist()}; probs_tm {np.round(p_tm, 4).tolist()}")


if __name__ == "__main__":
    sys.exit(main())
