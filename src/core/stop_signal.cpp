// Stop signals (see stop_signal.hpp): a lock-free atomic flag set by the handler.
#include "parafine/core/stop_signal.hpp"

#include <atomic>
#include <csignal>
#include <cstring>

namespace parafine {

namespace {

std::atomic<int> g_stop_signal{0};
static_assert(std::atomic<int>::is_always_lock_free, "the handler needs a lock-free flag");

// Async-signal-safe: one atomic store. SIGINT was installed with SA_RESETHAND, so a second one
// takes the default action (Ctrl-C twice ends the process). SIGTERM and SIGUSR1 keep this
// handler: a preempting scheduler often delivers SIGTERM twice (Slurm signals every process of
// the job, and mpirun or srun forwards its own copy), and that must not kill the checkpoint.
// SIGKILL after the grace time still ends a stuck run.
extern "C" void on_stop_signal(int signal) {
  int none = 0;
  g_stop_signal.compare_exchange_strong(none, signal);
}

void install(int signal, bool once) {
  struct sigaction action;
  std::memset(&action, 0, sizeof action);
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART | (once ? SA_RESETHAND : 0);  // system calls resume
  sigaction(signal, &action, nullptr);
}

}  // namespace

void install_stop_handlers() {
  install(SIGTERM, false);
  install(SIGINT, true);
  install(SIGUSR1, false);
}

int stop_signal_received() {
  return g_stop_signal.load();
}

std::string signal_name(int signal) {
  switch (signal) {
    case SIGTERM:
      return "SIGTERM";
    case SIGINT:
      return "SIGINT";
    case SIGUSR1:
      return "SIGUSR1";
    default:
      return "signal " + std::to_string(signal);
  }
}

void reset_stop_signal() {
  g_stop_signal.store(0);
}

}  // namespace parafine
