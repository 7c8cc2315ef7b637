#!/usr/bin/python3
"""Rewrites a tf.keras save_weights HDF5 file (h5py only) into what another Keras generation or
a damaged download would hold, for tests/test_backbone_weights.cpp:

* ``--one-based``: Keras's auto-generated layer names shifted by one, as the released
  InceptionV3 notop file names them (``conv2d`` -> ``conv2d_1``, ``conv2d_93`` -> ``conv2d_94``;
  the same for batch_normalization, activation, max_pooling2d, average_pooling2d,
  concatenate, dense). The layer group, the nested group, ``layer_names`` and every
  ``weight_names`` entry are renamed together, as a file written under those names would be.
* ``--drop-head``: removes global_average_pooling2d, dense and dense_1 (and any renamed copy):
  a notop file. Applied before renaming.
* ``--transpose LAYER``: that layer's kernel stored with its dimensions reversed (a misshapen
  tensor), named as in the output file.
* ``--remove LAYER``: that layer removed from the file (named as in the output file).

Usage: rewrite_keras_weights.py IN.h5 OUT.h5 [--one-based] [--drop-head] [--transpose L]
       [--remove L]
"""

import argparse
import re

import h5py
import numpy as np

AUTO = re.compile(r"^(conv2d|batch_normalization|activation|max_pooling2d|average_pooling2d|"
                  r"concatenate|dense)(?:_(\d+))?$")
HEAD = {"global_average_pooling2d", "dense", "dense_1"}


def one_based(name):
    m = AUTO.match(name)
    if not m:
        return name
    index = int(m.group(2)) if m.group(2) else 0
    return f"{m.group(1)}_{index + 1}"


def decode(a):
    return [x.decode() if isinstance(x, bytes) else str(x) for x in a]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--one-based", action="store_true")
    p.add_argument("--drop-head", action="store_true")
    p.add_argument("--transpose")
    p.add_argument("--remove")
    a = p.parse_args()
    rename = one_based if a.one_based else (lambda n: n)
    with h5py.File(a.src, "r") as f, h5py.File(a.dst, "w") as g:
        names = decode(f.attrs["layer_names"])
        if a.drop_head:
            names = [n for n in names if n not in HEAD]
        for key in ("backend", "keras_version"):
            if key in f.attrs:
                g.attrs[key] = f.attrs[key]
        kept = []
        for old in names:
            new = rename(old)
            if new == a.remove:
                continue
            kept.append(new)
            src = f[old]
            grp = g.create_group(new)
            weight_names = decode(src.attrs["weight_names"]) if len(src.attrs["weight_names"]) else []
            renamed = []
            for w in weight_names:
                layer, var = w.split("/", 1)
                data = np.array(src[w])
                if new == a.transpose and var.startswith("kernel"):
                    data = np.ascontiguousarray(data.transpose())
                nw = f"{rename(layer)}/{var}"
                grp.create_dataset(nw, data=data)
                renamed.append(nw.encode())
            grp.attrs["weight_names"] = np.array(renamed) if renamed else np.array([], dtype=np.float64)
        g.attrs["layer_names"] = np.array([n.encode() for n in kept])


if __name__ == "__main__":
    main()
