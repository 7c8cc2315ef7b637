// Dropout: the documented keyed mask rule (dropout.hpp) against values computed in Python, the
// kept fraction and scaling, masks that follow the sample key and not the batch position,
// identity outside training, the missing-key error, and the gradient by finite differences.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <vector>

#include "gradient_checker.hpp"
#include "parafine/layers/dense.hpp"
#include "parafine/layers/dropout.hpp"
#include "parafine/layers/flatten.hpp"
#include "parafine/layers/simple_layers.hpp"
#include "parafine/model/model.hpp"

namespace parafine {
namespace {

using gradcheck::LayerFixture;
using gradcheck::Rng;

// The rule of dropout.hpp, reimplemented here from its comment (not from dropout.cpp).
std::uint64_t ref_splitmix64(std::uint64_t x) {
  std::uint64_t z = x + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double ref_u(std::uint64_t seed_value, const std::string& name, std::uint64_t key,
             std::uint64_t j) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char b : name) {
    h ^= b;
    h *= 0x100000001b3ull;
  }
  const std::uint64_t stream = ref_splitmix64(seed_value ^ h);
  const std::uint64_t bits = ref_splitmix64(ref_splitmix64(stream ^ key) ^ j);
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

// u for elements j = 0, 1, 2, 3, 100 of keys 0, 5 and 123456789, printed by python3 running
// the rule above in arbitrary-precision integers masked to 64 bits:
//   def splitmix64(x): z = (x + 0x9E3779B97F4A7C15) & M; z = ((z ^ (z >> 30)) *
//     0xBF58476D1CE4E5B9) & M; z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M; return z ^ (z >> 31)
//   fnv1a64 over name.encode(); u = (bits >> 11) * 2.0**-53, printed with "%.17g".
struct PythonCase {
  std::optional<std::uint64_t> seed, run_seed;
  const char* name;
  std::uint64_t key;
  double u[5];
};
constexpr std::uint64_t kJ[5] = {0, 1, 2, 3, 100};
const PythonCase kPython[] = {
    {std::nullopt,
     std::nullopt,
     "dropout",
     0,
     {0.47055706084039439, 0.46166839195112508, 0.62566076423923567, 0.62424530209719931,
      0.95135670536301853}},
    {std::nullopt,
     std::nullopt,
     "dropout",
     5,
     {0.41328943441998789, 0.9779258487426149, 0.64486973464469, 0.80739591864656302,
      0.24090123697404808}},
    {std::nullopt,
     std::nullopt,
     "dropout",
     123456789,
     {0.89453866732541609, 0.55421579724656878, 0.87679044596902411, 0.49398347619025584,
      0.58254530715664499}},
    {42,
     std::nullopt,
     "dropout_1",
     0,
     {0.016691117183360693, 0.025986427676260804, 0.72428578885305039, 0.0013612029311542706,
      0.49107869938928217}},
    {42,
     std::nullopt,
     "dropout_1",
     5,
     {0.86595433266716249, 0.21520926865443013, 0.19340874660313834, 0.61480189217623371,
      0.73825512172381957}},
    {42,
     std::nullopt,
     "dropout_1",
     123456789,
     {0.48894358883660749, 0.66992201557054942, 0.82604330714029417, 0.082110484206298406,
      0.54313249449933554}},
    {42,
     7,
     "dropout_1",
     0,
     {0.037542267910584015, 0.868239542044135, 0.17086804591860449, 0.85115513092025852,
      0.59746816090337074}},
    {42,
     7,
     "dropout_1",
     5,
     {0.67664436604677469, 0.43367028398048424, 0.46756105870802278, 0.99085953556518547,
      0.8279453555161046}},
    {42,
     7,
     "dropout_1",
     123456789,
     {0.89947338430232116, 0.84292460983265283, 0.82469311658711753, 0.72581572343899703,
      0.22494435076733654}},
};

// A training forward of one sample [1, 101] of ones with key `key`.
Tensor drop_ones(Dropout& d, std::uint64_t key, Workspace& ws) {
  Tensor x(Shape{1, 101}), y;
  x.fill(1.0f);
  d.set_workspace(&ws);
  d.infer_shape({x.shape()});
  ws.sample_keys = {key};
  d.forward({&x}, y, true);
  return y;
}

TEST(Dropout, MasksFollowTheDocumentedRule) {
  Workspace ws;
  int checked = 0;
  for (const PythonCase& c : kPython) {
    const std::uint64_t sv = c.seed.value_or(0) ^ (c.run_seed ? ref_splitmix64(*c.run_seed) : 0);
    for (int e = 0; e < 5; ++e) {
      const double u = ref_u(sv, c.name, c.key, kJ[e]);
      ASSERT_EQ(u, c.u[e]) << "the test's reimplementation disagrees with Python at " << c.name
                           << " key " << c.key << " j " << kJ[e];
    }
    for (float rate : {0.1f, 0.25f, 0.5f, 0.75f, 0.9f}) {
      Dropout d(c.name, rate, c.seed);
      if (c.run_seed) d.set_run_seed(*c.run_seed);
      const Tensor y = drop_ones(d, c.key, ws);
      const float scale = static_cast<float>(1.0 / (1.0 - rate));
      for (int e = 0; e < 5; ++e) {
        const bool keep = c.u[e] >= static_cast<double>(rate);
        EXPECT_EQ(y[kJ[e]], keep ? scale : 0.0f)
            << c.name << " key " << c.key << " j " << kJ[e] << " u " << c.u[e] << " rate " << rate;
        EXPECT_EQ(d.keeps(c.key, kJ[e]), keep);
        ++checked;
      }
    }
  }
  std::cout << "[dropout] " << checked << " elements checked against the Python rule" << std::endl;
}

TEST(Dropout, KeptFractionAndScaling) {
  const float rate = 0.3f;
  Dropout d("dropout", rate, 1234);
  Workspace ws;
  d.set_workspace(&ws);
  Tensor x(Shape{10, 100, 100, 1}), y;  // 100k elements
  Rng rng(7);
  gradcheck::fill_uniform(x, 0.5, 1.5, rng);  // never 0: a zero output means dropped
  d.infer_shape({x.shape()});
  ws.sample_keys = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  d.forward({&x}, y, true);
  const float scale = static_cast<float>(1.0 / (1.0 - 0.3f));
  std::size_t kept = 0, misscaled = 0;
  for (std::size_t e = 0; e < x.numel(); ++e) {
    if (y[e] == 0.0f) continue;
    ++kept;
    misscaled += y[e] != x[e] * scale;
  }
  const double fraction = static_cast<double>(kept) / static_cast<double>(x.numel());
  // Binomial standard deviation sqrt(0.21 / 1e5) = 0.00145: 0.01 is ~7 of them.
  std::cout << "[dropout] rate 0.3: kept fraction " << fraction << " (expected 0.7, tolerance 0.01)"
            << std::endl;
  EXPECT_NEAR(fraction, 0.7, 0.01);
  EXPECT_EQ(misscaled, 0u) << "kept values must be x * float32(1 / (1 - rate))";
}

TEST(Dropout, SameKeySameMaskAtAnyBatchPosition) {
  Dropout d("dropout", 0.5f);
  Workspace ws;
  d.set_workspace(&ws);
  Tensor x(Shape{3, 4, 4, 2}), y1, y2;
  x.fill(1.0f);
  d.infer_shape({x.shape()});
  const std::size_t per = 32;
  ws.sample_keys = {11, 22, 33};
  d.forward({&x}, y1, true);
  ws.sample_keys = {33, 11, 44};
  d.forward({&x}, y2, true);
  std::size_t moved_11 = 0, moved_33 = 0, same_22_44 = 0;
  for (std::size_t j = 0; j < per; ++j) {
    moved_11 += y1[0 * per + j] != y2[1 * per + j];
    moved_33 += y1[2 * per + j] != y2[0 * per + j];
    same_22_44 += y1[1 * per + j] == y2[2 * per + j];
  }
  EXPECT_EQ(moved_11, 0u) << "key 11 at positions 0 and 1";
  EXPECT_EQ(moved_33, 0u) << "key 33 at positions 2 and 0";
  std::cout << "[dropout] keys 22 and 44 agree on " << same_22_44 << " of " << per << std::endl;
  EXPECT_LT(same_22_44, per) << "different keys gave the same mask";
}

TEST(Dropout, SeedsAndNamesChangeTheMask) {
  Workspace ws;
  auto mask = [&](Dropout d) {
    Tensor y = drop_ones(d, 9, ws);
    std::vector<bool> m(y.numel());
    for (std::size_t e = 0; e < y.numel(); ++e) m[e] = y[e] != 0.0f;
    return m;
  };
  Dropout run_seeded("dropout", 0.5f);
  run_seeded.set_run_seed(3);
  const auto base = mask(Dropout("dropout", 0.5f));
  EXPECT_NE(base, mask(Dropout("dropout_1", 0.5f))) << "layer name";
  EXPECT_NE(base, mask(Dropout("dropout", 0.5f, 1))) << "config seed";
  EXPECT_NE(base, mask(run_seeded)) << "run seed";
  EXPECT_EQ(base, mask(Dropout("dropout", 0.5f))) << "same everything";
}

TEST(Dropout, IdentityInInferenceInferenceOnlyAndRateZero) {
  Workspace ws;  // no keys: none are needed
  Tensor x(Shape{2, 3, 3, 2}), y;
  Rng rng(8);
  gradcheck::fill_uniform(x, -1.0, 1.0, rng);
  auto same = [&](const Tensor& t) {
    for (std::size_t e = 0; e < x.numel(); ++e)
      if (t[e] != x[e]) return false;
    return true;
  };
  Dropout d("dropout", 0.5f);
  d.set_workspace(&ws);
  d.infer_shape({x.shape()});
  d.forward({&x}, y, false);
  EXPECT_TRUE(same(y)) << "inference";
  d.set_inference_only(true);
  d.forward({&x}, y, true);
  EXPECT_TRUE(same(y)) << "inference_only, training forward";
  Dropout zero("dropout_0", 0.0f);
  zero.set_workspace(&ws);
  zero.infer_shape({x.shape()});
  zero.forward({&x}, y, true);
  EXPECT_TRUE(same(y)) << "rate 0";
  Tensor dy(x.shape()), dx;
  gradcheck::fill_uniform(dy, -1.0, 1.0, rng);
  d.backward({&x}, y, dy, {&dx});
  for (std::size_t e = 0; e < x.numel(); ++e) ASSERT_EQ(dx[e], dy[e]) << "identity backward";
}

TEST(Dropout, MissingKeysThrow) {
  Dropout d("dropout_head", 0.5f);
  Workspace ws;
  d.set_workspace(&ws);
  Tensor x(Shape{3, 4}), y;
  x.fill(1.0f);
  d.infer_shape({x.shape()});
  try {
    d.forward({&x}, y, true);
    FAIL() << "a training forward without keys ran";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("dropout_head"), std::string::npos) << e.what();
  }
  ws.sample_keys = {1, 2};  // one short
  EXPECT_THROW(d.forward({&x}, y, true), std::logic_error);
  ws.sample_keys = {1, 2, 3};
  EXPECT_NO_THROW(d.forward({&x}, y, true));
}

TEST(Dropout, RateOutsideZeroOneIsRefused) {
  EXPECT_THROW(Dropout("d", 1.0f), std::invalid_argument);
  EXPECT_THROW(Dropout("d", -0.1f), std::invalid_argument);
  EXPECT_THROW(Dropout("d", std::nanf("")), std::invalid_argument);
}

TEST(Dropout, GradientByFiniteDifferences) {
  Rng rng(9);
  Dropout d("dropout", 0.4f, 5);
  Tensor x(Shape{3, 2, 2, 5});
  gradcheck::fill_uniform(x, -1.0, 1.0, rng);
  LayerFixture fx(d, {x.shape()}, rng);
  fx.workspace.sample_keys = {100, 200, 300};  // the same masks at every perturbation
  gradcheck::Options opt;
  opt.input_names = {"input"};
  EXPECT_EQ(gradcheck::check_gradients(d, {&x}, opt).failed(), 0u);
  // The analytic gradient is dy * keep * scale: zeros where dropped.
  Tensor y, dy(x.shape()), dx;
  dy.fill(1.0f);
  d.forward({&x}, y, true);
  d.backward({&x}, y, dy, {&dx});
  const float scale = static_cast<float>(1.0 / (1.0 - 0.4f));
  std::size_t wrong = 0;
  for (std::size_t e = 0; e < x.numel(); ++e) wrong += dx[e] != (y[e] != 0.0f ? scale : 0.0f);
  EXPECT_EQ(wrong, 0u);
}

// In a Model, the keys come from Model::set_sample_keys: the mask of a sample follows its key.
TEST(Dropout, ReadsTheModelsSampleKeys) {
  Model m;
  int x = m.add(std::make_unique<InputLayer>("input", Shape{4, 4, 2}));
  x = m.add(std::make_unique<Flatten>("flatten"), {x});
  const int drop = m.add(std::make_unique<Dropout>("dropout", 0.5f), {x});
  m.add(std::make_unique<Dense>("predictions", 2, Activation::kSoftmax), {drop});
  m.build();
  m.keep_output(drop);
  Tensor images(Shape{2, 4, 4, 2});
  images.fill(1.0f);
  EXPECT_THROW(m.forward(images, true), std::logic_error) << "no keys set";
  m.set_sample_keys({7, 8});
  m.forward(images, true);
  const Tensor first = m.output(drop);
  m.set_sample_keys({8, 7});
  m.forward(images, true);
  const Tensor& swapped = m.output(drop);
  std::size_t moved = 0, dropped = 0;
  for (std::size_t j = 0; j < 32; ++j) {
    moved += first[j] != swapped[32 + j] || first[32 + j] != swapped[j];
    dropped += first[j] == 0.0f;
  }
  EXPECT_EQ(moved, 0u) << "a sample's mask must follow its key";
  EXPECT_GT(dropped, 0u);
  m.set_sample_keys({1, 2, 3});
  EXPECT_THROW(m.forward(images, true), std::logic_error) << "3 keys for 2 samples";
  EXPECT_NO_THROW(m.forward(images, false)) << "inference needs no keys";
}

}  // namespace
}  // namespace parafine
