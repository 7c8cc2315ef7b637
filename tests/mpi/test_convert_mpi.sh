#!/usr/bin/env bash
# `parafine convert` under real mpirun: ranks share the decoding, rank 0 writes, and the file
# is byte-identical to a one-process conversion; bad images are skipped identically on every
# rank, and --on-bad-image fail ends every rank with the file's path and leaves no output.
# Usage: test_convert_mpi.sh PARAFINE_BINARY DATA_DIR PYTHON
set -euo pipefail
parafine=$1 data=$2 python=$3
source "$(dirname "$0")/common.sh"
if [ ! -d "$data/val/cats" ]; then echo "SKIP: no photos at $data"; exit 77; fi  # CTest: skipped

# 2 classes x 9 real photos (linked, not copied) + 3 bad files in the cats folder.
for cls in cats dogs; do
  mkdir -p "$work/in/$cls"
  for f in $(ls "$data/val/$cls" | head -9); do ln -s "$data/val/$cls/$f" "$work/in/$cls/$f"; done
done
: > "$work/in/cats/zero.jpg"
head -c 3000 /dev/urandom > "$work/in/cats/random.jpg"
head -c 2000 "$data/val/dogs/$(ls "$data/val/dogs" | head -1)" > "$work/in/cats/truncated.jpg"

"$parafine" convert --input "$work/in" --output "$work/one.h5" --image-size 40 > "$work/one.log"
for np in 2 3; do
  mpirun -np $np "$parafine" convert --input "$work/in" --output "$work/np$np.h5" --image-size 40 --threads 1 \
    > "$work/np$np.log" 2>&1 || { cat "$work/np$np.log"; fail "convert with $np ranks exited non-zero"; }
  grep -q "skipped 3 bad image(s) of 21" "$work/np$np.log" || { cat "$work/np$np.log"; fail "$np ranks: skip count not reported"; }
  [ "$(grep -c 'skipped 3 bad image' "$work/np$np.log")" = 1 ] || fail "$np ranks: more than one rank logged"
done
"$python" - "$work" <<'PY'
import sys, h5py, numpy as np
w = sys.argv[1]
one = h5py.File(f"{w}/one.h5", "r")
for np_ in (2, 3):
    f = h5py.File(f"{w}/np{np_}.h5", "r")
    same = np.array_equal(one["images"][:], f["images"][:]) and np.array_equal(one["labels"][:], f["labels"][:])
    print(f"{np_} ranks: images {f['images'].shape}, identical to 1 rank: {same}, labels {np.bincount(f['labels'][:]).tolist()}")
    assert same and f["images"].shape == (18, 40, 40, 3), "differs from the one-process conversion"
    assert list(f.attrs["class_names"]) == [b"cats", b"dogs"]
PY

# fail mode: every rank exits, the message names a bad file, no output (or temp file) is left.
set +e
mpirun -np 3 "$parafine" convert --input "$work/in" --output "$work/fail.h5" --on-bad-image fail --threads 1 \
  > "$work/fail.log" 2>&1
code=$?
set -e
[ $code -ne 0 ] || fail "--on-bad-image fail exited 0"
grep -q "in/cats/" "$work/fail.log" || { cat "$work/fail.log"; fail "the failure does not name the file"; }
ls "$work" | grep -q "fail.h5" && fail "a partial output was left behind"
echo "fail mode: exit $code, message: $(grep -m1 'error' "$work/fail.log")"
echo "1 passed, 0 failed"
