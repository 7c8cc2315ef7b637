// The fuzz target's byte mutator (see mutator.hpp): every draw comes from one std::mt19937_64,
// so the mutants of a seed are identical on every platform and standard library.
#include "mutator.hpp"

#include <algorithm>
#include <cstdio>

namespace parafine {
namespace fuzz {

namespace {

// Single bytes that sit on boundaries of signed/unsigned fields.
constexpr unsigned char kInterestingBytes[] = {0x00, 0xFF, 0x7F, 0x80, 0x01, 0xFE};

// Multi-byte values: zero, all ones, signed boundaries, just past 32 bits, and 2^35 + 64
// (a flipped HDF5 dimension seen in an earlier probe).
constexpr std::uint64_t kInterestingIntegers[] = {0x0ULL,
                                                  0xFFFFFFFFFFFFFFFFULL,
                                                  0x7FFFFFFFULL,
                                                  0x80000000ULL,
                                                  0xFFFFFFFFULL,
                                                  0x100000000ULL,
                                                  (1ULL << 35) + 64,
                                                  0x7FFFULL,
                                                  0x8000ULL,
                                                  0xFFFFULL,
                                                  0x1ULL,
                                                  0x10000ULL};

std::string hex(std::uint64_t v) {
  char text[32];
  std::snprintf(text, sizeof text, "0x%llx", static_cast<unsigned long long>(v));
  return text;
}

}  // namespace

MutationProfile hdf5_profile() {
  return MutationProfile{4096, 50, 4};
}
MutationProfile image_profile() {
  return MutationProfile{512, 35, 4};
}

std::uint64_t mutant_seed(std::uint64_t seed, const std::string& parser, int index) {
  std::uint64_t h = 1469598103934665603ULL ^ seed;  // FNV-1a over the parser name and index
  for (unsigned char c : parser + "#" + std::to_string(index)) h = (h ^ c) * 1099511628211ULL;
  h ^= h >> 33;  // a final avalanche so neighbouring indices give unrelated streams
  h *= 0xff51afd7ed558ccdULL;
  return h ^ (h >> 33);
}

std::size_t Mutator::pick_offset(std::size_t size, const MutationProfile& profile) {
  if (size == 0) return 0;
  const bool focus = below(100) < static_cast<std::uint64_t>(profile.focus_percent);
  const std::size_t range = focus ? std::min(size, profile.focus_bytes) : size;
  return static_cast<std::size_t>(below(range));
}

std::string Mutator::flip_bits(Bytes& b, const MutationProfile& profile) {
  const std::size_t at = pick_offset(b.size(), profile);
  const int bit = static_cast<int>(below(8));
  b[at] ^= static_cast<unsigned char>(1u << bit);
  return "flip " + hex(at) + ":" + std::to_string(bit);
}

std::string Mutator::set_byte(Bytes& b, const MutationProfile& profile) {
  const std::size_t at = pick_offset(b.size(), profile);
  const std::size_t choice = below(sizeof kInterestingBytes + 1);
  b[at] = choice < sizeof kInterestingBytes ? kInterestingBytes[choice]
                                            : static_cast<unsigned char>(below(256));
  return "set8 " + hex(at) + "=" + hex(b[at]);
}

std::string Mutator::set_integer(Bytes& b, const MutationProfile& profile) {
  static constexpr std::size_t kWidths[] = {2, 4, 8};
  const std::size_t width = kWidths[below(3)];
  if (b.size() < width) return set_byte(b, profile);
  const std::size_t at = std::min(pick_offset(b.size(), profile), b.size() - width);
  constexpr std::size_t kCount = sizeof kInterestingIntegers / sizeof kInterestingIntegers[0];
  const std::size_t choice = below(kCount + 1);
  const std::uint64_t value = choice < kCount ? kInterestingIntegers[choice] : gen_();
  for (std::size_t i = 0; i < width; ++i)  // little-endian, as HDF5 stores lengths and offsets
    b[at + i] = static_cast<unsigned char>(value >> (8 * i));
  return "set" + std::to_string(8 * width) + " " + hex(at) + "=" + hex(value);
}

std::string Mutator::truncate(Bytes& b) {
  b.resize(static_cast<std::size_t>(below(b.size())));
  return "truncate " + std::to_string(b.size());
}

std::string Mutator::duplicate_chunk(Bytes& b, const MutationProfile& profile) {
  const std::size_t from = pick_offset(b.size(), profile);
  const std::size_t max_length = below(4) == 0 ? 4096 : 256;  // a few copy whole structures
  const std::size_t length =
      1 + static_cast<std::size_t>(below(std::min<std::size_t>(b.size() - from, max_length)));
  const std::size_t to = pick_offset(b.size(), profile);
  const Bytes chunk(b.begin() + static_cast<long>(from),
                    b.begin() + static_cast<long>(from + length));
  b.insert(b.begin() + static_cast<long>(to), chunk.begin(), chunk.end());
  return "dup " + hex(from) + "+" + std::to_string(length) + "->" + hex(to);
}

std::string Mutator::delete_chunk(Bytes& b, const MutationProfile& profile) {
  const std::size_t from = pick_offset(b.size(), profile);
  const std::size_t length =
      1 + static_cast<std::size_t>(below(std::min<std::size_t>(b.size() - from, 256)));
  b.erase(b.begin() + static_cast<long>(from), b.begin() + static_cast<long>(from + length));
  return "del " + hex(from) + "+" + std::to_string(length);
}

Bytes Mutator::mutate(const Bytes& input, const MutationProfile& profile, std::string* log) {
  Bytes b = input;
  const int count = 1 + static_cast<int>(below(static_cast<std::uint64_t>(profile.max_mutations)));
  for (int m = 0; m < count && !b.empty(); ++m) {
    // Weights out of 100: mostly in-place damage (offsets stay valid, so the parser gets deep),
    // some structural damage (truncation, shifted contents).
    const std::uint64_t kind = below(100);
    std::string what;
    if (kind < 30) {
      what = flip_bits(b, profile);
    } else if (kind < 50) {
      what = set_byte(b, profile);
    } else if (kind < 75) {
      what = set_integer(b, profile);
    } else if (kind < 83) {
      what = truncate(b);
    } else if (kind < 92) {
      what = duplicate_chunk(b, profile);
    } else {
      what = delete_chunk(b, profile);
    }
    if (log) *log += (log->empty() ? "" : ", ") + what;
  }
  return b;
}

}  // namespace fuzz
}  // namespace parafine
