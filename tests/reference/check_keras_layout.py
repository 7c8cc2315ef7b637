#!/usr/bin/python3
"""Checks, with h5py only, that a model file has exactly the tf.keras save_weights layout.

Used by tests/test_keras_weights.cpp on files written by parafine's save_keras_model (and,
as controls, on the h5py-written fixtures). The layout asserted is that of tf.keras
``model.save_weights('m.h5')`` for ResNet50(include_top=False) + the fine-tuning head:

* root attributes: ``layer_names`` (a 1-D bytes array of the 178 layer names in tf.keras
  order: the 175 base layers, global_average_pooling2d, dense, dense_1), ``backend``
  ('tensorflow') and ``keras_version`` (bytes or str, 'X.Y...'); nothing else at the root
  except an optional ``class_names`` attribute (required and compared with --class-names) and
  an optional ``parafine_image_size`` (the input size parafine trained at; Keras ignores it);
* exactly one group per layer at the root and nothing else;
* each group has ONLY the attribute ``weight_names``: empty for unweighted layers, else the
  bytes ``<layer>/<var>:0`` in Keras variable order (conv/dense: kernel, bias; BN: gamma,
  beta, moving_mean, moving_variance);
* datasets at ``/<layer>/<layer>/<var>:0``, float32, with the shapes of the model (HWIO conv
  kernels, [in, out] dense kernels), and no other objects in the group;
* with ``--same-values-as REF.h5``: every dataset bit-identical to REF's at the same path.

Usage:
    /usr/bin/python3 tests/reference/check_keras_layout.py MODEL.h5 --width 8 --classes 3 \
        --head-units 16 [--class-names a,b,c] [--same-values-as REF.h5]

Prints every problem found and exits 1, or prints a summary and exits 0.
"""

import argparse
import os
import re
import sys

import h5py
import numpy as np

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_resnet50_reference import VAR_NAMES, build_model, infer_shapes  # noqa: E402


def as_text(v):
    if isinstance(v, (bytes, np.bytes_)):
        return v.decode("utf8")
    if isinstance(v, str):
        return v
    return None


def expected_shapes(L, shapes):
    if L.kind == "conv":
        k = L.cfg["kernel"]
        return {"kernel": (k, k, shapes[L.inputs[0]][0], L.cfg["filters"]), "bias": (L.cfg["filters"],)}
    if L.kind == "bn":
        c = shapes[L.name][0]
        return {v: (c,) for v in VAR_NAMES["bn"]}
    if L.kind == "dense":
        return {"kernel": (shapes[L.inputs[0]][0], L.cfg["units"]), "bias": (L.cfg["units"],)}
    return {}


