// The fuzz target's byte mutator: a pure function of (input bytes, seed) built on
// std::mt19937_64 alone (its output is fixed by the C++ standard; the std::uniform_*
// distributions are not, so integers are derived here), so a mutant found on one machine is
// the same mutant on every other. Mutations: bit flips, byte and 2/4/8-byte little-endian
// overwrites with interesting values, truncation, chunk duplication and deletion. Offsets are
// drawn from the whole file or, with a given probability, from its first `focus_bytes` (the
// HDF5 superblock, root object header and heaps; an image's headers).
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace parafine {
namespace fuzz {

using Bytes = std::vector<unsigned char>;

struct MutationProfile {
  std::size_t focus_bytes = 4096;  // the "header" region offsets are concentrated in
  int focus_percent = 50;          // how often an offset is drawn from that region
  int max_mutations = 4;           // 1..max_mutations mutations per mutant
};

// The profile for HDF5 files (superblock, object headers and heaps at the front) and for
// JPEG/PNG (markers, IHDR/PLTE, Huffman tables in the first few hundred bytes).
MutationProfile hdf5_profile();
MutationProfile image_profile();

// The seed of mutant `index` of `parser` in a campaign seeded with `seed`: each mutant is
// reproducible on its own, without generating the ones before it.
std::uint64_t mutant_seed(std::uint64_t seed, const std::string& parser, int index);

class Mutator {
 public:
  explicit Mutator(std::uint64_t seed) : gen_(seed) {}

  // A mutated copy of `input` (never identical to a non-empty input unless every mutation
  // happened to write the byte already there). `log`, when given, receives one short
  // description per mutation ("flip 0x1a2:3", "set32 0x40=0xffffffff", "truncate 812").
  Bytes mutate(const Bytes& input, const MutationProfile& profile, std::string* log = nullptr);

  // Uniform integer in [0, n) for n >= 1 (modulo of a 64-bit draw: the bias is < n / 2^64).
  std::uint64_t below(std::uint64_t n) { return gen_() % n; }

 private:
  std::size_t pick_offset(std::size_t size, const MutationProfile& profile);
  std::string flip_bits(Bytes& b, const MutationProfile& profile);
  std::string set_byte(Bytes& b, const MutationProfile& profile);
  std::string set_integer(Bytes& b, const MutationProfile& profile);
  std::string truncate(Bytes& b);
  std::string duplicate_chunk(Bytes& b, const MutationProfile& profile);
  std::string delete_chunk(Bytes& b, const MutationProfile& profile);

  std::mt19937_64 gen_;
};

}  // namespace fuzz
}  // namespace parafine
