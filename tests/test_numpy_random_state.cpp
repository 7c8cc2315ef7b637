// NumpyRandomState against python3's numpy (tests/reference/keras_validation_split.py numpy):
// the seeded key array, the first raw 32-bit outputs and RandomState.shuffle of range(n).
#include <gtest/gtest.h>

#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "parafine/core/numpy_random_state.hpp"
#include "test_util.hpp"

namespace parafine {
namespace {

struct NumpyReference {
  int pos = -1;
  std::vector<std::uint64_t> key, raw;
  std::vector<std::pair<std::size_t, std::vector<std::size_t>>> shuffles;       // (n, result)
  std::vector<std::pair<std::uint64_t, std::vector<std::uint64_t>>> intervals;  // (max, draws)
};

NumpyReference numpy_reference(std::int64_t seed, const std::vector<std::size_t>& sizes) {
  std::string cmd = std::string(PARAFINE_REFERENCE_PYTHON) + " " + PARAFINE_SPLIT_REFERENCE +
                    " numpy " + std::to_string(seed);
  for (std::size_t n : sizes) cmd += " " + std::to_string(n);
  const test_util::CommandResult reference = test_util::run_command(cmd);
  EXPECT_EQ(reference.exit_code, 0) << cmd << "\n" << reference.output;
  std::istringstream lines(reference.output);
  NumpyReference ref;
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream in(line);
    std::string tag;
    in >> tag;
    std::uint64_t v;
    if (tag == "key") {
      in >> ref.pos;
      while (in >> v) ref.key.push_back(v);
    } else if (tag == "raw") {
      while (in >> v) ref.raw.push_back(v);
    } else if (tag == "shuffle") {
      std::size_t n;
      in >> n;
      std::vector<std::size_t> x;
      while (in >> v) x.push_back(v);
      ref.shuffles.emplace_back(n, std::move(x));
    } else if (tag == "interval") {
      std::uint64_t max;
      in >> max;
      std::vector<std::uint64_t> x;
      while (in >> v) x.push_back(v);
      ref.intervals.emplace_back(max, std::move(x));
    }
  }
  return ref;
}

void check_seed(std::int64_t seed, const std::vector<std::size_t>& sizes) {
  const NumpyReference ref = numpy_reference(seed, sizes);
  NumpyRandomState rs(seed);
  ASSERT_EQ(ref.key.size(), 624u) << "seed " << seed;
  EXPECT_EQ(ref.pos, rs.pos()) << "seed " << seed;
  int key_mismatches = 0;
  for (int i = 0; i < 624; ++i) key_mismatches += ref.key[i] != rs.key()[i];
  EXPECT_EQ(key_mismatches, 0) << "seed " << seed << ": key words differing from numpy";
  ASSERT_EQ(ref.raw.size(), 1300u);
  int raw_mismatches = 0;
  for (std::size_t i = 0; i < ref.raw.size(); ++i) raw_mismatches += ref.raw[i] != rs.next_uint32();
  EXPECT_EQ(raw_mismatches, 0) << "seed " << seed << ": raw outputs differing (of 1300)";
  ASSERT_EQ(ref.shuffles.size(), sizes.size());
  for (const auto& [n, expected] : ref.shuffles) {
    const std::vector<std::size_t> got = NumpyRandomState(seed).shuffled_indices(n);
    ASSERT_EQ(got.size(), expected.size()) << "seed " << seed << " n " << n;
    std::size_t first_diff = n;
    for (std::size_t i = 0; i < n && first_diff == n; ++i)
      if (got[i] != expected[i]) first_diff = i;
    EXPECT_EQ(first_diff, n) << "seed " << seed << " n " << n << ": first differing position";
    std::printf("seed %lld n %zu: shuffle %s numpy\n", static_cast<long long>(seed), n,
                first_diff == n ? "equals" : "differs from");
  }
  // random_interval's 32- and 64-bit paths against the transliteration on numpy's raw outputs.
  ASSERT_EQ(ref.intervals.size(), 5u);
  for (const auto& [max, expected] : ref.intervals) {
    NumpyRandomState r(seed);
    int mismatches = 0;
    for (std::uint64_t e : expected) mismatches += r.random_interval(max) != e;
    EXPECT_EQ(mismatches, 0) << "seed " << seed << " max " << max << ": draws differing of "
                             << expected.size();
  }
}

TEST(NumpyRandomState, MatchesNumpyForManySeedsAndSizes) {
  for (std::int64_t seed : {0LL, 1LL, 42LL, 1337LL, 123456789LL, 4294967295LL})
    check_seed(seed, {0, 1, 2, 3, 10, 1000});
}

TEST(NumpyRandomState, LargeShuffleMatchesNumpy) {
  for (std::int64_t seed : {7LL, 2147483648LL}) check_seed(seed, {100000});
}

TEST(NumpyRandomState, RandomIntervalStaysInRangeAndShuffleTemplateAgrees) {
  NumpyRandomState rs(3);
  for (std::uint64_t max : {1ULL, 2ULL, 5ULL, 0xffffffffULL, 0x100000000ULL, ~0ULL})
    for (int i = 0; i < 100; ++i) EXPECT_LE(rs.random_interval(max), max);
  EXPECT_EQ(rs.random_interval(0), 0u);
  std::vector<std::string> words = {"a", "b", "c", "d", "e", "f", "g"};
  const std::vector<std::size_t> perm = NumpyRandomState(9).shuffled_indices(words.size());
  std::vector<std::string> shuffled = words;
  NumpyRandomState(9).shuffle(shuffled);
  for (std::size_t k = 0; k < words.size(); ++k) EXPECT_EQ(shuffled[k], words[perm[k]]);
}

TEST(NumpyRandomState, RejectsSeedsOutsideNumpysRange) {
  EXPECT_THROW(NumpyRandomState(-1), std::invalid_argument);
  EXPECT_THROW(NumpyRandomState(4294967296LL), std::invalid_argument);
}

}  // namespace
}  // namespace parafine
