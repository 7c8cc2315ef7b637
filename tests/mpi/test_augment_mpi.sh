#!/usr/bin/env bash
# --augment under real mpirun: a tiny two-phase job with --augment flip,rotation:0.1,zoom:0.1,crop
# (each sample's transform drawn from (seed, epoch, sample), never from the rank or thread) ends
# with the same weights on 2 and 3 ranks (3 loader threads) as one process, within the
# rank-invariance test's tolerance; the feature cache is off with its log line printed once;
# a run stopped mid-epoch and resumed ends bitwise equal to the uninterrupted one, and a resume
# with other transforms is refused; bad --augment values exit 2 naming --augment before any
# data is read.
# Usage: test_augment_mpi.sh PARAFINE_BINARY PYTHON
set -euo pipefail
parafine=$1 python=$2
source "$(dirname "$0")/common.sh"

colour_h5 "$work/data13.h5" 13 5

# Bad values: exit 2, naming --augment, before the (missing) data is read.
for bad in rotate rotation:1.5 zoom:-1 contrast:1.2 crop:60 "flip,flip"; do
  set +e
  "$parafine" train --train "$work/missing.h5" --weights none --image-size 64 --augment "$bad" \
    > "$work/bad.log" 2>&1
  rc=$?
  set -e
  [ $rc = 2 ] || { cat "$work/bad.log"; fail "--augment $bad: exit $rc, not 2"; }
  grep -q -- "--augment" "$work/bad.log" || { cat "$work/bad.log"; fail "--augment $bad: message does not name --augment"; }
  ! grep -q "missing.h5" "$work/bad.log" || { cat "$work/bad.log"; fail "--augment $bad: the data was read first"; }
  echo "--augment $bad: exit 2: $(head -1 "$work/bad.log")"
done

# 64x64 from 32x32 images, crop decoding at round(64 * 8 / 7) = 73; 13 samples, global batch 4,
# 3 ranks: two ranks have no sample in each epoch's last step.
aug="flip,rotation:0.1,zoom:0.1,crop"
setup="--weights none --image-size 64 --batch-size 4 --shuffle true --seed 3 --head-units 16
  --phase1-lr 1e-3 --phase2-lr 1e-4 --unfreeze-last 10 --threads 1"
"$parafine" train --train "$work/data13.h5" $setup --loader-threads 1 --phase1-epochs 0 --phase2-epochs 0 \
  --save "$work/init.h5" > "$work/init.log" 2>&1 || { cat "$work/init.log"; fail "init"; }
job="$setup --phase1-epochs 1 --phase2-epochs 1 --augment $aug"
"$parafine" train --train "$work/data13.h5" $job --loader-threads 1 --save "$work/single.h5" \
  > "$work/single.log" 2>&1 || { cat "$work/single.log"; fail "single process"; }
# One process is the 1-rank run (mpirun -np 1 runs the same code path).
for np in 2 3; do
  threads=1
  [ $np != 3 ] || threads=3
  mpirun -np $np "$parafine" train --train "$work/data13.h5" $job --loader-threads $threads \
    --save "$work/np$np.h5" > "$work/np$np.log" 2>&1 || { cat "$work/np$np.log"; fail "$np ranks"; }
done
# Without augmentation the same job trains elsewhere: the transforms do reach the pixels.
"$parafine" train --train "$work/data13.h5" ${job/--augment $aug/} --loader-threads 1 \
  --cache off --save "$work/plain.h5" > "$work/plain.log" 2>&1 || { cat "$work/plain.log"; fail "no augmentation"; }

[ "$(grep -c "feature cache: off: --augment" "$work/np3.log")" = 1 ] ||
  { cat "$work/np3.log"; fail "the cache-off line is not printed exactly once"; }
grep -q "phase 2 epoch 1" "$work/np3.log" || fail "3 ranks did not finish"
# Tolerance as test_rank_invariance.sh: float reassociation over the ranks, as a fraction of
# the training update.
for np in 2 3; do
  label="--augment $aug: $np rank(s) vs one process"
  [ $np != 3 ] || label="--augment $aug: 3 ranks, 3 loader threads vs one process"
  compare_weights "$work/single.h5" "$work/np$np.h5" 1e-4 2e-3 "$label" "$work/init.h5" || fail "$label"
done
! compare_weights "$work/single.h5" "$work/plain.h5" 1e-2 1e9 "without --augment (must differ)" "$work/init.h5" ||
  fail "--augment did not change training"

# --resume mid-epoch (step 3 of 4) continues with the same draws: bitwise the uninterrupted run.
# A resume with other transforms is refused, naming --augment.
"$parafine" train --train "$work/data13.h5" $job --loader-threads 1 --checkpoint-dir "$work/ck" \
  --max-steps 3 > "$work/stop.log" 2>&1 || { cat "$work/stop.log"; fail "stopped run"; }
set +e
"$parafine" train --train "$work/data13.h5" ${job/--augment $aug/--augment flip,rotation:0.2,zoom:0.1,crop} \
  --loader-threads 1 --checkpoint-dir "$work/ck" --resume > "$work/other.log" 2>&1
rc=$?
set -e
[ $rc != 0 ] && grep -q -- "--augment crop,flip,rotation:0.1,zoom:0.1 in the checkpoint" "$work/other.log" ||
  { cat "$work/other.log"; fail "a resume with other --augment transforms was not refused naming them"; }
"$parafine" train --train "$work/data13.h5" $job --loader-threads 2 --checkpoint-dir "$work/ck" --resume \
  --save "$work/resumed.h5" > "$work/resumed.log" 2>&1 || { cat "$work/resumed.log"; fail "resumed run"; }
grep -q "resuming from" "$work/resumed.log" || { cat "$work/resumed.log"; fail "did not resume"; }
compare_weights "$work/single.h5" "$work/resumed.h5" 0 0 "--augment $aug: resumed vs uninterrupted" ||
  fail "resumed run differs"
echo "1 passed, 0 failed"
