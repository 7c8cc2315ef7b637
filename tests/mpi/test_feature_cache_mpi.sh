#!/usr/bin/env bash
# The feature cache under real mpirun (issue 6): with shuffling, each rank stores the features
# of its own shard and every global batch is routed so ranks compute their usual slices. So
# with the cache, 2 and 3 ranks end with the weights of the same rank count without it and of
# 1 process with it (within float reassociation), for the default unfreeze, a cut inside
# conv4, and --bn-mode local (where which rank holds which sample matters); 13 samples in
# batches of 4 leave ranks empty in each epoch's last step. Spilling everything to --cache-dir
# gives the same weights bit for bit; a spill directory that cannot take the file stops the
# run with a message naming it. With --augment flip the cache is off (one log line) and
# training still works.
# Usage: test_feature_cache_mpi.sh PARAFINE_BINARY PYTHON
set -euo pipefail
parafine=$1 python=$2
source "$(dirname "$0")/common.sh"

colour_h5 "$work/train.h5" 13 5
colour_h5 "$work/val.h5" 7 6
# 64x64 (resized from 32): conv5 is 2x2, so batch-statistics BN over 4 samples is well
# conditioned (at 1x1 it turns rounding noise into 1e-2 differences, with or without the cache).
common="--train $work/train.h5 --val $work/val.h5 --weights none --image-size 64 --batch-size 4 --head-units 16
  --phase2-lr 1e-4 --seed 3 --threads 1 --loader-threads 1"
run() {  # run NAME NP ARGS...: train 2 + 2 epochs (0 + 0 for "init"), saving NAME.h5, log in NAME.log
  local name=$1 np=$2 epochs="--phase1-epochs 2 --phase2-epochs 2"
  shift 2
  [ "$name" = init ] && epochs="--phase1-epochs 0 --phase2-epochs 0"
  mpirun -np "$np" "$parafine" train $common $epochs --save "$work/$name.h5" "$@" > "$work/$name.log" 2>&1 \
    || { cat "$work/$name.log"; fail "$name"; }
}
run init 1   # the common starting point (seeded init, calibrated BN)
run np2_off 2 --cache off
run np2_on 2
run np1_on 1
mkdir "$work/spill"
run np2_spill 2 --cache-mem 0 --cache-dir "$work/spill"
run conv4_off 2 --cache off --unfreeze-from conv4_block5_1_conv
run conv4_on 2 --unfreeze-from conv4_block5_1_conv
run flip 2 --augment flip
run np3_off 3 --cache off
run np3_on 3
run local_off 3 --cache off --bn-mode local
run local_on 3 --bn-mode local
set +e
mpirun -np 2 "$parafine" train $common --cache-mem 0 --cache-dir /proc > "$work/bad_dir.log" 2>&1
code=$?
set -e
[ $code -ne 0 ] || fail "a spill directory that cannot take files was accepted"
grep -q "cache-dir /proc: cannot create the feature-cache spill file" "$work/bad_dir.log" \
  || { cat "$work/bad_dir.log"; fail "unclear message for an unusable --cache-dir"; }

grep -h "^feature cache" "$work/np2_on.log" "$work/np2_spill.log" "$work/conv4_on.log" "$work/flip.log"
grep -q "feature cache: on: phase 1 trains from global_average_pooling2d \[2048\], phase 2 from conv5_block2_out" \
  "$work/np2_on.log" || fail "the default run does not cache conv5_block2_out"
grep -q "phase 2 from conv4_block4_out" "$work/conv4_on.log" || fail "the conv4 cut is not cached"
grep -q "feature cache: off (--cache off)" "$work/np2_off.log" || fail "--cache off is not reported"
grep -q "feature cache: off: --augment" "$work/flip.log" || fail "--augment flip does not turn the cache off"
grep -q "phase 2 epoch 2" "$work/flip.log" || fail "training with --augment flip did not finish"
grep -q "unlinked: removed when the process ends" "$work/np2_spill.log" || fail "--cache-mem 0 did not spill"
[ -z "$(ls -A "$work/spill")" ] || fail "the spill directory was left with $(ls "$work/spill")"
if grep -q "caching" "$work/np2_off.log"; then fail "--cache off still built a cache"; fi

# Tolerances: float reassociation through 8 Adam steps. The difference is measured against the
# training update (init.h5 is where every run starts). Measured on the dev machine: cache vs no
# cache 0 (bitwise) at every rank count here; 1 vs 2 or 3 ranks 2.4e-6 of the update (the
# gradient sums' order), the noise floor of this job; tolerance 1e-4. max |dw| allows Adam's
# ~lr moves where a gradient is near zero and another BLAS's rounding flips its sign.
for pair in "np2_off np2_on 2 ranks: cache vs no cache" "np1_on np2_on cache: 2 ranks vs 1" \
  "np3_off np3_on 3 ranks: cache vs no cache" "np1_on np3_on cache: 3 ranks vs 1" \
  "conv4_off conv4_on 2 ranks, cut inside conv4: cache vs no cache" \
  "local_off local_on 3 ranks, --bn-mode local: cache vs no cache"; do
  read -r a b label <<< "$pair"
  compare_weights "$work/$a.h5" "$work/$b.h5" 1e-4 2e-3 "$label" "$work/init.h5" || fail "$label"
done
compare_weights "$work/np2_on.h5" "$work/np2_spill.h5" 0 0 "2 ranks: spilled vs in-memory cache" || fail "spill"
echo "PASS"
