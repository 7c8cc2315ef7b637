#!/usr/bin/env python3
"""Fixtures for parafine's Keras file-container readers, written with plain h5py / zipfile from
the layout rules in Keras's source (Keras itself is not installed), and checks of the files
parafine's writers produce.

  --out-dir DIR      writes the fixtures and DIR/expect.json (every group, name, shape, value)
  --check-keras3 F --expect J   checks a .weights.h5 parafine wrote against J (exit 1 + why)
  --check-archive F --expect J  checks a .keras parafine wrote (members, order, ZIP_STORED)
  --check-tf-keras F --expect J checks a tf.keras layout file parafine wrote
  --snake NAME...    prints naming.to_snake_case(NAME) per line (copied regexes, below)

Rules followed (keras/src/saving/saving_lib.py, keras/src/layers/layer.py,
keras/src/legacy/saving/legacy_h5_format.py, tf-keras keras/saving/legacy/hdf5_format.py):
  * _save_state / H5IOStore.make(path, metadata={"name": obj.name}) -> <path>/vars created at
    once with attribute name (Keras >= 3.6), even for a layer without variables; the root
    model's is /vars; a list attribute's elements live at <attr>/<to_snake_case(class)>
    numbered by _get_unique_name.
  * Layer.save_own_variables: vars/"i" for _trainable_variables + _non_trainable_variables.
  * H5IOStore.__setitem__: bfloat16 data + dataset attr dtype="bfloat16".
  * save_model_to_hdf5: root attrs model_config (JSON bytes), keras_version, backend;
    /model_weights with layer_names; save_weights_to_hdf5_group: one group per layer,
    weight_names = the variables' names (tf.keras: w.name "conv/kernel:0") in _legacy_weights
    order (trainable_weights + non_trainable_weights), datasets at <group>/<weight name>; a
    nested model's group holds every inner variable under the inner layer's name.
"""
import argparse
import io
import json
import os
import re
import sys
import zipfile

import h5py
import numpy as np


def to_snake_case(name):  # keras/src/utils/naming.py, verbatim regexes
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()
    return name


def _get_unique_name(name, used_names):  # saving_lib._get_unique_name, verbatim
    if name in used_names:
        used_names[name] += 1
        return f"{name}_{used_names[name]}"
    used_names[name] = 0
    return name


def values(rng, shape, bf16=False):
    v = rng.standard_normal(shape).astype(np.float32)
    if bf16:  # exactly representable in bfloat16: the low 16 bits are zero
        v = (v.view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)
    return v


# ---- Keras 3 weights (.weights.h5 / model.weights.h5) ---------------------------------------

def keras3_model(rng):
    """A functional model: input, conv, bn, relu, a nested functional (input, conv, conv,
    dropout: a SeedGenerator, not saved), global pooling, dense; compiled (optimizer vars).
    Returns [(path, name, [arrays])] in _save_state's visiting order."""
    groups = [("", "outer_model", [])]  # the model itself: Functional has no own variables
    used = {}
    layers = [
        ("InputLayer", "input_1", []),
        ("Conv2D", "conv1", [values(rng, (3, 3, 3, 4)), values(rng, (4,))]),
        ("BatchNormalization", "bn1", [values(rng, (4,)) for _ in range(4)]),
        ("ReLU", "relu1", []),
        ("Functional", "backbone", None),
        ("GlobalAveragePooling2D", "pool", []),
        ("Dense", "predictions", [values(rng, (5, 3)), values(rng, (3,))]),
    ]
    for cls, name, vars_ in layers:
        path = "layers/" + _get_unique_name(to_snake_case(cls), used)
        if vars_ is not None:
            groups.append((path, name, vars_))
            continue
        groups.append((path, name, []))  # the nested model itself
        inner_used = {}
        for icls, iname, ivars in [
            ("InputLayer", "backbone_input", []),
            ("Conv2D", "conv_a", [values(rng, (1, 1, 4, 5)), values(rng, (5,))]),
            ("Conv2D", "conv_b", [values(rng, (3, 3, 5, 5))]),
            ("Dropout", "drop", []),
        ]:
            groups.append((path + "/layers/" + _get_unique_name(to_snake_case(icls), inner_used),
                           iname, ivars))
    # model.optimizer (a KerasSaveable attribute, visited after "layers"): iterations int64
    # first, then the learning rate and the slots; only two here.
    groups.append(("optimizer", "adam", [np.array(7, dtype=np.int64),
                                         np.array(0.001, dtype=np.float32)]))
    return groups


