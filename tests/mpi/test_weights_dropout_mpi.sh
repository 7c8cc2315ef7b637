#!/usr/bin/env bash
# --class-weight and --dropout (issue 15) under real mpirun, and the --history CSV they log.
# - --class-weight with a zero learning rate: the logged epoch loss and accuracy equal Keras's
#   weighted figures computed here in Python from `parafine predict`'s probabilities of the same
#   model: loss = sum(w[y] * -log p[y]) / n (sum_over_batch_size), accuracy = sum(w[y] *
#   correct) / sum(w[y]) (the accuracy metric gets the sample weights).
# - --class-weight balanced: 1 and 2 ranks end with the same weights (and log the same weights),
#   and differ from the unweighted run.
# - bad --class-weight values exit 2 naming the option, before any image is decoded.
# - --dropout 0.5: phase 1 still trains from the pooled features (the cache stops before the
#   Dropout), 1 and 2 ranks agree, the saved .keras lists dense, dropout, dense_1, and a run
#   from that file trains.
# - --history is read by Python's csv module: CSVLogger's columns, one row per epoch.
# Usage: test_weights_dropout_mpi.sh PARAFINE_BINARY PYTHON
set -euo pipefail
parafine=$1 python=$2
source "$(dirname "$0")/common.sh"

colour_h5 "$work/data.h5" 13 1   # labels i % 3: 5, 4, 4 samples of r, g, b
setup="--weights none --image-size 64 --batch-size 4 --shuffle false --head-units 16
  --unfreeze-last 10 --threads 1 --loader-threads 1"
train() {  # train NP LOG ARGS...
  local np=$1 log=$2
  shift 2
  mpirun -np "$np" "$parafine" train --train "$work/data.h5" $setup "$@" > "$work/$log" 2>&1 \
    || { cat "$work/$log"; fail "$log: $*"; }
}
train 1 init.log --phase1-epochs 0 --phase2-epochs 0 --save "$work/init.h5"

# Logged weighted loss and accuracy vs Python's, for the unchanged model (lr 0).
for np in 1 2; do
  train $np lr0_np$np.log --init "$work/init.h5" --phase1-epochs 1 --phase2-epochs 0 --phase1-lr 0 \
    --class-weight "r:2,2:0.5" --history "$work/lr0_np$np.csv"
done
grep -q "^class weights: r 2, g 1, b 0.5$" "$work/lr0_np1.log" || { cat "$work/lr0_np1.log"; fail "class weights log line"; }
"$parafine" predict --model "$work/init.h5" --input "$work/data.h5" --image-size 64 --threads 1 \
  --output "$work/p.csv" > "$work/p.log" 2>&1 || { cat "$work/p.log"; fail "predict"; }
"$python" - "$work/p.csv" "$work/lr0_np1.csv" "$work/lr0_np2.csv" <<'PY'
import csv, math, sys
w = {"r": 2.0, "g": 1.0, "b": 0.5}
names = ["r", "g", "b"]
rows = list(csv.DictReader(open(sys.argv[1])))
loss = sum(w[names[int(r["index"]) % 3]] * -math.log(float(r["p_" + names[int(r["index"]) % 3]])) for r in rows) / len(rows)
# Keras's compiled metrics=["accuracy"] get no sample weights: the accuracy is unweighted.
acc = sum(r["predicted"] == names[int(r["index"]) % 3] for r in rows) / len(rows)
for path in sys.argv[2:]:
    logged = list(csv.DictReader(open(path)))
    assert len(logged) == 1, f"{path}: {len(logged)} rows"
    got_loss, got_acc = float(logged[0]["loss"]), float(logged[0]["accuracy"])
    print(f"{path}: loss {got_loss:.6f} (Python from predict's probabilities {loss:.6f}), "
          f"accuracy {got_acc:.6f} ({acc:.6f})")
    # predict writes 6 significant digits: -log p to ~1e-5 relative.
    assert abs(got_loss - loss) <= 1e-4 * loss, "weighted loss"
    # The history holds Keras's float32 metric values: within float32's rounding.
    assert abs(got_acc - acc) <= 1e-7, "accuracy (unweighted, as Keras's compiled metric)"
    assert logged[0]["epoch"] == "0" and logged[0]["phase"] == "1" and logged[0]["val_loss"] == "NA"
PY

# Rank invariance of a weighted run; the weights change the result.
job="--init $work/init.h5 --phase1-epochs 2 --phase2-epochs 1 --phase1-lr 1e-3 --phase2-lr 1e-4"
for np in 1 2; do
  train $np balanced_np$np.log $job --class-weight balanced --save "$work/balanced_np$np.h5" \
    --history "$work/balanced_np$np.csv"
