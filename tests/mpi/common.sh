# Shared setup for the mpirun test scripts (sourced): Open MPI allowed as root and
# oversubscribed, a temporary work directory removed on exit, fail(), and a generator of small
# colour-coded HDF5 datasets. Expects $python (the interpreter with h5py and numpy).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
work=$(mktemp -d)
trap '[ -n "${KEEP_WORK:-}" ] || rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# colour_h5 PATH N SEED: N 32x32 images of 3 classes (red, green, blue under noise), labels i % 3.
colour_h5() {
  "$python" - "$1" "$2" "$3" <<'PY'
import sys, h5py, numpy as np
path, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(seed)
labels = np.arange(n) % 3
base = np.array([[200, 60, 60], [60, 200, 60], [60, 60, 200]])[labels]
images = np.clip(base[:, None, None, :] + rng.normal(0, 20, (n, 32, 32, 3)), 0, 255).astype(np.uint8)
with h5py.File(path, "w") as f:
    f["images"] = images
    f["labels"] = labels.astype(np.int64)
    f.attrs["class_names"] = np.array([b"r", b"g", b"b"])
PY
}

# compare_weights A.h5 B.h5 TOL_UPDATE TOL_MAX LABEL [INIT.h5]: every weight of two saved models.
# Prints and checks the largest absolute difference (<= TOL_MAX) and the relative L2 distance
# (<= TOL_UPDATE): |B - A| / |A - INIT| when INIT (the common starting point) is given, so the
# difference is measured against how far training moved the weights; else |B - A| / |A|.
compare_weights() {
  "$python" - "$@" <<'PY'
import sys, h5py, numpy as np
a_path, b_path, tol_rel, tol_max, label = sys.argv[1:6]
tol_rel, tol_max = float(tol_rel), float(tol_max)
def weights(path):
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()].astype(np.float64)) if isinstance(obj, h5py.Dataset) else None)
    return out
a, b = weights(a_path), weights(b_path)
init = weights(sys.argv[6]) if len(sys.argv) > 6 else {k: np.zeros_like(v) for k, v in a.items()}
assert a.keys() == b.keys() == init.keys(), f"{label}: different weight sets"
diff = max(np.abs(a[k] - b[k]).max() for k in a)
# BN moving statistics are not trained by the optimizer: they count in max |dw| only.
trained = [k for k in a if "moving_" not in k]
num = sum(((a[k] - b[k]) ** 2).sum() for k in trained)
den = sum(((a[k] - init[k]) ** 2).sum() for k in trained)
rel = (num / den) ** 0.5 if den > 0 else float(num > 0) * float("inf")
what = "|difference| / |training update|" if len(sys.argv) > 6 else "relative L2"
print(f"{label}: {what} {rel:.3g} (tol {tol_rel:g}), max |dw| {diff:.3g} (tol {tol_max:g})")
sys.exit(0 if diff <= tol_max and rel <= tol_rel else 1)
PY
}
