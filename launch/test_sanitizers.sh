#!/usr/bin/env bash
# Builds parafine with AddressSanitizer + UndefinedBehaviorSanitizer into build-sanitizers/ and
# runs every test except the multi-process mpirun ones (label "mpirun"): any sanitizer report
# fails the run (UBSan halts on the first error; ASan always does).
# Leak detection is off: Open MPI and HDF5 keep their global state until exit by design (and
# HDF5's exit-time cleanup is switched off, see io/h5_tensors.cpp), which LeakSanitizer would
# list as leaks that are not parafine's.
set -euo pipefail
cd "$(dirname "$0")/.."
flags="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
cmake -S . -B build-sanitizers -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPARAFINE_BENCHMARKS=OFF \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
cmake --build build-sanitizers -j "$(nproc)"
cd build-sanitizers
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --output-on-failure --timeout 900 -j "$(nproc)" -LE mpirun "$@"
