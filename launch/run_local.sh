#!/usr/bin/env bash
# Runs parafine on several processes of this machine: launch/run_local.sh RANKS COMMAND [options]
# e.g. launch/run_local.sh 2 train --config configs/cats_dogs.cfg
# Each rank gets cores/RANKS threads (parafine's default under mpirun); running as root is
# allowed explicitly, as Open MPI requires; more ranks than cores are oversubscribed.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 RANKS COMMAND [options]   (COMMAND: train, convert, predict, evaluate)" >&2
  exit 2
fi
ranks=$1
shift
case $ranks in '' | *[!0-9]* | 0) echo "$0: RANKS must be a positive integer, got '$ranks'" >&2; exit 2 ;; esac
here=$(cd "$(dirname "$0")/.." && pwd)
binary=${PARAFINE_BINARY:-$here/build/parafine}
[ -x "$binary" ] || { echo "$0: $binary not built: run launch/build.sh first" >&2; exit 2; }
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
exec mpirun -np "$ranks" --oversubscribe --bind-to none "$binary" "$@"
