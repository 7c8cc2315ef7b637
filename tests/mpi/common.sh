# Shared setup for the mpirun test scripts (sourced): Open MPI allowed as root and
# oversubscribed, a temporary work directory removed on exit, fail(), and a generator of small
# colour-coded HDF5 datasets. Expects $python (the interpreter with h5py and numpy).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
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