def write_keras3(path, groups, with_names=True, bf16_paths=()):
    with h5py.File(path, "w") as f:
        for gpath, name, vars_ in groups:
            g = f.create_group("vars") if not gpath else f.create_group(gpath).create_group("vars")
            if with_names:
                g.attrs["name"] = name  # a str: h5py writes a variable-length UTF-8 string
            for i, v in enumerate(vars_):
                if gpath in bf16_paths:
                    bits = (v.view(np.uint32) >> 16).astype(np.uint16)
                    ds = g.create_dataset(str(i), data=bits.view("V2"))  # opaque 2-byte
                    ds.attrs["dtype"] = "bfloat16"
                else:
                    g[str(i)] = v


def expect_keras3(groups):
    out = []
    for gpath, name, vars_ in sorted(groups, key=lambda g: g[0]):
        out.append({"path": gpath, "name": name,
                    "vars": [{"shape": list(np.shape(v)), "dtype": str(np.asarray(v).dtype),
                              "values": np.asarray(v, dtype=np.float64).ravel().tolist()}
                             for v in vars_]})
    return out


# ---- .keras archives ------------------------------------------------------------------------

CONFIG = {"module": "keras", "class_name": "Functional", "config": {"name": "outer_model",
          "layers": []}, "registered_name": "Functional"}
METADATA = {"keras_version": "3.6.0", "date_saved": "2026-11-30@10:00:00"}


def write_archive(path, members):
    """members: [(name, bytes)], as saving_lib._save_model_to_fileobj writes them
    (zipfile.ZipFile(f, "w"): ZIP_STORED)."""
    with open(path, "wb") as fobj, zipfile.ZipFile(fobj, "w") as zf:
        for name, data in members:
            if name.endswith(".json"):
                with zf.open(name, "w") as f:
                    f.write(data)
            else:
                zf.writestr(name, data)  # H5IOStore.close: archive.writestr


def write_bomb(path, weights_bytes):
    """config.json declaring 300 MiB of spaces, stored deflated in ~300 KB: Keras's
    _reject_zip_bomb rule (over the floor and over 100x its stored size)."""
    with zipfile.ZipFile(path, "w") as zf:
        with zf.open(zipfile.ZipInfo("metadata.json"), "w") as f:
            f.write(json.dumps(METADATA).encode())
        info = zipfile.ZipInfo("config.json")
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w", force_zip64=True) as f:
            chunk = b" " * (1 << 20)
            for _ in range(300):
                f.write(chunk)
        zf.writestr("model.weights.h5", weights_bytes)


# ---- Keras 2 / tf.keras full-model .h5 with nested models ----------------------------------

def save_attributes(group, name, data):  # save_attributes_to_hdf5_group (no chunking needed)
    group.attrs[name] = np.asarray(data) if data else np.asarray([], dtype=np.float64)


