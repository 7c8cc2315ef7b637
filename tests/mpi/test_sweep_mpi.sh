#!/usr/bin/env bash
# parafine sweep (issue 16): each run of a sweep ends with the weights of the same run made
# alone with train, bit for bit, on 1 and (under mpirun) 2 ranks: with every setting's cut
# cached, with only the deepest shared cut cached (--cache-mem 0: the deeper settings run
# their frozen layers forward from it), with --cache off, with EarlyStopping/ReduceLROnPlateau
# state crossing the phase boundary (--unfreeze-from settings), and with no phase 1. Diverged
# runs under mpirun are recorded and the sweep goes on. sweep.csv has a row per run with
# the phase-1 figures shared; two backbones in one sweep; a run that fails (its model file's
# name is taken by a directory) is reported by name and the others keep their results (exit
# 1); bad grids and refused options exit 2 before any data is read.
# Usage: test_sweep_mpi.sh PARAFINE_BINARY PYTHON
set -euo pipefail
parafine=$1 python=$2
source "$(dirname "$0")/common.sh"

colour_h5 "$work/train.h5" 13 5
colour_h5 "$work/val.h5" 7 6
common="--train $work/train.h5 --val $work/val.h5 --weights none --image-size 64 --batch-size 4
  --head-units 16 --seed 3 --threads 1 --loader-threads 1"
default_run="--phase2-lr 1e-4 --phase1-epochs 2 --phase2-epochs 2"
export PARAFINE_PYTHON=$python  # the interpreter with matplotlib (sweep.png)

