#!/usr/bin/env bash
# Preemption under real mpirun (2 ranks) and alone: a signal in the middle of an epoch stops
# every rank at the next step with a checkpoint (step > 0) and exit code 75, within seconds;
# `--resume auto` continues, and after three interruptions (SIGUSR1 to mpirun, SIGTERM to one
# rank, SIGTERM to mpirun) the final weights are bitwise those of a run never interrupted.
# `--resume auto` on an empty --checkpoint-dir starts a new run; a signal without
# --checkpoint-dir stops cleanly with 75 and says nothing was saved; one during validation stops
# at the epoch end, with that epoch's checkpoint.
# Usage: test_preempt_mpi.sh PARAFINE_BINARY PYTHON
set -euo pipefail
parafine=$1 python=$2
source "$(dirname "$0")/common.sh"

colour_h5 "$work/data.h5" 120 1
# 120 samples, global batch 4: 30 steps per epoch, 1 + 3 epochs; flips keep the cache off, so
# every step runs the whole network (~0.05 s at 64x64 on an idle core). Each run gives its
# --phase2-epochs (3, but case 3's run is given more).
job="train --train $work/data.h5 --weights none --image-size 64 --batch-size 4 --head-units 16
  --phase1-epochs 1 --phase2-lr 1e-4 --unfreeze-last 3 --augment flip --seed 7 --threads 1
  --loader-threads 1"

# interrupt LOG SIGNAL WHO CMD...: starts CMD in the background, waits for a progress line of
# the run (a step in the middle of an epoch), sends SIGNAL to WHO (mpirun: the launcher itself;
# rank1: its second child), and sets $code and $seconds (from the signal to the exit).
interrupt() {
  local log=$1 signal=$2 who=$3
  shift 3
  : > "$log"
  "$@" > "$log" 2>&1 &
  local pid=$! target
  for _ in $(seq 600); do
    grep -qE "^ +[0-9]+/30 " "$log" && break
    kill -0 $pid 2>/dev/null || { cat "$log"; fail "the run ended before a progress line"; }
    sleep 0.05
  done
  target=$pid
  [ "$who" = rank1 ] && target=$(pgrep -P $pid | sed -n 2p)
  [ -n "$target" ] || fail "no rank process under mpirun $pid"
  local start=$(date +%s.%N)
  kill -"$signal" "$target"
  set +e
  wait $pid
  code=$?
  set -e
  seconds=$("$python" -c "import time; print(f'{time.time() - $start:.1f}')")
}

# checkpoint_step DIR: the step of DIR's newest checkpoint (ckpt-pP-eEEEE-sSSSSSSS.h5).
newest_step() { ls "$1" | sort | tail -1 | sed -E 's/.*-s0*([0-9]+)\.h5/\1/'; }

# 1. SIGUSR1 to mpirun (Open MPI forwards it to every rank): mpirun itself exits 75.
interrupt "$work/usr1.log" USR1 mpirun mpirun -np 2 "$parafine" $job --phase2-epochs 3 --checkpoint-dir "$work/ck" --resume auto
grep -q -- "--resume auto: no checkpoint yet, starting a new run" "$work/usr1.log" \
  || { cat "$work/usr1.log"; fail "--resume auto on an empty directory did not say it starts fresh"; }
grep -q "stopped by SIGUSR1 after .* checkpoint written" "$work/usr1.log" || { cat "$work/usr1.log"; fail "no stop message"; }
step=$(newest_step "$work/ck")
echo "SIGUSR1 to mpirun: exit $code after ${seconds}s, newest checkpoint $(ls "$work/ck" | sort | tail -1)"
[ "$code" = 75 ] || { cat "$work/usr1.log"; fail "mpirun exited $code after SIGUSR1, expected 75"; }
[ "$step" -gt 0 ] || fail "no mid-epoch checkpoint"
"$python" -c "import sys; sys.exit(0 if $seconds < 10 else 1)" || fail "stopping took ${seconds}s"

# 2. SIGTERM to one rank only: every rank stops at the same step.
interrupt "$work/rank1.log" TERM rank1 mpirun -np 2 "$parafine" $job --phase2-epochs 3 --checkpoint-dir "$work/ck" --resume auto
grep -q "resuming from .*-s0*$step.h5" "$work/rank1.log" || { cat "$work/rank1.log"; fail "--resume auto did not resume"; }
echo "SIGTERM to rank 1: exit $code after ${seconds}s, newest checkpoint $(ls "$work/ck" | sort | tail -1)"
[ "$code" = 75 ] || { cat "$work/rank1.log"; fail "exit $code after SIGTERM to one rank, expected 75"; }
grep -q "stopped by SIGTERM" "$work/rank1.log" || { cat "$work/rank1.log"; fail "no stop message"; }
"$python" -c "import sys; sys.exit(0 if $seconds < 10 else 1)" || fail "stopping took ${seconds}s"

