#!/usr/bin/python3
"""Keras HDF5 weight-file fixtures for tests/test_keras_weights.cpp, written with h5py only.

This is the writer that is NOT the code under test: it lays out, with plain h5py, the same
seeded random float32 values for every variable of a (narrow) tf.keras ResNet50 + head in
each file layout found in the wild, plus damaged copies, so the C++ loader can be shown to

* load both the tf.keras and the Keras-1 layout to identical tensors (matched by NAME),
* load whole-model files (``/model_weights``) and save_weights files including the head,
* reject each kind of damage with its own message and leave the model untouched.

Usage (always /usr/bin/python3, which has h5py and numpy):

    /usr/bin/python3 tests/reference/make_keras_weight_fixtures.py \
        --out-dir DIR --width 8 --classes 3 --head-units 16 --seed 0

Files written in DIR (every value identical across layouts):

* ``tf_keras_notop.h5``  keras-applications tf.keras layout, base only (175 layers; the
  weightless ones have an empty ``weight_names``, written as Keras does: ``[]`` -> empty
  float64 array), ``layer_names`` a fixed-length bytes array, ``backend`` / ``keras_version``
  bytes scalars, groups created in sorted-name order (as Keras's save_weights_to_hdf5_group).
* ``keras1_notop.h5``    Keras-1 release layout (conv1, bn_conv1, res2a_branch2a, ...,
  ``<layer>_W_1:0`` / ``_b_1:0`` / ``_gamma_1:0`` / ``_beta_1:0`` / ``_running_mean_1:0`` /
  ``_running_std_1:0`` = moving VARIANCE, at ``/<layer>/<weight>``), root attribute
  ``layer_names`` only, split into ``layer_names0`` / ``layer_names1``, VARIABLE-length
  strings, unweighted layers (input_1, zeropadding2d_1, activation_N, maxpooling2d_1,
  merge_N, avg_pool) interleaved in the Keras-1 model order (in which res2a_branch2c comes
  BEFORE res2a_branch1: the shortcut/last-conv order differs from tf.keras). bn_conv1's
  ``weight_names`` is split too (weight_names0 / weight_names1).
* ``full_model.h5``      a whole ``model.save('m.h5')``: root model_config / backend /
  keras_version, weights (base + head) under ``/model_weights``, an ``optimizer_weights`` group.
* ``full_weights.h5``    ``model.save_weights('m.h5')`` of base + head (178 layers).
* damaged copies of tf_keras_notop.h5 (see DAMAGE below): swapped, truncated, not_hdf5,
  wrong_dtype, missing_layer, wrong_shape, nan, inf, two_problems, extra_layer, with_top.

Random values: one ``np.random.default_rng(seed)`` stream, drawn in tf.keras layer order,
variables in Keras order (conv: kernel ~ N(0, 1/fan_in), bias; BN: gamma, beta, moving_mean,
moving_variance > 0; dense: kernel, bias).  The layer list is imported from
make_resnet50_reference.py (same directory), so names and order are exactly tf.keras's.
"""

import argparse
import os
import shutil
import sys

import h5py
import numpy as np

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_resnet50_reference import VAR_NAMES, build_model, infer_shapes  # noqa: E402

KERAS_VERSION = b"2.11.0"
VLEN_STR = h5py.special_dtype(vlen=str)

