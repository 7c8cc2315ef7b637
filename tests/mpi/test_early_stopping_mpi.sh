#!/usr/bin/env bash
# The Keras callbacks under real mpirun. A validation set whose labels are shifted by one class
# gets worse as training learns the training labels, so EarlyStopping(val_loss, patience 1,
# restore_best_weights) stops phase 1 at its 2nd epoch and restores the 1st: the final --save
# model is then bitwise the --save-best file (written at the 1st epoch), and the same within
# the rank-invariance tolerance on 1, 2 and 3 ranks. With ReduceLROnPlateau and a warmup as
# well, a run stopped twice (--max-steps) and resumed ends bitwise as the uninterrupted one,
# its --save-best file too. (Bad callback options: test_cli_callback_options.)
# Usage: test_early_stopping_mpi.sh PARAFINE_BINARY PYTHON
set -euo pipefail
parafine=$1 python=$2
source "$(dirname "$0")/common.sh"

colour_h5 "$work/train.h5" 13 1
colour_h5 "$work/val.h5" 9 2
"$python" - "$work/val.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    f["labels"][...] = (f["labels"][()] + 1) % 3
PY

setup="--train $work/train.h5 --weights none --image-size 32 --batch-size 4 --head-units 16
  --phase1-lr 1e-3 --phase2-lr 1e-4 --seed 3 --threads 1 --loader-threads 1"
"$parafine" train $setup --phase1-epochs 0 --phase2-epochs 0 --save "$work/init.h5" \
  > "$work/init.log" 2>&1 || { cat "$work/init.log"; fail "init"; }

# Early stopping with restore: phase 1 only, so the final model is phase 1's restored best.
stop="--val $work/val.h5 --phase1-epochs 5 --phase2-epochs 0 --early-stopping 1 --restore-best"
for np in 1 2 3; do
  mpirun -np $np "$parafine" train $setup $stop --save "$work/np$np.h5" --save-best "$work/best$np.h5" \
    --history "$work/np$np.csv" > "$work/np$np.log" 2>&1 || { cat "$work/np$np.log"; fail "$np ranks"; }
  grep -q "phase 1 epoch 2: early stopping" "$work/np$np.log" || { cat "$work/np$np.log"; fail "$np ranks: no early stop at epoch 2"; }
  grep -q "phase 1: restored the weights of epoch 1" "$work/np$np.log" || { cat "$work/np$np.log"; fail "$np ranks: no restore"; }
  [ "$(grep -c "improved, model saved to" "$work/np$np.log")" = 1 ] || { cat "$work/np$np.log"; fail "$np ranks: --save-best writes"; }
  compare_weights "$work/best$np.h5" "$work/np$np.h5" 0 0 "$np rank(s): final (restored) vs --save-best"  || fail "restore-best $np"
done
for np in 2 3; do
  compare_weights "$work/np1.h5" "$work/np$np.h5" 1e-4 2e-3 "$np ranks vs 1" "$work/init.h5" || fail "rank invariance $np"
done
# The restored model is not the last epoch's: the same run without --restore-best differs.
"$parafine" train $setup ${stop/--restore-best/} --save "$work/last.h5" > "$work/last.log" 2>&1 || { cat "$work/last.log"; fail "no restore"; }
! compare_weights "$work/np1.h5" "$work/last.h5" 0 0 "restored vs last epoch (must differ)" || fail "restore changed nothing"

# Resume with the callbacks' state: both phases, early stopping (patience 2) with restore,
# ReduceLROnPlateau (patience 0) and a 1-epoch warmup; 4 steps per epoch. Phase 1 cuts the rate
# at epochs 2 and 3 and stops at epoch 3 (12 steps). The runs stop at phase 1 epoch 2 step 2
# (EarlyStopping holds epoch 1's weights), then at phase 2 epoch 1 step 2, then finish.
job="$setup --val $work/val.h5 --phase1-epochs 5 --phase2-epochs 3 --early-stopping 2 --restore-best
  --reduce-lr-on-plateau 0.5,0 --warmup-epochs 1"
run() { mpirun -np 2 "$parafine" train $job "$@" > "$work/run.log" 2>&1 || { cat "$work/run.log"; fail "$*"; }; }
run --checkpoint-dir "$work/ck_full" --save "$work/full.h5" --save-best "$work/full_best.h5" --history "$work/full.csv"
cp "$work/run.log" "$work/full.log"
grep -q "ReduceLROnPlateau" "$work/full.log" || { cat "$work/full.log"; fail "no rate cut"; }
grep -q "phase 1 epoch 3: early stopping" "$work/full.log" || { cat "$work/full.log"; fail "no early stop"; }
run --checkpoint-dir "$work/ck" --save-best "$work/res_best.h5" --max-steps 6
run --checkpoint-dir "$work/ck" --save-best "$work/res_best.h5" --resume --max-steps 8 --checkpoint-steps 1
grep "resuming from" "$work/run.log"
run --checkpoint-dir "$work/ck" --save-best "$work/res_best.h5" --resume --save "$work/resumed.h5"
grep -h "early stopping\|restored\|ReduceLROnPlateau" "$work/full.log"
compare_weights "$work/full.h5" "$work/resumed.h5" 0 0 "callbacks: resumed vs uninterrupted" || fail "resume"
compare_weights "$work/full_best.h5" "$work/res_best.h5" 0 0 "--save-best: resumed vs uninterrupted" || fail "resume save-best"
echo "1 passed, 0 failed"
