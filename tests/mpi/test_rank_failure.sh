#!/usr/bin/env bash
# A failure on ONE rank ends every rank quickly with that rank's message: the training data is
# an HDF5 file whose gzip chunk for one sample is damaged, so only the rank that reads that
# sample fails (mid-epoch, while the other waits in a collective). No hang: bounded by timeout.
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
echo "1 passed, 0 failed"
