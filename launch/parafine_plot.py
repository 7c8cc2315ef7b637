#!/usr/bin/env python3
"""parafine's pictures (issue 16): draws PNGs from the CSV files the C++ writes; it computes
nothing of its own beyond laying the numbers out. Run by parafine (src/cli/plot_script.cpp);
python3 with matplotlib (Agg backend) and PIL.

Subcommands:
  confusion CONFUSION.csv OUT.png            confusion_matrix.csv: "true\\predicted,<names>",
                                             then one row per true class: name,counts...
  reliability CALIBRATION.csv ECE OUT.png    calibration.csv: bin,lower,upper,count,
                                             mean_confidence,accuracy
  contact-sheet MOST_WRONG.csv PIXELS.npy OUT.png
                                             most_wrong.csv: rank,file|index,true,predicted,
                                             probability,true_probability; PIXELS.npy uint8
                                             [N,S,S,3], row i the image of most_wrong row i
  history HISTORY.csv OUT.png                train --history's CSV (epoch 0-based per phase)
  sweep SWEEP_HISTORY.csv OUT.png            columns run,phase,epoch,val_accuracy (epoch 1..
                                             across both phases), one line per run

Exit codes: 0 drawn, 2 bad arguments or input, 3 matplotlib or PIL missing (the message on
stderr names the module; parafine then says what to install)."""
import ast
import csv
import math
import sys

MISSING_EXIT = 3


def need_libraries():
    """Imports matplotlib (Agg) and PIL, or exits 3 naming what is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
        from PIL import Image
    except ImportError as e:  # ModuleNotFoundError included
        print(f"parafine_plot.py: {e}", file=sys.stderr)
        sys.exit(MISSING_EXIT)
    globals()["MaxNLocator"] = MaxNLocator
    return plt, Image


def fail(message):
    print(f"parafine_plot.py: {message}", file=sys.stderr)
    sys.exit(2)


def read_rows(path):
    """The header and the rows of a CSV file (RFC 4180 quoting)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = [row for row in csv.reader(f) if row]
    except OSError as e:
        fail(f"{path}: {e.strerror}")
    if not rows:
        fail(f"{path}: empty")
    return rows[0], rows[1:]


def number(text):
    """A cell as a float; NA and empty cells are nan."""
    return float("nan") if text in ("", "NA", "nan") else float(text)


