#!/usr/bin/env bash
# A failure on ONE rank ends every rank quickly with that rank's message, and nothing hangs
# (every run bounded by timeout; exit 124 = hung):
# 1. the training data is an HDF5 file whose gzip chunk for one sample is damaged, so only the
#    rank that reads that sample fails (mid-epoch, while the other waits in a collective);
# 2. a Keras-1 weight file whose string heap is damaged, which crashes the HDF5 library
#    (issue 11: the crash killed the rank and Open MPI's crash handler then hung the job);
# 3. rank 1 dies of SIGSEGV mid-training: parafine's crash report names the rank and the
#    signal, and mpirun ends the job.
# Usage: test_rank_failure.sh PARAFINE_BINARY PYTHON
set -euo pipefail
parafine=$1 python=$2
source "$(dirname "$0")/common.sh"
"$python" - "$work/data.h5" <<'PY'
import sys, h5py, numpy as np
rng = np.random.default_rng(0)
n = 16
with h5py.File(sys.argv[1], "w") as f:
    d = f.create_dataset("images", data=rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
                         chunks=(1, 32, 32, 3), compression="gzip")
    f["labels"] = (np.arange(n) % 2).astype(np.int64)
    info = d.id.get_chunk_info(14)  # sample 14: rank 1's half of step 4 (batch 4, no shuffle)
    f["healthy"] = np.zeros(1)
offset, size = info.byte_offset, info.size
with open(sys.argv[1], "r+b") as f:
    f.seek(offset + size // 3)
    f.write(bytes(64))
print(f"damaged the gzip chunk of sample 14 ({size} bytes at {offset})")
with h5py.File(sys.argv[1].replace("data.h5", "healthy.h5"), "w") as f:
    f["images"] = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    f["labels"] = np.array([0, 1, 0, 1], dtype=np.int64)
PY
# A starting model from healthy data, so that no rank reads every sample (as the BN
# calibration of a random base would) and only rank 1 ever touches sample 14.
"$parafine" train --train "$work/healthy.h5" --weights none --image-size 32 --batch-size 4 --head-units 8 \
  --phase1-epochs 0 --phase2-epochs 0 --threads 1 --save "$work/init.h5" > "$work/init.log" 2>&1
start=$(date +%s)
set +e
timeout 120 mpirun -np 2 "$parafine" train --train "$work/data.h5" --init "$work/init.h5" --image-size 32 --batch-size 4 \
  --shuffle false --head-units 8 --phase1-epochs 2 --phase2-epochs 0 --threads 1 > "$work/log" 2>&1
code=$?
set -e
elapsed=$(( $(date +%s) - start ))
echo "exit $code after ${elapsed}s: $(grep -m1 'error' "$work/log")"
[ $code -ne 0 ] && [ $code -ne 124 ] || { cat "$work/log"; echo "FAIL: exit $code (124 = hung)"; exit 1; }
grep -q "rank 1).*image 14" "$work/log" || { cat "$work/log"; echo "FAIL: rank 1's message missing"; exit 1; }
grep -q "rank 0).*image 14" "$work/log" && { cat "$work/log"; echo "FAIL: rank 0 read sample 14"; exit 1; }
[ $elapsed -lt 60 ] || { echo "FAIL: took ${elapsed}s"; exit 1; }

# 2. Damaged Keras-1 weights: a width-2 fixture whose first global heap object claims 2^39+
# bytes (HDF5 1.10 crashes reading it); both ranks must report it and the job end.
"$python" "$(dirname "$0")/../reference/make_keras_weight_fixtures.py" --out-dir "$work/fixtures" \
  --width 2 --classes 2 --head-units 4 --seed 0 > /dev/null
"$python" - "$work/fixtures/keras1_notop.h5" "$work/damaged_keras1.h5" <<'PY'
import sys
data = bytearray(open(sys.argv[1], "rb").read())
heap = data.find(b"GCOL")
data[heap + 28] = 0xFF
open(sys.argv[2], "wb").write(data)
PY
start=$(date +%s)
set +e
timeout 120 mpirun -np 2 "$parafine" train --train "$work/healthy.h5" --weights "$work/damaged_keras1.h5" \
  --image-size 32 --batch-size 4 --head-units 8 --phase1-epochs 1 --phase2-epochs 0 --threads 1 > "$work/log2" 2>&1
code=$?
set -e
elapsed=$(( $(date +%s) - start ))
echo "damaged weights: exit $code after ${elapsed}s: $(grep -m1 'damaged' "$work/log2")"
[ $code -ne 0 ] && [ $code -ne 124 ] || { cat "$work/log2"; echo "FAIL: exit $code (124 = hung)"; exit 1; }
grep -q "damaged_keras1.h5: damaged, or not a Keras weight file" "$work/log2" || { cat "$work/log2"; echo "FAIL: no 'damaged' message"; exit 1; }
grep -q "signal 11" "$work/log2" && ! grep -q "checking process" "$work/log2" && { cat "$work/log2"; echo "FAIL: a rank crashed"; exit 1; }

# 3. Rank 1 killed by SIGSEGV in the middle of training.
"$python" - "$work/long.h5" <<'PY'
import sys, h5py, numpy as np
rng = np.random.default_rng(1)
with h5py.File(sys.argv[1], "w") as f:
    f["images"] = rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    f["labels"] = (np.arange(64) % 2).astype(np.int64)
PY
start=$(date +%s)
timeout 120 mpirun -np 2 "$parafine" train --train "$work/long.h5" --weights none --image-size 32 --batch-size 4 \
  --head-units 8 --phase1-epochs 1000 --phase2-epochs 0 --threads 1 > "$work/log3" 2>&1 &
launcher=$!
victim=""
for _ in $(seq 1 100); do  # find rank 1 once training has started
  if grep -q "phase 1 epoch" "$work/log3" 2>/dev/null; then
    for pid in $(pgrep -f "long.h5" || true); do
      if tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1"; then victim=$pid; fi
    done
  fi
  [ -n "$victim" ] && break
  sleep 0.3
done
[ -n "$victim" ] || { kill $launcher; cat "$work/log3"; echo "FAIL: rank 1 not found"; exit 1; }
kill -SEGV "$victim"
set +e
wait $launcher
code=$?
set -e
elapsed=$(( $(date +%s) - start ))
echo "rank 1 killed by SIGSEGV: exit $code after ${elapsed}s: $(grep -m1 'fatal error' "$work/log3")"
[ $code -ne 0 ] && [ $code -ne 124 ] || { cat "$work/log3"; echo "FAIL: exit $code (124 = hung)"; exit 1; }
grep -q "parafine (rank 1): fatal error: signal 11 (SIGSEGV" "$work/log3" || { cat "$work/log3"; echo "FAIL: no crash report from rank 1"; exit 1; }
echo "3 passed, 0 failed"
