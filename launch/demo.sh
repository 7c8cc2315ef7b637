#!/usr/bin/env bash
# Sets up a fresh machine (packages, build) and runs the built-in demo: two-phase fine-tuning
# of a (narrow, 32x32) ResNet50 on a synthetic dataset, in one process. Extra arguments go to
# `parafine demo` (see `build/parafine demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
launch/install_deps.sh
launch/build.sh
exec build/parafine demo "$@"