done
train 1 plain.log $job --save "$work/plain.h5" --history "$work/plain.csv"
line=$(grep "^class weights (balanced):" "$work/balanced_np1.log")
echo "$line"
[ "$line" = "$(grep "^class weights (balanced):" "$work/balanced_np2.log")" ] || fail "weights differ across ranks"
# sklearn: 13 / (3 * count) for counts 5, 4, 4.
echo "$line" | grep -q "r 0.866667, g 1.08333, b 1.08333" || fail "balanced weights"
compare_weights "$work/balanced_np1.h5" "$work/balanced_np2.h5" 1e-4 2e-3 \
  "--class-weight balanced: 2 ranks vs 1" "$work/init.h5" || fail "--class-weight rank invariance"
if compare_weights "$work/plain.h5" "$work/balanced_np1.h5" 1e-2 1 \
  "unweighted vs --class-weight balanced (must differ)" "$work/init.h5"; then
  fail "--class-weight balanced trained the same weights as no weights"
fi

# A weighted run stopped inside an epoch and resumed: the checkpoint carries the weighted sums
# (the epoch's logged accuracy and loss) and the weights end bitwise as without the stop; a
# resume with other class weights is refused.
train 2 stop.log $job --class-weight balanced --checkpoint-dir "$work/ck" --max-steps 3 --history "$work/resumed.csv"
set +e
mpirun -np 2 "$parafine" train --train "$work/data.h5" $setup $job --class-weight r:2 \
  --checkpoint-dir "$work/ck" --resume > "$work/other.log" 2>&1
code=$?
set -e
[ $code != 0 ] && grep -q -- "--class-weight" "$work/other.log" \
  || { cat "$work/other.log"; fail "a resume with other class weights was accepted"; }
echo "resume with other weights: $(grep -o -- '--class-weight [^;]*' "$work/other.log" | head -1)"
train 2 resume.log $job --class-weight balanced --checkpoint-dir "$work/ck" --resume \
  --history "$work/resumed.csv" --save "$work/resumed.h5"
compare_weights "$work/balanced_np2.h5" "$work/resumed.h5" 0 0 "--class-weight: resumed vs uninterrupted" \
  || fail "--class-weight resume"
"$python" - "$work/balanced_np2.csv" "$work/resumed.csv" <<'PY'
import csv, sys
a, b = (list(csv.DictReader(open(p))) for p in sys.argv[1:])
key = lambda rows: [(r["phase"], r["epoch"], r["loss"], r["accuracy"]) for r in rows]
print("uninterrupted:", key(a)); print("resumed:      ", key(b))
assert key(a) == key(b), "the resumed history differs"
PY

# A checkpoint written before the weighted sums existed (no partial_weighted_correct,
# partial_weight_sum; no content_checksum, as before issue 11) resumes an unweighted run exactly.
train 1 old_stop.log $job --checkpoint-dir "$work/ck_old" --max-steps 3 --history "$work/old.csv"
"$python" - "$work/ck_old" <<'PY'
import glob, sys, h5py
for path in glob.glob(sys.argv[1] + "/ckpt-*.h5"):
    with h5py.File(path, "r+") as f:
        assert "partial_weight_sum" in f.attrs, "the new attributes are not written"
        for name in ("partial_weighted_correct", "partial_weight_sum", "content_checksum"):
            del f.attrs[name]
PY
train 1 old_resume.log $job --checkpoint-dir "$work/ck_old" --resume --history "$work/old.csv" --save "$work/old.h5"
compare_weights "$work/plain.h5" "$work/old.h5" 0 0 "older checkpoint: resumed vs uninterrupted" || fail "older checkpoint"
"$python" - "$work/plain.csv" "$work/old.csv" <<'PY'
import csv, sys
a, b = (list(csv.DictReader(open(p))) for p in sys.argv[1:])
key = lambda rows: [(r["phase"], r["epoch"], r["loss"], r["accuracy"]) for r in rows]
assert key(a) == key(b), f"{key(a)} != {key(b)}"
print("older checkpoint: the resumed history equals the uninterrupted one")
PY

