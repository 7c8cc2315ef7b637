// Preemption: SIGTERM, SIGINT or SIGUSR1 ask a training run to stop at its next step boundary
// with a checkpoint (the trainer combines every rank's request, train/trainer.cpp). The handler
// only records the signal (async-signal-safe); a second SIGINT takes the default action, so
// Ctrl-C twice always ends the process at once. A second SIGTERM does not: schedulers often
// deliver two (Slurm to every process of the job, plus mpirun's or srun's forwarded copy).
#pragma once

#include <stdexcept>
#include <string>

namespace parafine {

// The exit code of a run stopped by one of these signals: 75 (EX_TEMPFAIL, "try again"). The
// run did not finish; with --checkpoint-dir a checkpoint of the step it stopped at was written
// and `--resume auto` continues from it. launch/slurm_train.sh requeues the job on it.
constexpr int kStoppedBySignalExitCode = 75;

// Installs the handlers for SIGTERM, SIGINT and SIGUSR1 (replacing their default action, which
// ends the process). Call once, before the work a signal should interrupt cleanly.
void install_stop_handlers();

// The first stop signal this process received (SIGTERM, SIGINT or SIGUSR1), or 0.
int stop_signal_received();

// "SIGTERM", "SIGINT", "SIGUSR1", or "signal N".
std::string signal_name(int signal);

// For tests: forget a received signal.
void reset_stop_signal();

// Thrown by the trainer after every rank stopped for a signal (and rank 0 wrote the checkpoint
// when --checkpoint-dir is set); main() exits with kStoppedBySignalExitCode. what() is the
// message to show.
class StoppedBySignal : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace parafine