# What each damaged copy of tf_keras_notop.h5 holds (the C++ test asserts on these names).
DAMAGE = {
    "swapped.h5": "conv2_block1_0_conv and conv2_block1_3_conv ([1,1,W,4W] both) exchange "
                  "POSITIONS in layer_names; each group keeps its own values",
    "truncated.h5": "the first half of the bytes of tf_keras_notop.h5",
    "not_hdf5.h5": "a text file",
    "wrong_dtype.h5": "conv4_block3_2_conv kernel stored as int32",
    "missing_layer.h5": "conv3_block2_2_conv removed from layer_names and its group deleted",
    "wrong_shape.h5": "conv4_block1_0_conv kernel [1,1,8W,16W] stored transposed as [16W,8W,1,1]",
    "nan.h5": "a NaN in conv5_block3_3_bn gamma[1]",
    "inf.h5": "+Inf in conv5_block2_1_bn moving_variance[0]",
    "two_problems.h5": "missing conv3_block2_2_conv AND transposed conv4_block1_0_conv kernel",
    "extra_layer.h5": "an extra weighted layer 'my_extra_conv' the model does not have",
    "with_top.h5": "the base plus avg_pool and the ImageNet classifier 'predictions' (-> 1000)",
}


# --------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------

def make_values(layers, shapes, rng):
    """{layer: {var: float32 array}} for every weighted layer, Keras layouts (HWIO, [in,out])."""
    values = {}
    for L in layers:
        if L.kind == "conv":
            cin, k, cout = shapes[L.inputs[0]][0], L.cfg["kernel"], L.cfg["filters"]
            values[L.name] = {
                "kernel": (rng.standard_normal((k, k, cin, cout)) / np.sqrt(k * k * cin)).astype(np.float32),
                "bias": rng.uniform(-0.1, 0.1, cout).astype(np.float32),
            }
        elif L.kind == "bn":
            c = shapes[L.name][0]
            values[L.name] = {
                "gamma": rng.uniform(0.5, 1.5, c).astype(np.float32),
                "beta": rng.uniform(-0.2, 0.2, c).astype(np.float32),
                "moving_mean": rng.uniform(-0.5, 0.5, c).astype(np.float32),
                "moving_variance": rng.uniform(0.5, 2.0, c).astype(np.float32),
            }
        elif L.kind == "dense":
            din, dout = shapes[L.inputs[0]][0], L.cfg["units"]
            values[L.name] = {
                "kernel": (rng.standard_normal((din, dout)) / np.sqrt(din)).astype(np.float32),
                "bias": rng.uniform(-0.1, 0.1, dout).astype(np.float32),
            }
    return values


# --------------------------------------------------------------------------
# tf.keras layout (keras/saving/hdf5_format.py save_weights_to_hdf5_group)
# --------------------------------------------------------------------------

def save_attributes(group, name, data):
    """keras save_attributes_to_hdf5_group: a list of bytes; [] becomes an empty float array."""
    group.attrs[name] = np.array(data) if data else []


def weight_entries(L, values):
    """[(weight_name, array)] of a tf.keras layer, in Keras variable order."""
    vals = values.get(L.name, {})
    return [(f"{L.name}/{v}:0", vals[v]) for v in VAR_NAMES.get(L.kind, []) if v in vals]


def write_tf_keras_group(f, layers, values, order=None):
    """Writes layer_names/backend/keras_version and one group per layer into f (file/group)."""
    names = order if order is not None else [L.name for L in layers]
    save_attributes(f, "layer_names", [n.encode("utf8") for n in names])
    f.attrs["backend"] = b"tensorflow"
    f.attrs["keras_version"] = KERAS_VERSION
    for L in sorted(layers, key=lambda x: x.name):
        g = f.create_group(L.name)
        entries = weight_entries(L, values)
        save_attributes(g, "weight_names", [wn.encode("utf8") for wn, _ in entries])
        for wn, arr in entries:
            g.create_dataset(wn, data=arr)


def write_tf_keras(path, layers, values, order=None):
    with h5py.File(path, "w") as f:
        write_tf_keras_group(f, layers, values, order)