def write_tf_keras_full_model(path, rng):
    """tf.keras model.save("m.h5") of: input_1, backbone (a Functional: input, conv1, bn1,
    inner (a Functional: conv_in), frozen conv_frozen), flatten, dense. Weight names are the
    variables' names (w.name): layer scope / var:0, with no model prefix, as a functional
    model's layers are built under their own name scope. The backbone's weights are in
    _legacy_weights order: its trainable_weights (conv1 kernel, bias, bn1 gamma, beta,
    conv_in kernel) then non_trainable_weights (bn1 moving stats, then conv_frozen's kernel and
    bias: a frozen layer's weights are all non-trainable)."""
    v = {}
    def w(name, shape):
        v[name] = values(rng, shape)
        return name
    backbone = [w("conv1/kernel:0", (3, 3, 3, 4)), w("conv1/bias:0", (4,)),
                w("bn1/gamma:0", (4,)), w("bn1/beta:0", (4,)),
                w("conv_in/kernel:0", (1, 1, 4, 4)),
                w("bn1/moving_mean:0", (4,)), w("bn1/moving_variance:0", (4,)),
                w("conv_frozen/kernel:0", (1, 1, 4, 2)), w("conv_frozen/bias:0", (2,))]
    dense = [w("dense/kernel:0", (8, 3)), w("dense/bias:0", (3,))]
    config = {"class_name": "Functional", "config": {"name": "model", "layers": [
        {"class_name": "InputLayer", "name": "input_1", "config": {"name": "input_1"}},
        {"class_name": "Functional", "name": "backbone", "config": {"name": "backbone",
         "layers": [{"class_name": "Conv2D", "name": "conv1", "config": {"name": "conv1"}},
                    {"class_name": "Functional", "name": "inner", "config": {"name": "inner"}}]}},
        {"class_name": "Flatten", "name": "flatten", "config": {"name": "flatten"}},
        {"class_name": "Dense", "name": "dense", "config": {"name": "dense"}}]}}
    layers = [("input_1", []), ("backbone", backbone), ("flatten", []), ("dense", dense)]
    with h5py.File(path, "w") as f:
        f.attrs["backend"] = "tensorflow".encode("utf8")
        f.attrs["keras_version"] = "2.12.0".encode("utf8")
        f.attrs["model_config"] = json.dumps(config).encode("utf8")
        f.attrs["training_config"] = json.dumps({"loss": "categorical_crossentropy"}).encode()
        mw = f.create_group("model_weights")
        save_attributes(mw, "layer_names", [n.encode("utf8") for n, _ in layers])
        mw.attrs["backend"] = "tensorflow".encode("utf8")
        mw.attrs["keras_version"] = "2.12.0".encode("utf8")
        for name, names in sorted(layers):
            g = mw.create_group(name)
            save_attributes(g, "weight_names", [n.encode("utf8") for n in names])
            for n in names:
                g.create_dataset(n, data=v[n])
        top = mw.create_group("top_level_model_weights")
        save_attributes(top, "weight_names", [])
        opt = f.create_group("optimizer_weights")  # save_optimizer_weights_to_hdf5_group
        save_attributes(opt, "weight_names", [b"Adam/iter:0"])
        opt.create_dataset("Adam/iter:0", data=np.array(3, dtype=np.int64))
    expect = {"model_config": json.dumps(config), "layers": []}
    for name, names in layers:
        if name == "backbone":
            inner_order = []
            for n in names:
                if n.split("/")[0] not in inner_order:
                    inner_order.append(n.split("/")[0])
            for inner in inner_order:
                expect["layers"].append({"model": "backbone", "name": inner, "vars": [
                    {"var": n.split("/")[1].split(":")[0], "dataset": f"/model_weights/backbone/{n}",
                     "values": v[n].astype(np.float64).ravel().tolist()}
                    for n in names if n.split("/")[0] == inner]})
        elif names:
            expect["layers"].append({"model": "", "name": name, "vars": [
                {"var": n.split("/")[1].split(":")[0], "dataset": f"/model_weights/{name}/{n}",
                 "values": v[n].astype(np.float64).ravel().tolist()} for n in names]})
    return expect


# ---- checks of files parafine wrote ---------------------------------------------------------

