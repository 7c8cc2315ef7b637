#!/usr/bin/env bash
# Scaling benchmark: the same phase-2 training epoch (last 10 layers + head trainable, full
# forward, sync BN) for a range of rank x thread layouts on this node, written as a CSV (ranks,
# threads, images/s, step time split into compute, exposed communication and data wait,
# efficiency against 1 rank with all the threads) and a PNG plot (needs python3-matplotlib).
# Usage: benchmarks/scaling.sh [OUT_DIR] [LAYOUTS]   e.g. benchmarks/scaling.sh /tmp/scaling "1x2 2x1"
# Env: PARAFINE_BINARY (default build/parafine), SAMPLES (256), IMAGE_SIZE (112), BATCH (32), REPEATS (3),
#      CACHE (off: every step runs the full forward; auto: phase 2 trains from the feature cache),
#      BACKBONE (resnet50; any --backbone of parafine train), ALPHA (1.0, mobilenet_v2's)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-/tmp/parafine_scaling}
cores=$(nproc)
layouts=${2:-"1x$cores $(for r in 2 4 8; do [ $r -le $cores ] && echo "${r}x$((cores / r))"; done | tr '\n' ' ')"}
binary=${PARAFINE_BINARY:-$here/build/parafine}
samples=${SAMPLES:-256} size=${IMAGE_SIZE:-112} batch=${BATCH:-32} repeats=${REPEATS:-3} cache=${CACHE:-off}
backbone=${BACKBONE:-resnet50} alpha=${ALPHA:-1.0}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
mkdir -p "$out"
/usr/bin/python3 - "$out/data.h5" "$samples" "$size" <<'PY'
import sys, h5py, numpy as np
n, s = int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
with h5py.File(sys.argv[1], "w") as f:
    f.create_dataset("images", data=rng.integers(0, 256, (n, s, s, 3), dtype=np.uint8), chunks=(1, s, s, 3))
    f["labels"] = (np.arange(n) % 2).astype(np.int64)
PY
csv=$out/scaling.csv
echo "ranks,threads,images_per_s,step_s,compute_s,comm_s,data_wait_s,efficiency,machine" > "$csv"
machine=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
base=""
for layout in $layouts; do
  ranks=${layout%x*} threads=${layout#*x}
  for rep in $(seq "$repeats"); do
    mpirun -np "$ranks" --bind-to none "$binary" train --train "$out/data.h5" --weights none --backbone "$backbone" --alpha "$alpha" --image-size "$size" \
      --batch-size "$batch" --phase1-epochs 0 --phase2-epochs 1 --threads "$threads" --loader-threads 1 --cache "$cache" \
      > "$out/run_${layout}_$rep.log" 2>&1
    grep -o "phase 2 epoch 1: .*" "$out/run_${layout}_$rep.log"
  done | python3 -c "
import re, statistics, sys
rows = []
for line in sys.stdin:
    m = re.search(r'\(([0-9.]+) img/s; rank 0: compute ([0-9.]+)s, exposed communication ([0-9.]+)s, data wait ([0-9.]+)s\)', line)
    rows.append(tuple(float(x) for x in m.groups()))
rate, comp, comm, data = (statistics.median(c) for c in zip(*rows))
steps = -(-$samples // $batch)
print(f'$ranks,$threads,{rate:.2f},{(comp + comm + data) / steps:.4f},{comp / steps:.4f},{comm / steps:.4f},{data / steps:.4f}')
" > "$out/row"
  rate=$(cut -d, -f3 "$out/row")
  [ -n "$base" ] || base=$rate
  eff=$(python3 -c "print(f'{$rate / $base:.3f}')")
  echo "$(cat "$out/row"),$eff,$machine" | tee -a "$csv"
done
/usr/bin/python3 - "$csv" "$out/scaling.png" <<'PY' || echo "(no plot: install python3-matplotlib)"
import csv, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
rows = list(csv.DictReader(open(sys.argv[1])))
labels = [f"{r['ranks']} rank x {r['threads']} thr" for r in rows]
parts = [("compute_s", "compute"), ("comm_s", "exposed communication"), ("data_wait_s", "data wait")]
fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
a.bar(labels, [float(r["images_per_s"]) for r in rows])
a.set_ylabel("images/s"); a.set_title("throughput (phase-2 step)")
bottom = [0.0] * len(rows)
for key, name in parts:
    vals = [float(r[key]) for r in rows]
    b.bar(labels, vals, bottom=bottom, label=name)
    bottom = [x + y for x, y in zip(bottom, vals)]
b.set_ylabel("seconds per step (rank 0)"); b.legend(); b.set_title("where a step goes")
fig.suptitle(rows[0]["machine"]); fig.tight_layout(); fig.savefig(sys.argv[2], dpi=100)
print("plot:", sys.argv[2])
PY
echo "csv: $csv"
