#!/usr/bin/env bash
# Slurm batch script for a preemptible, self-requeueing `parafine train` (issue 15):
#   sbatch launch/slurm_train.sh          (edit the #SBATCH lines and the paths below first)
# Every start runs with --resume auto: the first starts a new run, later ones continue from
# the newest checkpoint in $CHECKPOINT_DIR. WARN_SECONDS before the time limit Slurm sends
# SIGUSR1 to this batch shell (#SBATCH --signal=B:USR1@WARN_SECONDS); the trap forwards it to
# the training step, every rank stops at its next step with a checkpoint and exits 75, and the
# script requeues the job (scontrol requeue): it starts again, pending, and continues.
# A SIGTERM to this shell (scancel, or the time limit reached without the warning) is forwarded
# the same way, but the job is then not requeued: that is how a user ends it for good.
#
# Adapting it: the node/task/CPU counts and the time limit in the #SBATCH lines; WARN_SECONDS in
# the --signal line (sbatch reads #SBATCH lines before the script runs, so it cannot be a shell
# variable) must exceed the longest stretch without a step boundary plus writing a checkpoint
# (a signal during validation acts at the epoch's end, one during the feature-cache build at
# the first step: with a large --val, allow a full validation pass); LAUNCHER below (srun, or
# mpirun for an Open MPI built without Slurm support); the parafine options in TRAIN_ARGS.
#SBATCH --job-name=parafine
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=2
#SBATCH --cpus-per-task=16
#SBATCH --time=04:00:00
#SBATCH --output=parafine-%j.log
#SBATCH --open-mode=append
#SBATCH --requeue
#SBATCH --signal=B:USR1@120
set -uo pipefail

PARAFINE=${PARAFINE:-build/parafine}
CHECKPOINT_DIR=${CHECKPOINT_DIR:-checkpoints}
LAUNCHER=${LAUNCHER:-srun}  # srun | mpirun
TRAIN_ARGS=(--config configs/cats_dogs.cfg
  --train /shared/data/cats_dogs_train.h5 --val /shared/data/cats_dogs_val.h5
  --checkpoint-dir "$CHECKPOINT_DIR" --resume auto
  --history history.csv --save cats_dogs_resnet50.h5)
# --threads is left out: parafine takes SLURM_CPUS_PER_TASK (or the CPU mask) per rank.

cd "${SLURM_SUBMIT_DIR:-.}" || exit 1
case "$LAUNCHER" in
  srun) launch=(srun --mpi=pmix) ;;  # srun forwards the signals it receives to every task
  # mpirun forwards SIGUSR1 to the ranks; on SIGTERM it waits this many seconds, sends SIGTERM,
  # waits as long again and kills: time for the checkpoint.
  mpirun) export OMPI_MCA_odls_base_sigkill_timeout=${OMPI_MCA_odls_base_sigkill_timeout:-60}
          launch=(mpirun) ;;
  *) echo "slurm_train.sh: LAUNCHER must be srun or mpirun, got '$LAUNCHER'" >&2; exit 2 ;;
esac

step=""
terminated=""
forward() {  # $1: the signal this shell received
  [ "$1" = TERM ] && terminated=1
  echo "slurm_train.sh: SIG$1 received, asking the training step to checkpoint and stop"
  [ -n "$step" ] && kill -USR1 "$step" 2>/dev/null
}
trap 'forward USR1' USR1
trap 'forward TERM' TERM

"${launch[@]}" "$PARAFINE" train "${TRAIN_ARGS[@]}" &
step=$!
# A trapped signal ends `wait` early (status > 128): wait again until the step has ended.
while :; do
  wait "$step"
  code=$?
  kill -0 "$step" 2>/dev/null || break
done
# If a signal interrupted the last `wait` just as the step ended, $code is that interruption's
# (> 128): bash keeps the reaped step's status, and one more `wait` returns it.
wait "$step" 2>/dev/null
code=$?

case "$code" in
  0) echo "slurm_train.sh: training finished" ;;
  75)  # stopped by a signal with a checkpoint (parafine's documented exit code)
    if [ -n "$terminated" ]; then
      echo "slurm_train.sh: stopped after SIGTERM (cancelled?); not requeued. Continue with" \
        "sbatch $0: it resumes from $CHECKPOINT_DIR"
    else
      echo "slurm_train.sh: checkpoint written; requeueing job ${SLURM_JOB_ID}"
      scontrol requeue "${SLURM_JOB_ID}"
    fi ;;
  *) echo "slurm_train.sh: training failed with exit code $code" ;;
esac
exit "$code"