# 3. SIGTERM to mpirun: Open MPI sends the ranks SIGCONT, waits odls_base_sigkill_timeout
# seconds (default 1), sends SIGTERM, waits as long again, then SIGKILL; mpirun exits 1 whatever
# the ranks return. With a few seconds the checkpoint is written. The ranks must still be
# training when the SIGTERM reaches them, 2 s after the signal, whatever the CPU's speed: this
# run is given 1000 phase-2 epochs, so it never ends by itself. The epoch count is not part of
# the trajectory (no cosine schedule): its epochs are those of the 3-epoch job, and the final
# resume below runs as many phase-2 epochs as the job needs to reach this checkpoint (3, or
# more on a CPU fast enough to pass epoch 3 within the 2 s).
before=$(ls "$work/ck" | sort | tail -1)
interrupt "$work/term.log" TERM mpirun env OMPI_MCA_odls_base_sigkill_timeout=2 \
  mpirun -np 2 "$parafine" $job --phase2-epochs 1000 --checkpoint-dir "$work/ck" --resume auto
after=$(ls "$work/ck" | sort | tail -1)
echo "SIGTERM to mpirun (sigkill timeout 2 s): exit $code after ${seconds}s, newest checkpoint $after"
grep -q "stopped by SIGTERM .* checkpoint written" "$work/term.log" || { cat "$work/term.log"; fail "no stop message"; }
[ "$after" != "$before" ] || fail "no new checkpoint after SIGTERM to mpirun"
[ "$code" != 0 ] || fail "mpirun exited 0 after SIGTERM"
"$python" -c "import sys; sys.exit(0 if $seconds < 15 else 1)" || fail "stopping took ${seconds}s"

# The phase-2 epochs of the final resume and of the uninterrupted run: 3, or the checkpoint's
# phase-2 epoch (ckpt-p2-eEEEE-...) when case 3 got beyond epoch 3.
epochs2=$(echo "$after" | sed -nE 's/^ckpt-p2-e0*([0-9]+)-.*/\1/p')
[ -n "$epochs2" ] && [ "$epochs2" -gt 3 ] || epochs2=3
echo "final resume and uninterrupted run: $epochs2 phase-2 epochs"
mpirun -np 2 "$parafine" $job --phase2-epochs $epochs2 --checkpoint-dir "$work/ck" --resume auto --save "$work/resumed.h5" \
  > "$work/end.log" 2>&1 || { cat "$work/end.log"; fail "the final --resume auto"; }
mpirun -np 2 "$parafine" $job --phase2-epochs $epochs2 --checkpoint-dir "$work/ck_full" --save "$work/full.h5" \
  > "$work/full.log" 2>&1 || { cat "$work/full.log"; fail "uninterrupted run"; }
grep -q -- "--resume auto: continuing from the newest checkpoint" "$work/end.log" || { cat "$work/end.log"; fail "no --resume auto line"; }
compare_weights "$work/full.h5" "$work/resumed.h5" 0 0 "three interruptions, --resume auto vs uninterrupted"

# 4. Alone (no mpirun), without --checkpoint-dir: SIGINT stops cleanly, nothing saved, 75.
interrupt "$work/alone.log" INT self "$parafine" $job --phase2-epochs 3
echo "SIGINT alone without --checkpoint-dir: exit $code after ${seconds}s"
[ "$code" = 75 ] || { cat "$work/alone.log"; fail "exit $code, expected 75"; }
grep -q "stopped by SIGINT .* nothing was saved (no --checkpoint-dir)" "$work/alone.log" \
  || { cat "$work/alone.log"; fail "no 'nothing was saved' message"; }

# 5. Alone, a signal during validation: the epoch ends, its checkpoint (the next epoch, step 0)
# is written, and the run stops there. 12 samples: 3 steps, then ~300 validation images.
colour_h5 "$work/val.h5" 300 2
small="train --train $work/small.h5 --val $work/val.h5 --weights none --image-size 32 --batch-size 4
  --head-units 16 --phase1-epochs 2 --phase2-epochs 0 --cache off --seed 7 --threads 1 --loader-threads 1"
colour_h5 "$work/small.h5" 12 3
: > "$work/val.log"
"$parafine" $small --checkpoint-dir "$work/ckv" > "$work/val.log" 2>&1 &
pid=$!
for _ in $(seq 600); do grep -qE "^ +3/3 " "$work/val.log" && break; sleep 0.02; done
kill -TERM $pid
set +e
wait $pid
code=$?
set -e
echo "SIGTERM during validation: exit $code, checkpoints $(ls "$work/ckv" | tr '\n' ' ')"
[ "$code" = 75 ] || { cat "$work/val.log"; fail "exit $code, expected 75"; }
grep -q "^phase 1 epoch 1: .*val_loss" "$work/val.log" || { cat "$work/val.log"; fail "epoch 1 did not finish its validation"; }
[ "$(ls "$work/ckv" | sort | tail -1)" = ckpt-p1-e0002-s0000000.h5 ] || { cat "$work/val.log"; fail "not stopped at the epoch end"; }
echo "1 passed, 0 failed"
