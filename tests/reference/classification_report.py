#!/usr/bin/env python3
"""Independent reference for the evaluation report's numbers (include/parafine/train/
classification_report.hpp), written from the definitions in numpy float64, not from the C++.

Usage: classification_report.py ROWS.csv CLASSES TOP_K BINS WRONG (or import report())
ROWS.csv: one sample per line, "label,p_0,...,p_{C-1}". Prints a JSON object."""
import json
import sys

import numpy as np


def report(labels, p, classes, top_k, bins, wrong):
    """The report of probabilities p [N, classes] (float64) against labels [N], as a dict."""
    n = len(labels)
    predicted = np.argmax(p, axis=1)  # first index on ties
    confusion = np.zeros((classes, classes), dtype=int)
    for t, q in zip(labels, predicted):
        confusion[t, q] += 1
    tp = np.diag(confusion).astype(float)
    support = confusion.sum(axis=1)
    predicted_count = confusion.sum(axis=0)
    div = lambda a, b: np.where(b > 0, a / np.where(b > 0, b, 1), 0.0)  # zero_division=0
    precision, recall = div(tp, predicted_count), div(tp, support)
    f1 = div(2 * precision * recall, precision + recall)
    weights = support / n
    # Rank of the label: classes with a higher probability, or an equal one and a lower index.
    ranks = np.array([sum(1 for k in range(classes)
                          if p[i, k] > p[i, labels[i]] or (p[i, k] == p[i, labels[i]] and k < labels[i]))
                      for i in range(n)])
    top = [float(np.mean(ranks < k)) for k in range(1, min(top_k, classes) + 1)]
    confidence = p[np.arange(n), predicted]
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    ece, out_bins = 0.0, []
    for b in range(bins):
        sel = index == b
        count = int(sel.sum())
        conf = float(confidence[sel].mean()) if count else 0.0
        acc = float((predicted[sel] == labels[sel]).mean()) if count else 0.0
        ece += count / n * abs(acc - conf)
        out_bins.append([count, conf, acc])
    mistakes = [i for i in range(n) if predicted[i] != labels[i]]
    mistakes.sort(key=lambda i: (-confidence[i], i))
    return {
        "confusion": confusion.flatten().tolist(),
        "precision": precision.tolist(), "recall": recall.tolist(), "f1": f1.tolist(),
        "support": support.tolist(), "accuracy": float(np.mean(predicted == labels)),
        "macro_precision": float(precision.mean()), "macro_recall": float(recall.mean()),
        "weighted_recall": float((weights * recall).sum()),
        "macro_f1": float(f1.mean()), "weighted_f1": float((weights * f1).sum()),
        "weighted_precision": float((weights * precision).sum()),
        "top_k": top, "bins": out_bins, "ece": ece,
        "wrong": [[i, int(labels[i]), int(predicted[i]), float(confidence[i])]
                  for i in mistakes[:wrong]],
    }


def main():
    path, classes, top_k, bins, wrong = sys.argv[1], *map(int, sys.argv[2:6])
    rows = np.loadtxt(path, delimiter=",", ndmin=2)
    labels = rows[:, 0].astype(int)
    # The C++ computes on float32 probabilities: compare on the same values.
    p = rows[:, 1:].astype(np.float32).astype(np.float64)
    print(json.dumps(report(labels, p, classes, top_k, bins, wrong)))


if __name__ == "__main__":
    main()