def write_full_model(path, layers, values, args):
    """model.save('m.h5'): model_config at the root, weights under /model_weights."""
    with h5py.File(path, "w") as f:
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = KERAS_VERSION
        f.attrs["model_config"] = (
            '{"class_name": "Functional", "config": {"name": "model", "layers": [], '
            f'"parafine_fixture": {{"width": {args.width}, "classes": {args.classes}}}}}}}').encode("utf8")
        f.attrs["training_config"] = b'{"loss": "categorical_crossentropy"}'
        write_tf_keras_group(f.create_group("model_weights"), layers, values)
        opt = f.create_group("optimizer_weights")
        opt.attrs["weight_names"] = np.array([b"Adam/iter:0"])
        opt.create_dataset("Adam/iter:0", data=np.int64(12))


# --------------------------------------------------------------------------
# Keras-1 layout (resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5)
# --------------------------------------------------------------------------

BRANCH = {"1": "0", "2a": "1", "2b": "2", "2c": "3"}
KERAS1_VARS = {"conv": [("W", "kernel"), ("b", "bias")],
               "bn": [("gamma", "gamma"), ("beta", "beta"),
                      ("running_mean", "moving_mean"), ("running_std", "moving_variance")]}


def keras1_layers():
    """[(keras1 name, kind, tf.keras name or None)] in the Keras-1 ResNet50 model order."""
    out = []
    counters = {}

    def anon(prefix):
        counters[prefix] = counters.get(prefix, 0) + 1
        return f"{prefix}_{counters[prefix]}"

    out.append(("input_1", "input", None))
    out.append((anon("zeropadding2d"), "zeropad", None))
    out.append(("conv1", "conv", "conv1_conv"))
    out.append(("bn_conv1", "bn", "conv1_bn"))
    out.append((anon("activation"), "relu", None))
    out.append((anon("maxpooling2d"), "maxpool", None))
    for stage, blocks in ((2, 3), (3, 4), (4, 6), (5, 3)):
        for b in range(blocks):
            letter = "abcdef"[b]

            def tf(kind, branch):
                return f"conv{stage}_block{b + 1}_{BRANCH[branch]}_{'conv' if kind == 'conv' else 'bn'}"

            def k1(kind, branch):
                return f"{'res' if kind == 'conv' else 'bn'}{stage}{letter}_branch{branch}"

            for br in ("2a", "2b"):
                out.append((k1("conv", br), "conv", tf("conv", br)))
                out.append((k1("bn", br), "bn", tf("bn", br)))
                out.append((anon("activation"), "relu", None))
            if b == 0:  # conv_block: main 2c, then the shortcut branch1
                out.append((k1("conv", "2c"), "conv", tf("conv", "2c")))
                out.append((k1("conv", "1"), "conv", tf("conv", "1")))
                out.append((k1("bn", "2c"), "bn", tf("bn", "2c")))
                out.append((k1("bn", "1"), "bn", tf("bn", "1")))
            else:
                out.append((k1("conv", "2c"), "conv", tf("conv", "2c")))
                out.append((k1("bn", "2c"), "bn", tf("bn", "2c")))
            out.append((anon("merge"), "add", None))
            out.append((anon("activation"), "relu", None))
    out.append(("avg_pool", "avgpool", None))
    return out


def vlen_attr(obj, name, strings):
    obj.attrs.create(name, np.array(strings, dtype=object), dtype=VLEN_STR)


def write_keras1(path, values):
    k1 = keras1_layers()
    names = [n for n, _, _ in k1]
    with h5py.File(path, "w") as f:
        half = len(names) // 2  # Keras splits long lists as layer_names0, layer_names1, ...
        vlen_attr(f, "layer_names0", names[:half])
        vlen_attr(f, "layer_names1", names[half:])
        for name, kind, tf_name in k1:
            g = f.create_group(name)
            wnames = []
            for suffix, var in KERAS1_VARS.get(kind, []):
                wn = f"{name}_{suffix}_1:0"
                wnames.append(wn)
                g.create_dataset(wn, data=values[tf_name][var])
            if name == "bn_conv1":
                vlen_attr(g, "weight_names0", wnames[:2])
                vlen_attr(g, "weight_names1", wnames[2:])
            else:
                vlen_attr(g, "weight_names", wnames)
    return k1


