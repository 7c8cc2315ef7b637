#!/usr/bin/env bash
# evaluate --report DIR and plot-history (issue 16) through the real binary. A tiny model is
# trained on noisy colour images (so it makes mistakes); the report's numbers (confusion,
# precision/recall/F1/support, top-k, calibration bins and ECE, the most confidently wrong
# samples) must equal those recomputed in numpy from `predict`'s CSV of the same model and data
# (tests/reference/check_evaluation_report.py), under mpirun -np 2 and alone, on an HDF5 dataset
# and an image folder; the PNGs decode and are not blank, the contact sheet grows with --wrong,
# index.html references everything and escapes the class names. plot-history draws a real
# history and refuses a CSV that is not one (exit 2, naming the file). Without matplotlib
# (a fake one on PYTHONPATH that raises ImportError) or without python3, the message says what
# to install, the exit code is non-zero, and evaluate --report still writes its CSV/JSON/HTML.
# Usage: test_evaluate_report.sh PARAFINE_BINARY PYTHON SOURCE_DIR
set -euo pipefail
parafine=$1 python=$2 source_dir=$3
source "$(dirname "$0")/common.sh"
export PARAFINE_PYTHON=$python PARAFINE_PLOT_SCRIPT=$source_dir/launch/parafine_plot.py
check="$python $source_dir/tests/reference/check_evaluation_report.py"

# Noisy colour images (noise sd 60: some are misread), class names that need HTML escaping.
"$python" - "$work" <<'PY'
import os, sys, h5py, numpy as np
from PIL import Image
work = sys.argv[1]
names = ["0 red <r>", "1 green & co", "2 blue"]  # alphabetical, as a folder lists them
for path, n, seed in (("train.h5", 30, 1), ("val.h5", 24, 2)):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    base = np.array([[200, 60, 60], [60, 200, 60], [60, 60, 200]])[labels]
    images = np.clip(base[:, None, None, :] + rng.normal(0, 60, (n, 32, 32, 3)), 0, 255).astype(np.uint8)
    with h5py.File(os.path.join(work, path), "w") as f:
        f["images"] = images
        f["labels"] = labels.astype(np.int64)
        f.attrs["class_names"] = np.array([s.encode() for s in names])
    if path == "val.h5":  # the same images as an image folder, file names needing escaping
        for i, (img, y) in enumerate(zip(images[:15], labels[:15])):
            os.makedirs(os.path.join(work, "folder", names[y]), exist_ok=True)
            Image.fromarray(img).save(os.path.join(work, "folder", names[y], f"x&y <{i:02d}>.png"))
PY
"$parafine" train --train "$work/train.h5" --val "$work/val.h5" --weights none --image-size 32 \
  --batch-size 8 --head-units 16 --phase1-epochs 3 --phase2-epochs 1 --seed 3 --threads 2 \
  --save "$work/model.h5" --history "$work/hist.csv" > "$work/train.log" 2>&1 || { cat "$work/train.log"; fail "train"; }

# HDF5 data: under mpirun -np 2 (rank 0 writes the report) and alone with another --wrong.
"$parafine" predict --model "$work/model.h5" --input "$work/val.h5" --output "$work/pred.csv" 2> /dev/null
"$parafine" evaluate --model "$work/model.h5" --data "$work/val.h5" > "$work/plain.txt"
mpirun -np 2 "$parafine" evaluate --model "$work/model.h5" --data "$work/val.h5" --report "$work/r2" \
  --top-k 2 --bins 8 --wrong 6 > "$work/r2.txt" 2> "$work/r2.err" || { cat "$work/r2.err"; fail "evaluate --report under mpirun"; }
cat "$work/r2.txt"
[ "$(head -1 "$work/r2.txt")" = "$(cat "$work/plain.txt")" ] || fail "the loss/accuracy line changed with --report: $(cat "$work/plain.txt")"
$check "$work/r2" "$work/pred.csv" "$work/val.h5" 2 8 6 || fail "report under mpirun -np 2"
"$parafine" evaluate --model "$work/model.h5" --data "$work/val.h5" --report "$work/r1" --wrong 2 > /dev/null 2>&1 || fail "evaluate --report --wrong 2"
$check "$work/r1" "$work/pred.csv" "$work/val.h5" 5 10 2 || fail "report --wrong 2"
"$python" - "$work/r1/most_wrong.png" "$work/r2/most_wrong.png" <<'PY' || fail "contact sheet size"
import sys
from PIL import Image
small, large = (Image.open(p).size for p in sys.argv[1:3])
print(f"contact sheet of 2: {small}, of 6: {large}")
sys.exit(0 if small[0] * small[1] < large[0] * large[1] else 1)
PY

