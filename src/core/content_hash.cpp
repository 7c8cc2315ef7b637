// The streaming content hash (see content_hash.hpp): 8-byte words multiplied and rotated into
// the state, the tail and the length folded in, and a splitmix64 finaliser.
#include "parafine/core/content_hash.hpp"

#include <cstring>

namespace parafine {

namespace {

constexpr std::uint64_t kPrime1 = 0x9E3779B185EBCA87ull;
constexpr std::uint64_t kPrime2 = 0xC2B2AE3D27D4EB4Full;

std::uint64_t rotl(std::uint64_t x, int r) {
  return (x << r) | (x >> (64 - r));
}

std::uint64_t finalise(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace

ContentHasher::ContentHasher(std::uint64_t seed) : state_(seed ^ kPrime2) {}

void ContentHasher::mix_word(std::uint64_t word) {
  state_ ^= rotl(word * kPrime2, 31) * kPrime1;
  state_ = rotl(state_, 27) * kPrime1 + 0x52DCE729ull;
}

void ContentHasher::update(const void* data, std::size_t bytes) {
  const auto* p = static_cast<const unsigned char*>(data);
  length_ += bytes;
  if (tail_size_ > 0) {  // complete a word begun by an earlier update
    const std::size_t take = bytes < 8 - tail_size_ ? bytes : 8 - tail_size_;
    std::memcpy(tail_ + tail_size_, p, take);
    tail_size_ += take;
    p += take;
    bytes -= take;
    if (tail_size_ < 8) return;
    std::uint64_t w;
    std::memcpy(&w, tail_, 8);
    mix_word(w);
    tail_size_ = 0;
  }
  for (; bytes >= 8; bytes -= 8, p += 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    mix_word(w);
  }
  std::memcpy(tail_, p, bytes);  // bytes < 8, tail_ empty here
  tail_size_ = bytes;
}

void ContentHasher::update(const std::string& text) {
  update_u64(text.size());
  update(text.data(), text.size());
}

void ContentHasher::update_u64(std::uint64_t value) {
  update(&value, sizeof value);
}

std::uint64_t ContentHasher::digest() const {
  std::uint64_t h = state_;
  if (tail_size_ > 0) {
    std::uint64_t w = 0;
    std::memcpy(&w, tail_, tail_size_);
    h ^= rotl(w * kPrime2, 31) * kPrime1;
  }
  return finalise(h ^ (length_ * kPrime1));
}

std::uint64_t content_hash(const void* data, std::size_t bytes, std::uint64_t seed) {
  ContentHasher h(seed);
  h.update(data, bytes);
  return h.digest();
}

std::string hex64(std::uint64_t value) {
  const char* digits = "0123456789abcdef";
  std::string out(16, '0');
  for (int k = 15; k >= 0; --k, value >>= 4) out[static_cast<std::size_t>(k)] = digits[value & 15];
  return out;
}

}  // namespace parafine
