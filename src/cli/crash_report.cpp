// A last word from a crashing process: on SIGSEGV, SIGBUS, SIGFPE, SIGILL or SIGABRT, parafine
// writes which rank died of what and a backtrace to stderr, then dies of the same signal (so
// mpirun sees it and ends the job). Installed before MPI_Init, so Open MPI keeps it instead of
// its own handler, which is not async-signal-safe: after a crash inside malloc (a damaged HDF5
// file) it deadlocked, and the whole job hung. This handler only calls write, backtrace and
// raise, on its own stack, so it works after a stack overflow too.
#include <execinfo.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cli/cli.hpp"

namespace parafine {

namespace {

constexpr int kFatalSignals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
char g_prefix[96];            // "parafine (rank 3): fatal error: " — built before any crash
char g_alt_stack[64 * 1024];  // the handler's stack (the crash may be a stack overflow)

void write_text(const char* s) {
  std::size_t n = std::strlen(s);
  while (n > 0) {
    const ssize_t w = ::write(STDERR_FILENO, s, n);
    if (w <= 0) return;
    s += w;
    n -= static_cast<std::size_t>(w);
  }
}

const char* signal_text(int sig) {
  switch (sig) {
    case SIGSEGV:
      return "signal 11 (SIGSEGV, invalid memory access)";
    case SIGBUS:
      return "signal 7 (SIGBUS, bus error: a file mapped in memory shrank, or bad alignment)";
    case SIGFPE:
      return "signal 8 (SIGFPE, arithmetic error)";
    case SIGILL:
      return "signal 4 (SIGILL, illegal instruction: built for another CPU?)";
    case SIGABRT:
      return "signal 6 (SIGABRT, aborted)";
  }
  return "a fatal signal";
}

void on_fatal_signal(int sig) {
  write_text(g_prefix);
  write_text(signal_text(sig));
  write_text(
      ". This is a bug in parafine or a library it uses; please report it with the "
      "command line and this backtrace:\n");
  void* frames[48];
  const int depth = backtrace(frames, 48);
  backtrace_symbols_fd(frames, depth, STDERR_FILENO);
  std::signal(sig, SIG_DFL);
  raise(sig);
}

// The launcher's rank, read from the environment before MPI_Init (mpirun, srun with PMI/PMIx).
std::string launcher_rank() {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"})
    if (const char* v = std::getenv(name)) return v;
  return "";
}

}  // namespace

void install_crash_report() {
  const std::string rank = launcher_rank();
  const std::string prefix =
      "parafine" + (rank.empty() ? std::string() : " (rank " + rank + ")") + ": fatal error: ";
  std::strncpy(g_prefix, prefix.c_str(), sizeof g_prefix - 1);
  void* warm[1];
  backtrace(warm, 1);  // loads libgcc's unwinder now: the first call may allocate
  stack_t alt{};
  alt.ss_sp = g_alt_stack;
  alt.ss_size = sizeof g_alt_stack;
  sigaltstack(&alt, nullptr);
  struct sigaction action {};
  action.sa_handler = on_fatal_signal;
  action.sa_flags = SA_ONSTACK | SA_RESETHAND;
  sigemptyset(&action.sa_mask);
  for (int sig : kFatalSignals) sigaction(sig, &action, nullptr);
}

}  // namespace parafine