# --------------------------------------------------------------------------
# Damaged copies
# --------------------------------------------------------------------------

def decode(a):
    return [x.decode() if isinstance(x, bytes) else str(x) for x in a]


def remove_layer(f, name):
    names = decode(f.attrs["layer_names"])
    names.remove(name)
    f.attrs["layer_names"] = np.array([n.encode() for n in names])
    del f[name]


def transpose_kernel(f, layer):
    ds = f"{layer}/{layer}/kernel:0"
    k = f[ds][()]
    del f[ds]
    f.create_dataset(ds, data=np.ascontiguousarray(k.transpose()))
    return k.shape, k.transpose().shape


def write_damaged(out, base, layers, values, width):
    def copy(name):
        p = os.path.join(out, name)
        shutil.copyfile(base, p)
        return h5py.File(p, "r+")

    names = [L.name for L in layers]
    i0, i3 = names.index("conv2_block1_0_conv"), names.index("conv2_block1_3_conv")
    swapped = list(names)
    swapped[i0], swapped[i3] = swapped[i3], swapped[i0]
    write_tf_keras(os.path.join(out, "swapped.h5"), layers, values, order=swapped)
    print(f"swapped.h5: conv2_block1_0_conv at position {i3}, conv2_block1_3_conv at {i0} of layer_names "
          f"(shapes {values['conv2_block1_0_conv']['kernel'].shape} and "
          f"{values['conv2_block1_3_conv']['kernel'].shape})")

    with open(base, "rb") as src:
        data = src.read()
    with open(os.path.join(out, "truncated.h5"), "wb") as dst:
        dst.write(data[: len(data) // 2])
    print(f"truncated.h5: {len(data) // 2} of {len(data)} bytes")

    with open(os.path.join(out, "not_hdf5.h5"), "w") as dst:
        dst.write("This is not an HDF5 file, just text someone named .h5\n" * 20)

    with copy("wrong_dtype.h5") as f:
        ds = "conv4_block3_2_conv/conv4_block3_2_conv/kernel:0"
        k = f[ds][()]
        del f[ds]
        f.create_dataset(ds, data=np.round(k * 100).astype(np.int32))

    with copy("missing_layer.h5") as f:
        remove_layer(f, "conv3_block2_2_conv")

    with copy("wrong_shape.h5") as f:
        was, now = transpose_kernel(f, "conv4_block1_0_conv")
        print(f"wrong_shape.h5: conv4_block1_0_conv kernel {list(was)} -> {list(now)}")

    with copy("nan.h5") as f:
        ds = f["conv5_block3_3_bn/conv5_block3_3_bn/gamma:0"]
        g = ds[()]
        g[1] = np.nan
        ds[...] = g

    with copy("inf.h5") as f:
        ds = f["conv5_block2_1_bn/conv5_block2_1_bn/moving_variance:0"]
        v = ds[()]
        v[0] = np.inf
        ds[...] = v

    with copy("two_problems.h5") as f:
        remove_layer(f, "conv3_block2_2_conv")
        transpose_kernel(f, "conv4_block1_0_conv")

    with copy("extra_layer.h5") as f:
        names_now = decode(f.attrs["layer_names"])
        f.attrs["layer_names"] = np.array([n.encode() for n in names_now + ["my_extra_conv"]])
        g = f.create_group("my_extra_conv")
        save_attributes(g, "weight_names", [b"my_extra_conv/kernel:0", b"my_extra_conv/bias:0"])
        g.create_dataset("my_extra_conv/kernel:0", data=np.ones((1, 1, 4, 4), np.float32))
        g.create_dataset("my_extra_conv/bias:0", data=np.zeros(4, np.float32))

    with copy("with_top.h5") as f:
        features = 32 * width  # conv5 output channels (2048 for width 64)
        rng = np.random.default_rng(12345)
        names_now = decode(f.attrs["layer_names"])
        f.attrs["layer_names"] = np.array([n.encode() for n in names_now + ["avg_pool", "predictions"]])
        save_attributes(f.create_group("avg_pool"), "weight_names", [])
        g = f.create_group("predictions")
        save_attributes(g, "weight_names", [b"predictions/kernel:0", b"predictions/bias:0"])
        g.create_dataset("predictions/kernel:0", data=rng.standard_normal((features, 1000)).astype(np.float32))
        g.create_dataset("predictions/bias:0", data=np.zeros(1000, np.float32))
        print(f"with_top.h5: predictions kernel [{features}, 1000]")


# --------------------------------------------------------------------------
# Self-check: read every file back with h5py and compare with the values
# --------------------------------------------------------------------------

def self_check(out, layers, n_base, values, k1):
    def read_list(attrs, name):
        if name in attrs:
            return decode(attrs[name])
        parts, i = [], 0
        while f"{name}{i}" in attrs:
            parts += decode(attrs[f"{name}{i}"])
            i += 1
        return parts

    checked = 0
    for fname, root, n_layers in (("tf_keras_notop.h5", "/", n_base), ("full_weights.h5", "/", len(layers)),
                                  ("full_model.h5", "/model_weights", len(layers))):
        with h5py.File(os.path.join(out, fname), "r") as f:
            r = f[root]
            names = read_list(r.attrs, "layer_names")
            assert names == [L.name for L in layers[:n_layers]], fname
            for L in layers[:n_layers]:
                for wn, arr in weight_entries(L, values):
                    got = r[L.name][wn][()]
                    assert got.dtype == np.float32 and np.array_equal(got.view(np.uint32), arr.view(np.uint32))
                    checked += 1
    with h5py.File(os.path.join(out, "keras1_notop.h5"), "r") as f:
        names = read_list(f.attrs, "layer_names")
        assert names == [n for n, _, _ in k1] and "layer_names" not in f.attrs
        for name, kind, tf_name in k1:
            wnames = read_list(f[name].attrs, "weight_names")
            assert len(wnames) == len(KERAS1_VARS.get(kind, [])), name
            for wn, (_, var) in zip(wnames, KERAS1_VARS.get(kind, [])):
                assert np.array_equal(f[name][wn][()].view(np.uint32), values[tf_name][var].view(np.uint32))
                checked += 1
        weighted = sum(1 for _, kind, _ in k1 if kind in KERAS1_VARS)
        print(f"[check] keras1_notop.h5: {len(names)} layer names ({weighted} weighted), split in 2 attributes")
    print(f"[check] {checked} datasets read back bit-identical to the generated values")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--classes", type=int, default=3)
    ap.add_argument("--head-units", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)

    layers, n_base = build_model(args.width, args.head_units, args.classes)
    assert n_base == 175 and len(layers) == 178
    shapes = infer_shapes(layers, 32)
    values = make_values(layers, shapes, np.random.default_rng(args.seed))

    base_path = os.path.join(args.out_dir, "tf_keras_notop.h5")
    write_tf_keras(base_path, layers[:n_base], values)
    k1 = write_keras1(os.path.join(args.out_dir, "keras1_notop.h5"), values)
    write_full_model(os.path.join(args.out_dir, "full_model.h5"), layers, values, args)
    write_tf_keras(os.path.join(args.out_dir, "full_weights.h5"), layers, values)
    write_damaged(args.out_dir, base_path, layers[:n_base], values, args.width)
    self_check(args.out_dir, layers, n_base, values, k1)

    n_vars = sum(len(v) for v in values.values())
    print(f"wrote fixtures for width {args.width}, classes {args.classes}, head {args.head_units}, "
          f"seed {args.seed}: {len(values)} weighted layers, {n_vars} variables, into {args.out_dir}")
    for name, what in DAMAGE.items():
        print(f"  {name}: {what}")


if __name__ == "__main__":
    main()