# same_weights A.keras B.keras LABEL: every weight equal, bit for bit (prints the largest |dw|).
same_weights() {
  "$python" - "$@" <<'PY'
import io, sys, zipfile, h5py, numpy as np
a_path, b_path, label = sys.argv[1:4]
def weights(path):
    out = {}
    with zipfile.ZipFile(path) as z, h5py.File(io.BytesIO(z.read("model.weights.h5")), "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
    return out
a, b = weights(a_path), weights(b_path)
assert a.keys() == b.keys() and a, f"{label}: different weight sets"
diff = max(float(np.abs(a[k].astype(np.float64) - b[k]).max()) for k in a)
print(f"{label}: {len(a)} arrays, max |dw| {diff:.3g} (must be 0)")
sys.exit(0 if diff == 0 else 1)
PY
}

sweep() {  # sweep NAME NP ARGS...: a sweep into $work/NAME, log in NAME.log; exit code in $code
  local name=$1 np=$2
  shift 2
  set +e
  mpirun -np "$np" "$parafine" sweep $common --output "$work/$name" "$@" > "$work/$name.log" 2>&1
  code=$?
  set -e
}
alone() {  # alone NAME NP ARGS...: train, saving NAME.keras
  local name=$1 np=$2
  shift 2
  mpirun -np "$np" "$parafine" train $common --save "$work/$name.keras" "$@" > "$work/$name.log" 2>&1 \
    || { cat "$work/$name.log"; fail "$name"; }
}
sweep_ok() {  # sweep_ok NAME: exit 0, sweep.csv and a non-trivial sweep.png written
  [ "$code" = 0 ] || { cat "$work/$1.log"; fail "sweep $1 exited $code"; }
  [ -f "$work/$1/sweep.csv" ] || fail "sweep $1 wrote no sweep.csv"
  [ "$(stat -c %s "$work/$1/sweep.png")" -gt 10000 ] || fail "sweep $1: sweep.png missing or tiny"
}

for np in 1 2; do
  sweep "np$np" $np $default_run --backbone resnet50 --unfreeze-last 0,10,20
  sweep_ok "np$np"
  for k in 0 10 20; do
    alone "alone_np${np}_$k" $np $default_run --unfreeze-last $k
    same_weights "$work/np$np/resnet50_unfreeze-last-$k.keras" "$work/alone_np${np}_$k.keras" \
      "$np rank(s), --unfreeze-last $k: sweep vs alone"
  done
done
grep -q "cached at: global_average_pooling2d conv5_block1_out conv5_block2_out" "$work/np1.log" \
  || { cat "$work/np1.log"; fail "the sweep did not cache every setting's cut in one pass"; }
[ "$(grep -c "^feature cache: .* ready in" "$work/np1.log")" = 1 ] \
  || fail "the frozen base was computed more than once"
[ "$(grep -c "^phase 1 epoch 2:" "$work/np1.log")" = 1 ] || fail "phase 1 ran more than once"

# Only the deepest shared cut cached (it all spills to --cache-dir), and no cache at all.
mkdir "$work/spill"
sweep shared_cut 1 $default_run --backbone resnet50 --unfreeze-last 10,20 --cache-mem 0 --cache-dir "$work/spill"
sweep_ok shared_cut
grep -q "only the deepest cut they share is kept (conv5_block1_out)" "$work/shared_cut.log" \
  || { cat "$work/shared_cut.log"; fail "--cache-mem 0 did not fall back to the shared cut"; }
grep -q "phase 2 trains from conv5_block1_out (its own cut, conv5_block2_out, is not cached" \
  "$work/shared_cut.log" || fail "the --unfreeze-last 10 run does not say it runs forward from the shared cut"
same_weights "$work/shared_cut/resnet50_unfreeze-last-10.keras" "$work/alone_np1_10.keras" \
  "forward from the shared cut, --unfreeze-last 10"
sweep off 1 $default_run --backbone resnet50 --unfreeze-last 0,20 --cache off
sweep_ok off
for k in 0 20; do
  alone "off_$k" 1 $default_run --unfreeze-last $k --cache off
  same_weights "$work/off/resnet50_unfreeze-last-$k.keras" "$work/off_$k.keras" "--cache off, --unfreeze-last $k"
done

# State that crosses the phase boundary: EarlyStopping (restoring its best epoch) and
# ReduceLROnPlateau, with --unfreeze-from settings; and no phase 1 at all.
cb="--early-stopping 1 --restore-best --reduce-lr-on-plateau 0.5,1 --phase1-epochs 3 --phase2-epochs 3"
sweep callbacks 1 --backbone resnet50 --unfreeze-from conv5_block3_1_conv,conv5_block2_1_conv $cb
sweep_ok callbacks
for layer in conv5_block3_1_conv conv5_block2_1_conv; do
  alone "cb_$layer" 1 --unfreeze-from $layer $cb
  same_weights "$work/callbacks/resnet50_unfreeze-from-$layer.keras" "$work/cb_$layer.keras" \
    "callbacks, --unfreeze-from $layer: sweep vs alone"
done
sweep no_phase1 1 --backbone resnet50 --unfreeze-last 10 --phase1-epochs 0 --phase2-epochs 2
sweep_ok no_phase1
alone no_phase1_alone 1 --unfreeze-last 10 --phase1-epochs 0 --phase2-epochs 2
same_weights "$work/no_phase1/resnet50_unfreeze-last-10.keras" "$work/no_phase1_alone.keras" \
  "--phase1-epochs 0: sweep vs alone"

# A diverged run leaves every rank at the same step: under mpirun the sweep records it and
# goes on to the next run (both diverge here), then exits 1 with every file written.
sweep diverged 2 --backbone resnet50 --unfreeze-last 0,10 --phase2-lr 1e30 --phase1-epochs 2 --phase2-epochs 2
[ "$code" = 1 ] || { cat "$work/diverged.log"; fail "diverged runs: exit $code, not 1"; }
[ "$(grep -c "failed: phase 2: the loss became" "$work/diverged/sweep.csv")" = 2 ] \
  || { cat "$work/diverged.log"; fail "the diverged runs are not both recorded"; }
[ -s "$work/diverged/sweep.png" ] || fail "a sweep with failed runs drew no sweep.png"
sweep diverged1 2 --backbone vgg16,resnet50 --unfreeze-last 0,4 --phase1-lr 1e30 --phase1-epochs 2 --phase2-epochs 1
[ "$code" = 1 ] || { cat "$work/diverged1.log"; fail "diverged phase 1: exit $code, not 1"; }
[ "$(grep -c "failed: phase 1 of .*: phase 1: the loss became" "$work/diverged1/sweep.csv")" = 4 ] \
  || { cat "$work/diverged1.log"; fail "a diverged phase 1 did not fail its backbone's runs and go on"; }

# sweep.csv: a row per run, phase 1 shared, the settings' trainable weights growing.
"$python" - "$work/np1/sweep.csv" "$work/np1/sweep_history.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert [r["unfreeze"] for r in rows] == ["last 0", "last 10", "last 20"], rows
assert all(r["status"] == "ok" and r["model"].endswith(".keras") for r in rows), rows
params = [int(r["trainable_params"]) for r in rows]
assert params[0] < params[1] < params[2], params
assert len({r["shared_seconds"] for r in rows}) == 1 and len({r["phase1_seconds"] for r in rows}) == 1
for r in rows:
    for c in ("best_val_loss", "best_val_accuracy", "final_val_loss", "final_val_accuracy"):
        float(r[c])
    assert 1 <= int(r["best_epoch"]) <= 4 and r["best_phase"] in ("1", "2")
hist = list(csv.DictReader(open(sys.argv[2])))
assert len(hist) == 12 and {h["epoch"] for h in hist} == {"1", "2", "3", "4"}, len(hist)
print(f"sweep.csv: {len(rows)} runs, trainable params {params}; sweep_history.csv: {len(hist)} rows")
PY

# Two backbones; one run's model file cannot be written: it is reported, the others finish.
mkdir -p "$work/two/vgg16_unfreeze-last-4.keras"
sweep two 2 $default_run --backbone resnet50,vgg16 --unfreeze-last 0,4
[ "$code" = 1 ] || { cat "$work/two.log"; fail "a failed run did not make the sweep exit 1 (got $code)"; }
grep -q "run 'vgg16 unfreeze-last 4' failed: saving its model" "$work/two.log" \
  || { cat "$work/two.log"; fail "the failed run is not named"; }
"$python" - "$work/two/sweep.csv" <<'PY'
import csv, sys
rows = {(r["backbone"], r["unfreeze"]): r["status"] for r in csv.DictReader(open(sys.argv[1]))}
assert len(rows) == 4, rows
assert rows[("vgg16", "last 4")].startswith("failed: saving its model"), rows
assert all(v == "ok" for k, v in rows.items() if k != ("vgg16", "last 4")), rows
print("two backbones:", rows)
PY
for f in resnet50_unfreeze-last-0 resnet50_unfreeze-last-4 vgg16_unfreeze-last-0; do
  [ -s "$work/two/$f.keras" ] || fail "$f.keras is missing after another run failed"
done

# Bad input: exit 2, naming the option or run, before any data is read.
bad() {  # bad PATTERN ARGS...
  local pattern=$1
  shift
  set +e
  "$parafine" sweep --train "$work/train.h5" --threads 1 "$@" > "$work/bad.log" 2>&1
  local c=$?
  set -e
  [ $c = 2 ] || { cat "$work/bad.log"; fail "sweep $* exited $c, not 2"; }
  grep -q -- "$pattern" "$work/bad.log" || { cat "$work/bad.log"; fail "sweep $*: no '$pattern' in the message"; }
  if grep -q "^feature cache\|^phase 1" "$work/bad.log"; then fail "sweep $* trained"; fi
}
bad "--unfreeze-last: the list is empty" --backbone resnet50 --unfreeze-last "" --output "$work/b1"
bad "--backbone: the list is empty" --backbone "" --unfreeze-last 1 --output "$work/b1"
bad "the phase-2 settings to compare are required" --backbone resnet50 --output "$work/b1"
bad "--backbone 'resnet50,resnet50': 'resnet50' is listed twice" --backbone resnet50,resnet50 --unfreeze-last 1 --output "$work/b1"
bad "sweep run 'nosuch unfreeze-last 1'" --backbone resnet50,nosuch --unfreeze-last 1 --output "$work/b1"
bad "sweep run 'inception_v3 unfreeze-last 1'" --backbone inception_v3 --image-size 64 --unfreeze-last 1 --output "$work/b1"
bad "sweep run 'vgg16 unfreeze-from conv5_block3_1_conv'" --backbone resnet50,vgg16 --unfreeze-from conv5_block3_1_conv --output "$work/b1"
bad "--unfreeze-last '1,': an empty entry" --backbone resnet50 --unfreeze-last 1, --output "$work/b1"
bad "'x' is not a layer count" --backbone resnet50 --unfreeze-last 1,x --output "$work/b1"
bad "--save: the sweep writes one model per run" --backbone resnet50 --unfreeze-last 1 --output "$work/b1" --save "$work/m.keras"
bad "--output DIR is required" --backbone resnet50 --unfreeze-last 1
bad "already holds a sweep's results" --backbone resnet50 --unfreeze-last 1 --output "$work/np1"
[ ! -e "$work/b1/sweep.csv" ] || fail "a refused sweep wrote sweep.csv"
echo "test_sweep_mpi: all checks passed"