# An image folder: the most-wrong list names the files.
"$parafine" predict --model "$work/model.h5" --input "$work/folder" --output "$work/fpred.csv" 2> /dev/null
"$parafine" evaluate --model "$work/model.h5" --data "$work/folder" --report "$work/rf" --wrong 4 > /dev/null 2>&1 || fail "evaluate --report on a folder"
$check "$work/rf" "$work/fpred.csv" folders 5 10 4 || fail "report on a folder"
head -2 "$work/rf/most_wrong.csv"
grep -q "^1,$work/folder/.*x&y <[0-9]*>.png," "$work/rf/most_wrong.csv" || fail "most_wrong.csv: no file path"
grep -q "x&amp;y &lt;" "$work/rf/index.html" || fail "index.html: file names not escaped"

# plot-history: a real history; CSVs that are not one -> exit 2 naming the file.
# (the script found without PARAFINE_PLOT_SCRIPT: the source tree's path compiled in)
env -u PARAFINE_PLOT_SCRIPT "$parafine" plot-history "$work/hist.csv" "$work/hist.png" || fail "plot-history"
printf 'run,phase,epoch,val_accuracy\nresnet50 unfreeze-last 10,1,1,0.5\nresnet50 unfreeze-last 10,1,2,0.6\nresnet50 unfreeze-last 10,2,3,0.7\nmobilenet_v2 unfreeze-last 20,1,1,0.4\nmobilenet_v2 unfreeze-last 20,2,2,0.65\nmobilenet_v2 unfreeze-last 20,2,3,0.75\n' > "$work/sweep.csv"
"$python" "$source_dir/launch/parafine_plot.py" sweep "$work/sweep.csv" "$work/sweep.png" || fail "plot sweep"
"$python" - "$work/hist.png" "$work/sweep.png" <<'PY' || fail "history/sweep PNG"
import sys
from PIL import Image
for path in sys.argv[1:]:
    img = Image.open(path).convert("RGB")
    colours = len(img.getcolors(maxcolors=1 << 24))
    print(f"{path.split('/')[-1]}: {img.size}, {colours} distinct colours")
    assert img.size[0] >= 600 and img.size[1] >= 300 and colours >= 50, path
PY
printf 'epoch,accuracy,learning_rate,loss,phase\n0,0.5,0.001,abc,1\n' > "$work/bad_value.csv"
: > "$work/empty.csv"
printf 'epoch,accuracy,learning_rate,loss,phase\n' > "$work/no_rows.csv"
for bad in pred.csv bad_value.csv empty.csv no_rows.csv missing.csv; do
  rc=0
  "$parafine" plot-history "$work/$bad" "$work/bad.png" 2> "$work/bad.err" || rc=$?
  cat "$work/bad.err"
  [ $rc = 2 ] || fail "plot-history $bad: exit $rc, not 2"
  grep -q "$work/$bad" "$work/bad.err" || fail "plot-history $bad: the message does not name the file"
  [ ! -e "$work/bad.png" ] || fail "plot-history $bad wrote a PNG"
done

# No matplotlib (a fake package that raises ImportError), no python3: the install message.
mkdir -p "$work/fake/matplotlib"
echo 'raise ImportError("No module named matplotlib (fake)")' > "$work/fake/matplotlib/__init__.py"
hint="apt-get install python3-matplotlib python3-pil"
rc=0
PYTHONPATH=$work/fake "$parafine" plot-history "$work/hist.csv" "$work/h2.png" 2> "$work/nomp.err" || rc=$?
cat "$work/nomp.err"
[ $rc = 2 ] && grep -q "$hint" "$work/nomp.err" || fail "plot-history without matplotlib: exit $rc"
rc=0
PARAFINE_PYTHON=$work/no/python3 "$parafine" plot-history "$work/hist.csv" "$work/h2.png" 2> "$work/nopy.err" || rc=$?
cat "$work/nopy.err"
[ $rc = 2 ] && grep -q "$hint" "$work/nopy.err" || fail "plot-history without python3: exit $rc"
rc=0
PYTHONPATH=$work/fake "$parafine" evaluate --model "$work/model.h5" --data "$work/val.h5" \
  --report "$work/rm" > /dev/null 2> "$work/rm.err" || rc=$?
cat "$work/rm.err"
[ $rc != 0 ] || fail "evaluate --report without matplotlib: exit 0"
grep -q "$hint" "$work/rm.err" && grep -q "confusion_matrix.png, reliability.png, most_wrong.png" "$work/rm.err" \
  || fail "evaluate --report without matplotlib: the message"
for f in report.json index.html confusion_matrix.csv per_class.csv top_k.csv calibration.csv most_wrong.csv; do
  [ -s "$work/rm/$f" ] || fail "without matplotlib: $f not written"
done
! ls "$work/rm/"*.png 2> /dev/null || fail "without matplotlib: a PNG was written"
grep -q "confusion_matrix.png was not drawn" "$work/rm/index.html" || fail "index.html: no note on the missing pictures"
# A script that is not there: said, non-zero.
rc=0
PARAFINE_PLOT_SCRIPT=$work/none.py "$parafine" plot-history "$work/hist.csv" "$work/h3.png" 2> "$work/noscript.err" || rc=$?
cat "$work/noscript.err"
[ $rc != 0 ] && grep -q "$work/none.py" "$work/noscript.err" || fail "missing script: exit $rc"
echo "PASS"