def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def check_keras3(path, expect):
    seen = []
    with h5py.File(path, "r") as f:
        f.visit(lambda n: seen.append(n) if n == "vars" or n.endswith("/vars") else None)
        want = {(g["path"] + "/vars").lstrip("/") for g in expect}
        if set(seen) != want:
            fail(f"vars groups {sorted(seen)} != {sorted(want)}")
        for g in expect:
            vg = f[(g["path"] + "/vars").lstrip("/")]
            name = vg.attrs.get("name")
            if name != g["name"] or not isinstance(name, str):
                fail(f"{vg.name}@name = {name!r}, expected the str {g['name']!r}")
            if sorted(vg.keys()) != sorted(str(i) for i in range(len(g["vars"]))):
                fail(f"{vg.name} keys {list(vg.keys())}")
            for i, v in enumerate(g["vars"]):
                ds = vg[str(i)]
                if ds.dtype != np.float32 or list(ds.shape) != v["shape"]:
                    fail(f"{ds.name}: {ds.dtype} {ds.shape}, expected float32 {v['shape']}")
                if ds.chunks is not None or ds.compression is not None:
                    fail(f"{ds.name} is chunked/compressed; h5py's group[key] = value is not")
                got = np.asarray(ds, dtype=np.float64).ravel()
                if not np.array_equal(got, np.asarray(v["values"], dtype=np.float64)):
                    fail(f"{ds.name} values differ")
        # Nothing but groups on the way to the vars groups.
        def only_groups(n, obj):
            if isinstance(obj, h5py.Dataset) and "/vars/" not in "/" + n:
                fail(f"unexpected dataset {n}")
        f.visititems(only_groups)
    print(f"ok: {len(expect)} vars groups")


def check_archive(path, expect):
    with zipfile.ZipFile(path) as zf:
        names = [i.filename for i in zf.infolist()]
        if names != ["metadata.json", "config.json", "model.weights.h5"]:
            fail(f"members {names}")
        for i in zf.infolist():
            if i.compress_type != zipfile.ZIP_STORED:
                fail(f"{i.filename} is compressed ({i.compress_type})")
        if zf.testzip() is not None:
            fail("CRC error")
        if json.loads(zf.read("config.json")) != expect["config"]:
            fail("config.json differs")
        if json.loads(zf.read("metadata.json")) != expect["metadata"]:
            fail("metadata.json differs")
        with h5py.File(io.BytesIO(zf.read("model.weights.h5")), "r") as f:
            if "vars" not in f:
                fail("model.weights.h5 has no /vars")
    print("ok: archive")