# Bad values: exit 2, the option named, nothing decoded or cached.
for bad in "mice:1" "r:-1" "r:1,r:2" "r:1,0:2" "r:" "r:inf"; do
  set +e
  "$parafine" train --train "$work/data.h5" $setup --class-weight "$bad" > "$work/bad.log" 2>&1
  code=$?
  set -e
  [ $code = 2 ] || { cat "$work/bad.log"; fail "--class-weight $bad: exit $code, expected 2"; }
  grep -q -- "--class-weight" "$work/bad.log" || { cat "$work/bad.log"; fail "--class-weight $bad: not named"; }
  if grep -q "caching\|phase 1" "$work/bad.log"; then cat "$work/bad.log"; fail "--class-weight $bad: data used first"; fi
  echo "--class-weight $bad: $(tail -1 "$work/bad.log")"
done

# --dropout: the layer where it belongs, phase 1 from the cache, rank invariance, .keras round trip.
for np in 1 2; do
  train $np dropout_np$np.log $job --dropout 0.5 --save "$work/dropout_np$np.keras" --history "$work/dropout_np$np.csv"
done
grep -q "phase 1 trains from global_average_pooling2d" "$work/dropout_np1.log" \
  || { cat "$work/dropout_np1.log"; fail "--dropout: phase 1 not trained from the pooled features"; }
"$python" - "$work" <<'PY'
import csv, json, struct, sys, zipfile, h5py, numpy as np
work = sys.argv[1]
def weights(path):
    out = {}
    with h5py.File(zipfile.ZipFile(path).open("model.weights.h5")) as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[()].astype(np.float64)) if isinstance(o, h5py.Dataset) else None)
    return out
config = json.loads(zipfile.ZipFile(f"{work}/dropout_np1.keras").read("config.json"))
layers = [(l["class_name"], l["config"]["name"]) for l in config["config"]["layers"]]
print("head:", layers[-4:])
assert layers[-4:] == [("GlobalAveragePooling2D", "global_average_pooling2d"), ("Dense", "dense"),
                       ("Dropout", "dropout"), ("Dense", "dense_1")], layers[-4:]
drop = [l for l in config["config"]["layers"] if l["class_name"] == "Dropout"][0]
assert drop["config"]["rate"] == 0.5, drop["config"]
a, b = weights(f"{work}/dropout_np1.keras"), weights(f"{work}/dropout_np2.keras")
diff = max(np.abs(a[k] - b[k]).max() for k in a)
print(f"--dropout 0.5: 2 ranks vs 1: max |dw| {diff:.3g} (tol 2e-3)")
assert diff <= 2e-3, "--dropout rank invariance"
for np_ in (1, 2):
    rows = list(csv.DictReader(open(f"{work}/dropout_np{np_}.csv")))
    assert list(rows[0].keys()) == ["epoch", "accuracy", "learning_rate", "loss", "val_accuracy",
                                    "val_learning_rate", "val_loss", "phase", "seconds", "img_per_s"]
    assert [(r["phase"], r["epoch"]) for r in rows] == [("1", "0"), ("1", "1"), ("2", "0")], rows
    # Keras logs the optimizer's float32 variable: 0.0010000000474974513 for 1e-3.
    f32 = lambda x: struct.unpack("f", struct.pack("f", x))[0]
    assert [float(r["learning_rate"]) for r in rows] == [f32(1e-3), f32(1e-3), f32(1e-4)], rows
plain = list(csv.DictReader(open(f"{work}/plain.csv")))
rows1 = list(csv.DictReader(open(f"{work}/dropout_np1.csv")))
print(f"phase 1 epoch 0 loss: {plain[0]['loss']} without Dropout, {rows1[0]['loss']} with --dropout 0.5")
assert abs(float(plain[0]["loss"]) - float(rows1[0]["loss"])) > 1e-3, "--dropout changed nothing"
rows2 = list(csv.DictReader(open(f"{work}/dropout_np2.csv")))
for r1, r2 in zip(rows1, rows2):
    print(f"phase {r1['phase']} epoch {r1['epoch']}: loss {r1['loss']} (1 rank), {r2['loss']} (2 ranks)")
    assert abs(float(r1["loss"]) - float(r2["loss"])) <= 1e-4, "--dropout: losses differ across ranks"
PY
train 1 from_keras.log --init "$work/dropout_np1.keras" --phase1-epochs 1 --phase2-epochs 0
grep -q "phase 1 epoch 1" "$work/from_keras.log" || { cat "$work/from_keras.log"; fail "--init of the --dropout .keras"; }
set +e
"$parafine" train --train "$work/data.h5" $setup --dropout 1 > "$work/bad.log" 2>&1
code=$?
set -e
[ $code = 2 ] && grep -q -- "--dropout" "$work/bad.log" || { cat "$work/bad.log"; fail "--dropout 1 accepted"; }
echo "all --class-weight and --dropout checks passed"
