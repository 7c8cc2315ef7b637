// numpy's legacy RandomState (see numpy_random_state.hpp); follows numpy/random/src/mt19937/
// mt19937.c (mt19937_seed, mt19937_gen, mt19937_next) and distributions.c (random_interval).
#include "parafine/core/numpy_random_state.hpp"

#include <numeric>
#include <stdexcept>
#include <string>

namespace parafine {

namespace {
constexpr int kN = NumpyRandomState::kStateLen;
constexpr int kM = 397;
constexpr std::uint32_t kMatrixA = 0x9908b0dfU;
constexpr std::uint32_t kUpperMask = 0x80000000U;
constexpr std::uint32_t kLowerMask = 0x7fffffffU;
}  // namespace

NumpyRandomState::NumpyRandomState(std::int64_t seed) {
  if (seed < 0 || seed > 0xffffffffLL)
    throw std::invalid_argument("NumpyRandomState: seed " + std::to_string(seed) +
                                " is outside [0, 2**32 - 1] (numpy's RandomState range)");
  // mt19937_seed: key[0] = seed; key[i] = 1812433253 * (key[i-1] ^ (key[i-1] >> 30)) + i.
  std::uint32_t s = static_cast<std::uint32_t>(seed);
  for (int i = 0; i < kN; ++i) {
    key_[i] = s;
    s = 1812433253U * (s ^ (s >> 30)) + static_cast<std::uint32_t>(i + 1);
  }
  pos_ = kN;
}

void NumpyRandomState::generate() {
  std::uint32_t y;
  int i = 0;
  for (; i < kN - kM; ++i) {
    y = (key_[i] & kUpperMask) | (key_[i + 1] & kLowerMask);
    key_[i] = key_[i + kM] ^ (y >> 1) ^ (-(y & 1U) & kMatrixA);
  }
  for (; i < kN - 1; ++i) {
    y = (key_[i] & kUpperMask) | (key_[i + 1] & kLowerMask);
    key_[i] = key_[i + (kM - kN)] ^ (y >> 1) ^ (-(y & 1U) & kMatrixA);
  }
  y = (key_[kN - 1] & kUpperMask) | (key_[0] & kLowerMask);
  key_[kN - 1] = key_[kM - 1] ^ (y >> 1) ^ (-(y & 1U) & kMatrixA);
  pos_ = 0;
}

std::uint32_t NumpyRandomState::next_uint32() {
  if (pos_ == kN) generate();
  std::uint32_t y = key_[pos_++];
  // Tempering.
  y ^= (y >> 11);
  y ^= (y << 7) & 0x9d2c5680U;
  y ^= (y << 15) & 0xefc60000U;
  y ^= (y >> 18);
  return y;
}

std::uint64_t NumpyRandomState::next_uint64() {
  const std::uint64_t hi = next_uint32();
  return (hi << 32) | next_uint32();
}

std::uint64_t NumpyRandomState::random_interval(std::uint64_t max) {
  if (max == 0) return 0;
  std::uint64_t mask = max;  // smallest all-ones bit mask >= max
  mask |= mask >> 1;
  mask |= mask >> 2;
  mask |= mask >> 4;
  mask |= mask >> 8;
  mask |= mask >> 16;
  mask |= mask >> 32;
  std::uint64_t value;
  if (max <= 0xffffffffULL) {
    while ((value = (next_uint32() & mask)) > max) {
    }
  } else {
    while ((value = (next_uint64() & mask)) > max) {
    }
  }
  return value;
}

std::vector<std::size_t> NumpyRandomState::shuffled_indices(std::size_t n) {
  std::vector<std::size_t> perm(n);
  std::iota(perm.begin(), perm.end(), std::size_t{0});
  shuffle(perm);
  return perm;
}

}  // namespace parafine
