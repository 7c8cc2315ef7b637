// Running a piece of work in a forked child process, so that a crash or an endless loop inside
// a library that is not hardened against hostile input (HDF5 on a damaged file) becomes an
// outcome this process can report, instead of a signal that kills it (and, under mpirun, a job
// whose other ranks wait forever).
#pragma once

#include <functional>
#include <string>

namespace parafine {

struct IsolatedOutcome {
  enum class Kind {
    kSucceeded,  // the work returned normally
    kThrew,      // the work threw; `message` is its what()
    kCrashed,    // the child died by signal `signal` (SIGSEGV in the library, an abort, ...)
    kTimedOut,   // the child was still running after the timeout and was killed
    kNotRun,     // fork failed (no memory, process limit): the caller decides what to do
  };
  Kind kind = Kind::kNotRun;
  std::string message;
  int signal = 0;
};

// Runs work() in a child process and waits for it, at most timeout_seconds. The child's stdout
// goes to /dev/null (the caller runs the work again in-process once it is known to be
// safe, and its output belongs there), it makes no core dump, and it leaves with _exit, so no
// atexit handler or MPI finalisation runs twice. Whatever the work changes in memory is lost
// with the child. The work must not take a lock that another thread of this process may hold
// at the moment of the fork (the child has only the calling thread).
IsolatedOutcome run_isolated(const std::function<void()>& work, double timeout_seconds);

// "signal 11 (SIGSEGV)" and the like, for messages.
std::string signal_description(int signal);

}  // namespace parafine
