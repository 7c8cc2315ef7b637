#!/usr/bin/env bash
# The demo as CI can afford it: the synthetic image folder of launch/make_demo_data.py, both
# phases on 2 ranks with configs/demo.cfg (epochs shortened), validation accuracy above chance.
# Usage: test_demo.sh PARAFINE_BINARY PYTHON SOURCE_DIR
set -euo pipefail
parafine=$1 python=$2 src=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$python" "$src/launch/make_demo_data.py" "$work/data" --train 150 --val 60
PARAFINE_BINARY=$parafine "$src/launch/run_local.sh" 2 train --config "$src/configs/demo.cfg" \
  --train "$work/data/train" --val "$work/data/val" --phase1-epochs 4 --phase2-epochs 1 \
  --save "$work/model.h5" --history "$work/history.csv" --checkpoint-dir "$work/ck" > "$work/log" 2>&1 \
  || { cat "$work/log"; echo "FAIL: demo run"; exit 1; }
grep -q "calibrated" "$work/log" || { cat "$work/log"; echo "FAIL: no BN calibration note"; exit 1; }
acc=$(grep -o 'final validation accuracy [0-9.]*' "$work/log" | awk '{print $4}')
echo "demo: final validation accuracy $acc (chance 0.333; required > 0.5)"
awk -v a="$acc" 'BEGIN { exit !(a > 0.5) }' || { cat "$work/log"; echo "FAIL: accuracy $acc"; exit 1; }
[ -s "$work/model.h5" ] || { echo "FAIL: no model saved"; exit 1; }
echo "1 passed, 0 failed"
