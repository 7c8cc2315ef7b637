#!/usr/bin/env bash
# Example: parafine on a cluster with a hostfile (Open MPI). Every node needs the same build
# path and the data on a shared filesystem (an HDF5 dataset made once by `parafine convert`).
#   hosts:   node01 slots=2
#            node02 slots=2
#   launch/cluster_example.sh hosts 4 --train /shared/cats_dogs_train.h5 --val /shared/cats_dogs_val.h5
# Threads per rank default to each node's cores divided by its ranks.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 HOSTFILE RANKS [parafine train options]" >&2
  exit 2
fi
hostfile=$1 ranks=$2
shift 2
here=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
exec mpirun --hostfile "$hostfile" -np "$ranks" --bind-to none --map-by node \
  -x OMP_WAIT_POLICY=passive "$here/build/parafine" train --config "$here/configs/cats_dogs.cfg" "$@"
