// numpy's legacy np.random.RandomState(seed) for an integer seed, bit for bit: the MT19937
// generator seeded as numpy's _legacy_seeding does for an int (mt19937_seed, Knuth's
// init_genrand), its raw 32-bit outputs, random_interval (masked rejection sampling) and
// RandomState.shuffle of a 1-d sequence. Keras shuffles image_dataset_from_directory's file list
// with it (dataset_utils.index_directory), so parafine's --validation-split needs it exactly.
#pragma once

#include <array>
#include <cstdint>
#include <utility>
#include <vector>

namespace parafine {

class NumpyRandomState {
 public:
  static constexpr int kStateLen = 624;  // numpy's RK_STATE_LEN

  // np.random.RandomState(seed); seed in [0, 2**32 - 1] (numpy raises otherwise; so does this:
  // std::invalid_argument naming the seed).
  explicit NumpyRandomState(std::int64_t seed);

  // mt19937_next32: the next tempered 32-bit output (random_raw of the bit generator).
  std::uint32_t next_uint32();
  // mt19937_next64: two 32-bit outputs, the first one in the high half.
  std::uint64_t next_uint64();
  // numpy random_interval(max): uniform in [0, max] by masked rejection; draws 32-bit outputs
  // when max <= 0xffffffff, else 64-bit ones. max == 0 draws nothing.
  std::uint64_t random_interval(std::uint64_t max);

  // RandomState.shuffle of a 1-d sequence of n items: for i = n-1 down to 1,
  // j = random_interval(i), swap(x[i], x[j]).
  template <typename T>
  void shuffle(std::vector<T>& x) {
    for (std::size_t i = x.size() > 0 ? x.size() - 1 : 0; i >= 1; --i) {
      const std::size_t j = static_cast<std::size_t>(random_interval(i));
      std::swap(x[i], x[j]);
    }
  }
  // The permutation shuffle applies: perm[k] = the original index now at position k.
  std::vector<std::size_t> shuffled_indices(std::size_t n);

  // get_state()[1] (the key array) and get_state()[2] (pos), for tests.
  const std::array<std::uint32_t, kStateLen>& key() const { return key_; }
  int pos() const { return pos_; }

 private:
  void generate();  // mt19937_gen: refill key_ (pos_ = 0)
  std::array<std::uint32_t, kStateLen> key_{};
  int pos_ = kStateLen;
};

}  // namespace parafine
