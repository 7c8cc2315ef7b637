#!/usr/bin/env bash
# Two-phase training of the other backbones under real mpirun (issue 13): VGG16, InceptionV3 and
# MobileNetV2 each train the same small job (sync BN, no shuffle, global batch 4) on one process
# without the feature cache and on 2 and 3 oversubscribed ranks with it (the default), and end
# with the same weights within a printed tolerance: rank invariance and the cache's exactness in
# one comparison. The image sizes leave the last feature map at least 2x2, so batch-statistics
# BN over a global batch of 4 is well conditioned (see test_rank_invariance.sh).
# Usage: test_backbones_mpi.sh PARAFINE_BINARY PYTHON
set -euo pipefail
parafine=$1 python=$2
source "$(dirname "$0")/common.sh"

colour_h5 "$work/data.h5" 12 0
colour_h5 "$work/val.h5" 6 1

run() {  # run LOG COMMAND...: the command's output to LOG, shown when it fails
  local log=$1
  shift
  "$@" > "$log" 2>&1 || { cat "$log"; fail "$(basename "$log" .log)"; }
}

# backbone, image size, phase 2's --unfreeze-last
while read -r backbone size unfreeze <&3; do  # fd 3: mpirun reads (and would eat) stdin
  setup="--backbone $backbone --weights none --image-size $size --batch-size 4 --shuffle false
    --head-units 16 --phase1-lr 1e-3 --phase2-lr 1e-4 --unfreeze-last $unfreeze --threads 1
    --loader-threads 1"
  common="$setup --phase1-epochs 2 --phase2-epochs 2 --val $work/val.h5"
  b="$work/$backbone"
  run "$b-init.log" "$parafine" train --train "$work/data.h5" $setup --phase1-epochs 0 --phase2-epochs 0 --save "$b-init.h5"
  run "$b-single.log" "$parafine" train --train "$work/data.h5" $common --cache off --save "$b-single.h5"
  for np in 2 3; do
    run "$b-np$np.log" mpirun -np $np "$parafine" train --train "$work/data.h5" $common --save "$b-np$np.h5"
  done
  grep -h "feature cache" "$b-np3.log" | head -1
  grep -q "feature cache: on" "$b-np3.log" || { cat "$b-np3.log"; fail "$backbone: the feature cache was not used"; }
  grep -h "phase 2 epoch 2" "$b-single.log" "$b-np3.log"
  for np in 2 3; do
    label="$backbone, $np ranks with the feature cache vs one process without"
    compare_weights "$b-single.h5" "$b-np$np.h5" 1e-4 2e-3 "$label" "$b-init.h5" || fail "$label"
  done
done 3<<'RUNS'
vgg16 32 4
inception_v3 139 10
mobilenet_v2 64 10
RUNS
echo "1 passed, 0 failed"
