#!/usr/bin/env bash
# The Keras transfer-learning guide's nested model (nested.keras: Rescaling -> mini_resnet called
# with training=False -> GlobalAveragePooling2D -> Dropout(0.2) -> Dense(3, softmax)) trains both
# phases (--unfreeze-last 3: block1_2_bn, block1_add, block1_out of mini_resnet) under real
# mpirun (issue 14): one process without the feature cache, 2 and 3 oversubscribed ranks with
# it; the saved .keras files agree within a tolerance relative to the training update (printed
# by compare_keras_weights.py). The head's Dropout makes this also a check that the masks do not
# depend on the rank count; the BN moving statistics of the training=False base stay as read.
# Usage: test_keras_models_mpi.sh PARAFINE_BINARY PYTHON FIXTURE_DIR COMPARE_KERAS_WEIGHTS_PY
set -euo pipefail
parafine=$1 python=$2 fixtures=$3 compare=$4
source "$(dirname "$0")/common.sh"

colour_h5 "$work/data.h5" 12 0
colour_h5 "$work/val.h5" 6 1
init="$fixtures/nested.keras"
[ -f "$init" ] || fail "$init is missing (CTest keras_model_fixtures writes it)"

run() {  # run LOG COMMAND...: the command's output to LOG, shown when it fails
  local log=$1
  shift
  "$@" > "$log" 2>&1 || { cat "$log"; fail "$(basename "$log" .log)"; }
}

common="--train $work/data.h5 --val $work/val.h5 --init $init --phase1-epochs 2 --phase2-epochs 2
  --unfreeze-last 3 --phase1-lr 1e-3 --phase2-lr 1e-3 --shuffle false --batch-size 4 --threads 1
  --loader-threads 1"
run "$work/single.log" "$parafine" train $common --cache off --save "$work/single.keras"
for np in 2 3; do
  run "$work/np$np.log" mpirun -np $np "$parafine" train $common --save "$work/np$np.keras"
done
grep -h "feature cache" "$work/np3.log" | head -1
grep -q "feature cache: on" "$work/np3.log" || { cat "$work/np3.log"; fail "the feature cache was not used"; }
! grep -q "feature cache: on" "$work/single.log" || fail "--cache off used the feature cache"
grep -h "phase 2 epoch 2" "$work/single.log" "$work/np3.log"
for np in 2 3; do
  label="nested model, $np ranks with the feature cache vs one process without"
  "$python" "$compare" "$work/single.keras" "$work/np$np.keras" --init "$init" --tol-update 1e-4 \
    --tol-max 1e-5 --label "$label" || fail "$label"
  label="nested model, $np ranks: BN moving statistics of the training=False base as read"
  "$python" "$compare" "$init" "$work/np$np.keras" --exact --only '/vars/[23]$' --label "$label" ||
    fail "$label"
done
echo "1 passed, 0 failed"
