#!/usr/bin/env bash
# launch/slurm_train.sh without Slurm: stub `srun`, `mpirun` and `scontrol` on PATH record their
# calls. A SIGUSR1 to the batch script is forwarded to the training step; the job is requeued
# (scontrol requeue $SLURM_JOB_ID) when the step exits 75, not when it exits 0 or fails, and not
# after a SIGTERM to the script (scancel); every start passes --resume auto.
# Usage: test_slurm_script.sh PATH/TO/slurm_train.sh
set -euo pipefail
script=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; for f in "$work"/*.log; do echo "--- $f"; cat "$f"; done; exit 1; }
mkdir "$work/bin"
# The step stub: logs its arguments and environment, then exits $STEP_EXIT at once, or with
# STEP_WAITS=1 waits (up to 20 s) for SIGUSR1, logs it and exits $STEP_EXIT.
for launcher in srun mpirun; do
  cat > "$work/bin/$launcher" <<STUB
#!/usr/bin/env bash
echo "$launcher \$* sigkill_timeout=\${OMPI_MCA_odls_base_sigkill_timeout:-unset}" >> "$work/step.log"
got=""
trap 'echo "got USR1" >> "$work/step.log"; got=1' USR1
echo started >> "$work/step.log"
if [ "\${STEP_WAITS:-0}" = 1 ]; then
  for _ in \$(seq 200); do [ -n "\$got" ] && break; sleep 0.1; done
fi
exit \${STEP_EXIT:-0}
STUB
done
printf '#!/usr/bin/env bash\necho "scontrol $*" >> "%s/scontrol.log"\n' "$work" > "$work/bin/scontrol"
chmod +x "$work/bin/"*

# run_case NAME SIGNAL(or -) STEP_EXIT [LAUNCHER]: runs the script, sends SIGNAL once the step
# has started; sets $code.
run_case() {
  local name=$1 signal=$2
  rm -f "$work/step.log" "$work/scontrol.log"
  touch "$work/step.log" "$work/scontrol.log"
  STEP_EXIT=$3 STEP_WAITS=$([ "$signal" = - ] && echo 0 || echo 1) LAUNCHER=${4:-srun} \
    PATH="$work/bin:$PATH" SLURM_JOB_ID=4242 SLURM_SUBMIT_DIR="$work" \
    bash "$script" > "$work/script.log" 2>&1 &
  local pid=$!
  if [ "$signal" != - ]; then
    for _ in $(seq 100); do grep -q started "$work/step.log" && break; sleep 0.05; done
    grep -q started "$work/step.log" || fail "$name: the step did not start"
    kill -"$signal" $pid
  fi
  set +e
  wait $pid
  code=$?
  set -e
  echo "$name: script exit $code; step: $(grep -c 'got USR1' "$work/step.log") SIGUSR1;" \
    "scontrol: $(tr '\n' ' ' < "$work/scontrol.log")"
}
requeued() { grep -q "^scontrol requeue 4242$" "$work/scontrol.log"; }

run_case "SIGUSR1, step exits 75" USR1 75
[ $code = 75 ] || fail "exit $code, expected 75"
grep -q "got USR1" "$work/step.log" || fail "SIGUSR1 not forwarded to the step"
requeued || fail "not requeued after exit 75"
grep -q -- "--resume auto" "$work/step.log" || fail "the step was started without --resume auto"
grep -q "^srun --mpi=pmix " "$work/step.log" || fail "not launched with srun"

run_case "no signal, step exits 0" - 0
[ $code = 0 ] || fail "exit $code, expected 0"
! requeued || fail "requeued after exit 0"

run_case "SIGUSR1, step exits 0" USR1 0
[ $code = 0 ] || fail "exit $code, expected 0"
! requeued || fail "requeued after exit 0"

run_case "no signal, step fails" - 1
[ $code = 1 ] || fail "exit $code, expected 1"
! requeued || fail "requeued after a failure"

run_case "SIGTERM (scancel), step exits 75" TERM 75
[ $code = 75 ] || fail "exit $code, expected 75"
grep -q "got USR1" "$work/step.log" || fail "SIGTERM not forwarded to the step as SIGUSR1"
! requeued || fail "requeued after SIGTERM"

run_case "mpirun, SIGUSR1, step exits 75" USR1 75 mpirun
grep -q "^mpirun .* sigkill_timeout=60" "$work/step.log" || fail "mpirun without odls_base_sigkill_timeout"
requeued || fail "not requeued after exit 75 under mpirun"
echo "1 passed, 0 failed"
