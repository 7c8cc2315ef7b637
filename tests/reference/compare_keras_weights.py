"""Compares the weights of two Keras 3 model files variable by variable (issue 14 CLI tests).

A and B are .keras archives (their model.weights.h5 inside the zip) or .weights.h5 files. A
variable is a dataset of a `vars` group, named by its path, e.g.
layers/functional/layers/batch_normalization/vars/2 (Keras 3's saving_lib layout: the group
names follow the layers' class names, not the layers' own names, so two files of one model
have the same paths whatever the layers are called).

  --exact               every selected variable bitwise equal (same shape and dtype)
  --init I --tol-update T --tol-max M
                        |B - A| / |A - I| (L2 over the selected variables that training moves,
                        BN moving statistics excluded) <= T and max |B - A| <= M
  --changed             every selected variable differs from A's (it was trained)
  --only REGEX          select the variables whose path matches (re.search); default all
  --config              also: config.json of both archives identical, byte for byte
  --config-like         also: B's config.json says what A's (written by Keras's rules) says, as
                        Keras 3 reads it: the same layers (by name, nested models included), each
                        with only constructor arguments A's config of it has (Keras's Layer
                        __init__ rejects any other keyword), and the same keras_history
                        [layer, node index, tensor index] in every inbound node (Keras 3's
                        deserialize_node indexes layer._inbound_nodes with it directly:
                        keras/src/models/functional.py)

Prints what it measured; exit 0 when every check holds, 1 otherwise, 2 on unreadable input.
"""

import argparse
import io
import re
import sys
import zipfile

import h5py
import numpy as np


def variables(path):
    """{vars path: numpy array} of a .keras or .weights.h5 file."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            data = io.BytesIO(z.read("model.weights.h5"))
        f = h5py.File(data, "r")
    else:
        f = h5py.File(path, "r")
    out = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and name.split("/")[-2:-1] == ["vars"]:
            out[name] = obj[()]

    f.visititems(visit)
    f.close()
    return out


def config_text(path):
    with zipfile.ZipFile(path) as z:
        return z.read("config.json")


def layers_by_name(config, prefix=""):
    """{path of nested names: layer dict} of a Functional/Sequential config, recursively."""
    out = {}
    for layer in config.get("config", {}).get("layers", []):
        name = layer.get("config", {}).get("name") or layer.get("name")
        out[prefix + name] = layer
        if isinstance(layer.get("config", {}).get("layers"), list):
            out.update(layers_by_name(layer, prefix + name + "/"))
    return out


def histories(node_data):
    """Every keras_history in an inbound node's args and kwargs, in order."""
    found = []

    def walk(x):
        if isinstance(x, dict):
            if "keras_history" in x:
                found.append(list(x["keras_history"]))
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(node_data)
    return found


def config_like(a_path, b_path):
    """Differences of B's config from A's, as Keras 3 reads them (see --config-like)."""
    import json
    a = layers_by_name(json.loads(config_text(a_path)))
    b = layers_by_name(json.loads(config_text(b_path)))
    problems = []
    if a.keys() != b.keys():
        problems.append(f"layers only in A: {sorted(a.keys() - b.keys())}, "
                        f"only in B: {sorted(b.keys() - a.keys())}")
    for name in sorted(a.keys() & b.keys()):
        la, lb = a[name], b[name]
        if la["class_name"] != lb["class_name"]:
            problems.append(f"{name}: class {lb['class_name']}, Keras's {la['class_name']}")
        extra = set(lb.get("config", {})) - set(la.get("config", {})) - {"layers"}
        if extra:
            problems.append(f"{name} ({lb['class_name']}): config keys Keras's config of it does "
                            f"not have: {sorted(extra)}")
        ha = [histories(n) for n in la.get("inbound_nodes", [])]
        hb = [histories(n) for n in lb.get("inbound_nodes", [])]
        if ha != hb:
            problems.append(f"{name}: inbound keras_history {hb}, Keras's {ha}")
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--exact", action="store_true")
    ap.add_argument("--changed", action="store_true")
    ap.add_argument("--init")
    ap.add_argument("--tol-update", type=float)
    ap.add_argument("--tol-max", type=float)
    ap.add_argument("--only", default="")
    ap.add_argument("--config", action="store_true")
    ap.add_argument("--config-like", action="store_true")
    ap.add_argument("--label", default="")
    args = ap.parse_args()
    label = (args.label + ": ") if args.label else ""
    try:
        a, b = variables(args.a), variables(args.b)
    except (OSError, KeyError) as e:
        print(f"{label}cannot read the weights: {e}")
        return 2
    ok = True
    if a.keys() != b.keys():
        print(f"{label}different variable sets: only in {args.a}: {sorted(a.keys() - b.keys())}; "
              f"only in {args.b}: {sorted(b.keys() - a.keys())}")
        return 1
    chosen = sorted(k for k in a if re.search(args.only, k))
    if not chosen:
        print(f"{label}no variable matches --only {args.only!r}")
        return 1
    if args.exact:
        bad = [k for k in chosen if a[k].shape != b[k].shape or a[k].dtype != b[k].dtype
               or a[k].tobytes() != b[k].tobytes()]
        worst = max((float(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64)).max())
                     for k in chosen if a[k].shape == b[k].shape and a[k].size), default=0.0)
        print(f"{label}{len(chosen)} variables, {len(bad)} not bitwise equal "
              f"(tolerance 0 bits), max |a - b| {worst:.3g}" + (f": {bad[:8]}" if bad else ""))
        ok &= not bad
    if args.changed:
        same = [k for k in chosen if np.array_equal(a[k], b[k])]
        print(f"{label}{len(chosen)} variables, {len(same)} unchanged (expected 0)"
              + (f": {same[:8]}" if same else ""))
        ok &= not same
    if args.init:
        init = variables(args.init)
        trained = [k for k in chosen if not k.endswith(("moving_mean", "moving_variance"))]
        # Keras 3 BN variables are vars/0..3 = gamma, beta, moving_mean, moving_variance
        moving = {k for k in chosen if "batch_normalization" in k and k.endswith(("/2", "/3"))}
        trained = [k for k in trained if k not in moving]
        f64 = lambda d, k: d[k].astype(np.float64)
        num = sum(((f64(a, k) - f64(b, k)) ** 2).sum() for k in trained)
        den = sum(((f64(a, k) - f64(init, k)) ** 2).sum() for k in trained)
        rel = (num / den) ** 0.5 if den > 0 else float("inf")
        worst = max(float(np.abs(f64(a, k) - f64(b, k)).max()) for k in chosen)
        print(f"{label}|b - a| / |a - init| {rel:.3g} (tol {args.tol_update:g}) over "
              f"{len(trained)} trained variables, training moved them by |a - init| "
              f"{den ** 0.5:.3g}; max |b - a| {worst:.3g} (tol {args.tol_max:g})")
        ok &= rel <= args.tol_update and worst <= args.tol_max
    if args.config:
        same = config_text(args.a) == config_text(args.b)
        print(f"{label}config.json " + ("identical" if same else "differs"))
        ok &= same
    if args.config_like:
        problems = config_like(args.a, args.b)
        print(f"{label}config.json of {args.b} against {args.a}'s: {len(problems)} difference(s) "
              "Keras 3 would see" + "".join("\n  " + p for p in problems))
        ok &= not problems
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
