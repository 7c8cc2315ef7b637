#!/usr/bin/env bash
# The demo: sets up this machine (packages, build), writes a small synthetic image folder (no
# download), and fine-tunes ResNet50 on it in both phases on 2 MPI ranks (configs/demo.cfg).
# Extra arguments go to `parafine train` (e.g. --phase1-epochs 2).
set -euo pipefail
cd "$(dirname "$0")/.."
launch/install_deps.sh
launch/build.sh
[ -d build/demo_data/train ] || /usr/bin/python3 launch/make_demo_data.py build/demo_data
rm -rf build/demo_checkpoints  # the demo's own checkpoints from an earlier demo run
launch/run_local.sh 2 train --config configs/demo.cfg "$@" | tee build/demo.log
echo "demo: final validation accuracy $(grep -o 'final validation accuracy [0-9.]*' build/demo.log | awk '{print $4}')" \
  "(3 classes, chance 0.33); model saved to build/demo_model.h5, history in build/demo_history.csv"