def confusion(plt, _image, csv_path, out):
    header, rows = read_rows(csv_path)
    names = header[1:]
    true_names = [r[0] for r in rows]
    counts = [[int(v) for v in r[1:]] for r in rows]
    n = len(names)
    side = min(max(5.0, 0.55 * n + 3.0), 30.0)
    fig, ax = plt.subplots(figsize=(side + 1.2, side))
    totals = [max(sum(r), 1) for r in counts]
    shares = [[v / t for v in r] for r, t in zip(counts, totals)]  # colour: share of the row
    im = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    ax.set_xticks(range(n))
    ax.set_yticks(range(len(true_names)))
    ax.set_xticklabels(names, rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center")
    ax.set_yticklabels(true_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"Confusion matrix ({sum(map(sum, counts))} samples)")
    if n <= 40:  # annotations stay readable up to about 40 classes
        font = 12 if n <= 10 else 10 if n <= 20 else 8 if n <= 30 else 6
        for t, row in enumerate(counts):
            for p, v in enumerate(row):
                colour = "white" if shares[t][p] > 0.5 else "black"
                ax.text(p, t, str(v), ha="center", va="center", color=colour, fontsize=font)
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def reliability(plt, _image, csv_path, ece, out):
    _, rows = read_rows(csv_path)
    lower = [float(r[1]) for r in rows]
    upper = [float(r[2]) for r in rows]
    count = [int(r[3]) for r in rows]
    confidence = [float(r[4]) for r in rows]
    accuracy = [float(r[5]) for r in rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 8), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1]})
    width = [u - l for l, u in zip(lower, upper)]
    used = [c > 0 for c in count]
    top.bar([l for l, k in zip(lower, used) if k], [a for a, k in zip(accuracy, used) if k],
            width=[w for w, k in zip(width, used) if k], align="edge", color="#4c72b0",
            edgecolor="black", label="accuracy in the bin")
    top.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    top.plot([c for c, k in zip(confidence, used) if k], [a for a, k in zip(accuracy, used) if k],
             "o", color="#dd8452", label="(mean confidence, accuracy)")
    top.set_ylim(0, 1.02)
    top.set_xlim(0, 1)
    top.set_ylabel("accuracy")
    top.set_title(f"Reliability diagram - ECE {float(ece):.4f} ({len(rows)} bins)")
    top.legend(loc="upper left")
    top.grid(alpha=0.3)
    bottom.bar(lower, count, width=width, align="edge", color="#55a868", edgecolor="black")
    for l, w, c in zip(lower, width, count):
        if c:
            bottom.text(l + w / 2, c, str(c), ha="center", va="bottom", fontsize=8)
    bottom.set_ylim(0, max(count + [1]) * 1.25)
    bottom.set_xlabel("confidence (top class probability)")
    bottom.set_ylabel("samples")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def read_npy_uint8(path):
    """A uint8 .npy array [N,S,S,3] as (N, S, bytes), read without numpy."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:6] != b"\x93NUMPY":
        fail(f"{path}: not a .npy file")
    header_len = int.from_bytes(data[8:10], "little")
    header = ast.literal_eval(data[10:10 + header_len].decode("latin1"))  # .npy's dict
    shape = header["shape"]
    if header["descr"] != "|u1" or len(shape) != 4 or shape[3] != 3 or shape[1] != shape[2]:
        fail(f"{path}: expected uint8 [N,S,S,3], got {header}")
    return shape[0], shape[1], data[10 + header_len:]


def contact_sheet(plt, image, csv_path, npy_path, out):
    header, rows = read_rows(csv_path)
    n, size, pixels = read_npy_uint8(npy_path)
    if n != len(rows):
        fail(f"{npy_path} holds {n} images for the {len(rows)} rows of {csv_path}")
    tile = 180
    cols = max(1, min(4, n))
    lines = max(1, math.ceil(n / cols))
    fig = plt.figure(figsize=(cols * 3.2, lines * 4.0 + 0.8))
    fig.suptitle(f"The {n} most confidently wrong predictions" if n else
                 "No wrong predictions", fontsize=14)
    for i, row in enumerate(rows):
        start = i * size * size * 3
        img = image.frombytes("RGB", (size, size), pixels[start:start + size * size * 3])
        resample = image.NEAREST if size * 3 <= tile else image.BILINEAR
        img = img.resize((tile, tile), resample)
        ax = fig.add_subplot(lines, cols, i + 1)
        ax.imshow(img)
        ax.set_xticks([])
        ax.set_yticks([])
        name = row[1] if header[1] == "index" else row[1].replace("\\", "/").split("/")[-1]
        if len(name) > 28:
            name = name[:12] + "..." + name[-13:]
        label = "sample #" + name if header[1] == "index" else name
        ax.set_title(f"{label}\ntrue: {row[2]}\npredicted: {row[3]} ({float(row[4]):.3f})",
                     fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(out, dpi=100)


def history(plt, _image, csv_path, out):
    header, rows = read_rows(csv_path)
    column = {name: i for i, name in enumerate(header)}
    for name in ("epoch", "accuracy", "loss", "phase"):
        if name not in column:
            fail(f"{csv_path}: no '{name}' column: not a parafine train --history file")
    cell = lambda row, name: number(row[column[name]]) if name in column else float("nan")
    rows.sort(key=lambda r: (int(cell(r, "phase")), int(cell(r, "epoch"))))
    x = list(range(1, len(rows) + 1))  # epochs counted across both phases
    phase = [int(cell(r, "phase")) for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, metric, title in ((axes[0], "loss", "Loss"), (axes[1], "accuracy", "Accuracy")):
        ax.plot(x, [cell(r, metric) for r in rows], "o-", label="training")
        val = [cell(r, "val_" + metric) for r in rows]
        if any(not math.isnan(v) for v in val):
            ax.plot(x, val, "s-", label="validation")
        if 1 in phase and 2 in phase:
            ax.axvline(phase.index(2) + 0.5, color="gray", linestyle="--", label="phase 2 starts")
        ax.set_xlabel("epoch (both phases)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle("Training history: " + csv_path.split("/")[-1])
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def sweep(plt, _image, csv_path, out):
    header, rows = read_rows(csv_path)
    column = {name: i for i, name in enumerate(header)}
    for name in ("run", "phase", "epoch", "val_accuracy"):
        if name not in column:
            fail(f"{csv_path}: no '{name}' column")
    runs = {}
    for r in rows:
        runs.setdefault(r[column["run"]], []).append(
            (int(r[column["epoch"]]), int(r[column["phase"]]), number(r[column["val_accuracy"]])))
    fig, ax = plt.subplots(figsize=(10, 5.5))
    boundaries = set()
    for label, points in runs.items():
        points.sort()
        line, = ax.plot([p[0] for p in points], [p[2] for p in points], "o-", label=label)
        phase2 = [p[0] for p in points if p[1] == 2]
        if phase2 and any(p[1] == 1 for p in points):
            boundaries.add((min(phase2) - 0.5, line.get_color()))
    single = len({b for b, _ in boundaries}) == 1
    for b, colour in sorted(boundaries):
        ax.axvline(b, color="gray" if single else colour, linestyle="--", alpha=0.8)
    if boundaries:
        ax.plot([], [], "--", color="gray", label="phase 2 starts")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch (both phases)")
    ax.set_ylabel("validation accuracy")
    ax.set_title("Sweep: validation accuracy per epoch")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=100)


COMMANDS = {"confusion": (confusion, 2), "reliability": (reliability, 3),
            "contact-sheet": (contact_sheet, 3), "history": (history, 2), "sweep": (sweep, 2)}


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        fail("usage: parafine_plot.py " + "|".join(COMMANDS) + " ARGS... (see the file's top)")
    draw, arity = COMMANDS[sys.argv[1]]
    args = sys.argv[2:]
    if len(args) != arity:
        fail(f"{sys.argv[1]} takes {arity} arguments, got {len(args)}")
    plt, image = need_libraries()
    try:
        draw(plt, image, *args)
    except (ValueError, IndexError, KeyError) as e:
        fail(f"{sys.argv[1]} {args[0]}: {type(e).__name__}: {e}")


if __name__ == "__main__":
    main()
