#!/usr/bin/env bash
# Issue 16's benchmark: `parafine sweep --unfreeze-last 0,10,20` against the same three runs
# made one after another with `parafine train`, once with --cache off (every epoch recomputes
# the frozen base, as Keras, Horovod and PyTorch DDP do) and once with the default cache (each
# run builds its own). End to end: process start to exit, for each of the three ways, on the
# seed's data (1000 training + 400 validation photos of ../shared/data/cats_dogs, decoded and
# resized to 224x224 on the fly), global batch 32. Writes a CSV and prints the ratios.
# Usage: benchmarks/sweep_vs_runs.sh [OUT_DIR]
# Env: PARAFINE_BINARY (build/parafine), DATA (../shared/data/cats_dogs), BACKBONE (resnet50),
#      SETTINGS (0,10,20), EPOCHS ("1 1": phase 1, phase 2), RANKS (1), THREADS (cores/RANKS),
#      WEIGHTS (none: random init with calibrated BN, the same arithmetic as imagenet weights),
#      IMAGE_SIZE (0: the backbone's default), WAYS ("sweep off auto": which to run, in order).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-/tmp/parafine_sweep_bench}
binary=${PARAFINE_BINARY:-$here/build/parafine}
data=${DATA:-$here/../shared/data/cats_dogs}
backbone=${BACKBONE:-resnet50} settings=${SETTINGS:-0,10,20}
ranks=${RANKS:-1}
threads=${THREADS:-$(( $(nproc) / ranks ))}
read -r e1 e2 <<< "${EPOCHS:-1 1}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export PARAFINE_PYTHON=${PARAFINE_PYTHON:-/usr/bin/python3}
rm -rf "$out" && mkdir -p "$out"
machine=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
common=(--train "$data/train" --val "$data/val" --weights "${WEIGHTS:-none}" --backbone "$backbone"
        --image-size "${IMAGE_SIZE:-0}" --batch-size 32 --phase1-epochs "$e1" --phase2-epochs "$e2"
        --threads "$threads")
launch() { mpirun -np "$ranks" --bind-to none "$binary" "$@"; }
seconds() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$2"; }

csv=$out/sweep_vs_runs.csv
echo "way,runs,end_to_end_s,backbone,settings,epochs,ranks,threads,machine" > "$csv"
for way in ${WAYS:-sweep off auto}; do
  start=$(date +%s.%N)
  if [ "$way" = sweep ]; then
    launch sweep "${common[@]}" --unfreeze-last "$settings" --output "$out/sweep" > "$out/sweep.log" 2>&1 \
      || { cat "$out/sweep.log"; exit 1; }
  else
    for k in ${settings//,/ }; do
      launch train "${common[@]}" --unfreeze-last "$k" --cache "$way" --save "$out/${way}_$k.keras" \
        > "$out/${way}_$k.log" 2>&1 || { cat "$out/${way}_$k.log"; exit 1; }
    done
  fi
  end=$(date +%s.%N)
  runs=$(tr ',' '\n' <<< "$settings" | wc -l)
  echo "$way,$runs,$(seconds "$start" "$end"),$backbone,\"$settings\",$e1+$e2,$ranks,$threads,$machine" | tee -a "$csv"
done
python3 - "$csv" <<'PY'
import csv, sys
rows = {r["way"]: float(r["end_to_end_s"]) for r in csv.DictReader(open(sys.argv[1]))}
if "sweep" in rows:
    for way, label in (("off", "three runs with --cache off"), ("auto", "three cached runs")):
        if way in rows:
            print(f"sweep {rows['sweep']:.1f} s vs {label} {rows[way]:.1f} s: {rows[way] / rows['sweep']:.2f}x")
PY