def check_tf_keras(path, expect):
    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_config" in expect else f
        if "model_config" in expect:
            mc = f.attrs["model_config"]
            mc = mc.decode() if isinstance(mc, bytes) else mc
            if json.loads(mc) != json.loads(expect["model_config"]):
                fail("model_config differs")
        names = [n.decode() if isinstance(n, bytes) else n for n in root.attrs["layer_names"]]
        if names != [e["name"] for e in expect["entries"]]:
            fail(f"layer_names {names}")
        for e in expect["entries"]:
            g = root[e["name"]]
            wn = [n.decode() if isinstance(n, bytes) else n for n in g.attrs["weight_names"]]
            if wn != [w["name"] for w in e["weights"]]:
                fail(f"{g.name}@weight_names {wn}")
            for w in e["weights"]:
                ds = g[w["name"]]
                if ds.dtype != np.float32 or list(ds.shape) != w["shape"]:
                    fail(f"{ds.name}: {ds.dtype} {ds.shape}")
                if not np.array_equal(np.asarray(ds, np.float64).ravel(), np.asarray(w["values"])):
                    fail(f"{ds.name} values differ")
        for a in ("backend", "keras_version"):
            if a not in root.attrs:
                fail(f"no {a} attribute at {root.name}")
    print("ok: tf.keras layout")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out-dir")
    p.add_argument("--check-keras3")
    p.add_argument("--check-archive")
    p.add_argument("--check-tf-keras")
    p.add_argument("--expect")
    p.add_argument("--snake", nargs="*")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    if a.snake is not None:
        for n in a.snake:
            print(to_snake_case(n))
        return
    if a.check_keras3:
        return check_keras3(a.check_keras3, json.load(open(a.expect)))
    if a.check_archive:
        return check_archive(a.check_archive, json.load(open(a.expect)))
    if a.check_tf_keras:
        return check_tf_keras(a.check_tf_keras, json.load(open(a.expect)))

    d = a.out_dir
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    groups = keras3_model(rng)
    write_keras3(os.path.join(d, "k3_model.weights.h5"), groups)
    write_keras3(os.path.join(d, "k3_unnamed.weights.h5"), groups, with_names=False)
    bf16_groups = [(p_, n, [values(rng, np.shape(v), bf16=True) for v in vs])
                   if p_ == "layers/conv2d" else (p_, n, vs) for p_, n, vs in groups]
    write_keras3(os.path.join(d, "k3_bf16.weights.h5"), bf16_groups, bf16_paths={"layers/conv2d"})
    expect = {"k3_model": expect_keras3(groups), "k3_bf16": expect_keras3(bf16_groups)}

    # Damaged / wrong layouts.
    with h5py.File(os.path.join(d, "k3_gap.weights.h5"), "w") as f:
        g = f.create_group("layers/conv2d/vars")
        g["0"] = values(rng, (2,))
        g["2"] = values(rng, (2,))
    with h5py.File(os.path.join(d, "k3_badkey.weights.h5"), "w") as f:
        f.create_group("layers/dense/vars")["kernel"] = values(rng, (2, 2))
    with h5py.File(os.path.join(d, "k3_novars.weights.h5"), "w") as f:
        f.create_group("layers/dense")["kernel"] = values(rng, (2, 2))
    with h5py.File(os.path.join(d, "k3_softlink.weights.h5"), "w") as f:
        f.create_group("layers/dense/vars")["0"] = values(rng, (2,))
        f["layers/alias"] = h5py.SoftLink("/layers/dense")
    with h5py.File(os.path.join(d, "k3_string.weights.h5"), "w") as f:
        f.create_group("layers/dense/vars")["0"] = np.array([b"ab", b"cd"])

    k2 = write_tf_keras_full_model(os.path.join(d, "k2_full_nested.h5"), rng)
    expect["k2_full_nested"] = k2

    weights_bytes = open(os.path.join(d, "k3_model.weights.h5"), "rb").read()
    cfg = json.dumps(CONFIG).encode()
    meta = json.dumps(METADATA).encode()
    write_archive(os.path.join(d, "model.keras"),
                  [("metadata.json", meta), ("config.json", cfg), ("model.weights.h5", weights_bytes),
                   ("assets/vocab.txt", b"a\nb\n")])
    write_archive(os.path.join(d, "no_metadata.keras"),
                  [("config.json", cfg), ("model.weights.h5", weights_bytes)])
    write_archive(os.path.join(d, "no_config.keras"),
                  [("metadata.json", meta), ("model.weights.h5", weights_bytes)])
    npz = io.BytesIO()
    np.savez(npz, **{"layers/dense": values(rng, (2,))})
    write_archive(os.path.join(d, "npz.keras"),
                  [("metadata.json", meta), ("config.json", cfg), ("model.weights.npz", npz.getvalue())])
    write_archive(os.path.join(d, "no_weights.keras"), [("metadata.json", meta), ("config.json", cfg)])
    whole = open(os.path.join(d, "model.keras"), "rb").read()
    open(os.path.join(d, "truncated.keras"), "wb").write(whole[: len(whole) // 2])
    open(os.path.join(d, "not_zip.keras"), "wb").write(b"this is not a zip archive\n" * 10)
    write_bomb(os.path.join(d, "bomb.keras"), weights_bytes)
    expect["archive"] = {"config": CONFIG, "metadata": METADATA}
    json.dump(expect, open(os.path.join(d, "expect.json"), "w"))
    print("fixtures written to", d)


if __name__ == "__main__":
    main()
