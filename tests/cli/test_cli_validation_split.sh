#!/usr/bin/env bash
# train --validation-split F --seed S (issue 15): parafine's --split-file is, line for line,
# what keras.utils.image_dataset_from_directory(validation_split=F, subset="both", seed=S)
# puts in each subset (tests/reference/keras_validation_split.py, written from Keras's source),
# on a tree with what Keras lists (odd class sizes, an empty class, nested and hidden
# sub-folders, hidden files, upper-case extensions, symlinks, a FIFO, a .bmp parafine cannot
# decode) for several
# seeds and fractions; training runs on the two subsets (under mpirun too); an HDF5 --train is
# split on its indices as numpy's RandomState shuffles them; every bad input exits 2 naming its
# option and writes no file; a --resume with another split is refused.
# Usage: test_cli_validation_split.sh PARAFINE_BINARY PYTHON SOURCE_DIR
set -euo pipefail
parafine=$1 python=$2 src=$3
source "$src/tests/mpi/common.sh"
reference="$src/tests/reference/keras_validation_split.py"
fast="--weights none --image-size 32 --backbone mobilenet_v2 --alpha 0.35 --head-units 16
  --batch-size 4 --threads 1 --loader-threads 1"

# The tree: PNG bytes under every image name (parafine decodes by content), one .bmp.
"$python" - "$work/tree" <<'PY'
import os, struct, sys, zlib
root = sys.argv[1]
def png(path, shade):
    raw = b"".join(b"\x00" + bytes((shade, 255 - shade, 90)) * 6 for _ in range(6))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 6, 6, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
names = {
    "ant": ["a.png", "B.PNG", "c.jpg", "d.JPEG", ".hidden.png", "sub/e.png", "sub/deeper/f.png",
            "sub b/g.png", "sub-c/h.Jpg", ".hid/i.png", "z9.png"],
    "bee": ["01.png", "02.png", "10.png", "2.png", "x/y.png"],
    "cow": ["only.png"],
    "Dog": ["m.png", "n.png", "o.jpeg"],
}
shade = 0
for cls, files in names.items():
    for f in files:
        png(os.path.join(root, cls, f), shade)
        shade = (shade + 23) % 256
os.makedirs(os.path.join(root, "empty"))          # a class without images (Keras keeps it)
os.makedirs(os.path.join(root, ".git", "x"))      # hidden: not a class
png(os.path.join(root, ".git", "x", "p.png"), 1)
png(os.path.join(root, "top.png"), 2)             # top level: not in any class
with open(os.path.join(root, "bee", "bad.bmp"), "wb") as f:
    f.write(b"BM" + bytes(60))                     # Keras lists it; parafine cannot decode it
with open(os.path.join(root, "ant", "notes.txt"), "w") as f:
    f.write("not an image\n")
os.symlink("nowhere.png", os.path.join(root, "ant", "gone.png"))  # dangling: Keras lists it
os.mkfifo(os.path.join(root, "Dog", "pipe.png"))  # os.walk calls it a file: listed, never read
os.symlink("../bee", os.path.join(root, "cow", "linked"))  # not walked (followlinks=False)
os.symlink("bee", os.path.join(root, "zeta"))  # a symlink to a folder is a class
PY

# 1. The split file equals Keras's, for several seeds and fractions.
cases=0
for seed in 0 1234567 4294967295; do
  for fraction in 0.2 0.33 0.9; do
    rm -f "$work/split.tsv"
    "$parafine" train --train "$work/tree" $fast --phase1-epochs 0 --phase2-epochs 0 \
      --validation-split $fraction --seed $seed --split-file "$work/split.tsv" > "$work/log" 2>&1 \
      || { cat "$work/log"; fail "--validation-split $fraction --seed $seed"; }
    "$python" "$reference" split "$work/tree" $fraction $seed > "$work/keras.tsv"
    diff "$work/keras.tsv" "$work/split.tsv" \
      || fail "--validation-split $fraction --seed $seed: --split-file differs from Keras's split"
    cases=$((cases + 1))
  done
done
echo "split files equal Keras's split in $cases cases ($(wc -l < "$work/keras.tsv") files each)"
grep -q "of the 29 files of .* in 6 classes" "$work/log" || { cat "$work/log"; fail "log: listing"; }

# 2. Training on the split: the subsets' sizes, less the files parafine cannot read (the .bmp
# (twice: bee and its symlink zeta), the dangling symlink, the FIFO), reach the trainer.
"$python" "$reference" split "$work/tree" 0.3 11 > "$work/keras.tsv"
unreadable='bad\.bmp$|gone\.png$|pipe\.png$'
[ "$(grep -cE "$unreadable" "$work/keras.tsv")" = 4 ] || fail "Keras's listing lacks a bad file"
ntrain=$(grep "^train" "$work/keras.tsv" | grep -cvE "$unreadable")
nval=$(grep "^val" "$work/keras.tsv" | grep -cvE "$unreadable")
for np in 1 2; do
  mpirun -np $np "$parafine" train --train "$work/tree" $fast --phase1-epochs 1 --phase2-epochs 1 \
    --validation-split 0.3 --seed 11 --split-file "$work/split.tsv" --history "$work/h.csv" \
    > "$work/log" 2>&1 || { cat "$work/log"; fail "training on the split ($np rank(s))"; }
  diff "$work/keras.tsv" "$work/split.tsv" || fail "$np rank(s): split file differs"
  grep -q "; $ntrain training images, $nval validation images, 6 classes" "$work/log" \
    || { cat "$work/log"; fail "$np rank(s): expected $ntrain training and $nval validation images"; }
  for f in bad.bmp gone.png pipe.png; do
    grep -q "skipping bad image: .*$f" "$work/log" || { cat "$work/log"; fail "$f not skipped"; }
  done
  grep -q "final validation accuracy" "$work/log" || { cat "$work/log"; fail "no validation"; }
  echo "$np rank(s): trained on $ntrain training and $nval validation images (4 unreadable skipped)"
