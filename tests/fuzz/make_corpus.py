#!/usr/bin/python3
"""Regenerates the seed corpus of the fuzz target (tests/fuzz/corpus/), deterministically.

The fuzz driver (tests/fuzz/fuzz_inputs.cpp) mutates these files; they are committed so a
finding reproduces from (parser, seed, mutant index) alone. Written with plain h5py/numpy
(/usr/bin/python3), never with the code under test:

* ``h5_dataset/``  HDF5 image datasets (``images`` uint8 [N,H,W,3], ``labels``,
  ``class_names``): contiguous with int labels and variable-length class names; gzip-chunked
  one image per chunk (as ``parafine convert`` writes) with fixed-length class names;
  one-hot float labels; unlabelled.
* ``keras_tf/``    tf.keras ``save_weights`` layout for the tiny fuzz model (ResNet50 width 2,
  head 4 units, 2 classes): fixed-length ``layer_names`` / ``weight_names`` attributes. A full
  width-2 file is ~520 KB, so these hold a SUBSET of the layers (conv1 and conv2_block1, plus
  the head in the whole-model file under ``/model_weights``); the reader still runs in full and
  the loader reports the missing layers.
* ``keras1/``      Keras-1 keras-applications layout (``conv1``, ``bn_conv1``,
  ``res2a_branch2a``, ``res2a_branch2a_W_1:0``, ``bn_conv1_running_std_1:0``...), with
  VARIABLE-length string attributes split as ``layer_names0``/``layer_names1`` (where HDF5's
  vlen string read crashed in earlier probes), the same subset.
The JPEG/PNG seeds are not committed: the CTest fixture ``fuzz_corpus`` generates them in
the build tree with the C++ tool ``fuzz_make_image_corpus`` (libjpeg/libpng via
tests/image_writers.hpp) next to links to these folders.

The checkpoint corpus is not committed: fuzz_inputs writes one at startup with
save_checkpoint, so it always has the current checkpoint format.

Usage:
    /usr/bin/python3 tests/fuzz/make_corpus.py --out tests/fuzz/corpus
"""

import argparse
import os
import sys

import h5py
import numpy as np

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
from make_keras_weight_fixtures import (KERAS1_VARS, make_values, vlen_attr,  # noqa: E402
                                        write_tf_keras_group, KERAS_VERSION)
from make_resnet50_reference import build_model, infer_shapes  # noqa: E402

WIDTH, HEAD_UNITS, CLASSES, SEED = 2, 4, 2, 0  # the fuzz driver's tiny model (fuzz_parsers.cpp)
LAST_TF_LAYER = "conv2_block1_out"  # the subset: every layer up to and including this one
LAST_KERAS1_LAYER = "bn2a_branch1"
VLEN_STR = h5py.special_dtype(vlen=str)


def write_image_datasets(out):
    rng = np.random.default_rng(SEED)
    os.makedirs(out, exist_ok=True)
    images = rng.integers(0, 256, (4, 8, 10, 3), dtype=np.uint8)
    labels = np.array([0, 1, 1, 0], dtype=np.int64)
    with h5py.File(os.path.join(out, "contiguous_vlen_names.h5"), "w") as f:
        f.create_dataset("images", data=images)
        f.create_dataset("labels", data=labels)
        vlen_attr(f, "class_names", ["cat", "dog"])
    with h5py.File(os.path.join(out, "gzip_chunked.h5"), "w") as f:
        f.create_dataset("images", data=images, chunks=(1, 8, 10, 3), compression="gzip",
                         compression_opts=4)
        f.create_dataset("labels", data=labels.astype(np.int32))
        f.attrs["class_names"] = np.array([b"cat", b"dog"])  # fixed-length strings
    with h5py.File(os.path.join(out, "one_hot_float.h5"), "w") as f:
        f.create_dataset("images", data=images[:3], chunks=(1, 8, 10, 3), shuffle=True,
                         compression="gzip")
        f.create_dataset("labels", data=np.eye(3, dtype=np.float32))
        vlen_attr(f, "class_names", ["a", "b", "c"])
    with h5py.File(os.path.join(out, "unlabelled.h5"), "w") as f:
        f.create_dataset("images", data=rng.integers(0, 256, (2, 12, 9, 3), dtype=np.uint8))


def tiny_model_values():
    layers, n_base = build_model(WIDTH, HEAD_UNITS, CLASSES)
    values = make_values(layers, infer_shapes(layers, 32), np.random.default_rng(SEED))
    return layers, n_base, values


def layers_through(layers, last_name):
    names = [L.name for L in layers]
    return layers[:names.index(last_name) + 1]


def write_keras_tf(out, layers, n_base, values):
    os.makedirs(out, exist_ok=True)
    subset = layers_through(layers[:n_base], LAST_TF_LAYER)
    with h5py.File(os.path.join(out, "save_weights_subset.h5"), "w") as f:
        write_tf_keras_group(f, subset, values)
    head = subset + layers[n_base:]  # + global_average_pooling2d, dense, dense_1
    with h5py.File(os.path.join(out, "model_weights_subset.h5"), "w") as f:
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = KERAS_VERSION
        f.attrs["model_config"] = b'{"class_name": "Functional", "config": {"layers": []}}'
        write_tf_keras_group(f.create_group("model_weights"), head, values)


def keras1_subset():
    from make_keras_weight_fixtures import keras1_layers
    k1 = keras1_layers()
    names = [n for n, _, _ in k1]
    return k1[:names.index(LAST_KERAS1_LAYER) + 1]


def write_keras1(out, values):
    os.makedirs(out, exist_ok=True)
    k1 = keras1_subset()
    names = [n for n, _, _ in k1]
    with h5py.File(os.path.join(out, "keras1_subset.h5"), "w") as f:
        half = len(names) // 2
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
    with h5py.File(os.path.join(out, "keras1_unsplit.h5"), "w") as f:
        vlen_attr(f, "layer_names", names[:6])  # one attribute, conv1 and bn_conv1 only
        for name, kind, tf_name in k1[:6]:
            g = f.create_group(name)
            entries = [(f"{name}_{s}_1:0", var) for s, var in KERAS1_VARS.get(kind, [])]
            vlen_attr(g, "weight_names", [wn for wn, _ in entries])
            for wn, var in entries:
                g.create_dataset(wn, data=values[tf_name][var])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "corpus"))
    args = ap.parse_args()
    write_image_datasets(os.path.join(args.out, "h5_dataset"))
    layers, n_base, values = tiny_model_values()
    write_keras_tf(os.path.join(args.out, "keras_tf"), layers, n_base, values)
    write_keras1(os.path.join(args.out, "keras1"), values)
    for root, _, files in sorted(os.walk(args.out)):
        for name in sorted(files):
            path = os.path.join(root, name)
            print(f"{os.path.relpath(path, args.out)}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