def check(path, args):
    problems = []
    layers, n_base = build_model(args.width, args.head_units, args.classes)
    shapes = infer_shapes(layers, 32)
    expected_names = [L.name for L in layers]
    ref = h5py.File(args.same_values_as, "r") if args.same_values_as else None
    n_datasets = n_compared = 0

    with h5py.File(path, "r") as f:
        # Root attributes.
        allowed = {"layer_names", "backend", "keras_version", "parafine_image_size"} | ({"class_names"} if args.class_names else set())
        attrs = set(f.attrs.keys())
        for a in sorted(attrs - allowed):
            problems.append(f"unexpected root attribute '{a}'")
        for a in sorted(allowed - attrs - {"parafine_image_size"}):  # optional
            problems.append(f"missing root attribute '{a}'")
        if "layer_names" in attrs:
            ln = f.attrs["layer_names"]
            if not (isinstance(ln, np.ndarray) and ln.ndim == 1 and ln.dtype.kind == "S"):
                problems.append(f"layer_names is not a 1-D bytes array: {type(ln).__name__} "
                                f"{getattr(ln, 'dtype', '')}")
            else:
                names = [n.decode("utf8") for n in ln]
                if names != expected_names:
                    diff = [(i, a, b) for i, (a, b) in enumerate(zip(names, expected_names)) if a != b][:5]
                    problems.append(f"layer_names: {len(names)} names (expected {len(expected_names)}); "
                                    f"first differences (index, file, expected): {diff}")
        if "backend" in attrs and as_text(f.attrs["backend"]) != "tensorflow":
            problems.append(f"backend is {f.attrs['backend']!r}, expected b'tensorflow'")
        if "keras_version" in attrs:
            kv = as_text(f.attrs["keras_version"])
            if kv is None or not re.match(r"^\d+\.\d+", kv):
                problems.append(f"keras_version is {f.attrs['keras_version']!r}, expected bytes like b'2.11.0'")
        if args.class_names and "class_names" in attrs:
            got = [as_text(x) for x in np.atleast_1d(f.attrs["class_names"])]
            if got != args.class_names.split(","):
                problems.append(f"class_names is {got}, expected {args.class_names.split(',')}")

        # One group per layer and nothing else at the root.
        members = set(f.keys())
        for m in sorted(members - set(expected_names)):
            problems.append(f"unexpected object /{m} at the root")
        for L in layers:
            if L.name not in members:
                problems.append(f"no group /{L.name}")
                continue
            g = f[L.name]
            if not isinstance(g, h5py.Group):
                problems.append(f"/{L.name} is not a group")
                continue
            extra_attrs = set(g.attrs.keys()) - {"weight_names"}
            if extra_attrs:
                problems.append(f"/{L.name} has unexpected attributes {sorted(extra_attrs)}")
            if "weight_names" not in g.attrs:
                problems.append(f"/{L.name} has no weight_names attribute")
                continue
            wn_raw = np.atleast_1d(g.attrs["weight_names"])
            want = expected_shapes(L, shapes)
            want_names = [f"{L.name}/{v}:0" for v in VAR_NAMES.get(L.kind, [])]
            if not want:
                if wn_raw.size != 0:
                    problems.append(f"/{L.name} has no weights but weight_names = {wn_raw!r}")
                if len(g.keys()) != 0:
                    problems.append(f"/{L.name} has no weights but holds {list(g.keys())}")
                continue
            if wn_raw.dtype.kind != "S":
                problems.append(f"/{L.name}@weight_names is {wn_raw.dtype}, expected bytes")
            wn = [as_text(x) for x in wn_raw]
            if wn != want_names:
                problems.append(f"/{L.name}@weight_names = {wn}, expected {want_names}")
            if set(g.keys()) != {L.name}:
                problems.append(f"/{L.name} holds {sorted(g.keys())}, expected only the subgroup {L.name}")
            for v, shape in want.items():
                p = f"/{L.name}/{L.name}/{v}:0"
                if p not in f:
                    problems.append(f"no dataset {p}")
                    continue
                d = f[p]
                n_datasets += 1
                if d.dtype != np.dtype("<f4"):
                    problems.append(f"{p} is {d.dtype}, expected float32")
                if d.shape != shape:
                    problems.append(f"{p} has shape {list(d.shape)}, expected {list(shape)}")
                    continue
                if ref is not None:
                    r = ref[p][()]
                    if r.shape != shape or not np.array_equal(
                            np.asarray(d[()], np.float32).view(np.uint32), r.astype(np.float32).view(np.uint32)):
                        problems.append(f"{p} differs from {args.same_values_as} (bitwise)")
                    n_compared += 1
            sub = f[L.name][L.name] if L.name in g else None
            if isinstance(sub, h5py.Group):
                extra = set(sub.keys()) - {f"{v}:0" for v in want}
                if extra:
                    problems.append(f"/{L.name}/{L.name} holds unexpected {sorted(extra)}")
    if ref is not None:
        ref.close()
    n_weighted = sum(1 for L in layers if expected_shapes(L, shapes))
    return problems, len(layers), n_weighted, n_datasets, n_compared


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--width", type=int, required=True)
    ap.add_argument("--classes", type=int, required=True)
    ap.add_argument("--head-units", type=int, required=True)
    ap.add_argument("--class-names", default="")
    ap.add_argument("--same-values-as", default="")
    args = ap.parse_args()
    try:
        problems, n_layers, n_weighted, n_datasets, n_compared = check(args.model, args)
    except OSError as e:
        print(f"check_keras_layout: cannot read {args.model}: {e}")
        return 1
    if problems:
        print(f"check_keras_layout: {args.model}: {len(problems)} layout problem(s):")
        for p in problems:
            print("  " + p)
        return 1
    print(f"check_keras_layout: {args.model}: OK, tf.keras save_weights layout: {n_layers} layers "
          f"({n_weighted} with weights), {n_datasets} float32 datasets with the right shapes"
          + (f", {n_compared} bit-identical to {args.same_values_as}" if args.same_values_as else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
