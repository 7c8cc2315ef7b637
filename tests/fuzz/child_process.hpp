// Running one fuzz input in a forked child with a wall-clock limit, and what became of it:
// accepted, a clean error (an exception with a message), or a failure — a signal, a timeout,
// another exit, an empty message, std::bad_alloc / std::length_error (an unchecked size reached
// an allocation) or a result the entry found wrong. The child leads its own process group, so
// on a timeout the whole group (grandchildren the library forked included) gets SIGKILL.
#pragma once

#include <functional>
#include <stdexcept>
#include <string>

namespace parafine {
namespace fuzz {

enum class Outcome {
  kAccepted,
  kCleanError,
  kSignal,
  kTimeout,
  kOtherExit,
  kEmptyMessage,
  kUncheckedSize,  // std::bad_alloc or std::length_error
  kWrongResult,    // accepted, but the entry found the result inconsistent
};

const char* outcome_name(Outcome outcome);
inline bool is_failure(Outcome o) {
  return o != Outcome::kAccepted && o != Outcome::kCleanError;
}

// Thrown by a parser entry when the library accepted an input but returned something
// inconsistent (a silently wrong result).
class WrongResult : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

struct ChildResult {
  Outcome outcome = Outcome::kAccepted;
  std::string message;  // the exception's what() (clean errors and some failures)
  std::string detail;   // how a failure showed: "SIGSEGV", "exit 134", "after 10 s"
  std::string output;   // the last few KB the child wrote to stdout/stderr
  double seconds = 0;
};

// Forks, runs `body` in the child (its exceptions are classified there) and waits at most
// `timeout_seconds`. `memory_limit_bytes` > 0 caps the child's address space (RLIMIT_AS), so
// an unchecked huge size fails fast instead of swapping; 0 leaves it (sanitizer builds).
ChildResult run_in_child(const std::function<void()>& body, double timeout_seconds,
                         long long memory_limit_bytes);

}  // namespace fuzz
}  // namespace parafine
