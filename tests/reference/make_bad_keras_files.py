"""Damaged Keras model files for test_cli_keras_models (issue 14), made from the good fixture
small_cnn.keras (tests/reference/make_small_cnn_reference.py: a Sequential CNN input_layer,
conv2d, batch_normalization, max_pooling2d, conv2d_1, max_pooling2d_1, flatten, dropout, dense)
with zipfile, json and h5py, one fault each, as a user's file could have it:

  no_config.keras      the archive without config.json
  bad_json.keras       config.json that is not JSON
  unknown_class.keras  max_pooling2d's class_name is FancyPool (no such Keras layer)
  lambda.keras         max_pooling2d is a Lambda layer (Python bytecode: nothing to run it with)
  missing_var.keras    model.weights.h5 without layers/conv2d_1/vars/1 (conv2d_1's bias)
  wrong_shape.keras    layers/conv2d_1/vars/0 (conv2d_1's kernel) of shape [3,3,8,15]
  int_dtype.keras      layers/dense/vars/1 (dense's bias) stored as int32
  not_a_zip.keras      an HDF5 file (small_cnn.weights.h5's bytes) named .keras

and one good file as Keras writes it after model.compile() + model.fit() + model.save():

  compiled_nested.keras  nested.keras with a compile_config in config.json and the Adam
                         optimizer's variables in model.weights.h5 under optimizer/vars
                         (saving_lib._save_state walks the model's attributes: a compiled model's
                         `optimizer` is saved as optimizer/vars/0.. by
                         BaseOptimizer.save_own_variables: iteration, learning_rate, then a
                         momentum and a velocity per trainable variable: the head's Dense kernel
                         and bias, the base being frozen). Keras's load_model reads it (the model
                         walks the file for what it holds; compile=False leaves the optimizer's
                         group unread).

Usage: make_bad_keras_files.py --fixtures DIR --out-dir DIR
"""

import argparse
import io
import json
import os
import shutil
import zipfile

import h5py
import numpy as np


def read_archive(path):
    with zipfile.ZipFile(path) as z:
        return {name: z.read(name) for name in z.namelist()}


def write_archive(path, members):
    # Keras's saving_lib writes the members stored (no compression); any order reads.
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            z.writestr(name, data)


def with_config(members, edit):
    config = json.loads(members["config.json"])
    edit(config)
    out = dict(members)
    out["config.json"] = json.dumps(config).encode()
    return out


def layer(config, name):
    for l in config["config"]["layers"]:
        if l["config"]["name"] == name:
            return l
    raise KeyError(name)


def to_unknown_class(config):
    l = layer(config, "max_pooling2d")
    l["class_name"] = "FancyPool"
    l["registered_name"] = "FancyPool"


def to_lambda(config):
    l = layer(config, "max_pooling2d")
    l["class_name"] = "Lambda"
    l["registered_name"] = None
    # keras/src/layers/core/lambda_layer.py get_config: a Python function as marshalled code
    l["config"] = {
        "name": "max_pooling2d", "trainable": True, "dtype": l["config"].get("dtype"),
        "function": {"class_name": "__lambda__",
                     "config": {"code": "4wEAAAAAAAAAAAAAAAEAAAACAAAAQwAAAHMIAAAAfABkARQAUwApAk7pAgAAAKkAKQHaAXhyAgAAAHICAAAA+gc8c3RkaW4+2gg8bGFtYmRhPgEAAADzAAAAAA==",
                                "defaults": None, "closure": None}},
        "arguments": {}}


def with_weights(members, edit):
    data = io.BytesIO(members["model.weights.h5"])
    out_data = io.BytesIO()
    with h5py.File(data, "r") as src, h5py.File(out_data, "w") as dst:
        for key in src.attrs:
            dst.attrs[key] = src.attrs[key]
        for key in src:
            src.copy(src[key], dst, key)
        edit(dst)
    out = dict(members)
    out["model.weights.h5"] = out_data.getvalue()
    return out


def drop_bias(f):
    del f["layers/conv2d_1/vars/1"]


