#!/usr/bin/env bash
# Sets up a fresh machine (packages, build) and runs the whole test suite with CTest, one test
# per core at a time, then the unit tests again under AddressSanitizer + UndefinedBehaviorSanitizer
# (launch/test_sanitizers.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
launch/install_deps.sh
launch/build.sh
(cd build && ctest --output-on-failure --timeout 900 -j "$(nproc)" "$@")
launch/test_sanitizers.sh