done

# 3. An HDF5 --train: numpy's RandomState(S).shuffle of the indices and labels, last F validation.
colour_h5 "$work/data.h5" 23 1
"$parafine" train --train "$work/data.h5" $fast --phase1-epochs 0 --phase2-epochs 0 \
  --validation-split 0.3 --seed 99 --split-file "$work/h5split.tsv" > "$work/log" 2>&1 \
  || { cat "$work/log"; fail "HDF5 split"; }
"$python" - "$work/data.h5" 0.3 99 > "$work/h5keras.tsv" <<'PY'
import sys, h5py, numpy as np
path, fraction, seed = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
with h5py.File(path, "r") as f:
    labels = f["labels"][()].astype(np.int32)
indices = list(range(len(labels)))
np.random.RandomState(seed).shuffle(indices)   # as dataset_utils.index_directory shuffles paths
np.random.RandomState(seed).shuffle(labels)    # ... and labels
num_val = int(fraction * len(indices))          # get_training_or_validation_split
num_train = len(indices) - num_val
for k, (i, l) in enumerate(zip(indices, labels)):
    print(f"{'train' if k < num_train else 'val'}\t{l}\t{i}")
PY
diff "$work/h5keras.tsv" "$work/h5split.tsv" || fail "HDF5 split differs from numpy's"
grep -q "; 17 training images, 6 validation images" "$work/log" || { cat "$work/log"; fail "HDF5 sizes"; }
echo "HDF5 split of 23 samples equals numpy RandomState's (17 training, 6 validation)"

# 4. Bad input: exit 2, the option named, nothing decoded, no file written.
bad() {  # bad OPTION_NAMED ARGS... (--train $train, the tree unless set)
  local named=$1; shift
  rm -f "$work/bad.tsv"
  set +e
  "$parafine" train --train "${train:-$work/tree}" $fast --phase1-epochs 0 --phase2-epochs 0 "$@" \
    > "$work/log" 2>&1
  local rc=$?
  set -e
  echo "$* -> exit $rc: $(head -c 300 "$work/log" | tr '\n' ' ')"
  [ $rc = 2 ] || fail "$*: exit $rc, expected 2"
  grep -q -- "$named" "$work/log" || fail "$*: the message does not name $named"
  ! grep -q "skipping bad image\|training images" "$work/log" || fail "$*: data was decoded"
  [ ! -e "$work/bad.tsv" ] || fail "$*: --split-file written"
}
out="--split-file $work/bad.tsv"
bad --validation-split --validation-split 0 --seed 1 $out
bad --validation-split --validation-split 1 --seed 1 $out
bad --validation-split --validation-split -0.2 --seed 1 $out
bad --validation-split --validation-split 1.5 --seed 1 $out
bad --validation-split --validation-split nan --seed 1 $out
bad --validation-split --validation-split abc --seed 1 $out
bad --validation-split --validation-split 0.2 --seed 1 --val "$work/tree" $out
bad --seed --validation-split 0.2 $out
bad --seed --validation-split 0.2 --seed 4294967296 $out
bad --seed --validation-split 0.2 --seed -1 $out
bad --split-file --seed 1 $out
bad --validation-split --validation-split 0.03 --seed 1 $out    # int(0.03 * 29) = 0 validation
train="$work/data.h5" bad --validation-split --validation-split 0.04 --seed 1 $out  # of 23
bad --split-file --validation-split 0.2 --seed 1 --split-file /nonexistent/dir/s.tsv

# 5. --resume must use the same split: 0.31 of 29 also holds out 8 files (the same ones), but
# the option differs, so it is refused (a checkpoint records the options, not the file list).
"$parafine" train --train "$work/tree" $fast --phase1-epochs 1 --phase2-epochs 1 \
  --validation-split 0.3 --seed 11 --checkpoint-dir "$work/ck" --max-steps 1 > "$work/log" 2>&1 \
  || { cat "$work/log"; fail "run to resume"; }
set +e
"$parafine" train --train "$work/tree" $fast --phase1-epochs 1 --phase2-epochs 1 \
  --validation-split 0.31 --seed 11 --checkpoint-dir "$work/ck" --resume > "$work/log" 2>&1
rc=$?
set -e
echo "resume with another split -> exit $rc: $(tr '\n' ' ' < "$work/log" | grep -o -- '--validation-split 0.2[^;]*' | head -1)"
[ $rc != 0 ] && grep -q -- "--validation-split 0.2999.* in the checkpoint, 0.31 now" "$work/log" \
  || { cat "$work/log"; fail "a resume with another --validation-split was not refused"; }
"$parafine" train --train "$work/tree" $fast --phase1-epochs 1 --phase2-epochs 1 \
  --validation-split 0.3 --seed 11 --checkpoint-dir "$work/ck" --resume > "$work/log" 2>&1 \
  || { cat "$work/log"; fail "resume with the same split"; }
echo "PASS"
