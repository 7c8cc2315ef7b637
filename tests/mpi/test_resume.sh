#!/usr/bin/env bash
# Checkpoints and --resume under real mpirun (2 ranks): a run stopped after 3 steps, resumed,
# stopped again across the phase boundary, its newest checkpoint damaged, and resumed to the
# end (falling back to the previous checkpoint) ends with bitwise the same weights as a run
# that never stopped; so does a run with the feature cache, which each resume rebuilds.
# --resume without checkpoints is a usage error (exit 2).
# Usage: test_resume.sh PARAFINE_BINARY PYTHON
set -euo pipefail
parafine=$1 python=$2
source "$(dirname "$0")/common.sh"

colour_h5 "$work/data.h5" 13 1
# 13 samples, global batch 4: 4 steps per epoch, 2+2 epochs = 16 steps; shuffling and flips on.
job="train --train $work/data.h5 --weights none --image-size 32 --batch-size 4 --head-units 16
  --phase1-epochs 2 --phase2-epochs 2 --phase2-lr 1e-4 --augment flip --seed 7 --threads 1 --loader-threads 1"
run() { mpirun -np 2 "$parafine" $job "$@" > "$work/last.log" 2>&1 || { cat "$work/last.log"; fail "$*"; }; }

run --checkpoint-dir "$work/ck_full" --save "$work/full.h5"
run --checkpoint-dir "$work/ck" --max-steps 3
grep -q "stopped after 3 step" "$work/last.log" || fail "no stop message"
run --checkpoint-dir "$work/ck" --resume --max-steps 7 --checkpoint-steps 2   # ends at phase 2, epoch 1, step 2
grep -q "resuming from .*ckpt-p1-e0001-s0000003.h5" "$work/last.log" || { cat "$work/last.log"; fail "did not resume from step 3"; }
ls "$work/ck"
newest=$(ls "$work/ck" | sort | tail -1)
head -c 1000 "$work/ck/$newest" > "$work/ck/$newest.cut" && mv "$work/ck/$newest.cut" "$work/ck/$newest"
run --checkpoint-dir "$work/ck" --resume --save "$work/resumed.h5"
grep -q "skipping checkpoint .*$newest" "$work/last.log" || { cat "$work/last.log"; fail "damaged checkpoint not skipped"; }
grep "resuming from" "$work/last.log"

compare_weights "$work/full.h5" "$work/resumed.h5" 0 0 "--augment flip (no cache): resumed vs uninterrupted"

# The same without augmentation, so with the feature cache: every resumed run rebuilds it (the
# cache never outlives its process), the one resumed in phase 2 only for phase 2, and the end
# is bitwise the uninterrupted cached run.
cached=${job/--augment flip/}
runc() { mpirun -np 2 "$parafine" $cached "$@" > "$work/last.log" 2>&1 || { cat "$work/last.log"; fail "$*"; }; }
runc --checkpoint-dir "$work/ckc_full" --save "$work/cached_full.h5"
grep -q "feature cache: on: phase 1 trains from" "$work/last.log" || { cat "$work/last.log"; fail "cache not on"; }
runc --checkpoint-dir "$work/ckc" --max-steps 3
runc --checkpoint-dir "$work/ckc" --resume --max-steps 7   # 3 + 7 steps: phase 2, epoch 1, step 2
grep -q "feature cache: on: phase 1 trains from" "$work/last.log" || { cat "$work/last.log"; fail "no cache on resume"; }
runc --checkpoint-dir "$work/ckc" --resume --save "$work/cached_resumed.h5"
grep -q "resuming from .*ckpt-p2-e0001-s0000002.h5" "$work/last.log" || { cat "$work/last.log"; fail "did not resume in phase 2"; }
grep -q "feature cache: on: phase 2 trains from conv5_block2_out" "$work/last.log" \
  || { cat "$work/last.log"; fail "the phase-2 resume did not rebuild the phase-2 cache"; }
compare_weights "$work/cached_full.h5" "$work/cached_resumed.h5" 0 0 "feature cache: resumed vs uninterrupted"

# --history across a lost checkpoint (issue 11, defect 6): a run killed while writing a
# checkpoint resumes from an earlier one and repeats epochs it had already logged; each epoch
# must still have exactly one row, the last one written.
run --checkpoint-dir "$work/ckh" --history "$work/h.csv" --max-steps 6 --checkpoint-steps 2
ls "$work/ckh" | sort | tail -2 | while read -r f; do rm "$work/ckh/$f"; done  # lost: resume at epoch 1, step 4
run --checkpoint-dir "$work/ckh" --history "$work/h.csv" --resume
grep -q "resuming from .*ckpt-p1-e0001-s0000004.h5" "$work/last.log" || { cat "$work/last.log"; fail "did not resume inside epoch 1"; }
rows=$(tail -n +2 "$work/h.csv" | cut -d, -f1,8)  # epoch and phase (no --val: val_ columns NA)
[ "$(echo "$rows" | sort -u | wc -l)" = 4 ] && [ "$(echo "$rows" | wc -l)" = 4 ] \
  || { cat "$work/h.csv"; fail "--history after a resume: expected one row per epoch (4)"; }
echo "history after a lost checkpoint: $(echo $rows)"

set +e
mpirun -np 2 "$parafine" ${job/--seed 7/--seed 8} --checkpoint-dir "$work/ck" --resume > "$work/seed.log" 2>&1
grep -q "written with --seed 7" "$work/seed.log" || { cat "$work/seed.log"; fail "a resume with another --seed was accepted"; }
mpirun -np 2 "$parafine" $job --checkpoint-dir "$work/empty" --resume > "$work/none.log" 2>&1
code=$?
set -e
[ $code -ne 0 ] || fail "--resume without checkpoints succeeded"
grep -q "no checkpoint" "$work/none.log" || { cat "$work/none.log"; fail "unclear message"; }
"$parafine" $job --checkpoint-dir "$work/ck" > "$work/fresh.log" 2>&1 && fail "a new run into a used --checkpoint-dir started"
grep -q "holds checkpoints of an earlier run" "$work/fresh.log" || { cat "$work/fresh.log"; fail "unclear message"; }
"$parafine" $job --resume > "$work/none1.log" 2>&1 && fail "--resume without --checkpoint-dir succeeded" || code=$?
[ $code -eq 2 ] || { cat "$work/none1.log"; fail "exit $code, expected 2"; }

# A diverging run (absurd learning rate) stops with the step number and keeps the last good
# checkpoint (step 1), writing none from the diverged state.
set +e
mpirun -np 2 "$parafine" $job --phase1-lr 1e30 --checkpoint-dir "$work/ck_nan" --checkpoint-steps 1 > "$work/nan.log" 2>&1
code=$?
set -e
[ $code -ne 0 ] || fail "a diverged run exited 0"
grep -q "the loss became .*nan at step 2" "$work/nan.log" || { cat "$work/nan.log"; fail "no NaN message with the step"; }
[ "$(ls "$work/ck_nan")" = "ckpt-p1-e0001-s0000001.h5" ] || { ls "$work/ck_nan"; fail "checkpoints after divergence"; }
echo "diverged run: exit $code, $(grep -o -m1 'the loss became .*step [0-9]*' "$work/nan.log"), kept $(ls "$work/ck_nan")"
echo "1 passed, 0 failed"
