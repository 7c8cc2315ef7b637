// The stop-signal handlers (core/stop_signal.hpp): the first SIGTERM, SIGINT or SIGUSR1 is
// only recorded; a second SIGINT takes the default action (the process dies of it), so Ctrl-C
// twice always works; a second SIGTERM or SIGUSR1 is recorded again, never fatal (a scheduler
// may deliver SIGTERM twice while the checkpoint is written). Each case
// runs in a forked child, so the default action ends the child, not the test.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>

#include "parafine/core/stop_signal.hpp"

namespace parafine {
namespace {

// Runs `body` in a child; returns its wait status.
template <class F>
int in_child(F body) {
  const pid_t pid = fork();
  if (pid == 0) {
    body();
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

TEST(StopSignal, FirstSignalIsRecordedSecondIntKills) {
  const int status = in_child([] {
    install_stop_handlers();
    raise(SIGINT);
    if (stop_signal_received() != SIGINT) _exit(3);  // not recorded
    raise(SIGINT);                                   // the default action: the child dies here
    _exit(4);
  });
  std::printf("SIGINT twice: child %s %d\n", WIFSIGNALED(status) ? "killed by signal" : "exited",
              WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGINT);
}

TEST(StopSignal, SecondTermIsNotFatal) {
  const int status = in_child([] {
    install_stop_handlers();
    raise(SIGTERM);
    raise(SIGTERM);  // Slurm's own SIGTERM plus mpirun's forwarded one
    _exit(stop_signal_received() == SIGTERM ? 0 : 5);
  });
  std::printf("SIGTERM twice: child %s %d\n", WIFSIGNALED(status) ? "killed by signal" : "exited",
              WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(StopSignal, Usr1IsNeverFatalAndTheFirstSignalIsKept) {
  const int status = in_child([] {
    install_stop_handlers();
    raise(SIGUSR1);
    raise(SIGUSR1);
    raise(SIGTERM);  // still the handler: the first signal stays SIGUSR1
    _exit(stop_signal_received() == SIGUSR1 ? 0 : 5);
  });
  std::printf("SIGUSR1 twice then SIGTERM: child exited %d\n",
              WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(StopSignal, NothingReceivedWithoutASignal) {
  reset_stop_signal();
  EXPECT_EQ(stop_signal_received(), 0);
  EXPECT_EQ(signal_name(SIGUSR1), "SIGUSR1");
  EXPECT_EQ(kStoppedBySignalExitCode, 75);
}

}  // namespace
}  // namespace parafine
