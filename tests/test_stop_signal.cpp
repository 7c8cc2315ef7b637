// The stop-signal handlers (core/stop_signal.hpp): the first SIGTERM, SIGINT or SIGUSR1 is
// only recorded; a second SIGTERM or SIGINT takes the default action (the process dies of
// it), so Ctrl-C twice always works; a second SIGUSR1 is recorded again, never fatal. Each case
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

TEST(StopSignal, FirstSignalIsRecordedSecondTermOrIntKills) {
  for (const int signal : {SIGTERM, SIGINT}) {
    const int status = in_child([signal] {
      install_stop_handlers();
      raise(signal);
      if (stop_signal_received() != signal) _exit(3);  // not recorded
      raise(signal);                                   // the default action: the child dies here
      _exit(4);
    });
    std::printf("%s twice: child %s %d\n", signal_name(signal).c_str(),
                WIFSIGNALED(status) ? "killed by signal" : "exited",
                WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == signal) << signal_name(signal);
  }
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
