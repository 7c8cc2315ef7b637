// bfloat16 rounding (core/bfloat16.hpp) against values worked out by hand from the format
// (1 sign, 8 exponent, 7 stored significand bits; round to nearest, ties to even), and the
// --precision choice (core/precision.hpp) for CPUs with and without bfloat16 support.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdint>
#include <iostream>
#include <limits>
#include <vector>

#include "parafine/core/bfloat16.hpp"
#include "parafine/core/precision.hpp"

namespace parafine {
namespace {

TEST(Bfloat16, RoundsToNearestEven) {
  const float ulp1 = std::ldexp(1.0f, -7);  // bfloat16's spacing in [1, 2)
  struct Case {
    float in, out;
  };
  const Case cases[] = {
      {1.0f, 1.0f},
      {1.0f + ulp1, 1.0f + ulp1},                  // representable
      {1.0f + ulp1 / 2, 1.0f},                     // tie: to the even 1.0
      {1.0f + 3 * ulp1 / 2, 1.0f + 2 * ulp1},      // tie: to the even 1 + 2 ulp
      {1.0f + ulp1 / 2 + ulp1 / 64, 1.0f + ulp1},  // just above the tie
      {-(1.0f + ulp1 / 2 + ulp1 / 64), -(1.0f + ulp1)},
      {3.14159265f, 3.140625f},
      {0.0f, 0.0f},
      {std::numeric_limits<float>::infinity(), std::numeric_limits<float>::infinity()},
      {std::numeric_limits<float>::max(), std::numeric_limits<float>::infinity()},  // overflows
  };
  for (const Case& c : cases) {
    const float got = round_to_bfloat16(c.in);
    std::cout << c.in << " -> " << got << " (expected " << c.out << ")\n";
    EXPECT_EQ(got, c.out) << c.in;
  }
  EXPECT_TRUE(std::isnan(round_to_bfloat16(std::numeric_limits<float>::quiet_NaN())));
  // A signalling-NaN pattern whose payload lies only in the low 16 bits stays a NaN.
  const std::uint32_t snan = 0x7f800001u;
  float v;
  std::memcpy(&v, &snan, sizeof v);
  EXPECT_TRUE(std::isnan(round_to_bfloat16(v)));
}

TEST(Bfloat16, WordsRoundTripAndBulkMatchesScalar) {
  std::vector<float> x(100000);
  for (std::size_t i = 0; i < x.size(); ++i)
    x[i] = std::sin(static_cast<float>(i)) * std::ldexp(1.0f, static_cast<int>(i % 40) - 20);
  std::vector<std::uint16_t> words(x.size());
  std::vector<float> back(x.size()), rounded(x.size());
  to_bfloat16_words(x.data(), x.size(), words.data());
  from_bfloat16_words(words.data(), words.size(), back.data());
  round_to_bfloat16(x.data(), x.size(), rounded.data());
  std::size_t mismatches = 0;
  double worst = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    mismatches += back[i] != round_to_bfloat16(x[i]) || rounded[i] != back[i];
    if (x[i] != 0.0f) worst = std::max(worst, std::abs(static_cast<double>(back[i] - x[i]) / x[i]));
  }
  std::cout << "worst relative rounding error " << worst << " (bound 2^-8 = " << std::ldexp(1.0, -8)
            << ")\n";
  EXPECT_EQ(mismatches, 0u);
  EXPECT_LE(worst, std::ldexp(1.0, -8));  // half the spacing 2^-7 of [1, 2)
}

TEST(Precision, ChoiceFollowsTheRequestAndTheCpu) {
  std::string note;
  const CpuBfloat16 none{}, avx512{true, false}, amx{false, true};
  EXPECT_EQ(choose_precision("float32", none, note), Precision::kFloat32);
  EXPECT_TRUE(note.empty());
  EXPECT_EQ(choose_precision("mixed_bfloat16", avx512, note), Precision::kMixedBfloat16);
  EXPECT_EQ(choose_precision("mixed_bfloat16", amx, note), Precision::kMixedBfloat16);
  EXPECT_FALSE(note.empty());
  try {
    choose_precision("mixed_bfloat16", none, note);
    ADD_FAILURE() << "mixed_bfloat16 accepted on a CPU without bfloat16";
  } catch (const std::invalid_argument& e) {
    std::cout << e.what() << "\n";
    EXPECT_NE(std::string(e.what()).find("AVX512_BF16"), std::string::npos);
  }
  for (const CpuBfloat16& cpu : {none, avx512, amx}) {
    EXPECT_EQ(choose_precision("auto", cpu, note), Precision::kFloat32);
    std::cout << note << "\n";
    EXPECT_NE(note.find("float32"), std::string::npos);
  }
  EXPECT_THROW(choose_precision("float16", avx512, note), std::invalid_argument);
  EXPECT_STREQ(precision_name(Precision::kMixedBfloat16), "mixed_bfloat16");
  const CpuBfloat16 here = cpu_bfloat16();
  std::cout << "this CPU: avx512_bf16 " << here.avx512_bf16 << ", amx_bf16 " << here.amx_bf16
            << "\n";
}

}  // namespace
}  // namespace parafine
