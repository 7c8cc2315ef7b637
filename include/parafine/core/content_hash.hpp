// A fast streaming 64-bit hash of bytes (not cryptographic): content hashes of samples and
// weights for the persistent feature cache's key, and per-record checksums in its files.
// Deterministic across runs and machines of the same byte order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace parafine {

class ContentHasher {
 public:
  explicit ContentHasher(std::uint64_t seed = 0);
  void update(const void* data, std::size_t bytes);
  void update(const std::string& text);  // its length, then its bytes (so "ab"+"c" != "a"+"bc")
  void update_u64(std::uint64_t value);
  std::uint64_t digest() const;  // of everything so far; update may continue after

 private:
  void mix_word(std::uint64_t word);
  std::uint64_t state_;
  std::uint64_t length_ = 0;
  unsigned char tail_[8] = {};
  std::size_t tail_size_ = 0;
};

std::uint64_t content_hash(const void* data, std::size_t bytes, std::uint64_t seed = 0);
std::string hex64(std::uint64_t value);  // 16 lower-case hex digits

}  // namespace parafine
