#!/usr/bin/python3
"""Cross-check of the two sides of compare_pytorch.py (issue 13): the Keras base.layers order
torch_backbones.py derives from its PyTorch model (keras_layer_order: Keras's own ordering of
a functional model's layers) against the order parafine builds, as `parafine inspect
--backbone NAME` prints it (model.summary()). Equal orders mean phase 2's base.layers[-N:]
unfreezes the same layers on both sides, for every N. Prints the first difference per
backbone; exits 1 if any differs, 2 if parafine cannot build one (e.g. not built yet).

  /usr/bin/python3 benchmarks/check_layer_order.py [--parafine build/parafine]
      [--backbone resnet50,...] [--alpha 1.0]
"""

import argparse
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_backbones as tb  # noqa: E402

ROW = re.compile(r"^ (\S+) \(([A-Z]\w*)\) ")  # " conv1_conv (Conv2D)  (None, ...", not " Layer (type)"


def parafine_order(binary, backbone, alpha, size):
    out = subprocess.run([binary, "inspect", "--backbone", backbone, "--alpha", str(alpha),
                          "--image-size", str(size)], capture_output=True, text=True)
    if out.returncode != 0:
        return None, (out.stderr or out.stdout).strip()
    return [m.group(1) for m in map(ROW.match, out.stdout.splitlines()) if m], ""


def main():
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parafine", default=os.path.join(here, "build", "parafine"))
    ap.add_argument("--backbone", default=",".join(tb.BACKBONES))
    ap.add_argument("--alpha", type=float, default=1.0, help="MobileNetV2's")
    args = ap.parse_args()
    status = 0
    for backbone in args.backbone.split(","):
        _, base_layers, _, min_size, _ = tb.BACKBONES[backbone]
        alpha = args.alpha if backbone == "mobilenet_v2" else 1.0
        torch_order = tb.keras_layer_order(tb.build_model(backbone, alpha).keras_base_graph())
        ours, error = parafine_order(args.parafine, backbone, alpha, max(min_size, 75))
        if ours is None:
            print(f"{backbone}: parafine cannot build it: {error}")
            status = max(status, 2)
            continue
        ours = ours[:base_layers]
        diff = next((i for i, (a, b) in enumerate(zip(torch_order, ours)) if a != b), None)
        if diff is None and len(torch_order) == len(ours):
            print(f"{backbone}: the same {len(ours)} base layers in the same order")
            continue
        status = 1
        if diff is None:
            print(f"{backbone}: {len(torch_order)} base layers in PyTorch, {len(ours)} in parafine")
        else:
            print(f"{backbone}: base layer {diff} differs: PyTorch {torch_order[diff]}, parafine "
                  f"{ours[diff]} (context PyTorch {torch_order[max(0, diff - 2):diff + 3]}, "
                  f"parafine {ours[max(0, diff - 2):diff + 3]})")
    return status


if __name__ == "__main__":
    sys.exit(main())
