#!/usr/bin/env bash
# The seed scenario of DESIGN.md §6 (issue 6), end to end, with the feature cache and without:
# 1000 training + 400 validation 224x224 photos (../shared/data/cats_dogs), global batch 32,
# 10 epochs with the base frozen + 10 with the last 10 base layers unfrozen. For each --cache
# mode it records end-to-end seconds (process start to exit), the cache build, each phase
# (training + validation), the final validation accuracy and the peak resident memory per
# rank, as a CSV and a table with the speedup of the cache.
# Usage: benchmarks/cache_seed_scenario.sh [OUT_DIR]
# Env: PARAFINE_BINARY (build/parafine), DATA (../shared/data/cats_dogs), RANKS (1), THREADS
#      (cores / RANKS), MODES ("auto off"), EPOCHS ("10 10"), WEIGHTS (none: random init with
#      calibrated BN; the compute is the same as with imagenet weights), PRECISION (float32 |
#      mixed_bfloat16; unset: the binary's default, for binaries older than --precision),
#      BACKBONE (resnet50; any --backbone of parafine train, at its default image size unless
#      IMAGE_SIZE is set: 224, inception_v3 299), ALPHA (1.0, mobilenet_v2's)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-/tmp/parafine_cache_bench}
binary=${PARAFINE_BINARY:-$here/build/parafine}
data=${DATA:-$here/../shared/data/cats_dogs}
ranks=${RANKS:-1}
threads=${THREADS:-$(( $(nproc) / ranks ))}
modes=${MODES:-"auto off"}
read -r e1 e2 <<< "${EPOCHS:-10 10}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
mkdir -p "$out"
machine=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
csv=$out/cache_seed_scenario.csv
precision_option=${PRECISION:+--precision $PRECISION}
backbone=${BACKBONE:-resnet50} alpha=${ALPHA:-1.0} size=${IMAGE_SIZE:-0}
echo "cache,ranks,threads,precision,end_to_end_s,cache_build_s,phase1_s,phase2_s,final_val_accuracy,peak_rss_mib_per_rank,machine" > "$csv"
for mode in $modes; do
  start=$(date +%s.%N)
  mpirun -np "$ranks" --bind-to none "$binary" train --train "$data/train" --val "$data/val" \
    --weights "${WEIGHTS:-none}" --backbone "$backbone" --alpha "$alpha" --image-size "$size" --batch-size 32 --phase1-epochs "$e1" --phase2-epochs "$e2" \
    --unfreeze-last 10 --threads "$threads" --cache "$mode" $precision_option > "$out/$mode.log" 2>&1 || { cat "$out/$mode.log"; exit 1; }
  end=$(date +%s.%N)
  python3 - "$out/$mode.log" "$mode" "$ranks" "$threads" "${PRECISION:-float32}" "$start" "$end" "$machine" <<'PY' | tee -a "$csv"
import re, sys
log, mode, ranks, threads, precision, start, end, machine = sys.argv[1:]
text = open(log).read()
def grab(pattern, default="0"):
    m = re.search(pattern, text)
    return m.group(1) if m else default
build = grab(r"(?:built|ready) in ([0-9.]+)s")
p1 = grab(r"phase 1 took ([0-9.]+)s")
p2 = grab(r"phase 2 took ([0-9.]+)s")
acc = grab(r"final validation accuracy ([0-9.]+)", "")
peak = grab(r"at most ([0-9]+) MiB per rank", "")
print(f"{mode},{ranks},{threads},{precision},{float(end) - float(start):.1f},{build},{p1},{p2},{acc},{peak},{machine}")
PY
done
python3 - "$csv" <<'PY'
import csv, sys
rows = {r["cache"]: r for r in csv.DictReader(open(sys.argv[1]))}
print(f"{'cache':6} {'end-to-end s':>12} {'build s':>8} {'phase 1 s':>10} {'phase 2 s':>10} {'val acc':>8} {'peak MiB/rank':>14}")
for mode, r in rows.items():
    print(f"{mode:6} {r['end_to_end_s']:>12} {r['cache_build_s']:>8} {r['phase1_s']:>10} {r['phase2_s']:>10} "
          f"{r['final_val_accuracy']:>8} {r['peak_rss_mib_per_rank']:>14}")
if "auto" in rows and "off" in rows:
    print(f"speedup of --cache auto end to end: {float(rows['off']['end_to_end_s']) / float(rows['auto']['end_to_end_s']):.2f}x")
PY
echo "csv: $csv"
