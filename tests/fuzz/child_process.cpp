// Forked-child execution of one fuzz input with a timeout (see child_process.hpp).
#include "child_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <new>
#include <sstream>

namespace parafine {
namespace fuzz {

namespace {

// Exit codes of the child; anything else is a failure of its own ("exit N").
constexpr int kExitAccepted = 0;
constexpr int kExitCleanError = 1;
constexpr int kExitEmptyMessage = 80;
constexpr int kExitUncheckedSize = 81;
constexpr int kExitWrongResult = 82;
constexpr int kExitNonStdException = 83;
constexpr std::size_t kKeptOutputBytes = 4096;

void write_all(int fd, const std::string& text) {
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n <= 0 && errno != EINTR) return;
    if (n > 0) done += static_cast<std::size_t>(n);
  }
}

// The child's side: runs body, reports the exception's message on `message_fd`, returns the
// exit code that classifies it.
int child_main(const std::function<void()>& body, int message_fd) {
  try {
    body();
    return kExitAccepted;
  } catch (const std::bad_alloc& e) {
    write_all(message_fd, std::string("std::bad_alloc: ") + e.what());
    return kExitUncheckedSize;
  } catch (const std::length_error& e) {
    write_all(message_fd, std::string("std::length_error: ") + e.what());
    return kExitUncheckedSize;
  } catch (const WrongResult& e) {
    write_all(message_fd, e.what());
    return kExitWrongResult;
  } catch (const std::exception& e) {
    write_all(message_fd, e.what());
    return e.what()[0] ? kExitCleanError : kExitEmptyMessage;
  } catch (...) {
    write_all(message_fd, "an exception not derived from std::exception");
    return kExitNonStdException;
  }
}

[[noreturn]] void start_child(const std::function<void()>& body, int output_fd, int message_fd,
                              long long memory_limit_bytes) {
  setpgid(0, 0);
  dup2(output_fd, STDOUT_FILENO);
  dup2(output_fd, STDERR_FILENO);
  if (memory_limit_bytes > 0) {
    const rlimit limit{static_cast<rlim_t>(memory_limit_bytes),
                       static_cast<rlim_t>(memory_limit_bytes)};
    setrlimit(RLIMIT_AS, &limit);
  }
  const int code = child_main(body, message_fd);
  std::fflush(nullptr);
  _exit(code);  // no atexit handlers or static destructors of the copied driver state
}

std::string signal_name(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

Outcome classify_exit(int status, const std::string& message, std::string* detail) {
  if (WIFSIGNALED(status)) {
    *detail = signal_name(WTERMSIG(status));
    return Outcome::kSignal;
  }
  const int code = WEXITSTATUS(status);
  *detail = "exit " + std::to_string(code);
  switch (code) {
    case kExitAccepted:
      return Outcome::kAccepted;
    case kExitCleanError:
      // A bad_alloc turned into a message (by a forked reader, say) is still an unchecked size.
      if (message.find("bad_alloc") != std::string::npos) return Outcome::kUncheckedSize;
      return Outcome::kCleanError;
    case kExitEmptyMessage:
      return Outcome::kEmptyMessage;
    case kExitUncheckedSize:
      return Outcome::kUncheckedSize;
    case kExitWrongResult:
      return Outcome::kWrongResult;
    default:
      return Outcome::kOtherExit;
  }
}

// Reads whatever is ready on the open descriptors of fds[0..1] into texts; closes one at EOF.
void drain(pollfd* fds, std::string* texts, int wait_ms) {
  if (poll(fds, 2, wait_ms) <= 0) return;
  for (int k = 0; k < 2; ++k) {
    if (fds[k].fd < 0 || !(fds[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    char buffer[4096];
    const ssize_t n = read(fds[k].fd, buffer, sizeof buffer);
    if (n > 0) {
      texts[k].append(buffer, static_cast<std::size_t>(n));
      if (k == 0 && texts[0].size() > 2 * kKeptOutputBytes)
        texts[0].erase(0, texts[0].size() - kKeptOutputBytes);
    } else if (n == 0 || errno != EINTR) {
      close(fds[k].fd);
      fds[k].fd = -1;
    }
  }
}

}  // namespace

const char* outcome_name(Outcome outcome) {
  switch (outcome) {
    case Outcome::kAccepted:
      return "accepted";
    case Outcome::kCleanError:
      return "clean error";
    case Outcome::kSignal:
      return "signal";
    case Outcome::kTimeout:
      return "timeout";
    case Outcome::kOtherExit:
      return "other exit";
    case Outcome::kEmptyMessage:
      return "empty message";
    case Outcome::kUncheckedSize:
      return "bad_alloc/length_error";
    case Outcome::kWrongResult:
      return "wrong result";
  }
  return "?";
}

ChildResult run_in_child(const std::function<void()>& body, double timeout_seconds,
                         long long memory_limit_bytes) {
  int output_pipe[2], message_pipe[2];
  if (pipe2(output_pipe, O_CLOEXEC) != 0 || pipe2(message_pipe, O_CLOEXEC) != 0)
    throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  std::fflush(nullptr);  // nothing buffered in the driver is written twice
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) start_child(body, output_pipe[1], message_pipe[1], memory_limit_bytes);
  setpgid(pid, pid);  // also here: no window in which a kill of the group misses the child
  close(output_pipe[1]);
  close(message_pipe[1]);
  pollfd fds[2] = {{output_pipe[0], POLLIN, 0}, {message_pipe[0], POLLIN, 0}};
  std::string texts[2];
  const auto deadline = start + std::chrono::duration<double>(timeout_seconds);
  int status = 0;
  bool exited = false, timed_out = false;
  while (!exited) {
    const bool pipes_closed = fds[0].fd < 0 && fds[1].fd < 0;  // the child is exiting
    drain(fds, texts, pipes_closed ? 1 : 20);
    exited = waitpid(pid, &status, WNOHANG) == pid;
    if (!exited && std::chrono::steady_clock::now() > deadline) {
      kill(-pid, SIGKILL);
      waitpid(pid, &status, 0);
      exited = timed_out = true;
    }
  }
  for (int i = 0; i < 50 && (fds[0].fd >= 0 || fds[1].fd >= 0); ++i) drain(fds, texts, 10);
  kill(-pid, SIGKILL);  // grandchildren the library forked and left behind, if any
  for (pollfd& f : fds)
    if (f.fd >= 0) close(f.fd);
  ChildResult result;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.message = texts[1];
  result.output = texts[0].size() > kKeptOutputBytes
                      ? texts[0].substr(texts[0].size() - kKeptOutputBytes)
                      : texts[0];
  if (timed_out) {
    result.outcome = Outcome::kTimeout;
    std::ostringstream detail;
    detail << "no exit after " << timeout_seconds << " s, process group killed";
    result.detail = detail.str();
  } else {
    result.outcome = classify_exit(status, result.message, &result.detail);
  }
  return result;
}

}  // namespace fuzz
}  // namespace parafine
