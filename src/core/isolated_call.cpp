// Forked-child execution of untrusted parsing (see isolated_call.hpp).
#include "parafine/core/isolated_call.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <exception>
#include <new>

namespace parafine {

namespace {

// In the child: default dispositions for the crash signals (parafine's own crash report is
// for the real process), no core file, stdout discarded (the work runs again in the parent,
// whose output it is). stderr stays: a sanitizer's report from the child must be seen.
void prepare_child() {
  for (int s : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) std::signal(s, SIG_DFL);
  const rlimit no_core{0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  const int null_fd = ::open("/dev/null", O_WRONLY);
  if (null_fd >= 0) {
    dup2(null_fd, STDOUT_FILENO);
    ::close(null_fd);
  }
}

void write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
}

[[noreturn]] void run_child(const std::function<void()>& work, int report_fd) {
  prepare_child();
  std::string message;
  int code = 0;
  try {
    work();
  } catch (const std::bad_alloc&) {
    message = "out of memory while reading";
    code = 1;
  } catch (const std::exception& e) {
    message = e.what();
    code = 1;
  } catch (...) {
    message = "unknown error";
    code = 1;
  }
  write_all(report_fd, message.data(), message.size());
  ::close(report_fd);
  _exit(code);
}

// Reads the child's report until it closes the pipe, or the deadline passes (false).
bool read_report(int fd, std::chrono::steady_clock::time_point deadline, std::string& out) {
  char buf[4096];
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 1000)));
    if (ready < 0 && errno != EINTR) return false;
    if (ready <= 0) continue;
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return true;  // EOF: the child finished (or died)
    out.append(buf, static_cast<std::size_t>(n));
  }
}

int wait_for(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

}  // namespace

IsolatedOutcome run_isolated(const std::function<void()>& work, double timeout_seconds) {
  IsolatedOutcome outcome;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return outcome;
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return outcome;
  }
  if (pid == 0) {
    ::close(fds[0]);
    run_child(work, fds[1]);
  }
  ::close(fds[1]);
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(static_cast<long long>(timeout_seconds * 1000));
  const bool finished = read_report(fds[0], deadline, outcome.message);
  ::close(fds[0]);
  if (!finished) ::kill(pid, SIGKILL);
  const int status = wait_for(pid);
  if (!finished) {
    outcome.kind = IsolatedOutcome::Kind::kTimedOut;
  } else if (WIFSIGNALED(status)) {
    outcome.kind = IsolatedOutcome::Kind::kCrashed;
    outcome.signal = WTERMSIG(status);
  } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    outcome.kind = IsolatedOutcome::Kind::kSucceeded;
  } else {
    outcome.kind = IsolatedOutcome::Kind::kThrew;
    if (outcome.message.empty())
      outcome.message = "exited with code " + std::to_string(WEXITSTATUS(status));
  }
  return outcome;
}

std::string signal_description(int signal) {
  const char* name = sigabbrev_np(signal);
  return "signal " + std::to_string(signal) + (name ? std::string(" (SIG") + name + ")" : "");
}

}  // namespace parafine
