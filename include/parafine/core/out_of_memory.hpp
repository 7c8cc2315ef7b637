// Allocation failures a user can act on: `allocating("the activations of ...", bytes, fn)` runs
// fn and turns a std::bad_alloc from it into OutOfMemory, whose message names what was being
// allocated and how large it is ("out of memory allocating <what> (<size>)"), so that the
// caller's advice (a smaller batch, image size, cache) can follow. main() reports any
// std::bad_alloc that escapes without such a name as a generic out-of-memory error.
#pragma once

#include <new>
#include <stdexcept>
#include <string>

namespace parafine {

class OutOfMemory : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// "512 B", "1.5 MiB", "3.0 GiB".
std::string format_bytes(double bytes);

// "out of memory allocating <what> (<size>)" followed by `advice` when given.
std::string out_of_memory_text(const std::string& what, double bytes, const std::string& advice);

// Under an address-space limit (ulimit -v, RLIMIT_AS) that leaves less than `bytes` above what
// the process maps now, throws OutOfMemory saying so. Libraries do not all survive a failed
// allocation (oneDNN crashed creating a primitive), so a step that cannot fit is refused before
// it starts. Without a limit it does nothing: the kernel's overcommit decides, not an estimate.
void check_address_space(const std::string& what, double bytes, const std::string& advice);

// Runs fn after check_address_space, turning a std::bad_alloc into OutOfMemory.
template <typename F>
auto allocating(const std::string& what, double bytes, const std::string& advice, F&& fn)
    -> decltype(fn()) {
  check_address_space(what, bytes, advice);
  try {
    return fn();
  } catch (const std::bad_alloc&) {
    throw OutOfMemory(out_of_memory_text(what, bytes, advice));
  }
}

}  // namespace parafine
