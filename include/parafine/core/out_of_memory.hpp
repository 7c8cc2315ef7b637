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

template <typename F>
auto allocating(const std::string& what, double bytes, const std::string& advice, F&& fn)
    -> decltype(fn()) {
  try {
    return fn();
  } catch (const std::bad_alloc&) {
    throw OutOfMemory(out_of_memory_text(what, bytes, advice));
  }
}

}  // namespace parafine