def wrong_shape(f):
    del f["layers/conv2d_1/vars/0"]
    f["layers/conv2d_1/vars/0"] = np.zeros((3, 3, 8, 15), np.float32)


def int_dtype(f):
    values = f["layers/dense/vars/1"][()]
    del f["layers/dense/vars/1"]
    f["layers/dense/vars/1"] = values.astype(np.int32)


def add_optimizer(f):
    opt = f.create_group("optimizer").create_group("vars")
    opt["0"] = np.array(6, np.int64)  # iteration
    opt["1"] = np.array(1e-3, np.float32)  # learning_rate
    i = 2
    for var in ("layers/dense/vars/0", "layers/dense/vars/1"):
        for _ in ("momentum", "velocity"):
            opt[str(i)] = np.full(f[var].shape, 1e-4, np.float32)
            i += 1


def compiled(config):
    # keras/src/trainers/trainer.py get_compile_config: the compile() arguments, serialized
    config["compile_config"] = {
        "optimizer": {"module": "keras.optimizers", "class_name": "Adam",
                      "config": {"name": "adam", "learning_rate": 0.001, "weight_decay": None,
                                 "clipnorm": None, "global_clipnorm": None, "clipvalue": None,
                                 "use_ema": False, "ema_momentum": 0.99,
                                 "ema_overwrite_frequency": None, "loss_scale_factor": None,
                                 "gradient_accumulation_steps": None, "beta_1": 0.9,
                                 "beta_2": 0.999, "epsilon": 1e-07, "amsgrad": False},
                      "registered_name": None},
        "loss": "sparse_categorical_crossentropy", "loss_weights": None,
        "metrics": ["accuracy"], "weighted_metrics": None, "run_eagerly": False,
        "steps_per_execution": 1, "jit_compile": False}


def keras3_legacy_h5(src, dst):
    """Keras 3's own model.save("m.h5") of the Keras 2 full model `src`: the same layout, but
    each weight named by its variable's path without TensorFlow's ":0"
    (keras/src/legacy/saving/legacy_h5_format.py save_subset_weights_to_hdf5_group uses
    w.path), datasets included."""
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        weights = f["model_weights"]
        for layer_name in weights.attrs["layer_names"]:
            group = weights[layer_name.decode() if isinstance(layer_name, bytes) else layer_name]
            renamed = []
            for name in group.attrs["weight_names"]:
                name = name.decode() if isinstance(name, bytes) else name
                path = name[:-2] if name.endswith(":0") else name
                group.move(name, path)
                renamed.append(path.encode())
            group.attrs["weight_names"] = renamed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", required=True)
    ap.add_argument("--out-dir", required=True)
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    out = lambda name: os.path.join(args.out_dir, name)
    good = read_archive(os.path.join(args.fixtures, "small_cnn.keras"))

    write_archive(out("no_config.keras"), {k: v for k, v in good.items() if k != "config.json"})
    write_archive(out("bad_json.keras"), dict(good, **{"config.json": b'{"class_name": "Seq'}))
    write_archive(out("unknown_class.keras"), with_config(good, to_unknown_class))
    write_archive(out("lambda.keras"), with_config(good, to_lambda))
    write_archive(out("missing_var.keras"), with_weights(good, drop_bias))
    write_archive(out("wrong_shape.keras"), with_weights(good, wrong_shape))
    write_archive(out("int_dtype.keras"), with_weights(good, int_dtype))
    shutil.copyfile(os.path.join(args.fixtures, "small_cnn.weights.h5"), out("not_a_zip.keras"))
    nested = read_archive(os.path.join(args.fixtures, "nested.keras"))
    write_archive(out("compiled_nested.keras"), with_weights(with_config(nested, compiled),
                                                             add_optimizer))
    keras3_legacy_h5(os.path.join(args.fixtures, "small_cnn_k2.h5"), out("small_cnn_k3legacy.h5"))
    print("wrote 8 damaged model files, compiled_nested.keras and small_cnn_k3legacy.h5 to",
          args.out_dir)


if __name__ == "__main__":
    main()
