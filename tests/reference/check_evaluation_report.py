#!/usr/bin/env python3
"""Checks a `parafine evaluate --report DIR` against `parafine predict`'s CSV of the same model
and data: the numbers are recomputed independently (classification_report.report, numpy
float64, from the definitions) and compared with report.json and the CSV tables; the PNGs
must decode, be of a sensible size and not blank; index.html must reference every picture and
table and be well-formed. Prints the largest differences; exits 1 on any failure.

Usage: check_evaluation_report.py DIR PREDICT.csv LABELS TOP_K BINS WRONG
LABELS: an HDF5 dataset (its `labels`), "folders" (an image folder: each file's class is its
directory's name) or a text file with one label per line."""
import csv
import html.parser
import json
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from classification_report import report  # noqa: E402

failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
        print("FAIL:", what)


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def load_labels(path, files, names):
    if path == "folders":  # an image folder: each file's class is its directory's name
        return np.array([names.index(os.path.basename(os.path.dirname(f))) for f in files])
    if path.endswith(".h5"):
        import h5py
        with h5py.File(path, "r") as f:
            return f["labels"][()].astype(int)
    return np.loadtxt(path, dtype=int, ndmin=1)


def check_numbers(got, want, classes, names, report_dir, max_diff):
    def close(label, a, b, tol):
        a, b = np.asarray(a, float), np.asarray(b, float)
        diff = float(np.abs(a - b).max()) if a.size else 0.0
        max_diff[label] = diff
        check(a.shape == b.shape and diff <= tol, f"{label}: max |diff| {diff:.3g} > {tol:g}")

    conf = np.array(got["confusion_matrix"])
    check(conf.flatten().tolist() == want["confusion"], "confusion matrix differs")
    per = got["per_class"]
    check([r["class"] for r in per] == names, "per_class class names")
    for key in ("precision", "recall", "f1"):
        close(key, [r[key] for r in per], want[key], 1e-9)
    check([r["support"] for r in per] == want["support"], "support differs")
    close("accuracy", got["accuracy"], want["accuracy"], 1e-12)
    close("macro", [got["macro_avg"][k] for k in ("precision", "recall", "f1")],
          [want["macro_precision"], want["macro_recall"], want["macro_f1"]], 1e-9)
    close("weighted", [got["weighted_avg"][k] for k in ("precision", "recall", "f1")],
          [want["weighted_precision"], want["weighted_recall"], want["weighted_f1"]], 1e-9)
    close("top_k", got["top_k_accuracy"], want["top_k"], 1e-12)
    bins = got["calibration"]["bins"]
    check([b["count"] for b in bins] == [b[0] for b in want["bins"]], "bin counts differ")
    # predict's CSV holds 6 significant digits: the confidences agree to about 1e-6.
    close("bin mean confidence", [b["mean_confidence"] for b in bins], [b[1] for b in want["bins"]], 2e-6)
    close("bin accuracy", [b["accuracy"] for b in bins], [b[2] for b in want["bins"]], 1e-12)
    close("ECE", got["calibration"]["expected_calibration_error"], want["ece"], 2e-6)
    wrong = got["most_wrong"]
    check([w["sample"] for w in wrong] == [w[0] for w in want["wrong"]],
          f"most-wrong samples {[w['sample'] for w in wrong]} vs {[w[0] for w in want['wrong']]}")
    check([w["true"] for w in wrong] == [names[w[1]] for w in want["wrong"]], "most-wrong true")
    check([w["predicted"] for w in wrong] == [names[w[2]] for w in want["wrong"]],
          "most-wrong predicted")
    close("most-wrong probability", [w["probability"] for w in wrong], [w[3] for w in want["wrong"]], 2e-6)


