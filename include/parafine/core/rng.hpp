// Seeded, counter-free random numbers: splitmix64 and a string hash that derives independent
// streams from (seed, name). Used for initialisation, data order, augmentation and synthetic
// data, so every one of them is a pure function of the seed.
#pragma once

#include <cstdint>
#include <string>

namespace parafine {

// splitmix64 (Steele, Lea, Flood 2014): 64 bits of state, one multiply-xorshift per draw.
class SplitMix64 {
 public:
  explicit SplitMix64(std::uint64_t seed) : s_(seed) {}
  std::uint64_t next();
  double uniform();  // [0,1) with 53 random bits

 private:
  std::uint64_t s_;
};

// FNV-1a of `s`, started from `seed`: the seed of the stream named `s`.
std::uint64_t hash_string(const std::string& s, std::uint64_t seed);

}  // namespace parafine