def check_tables(got, report_dir, names):
    header, rows = read_csv(os.path.join(report_dir, "confusion_matrix.csv"))
    check(header[1:] == names and [r[0] for r in rows] == names, "confusion_matrix.csv names")
    check([[int(v) for v in r[1:]] for r in rows] == got["confusion_matrix"],
          "confusion_matrix.csv counts")
    header, rows = read_csv(os.path.join(report_dir, "per_class.csv"))
    check(header == ["class", "precision", "recall", "f1", "support"], "per_class.csv header")
    check(np.allclose([[float(v) for v in r[1:4]] for r in rows],
                      [[c[k] for k in ("precision", "recall", "f1")] for c in got["per_class"]],
                      atol=1e-9), "per_class.csv precision/recall/f1")
    check([int(r[4]) for r in rows] == [c["support"] for c in got["per_class"]],
          "per_class.csv support")
    header, rows = read_csv(os.path.join(report_dir, "calibration.csv"))
    check(header == ["bin", "lower", "upper", "count", "mean_confidence", "accuracy"],
          "calibration.csv header")
    check([int(r[3]) for r in rows] == [b["count"] for b in got["calibration"]["bins"]],
          "calibration.csv counts")
    header, rows = read_csv(os.path.join(report_dir, "top_k.csv"))
    check(np.allclose([float(r[1]) for r in rows], got["top_k_accuracy"], atol=1e-9), "top_k.csv")
    header, rows = read_csv(os.path.join(report_dir, "most_wrong.csv"))
    check(header[2:] == ["true", "predicted", "probability", "true_probability"],
          f"most_wrong.csv header {header}")
    check([r[1] for r in rows] == [w["name"] for w in got["most_wrong"]], "most_wrong.csv names")
    return rows


def check_pictures(report_dir, pictures):
    for name in pictures:
        path = os.path.join(report_dir, name)
        if not os.path.exists(path):
            check(False, f"{name} missing")
            continue
        img = Image.open(path).convert("RGB")
        colours = len(img.getcolors(maxcolors=1 << 24) or [])
        print(f"{name}: {img.size[0]}x{img.size[1]}, {colours} distinct colours")
        check(img.size[0] >= 300 and img.size[1] >= 250, f"{name}: small {img.size}")
        check(colours >= 50, f"{name}: only {colours} colours (blank?)")


class Html(html.parser.HTMLParser):
    void = {"meta", "img", "br", "hr", "link"}

    def __init__(self):
        super().__init__()
        self.stack, self.mismatched, self.refs = [], [], []

    def handle_starttag(self, tag, attrs):
        self.refs += [v for k, v in attrs if k in ("src", "href")]
        if tag not in self.void:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.mismatched.append(tag)


def check_html(report_dir, pictures, names):
    text = open(os.path.join(report_dir, "index.html"), encoding="utf-8").read()
    parser = Html()
    parser.feed(text)
    check(not parser.stack and not parser.mismatched,
          f"index.html: unclosed {parser.stack}, mismatched {parser.mismatched}")
    tables = ["report.json", "per_class.csv", "top_k.csv", "confusion_matrix.csv",
              "calibration.csv", "most_wrong.csv"]
    for ref in pictures + tables:
        check(ref in parser.refs, f"index.html does not reference {ref}")
    check(all(not r.startswith(("/", "http")) for r in parser.refs), "index.html: absolute links")
    for name in names:
        if any(ch in name for ch in "<>&"):
            check(name not in text, f"index.html: class name {name!r} not escaped")
            check(html.escape(name, quote=False) in text, f"index.html: {name!r} missing")


def main():
    report_dir, predict_csv, labels_path = sys.argv[1:4]
    top_k, bins, wrong = map(int, sys.argv[4:7])
    header, rows = read_csv(predict_csv)
    names = [h[2:] for h in header[1:-1]]
    p = np.array([[float(v) for v in r[1:-1]] for r in rows])
    labels = load_labels(labels_path, [r[0] for r in rows], names)
    want = report(labels, p, len(names), top_k, bins, wrong)
    got = json.load(open(os.path.join(report_dir, "report.json"), encoding="utf-8"))
    max_diff = {}
    check(got["classes"] == names, f"classes {got['classes']} vs {names}")
    check(got["samples"] == len(labels), "samples")
    check_numbers(got, want, len(names), names, report_dir, max_diff)
    wrong_rows = check_tables(got, report_dir, names)
    print("max |report - numpy reference|:", ", ".join(f"{k} {v:.3g}" for k, v in max_diff.items()))
    print(f"{len(wrong_rows)} most-wrong rows, accuracy {got['accuracy']:.4f}, "
          f"ECE {got['calibration']['expected_calibration_error']:.4f}")
    pictures = ["confusion_matrix.png", "reliability.png"] + (["most_wrong.png"] if wrong else [])
    check_pictures(report_dir, pictures)
    check_html(report_dir, pictures, names)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
