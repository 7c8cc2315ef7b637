// The two Conv2D engines against each other (oneDNN primitives, im2col + OpenBLAS sgemm; the
// finite-difference and naive-convolution tests in test_grad_conv2d.cpp check each on its own):
// forward, input and kernel gradients agree on odd shapes; the oneDNN primitive cache gives the
// right result when the batch size changes and back; forward_with (substitute kernel and bias,
// fused ReLU) agrees; PARAFINE_CONV_ENGINE's values are named.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "gradient_checker.hpp"
#include "parafine/layers/conv2d.hpp"

namespace parafine {
namespace {

using gradcheck::Rng;

struct Shape4 {
  const char* name;
  int n, h, w, cin, cout, k, stride;
  Padding padding;
};

// |a - b| <= 1e-4 * max(1, max |b|) elementwise: float32 sums in a different order.
void expect_close(const float* a, const float* b, std::size_t n, const std::string& what) {
  float scale = 1.0f;
  for (std::size_t i = 0; i < n; ++i) scale = std::max(scale, std::abs(b[i]));
  for (std::size_t i = 0; i < n; ++i)
    ASSERT_NEAR(a[i], b[i], 1e-4f * scale) << what << " element " << i << " of " << n;
}

// Two layers of the same configuration, one per engine, sharing one kernel and bias.
struct EnginePair {
  Conv2D onednn, im2col;
  std::vector<float> kernel, bias, dk_onednn, db_onednn, dk_im2col, db_im2col;
  Workspace ws_onednn, ws_im2col;

  explicit EnginePair(const Shape4& s)
      : onednn(std::string("onednn_") + s.name, s.cout, s.k, s.stride, s.padding),
        im2col(std::string("im2col_") + s.name, s.cout, s.k, s.stride, s.padding) {
    onednn.set_engine(ConvEngine::kOneDnn);
    im2col.set_engine(ConvEngine::kIm2col);
    const Shape in{s.n, s.h, s.w, s.cin};
    onednn.infer_shape({in});
    im2col.infer_shape({in});
    const std::size_t kn = static_cast<std::size_t>(s.k) * s.k * s.cin * s.cout;
    kernel.resize(kn);
    bias.resize(static_cast<std::size_t>(s.cout));
    Rng rng(7);
    gradcheck::fill_uniform(kernel.data(), kn, -1.0, 1.0, rng);
    gradcheck::fill_uniform(bias.data(), bias.size(), -1.0, 1.0, rng);
    dk_onednn.resize(kn);
    dk_im2col.resize(kn);
    db_onednn.resize(bias.size());
    db_im2col.resize(bias.size());
    onednn.bind_param(0, kernel.data(), dk_onednn.data());
    onednn.bind_param(1, bias.data(), db_onednn.data());
    im2col.bind_param(0, kernel.data(), dk_im2col.data());
    im2col.bind_param(1, bias.data(), db_im2col.data());
    onednn.set_workspace(&ws_onednn);
    im2col.set_workspace(&ws_im2col);
  }

  // Forward and backward on both engines at batch n; every result compared.
  void expect_agree(const Shape4& s, int n, std::uint64_t seed) {
    Rng rng(seed);
    Tensor x(Shape{n, s.h, s.w, s.cin});
    gradcheck::fill_uniform(x, -1.0, 1.0, rng);
    Tensor y1, y2, dx1, dx2;
    onednn.forward({&x}, y1, true);
    im2col.forward({&x}, y2, true);
    ASSERT_EQ(y1.shape(), y2.shape());
    expect_close(y1.data(), y2.data(), y1.numel(), std::string(s.name) + " forward");
    Tensor dy(y1.shape());
    gradcheck::fill_uniform(dy, -1.0, 1.0, rng);
    onednn.backward({&x}, y1, dy, {&dx1});
    im2col.backward({&x}, y2, dy, {&dx2});
    expect_close(dx1.data(), dx2.data(), dx1.numel(), std::string(s.name) + " input gradient");
    expect_close(dk_onednn.data(), dk_im2col.data(), dk_onednn.size(),
                 std::string(s.name) + " kernel gradient");
    expect_close(db_onednn.data(), db_im2col.data(), db_onednn.size(),
                 std::string(s.name) + " bias gradient");
  }
};

std::vector<Shape4> odd_shapes() {
  return {
      {"k3_same_s2_odd", 1, 9, 11, 3, 5, 3, 2, Padding::kSame},
      {"k3_same_s1_odd", 3, 7, 5, 6, 8, 3, 1, Padding::kSame},
      {"k1_s2_odd", 1, 9, 7, 5, 6, 1, 2, Padding::kValid},
      {"k1_s1", 2, 5, 3, 7, 9, 1, 1, Padding::kValid},
      {"k7_valid_s2_odd", 1, 15, 14, 3, 8, 7, 2, Padding::kValid},
      {"k7_valid_s2_conv1_like", 2, 38, 38, 3, 16, 7, 2, Padding::kValid},
  };
}

class ConvEngines : public ::testing::TestWithParam<Shape4> {};

TEST_P(ConvEngines, AgreeOnForwardAndGradients) {
  const Shape4& s = GetParam();
  EnginePair p(s);
  p.expect_agree(s, s.n, 11);
}

// The oneDNN engine caches primitives per input shape: a different batch gets its own, and
// going back reuses the first (and still computes the right thing).
TEST_P(ConvEngines, PrimitiveCacheFollowsTheBatchSize) {
  const Shape4& s = GetParam();
  EnginePair p(s);
  p.expect_agree(s, s.n, 21);
  const int first = p.onednn.onednn_cached_primitives();
  EXPECT_EQ(first, 3) << "forward, backward-data, backward-weights";
  p.expect_agree(s, s.n + 2, 22);
  EXPECT_EQ(p.onednn.onednn_cached_primitives(), 2 * first);
  p.expect_agree(s, s.n, 23);
  EXPECT_EQ(p.onednn.onednn_cached_primitives(), 2 * first) << "the first shape's are reused";
  EXPECT_EQ(p.im2col.onednn_cached_primitives(), 0);
}

// A KernelSource for a kernel that may change between calls (stamp 0).
KernelSource unstamped(const std::vector<float>& kernel) {
  const float* k = kernel.data();
  return KernelSource{0, [k] { return k; }};
}

// forward_with: a substitute kernel and bias (a folded BN) and the fused ReLU.
TEST_P(ConvEngines, ForwardWithReluAgrees) {
  const Shape4& s = GetParam();
  EnginePair p(s);
  Rng rng(31);
  Tensor x(Shape{s.n, s.h, s.w, s.cin});
  gradcheck::fill_uniform(x, -1.0, 1.0, rng);
  std::vector<float> kernel(p.kernel.size()), bias(p.bias.size());
  gradcheck::fill_uniform(kernel.data(), kernel.size(), -1.0, 1.0, rng);
  gradcheck::fill_uniform(bias.data(), bias.size(), -1.0, 1.0, rng);
  for (const bool relu : {true, false}) {
    Tensor y1, y2, plain;
    p.onednn.forward_with(x, y1, unstamped(kernel), bias.data(), relu);
    p.im2col.forward_with(x, y2, unstamped(kernel), bias.data(), relu);
    expect_close(y1.data(), y2.data(), y1.numel(), std::string(s.name) + " forward_with");
    p.im2col.forward_with(x, plain, unstamped(kernel), bias.data(), false);
    std::size_t zeros = 0, negatives = 0;
    for (std::size_t i = 0; i < y1.numel(); ++i) {
      zeros += y1[i] == 0.0f;
      negatives += plain[i] < 0.0f;
      if (relu) ASSERT_GE(y1[i], 0.0f);
    }
    if (relu) EXPECT_EQ(zeros, negatives) << "ReLU zeroes exactly the negative outputs";
    if (relu) EXPECT_GT(zeros, 0u) << "the case exercises the ReLU";
  }
  // Without a bias, and the layer's own weights afterwards: the substitute did not stick.
  Tensor y1, y2;
  p.onednn.forward_with(x, y1, unstamped(kernel), nullptr, true);
  p.im2col.forward_with(x, y2, unstamped(kernel), nullptr, true);
  expect_close(y1.data(), y2.data(), y1.numel(), std::string(s.name) + " forward_with, no bias");
  p.onednn.forward({&x}, y1, false);
  p.im2col.forward({&x}, y2, false);
  expect_close(y1.data(), y2.data(), y1.numel(), std::string(s.name) + " forward after");
}

// accumulate (the residual Add fused): out = relu(conv + bias + shortcut), computed into the
// shortcut's buffer, on both engines, against conv + bias, then the Add and ReLU by hand.
TEST_P(ConvEngines, ForwardWithAccumulateAddsTheShortcut) {
  const Shape4& s = GetParam();
  EnginePair p(s);
  Rng rng(37);
  Tensor x(Shape{s.n, s.h, s.w, s.cin});
  gradcheck::fill_uniform(x, -1.0, 1.0, rng);
  std::vector<float> kernel(p.kernel.size()), bias(p.bias.size());
  gradcheck::fill_uniform(kernel.data(), kernel.size(), -1.0, 1.0, rng);
  gradcheck::fill_uniform(bias.data(), bias.size(), -1.0, 1.0, rng);
  Tensor plain;
  p.im2col.forward_with(x, plain, unstamped(kernel), bias.data(), false);
  Tensor shortcut(plain.shape());
  gradcheck::fill_uniform(shortcut, -2.0, 2.0, rng);
  for (const bool relu : {true, false}) {
    std::vector<float> expected(plain.numel());
    for (std::size_t i = 0; i < expected.size(); ++i) {
      const float v = plain[i] + shortcut[i];
      expected[i] = relu && v < 0.0f ? 0.0f : v;
    }
    for (Conv2D* c : {&p.onednn, &p.im2col}) {
      Tensor y = shortcut;
      c->forward_with(x, y, unstamped(kernel), bias.data(), relu, /*accumulate=*/true);
      expect_close(y.data(), expected.data(), y.numel(),
                   std::string(s.name) + " accumulate, " + conv_engine_name(c->engine()) +
                       (relu ? ", relu" : ""));
    }
  }
  Tensor wrong(Shape{s.n, 1, 1, s.cout});
  EXPECT_THROW(p.onednn.forward_with(x, wrong, unstamped(kernel), nullptr, false, true),
               std::invalid_argument);
}

// A stamped kernel is asked for once per stamp: the same stamp reuses the copy oneDNN holds
// (even if the values behind it changed, which is why callers change the stamp with them), a
// new stamp fetches and uses the new values, and an unstamped call drops the copy.
TEST_P(ConvEngines, StampedKernelIsFetchedOncePerStamp) {
  const Shape4& s = GetParam();
  EnginePair p(s);
  Rng rng(41);
  Tensor x(Shape{s.n, s.h, s.w, s.cin});
  gradcheck::fill_uniform(x, -1.0, 1.0, rng);
  std::vector<float> a(p.kernel.size()), b(p.kernel.size());
  gradcheck::fill_uniform(a.data(), a.size(), -1.0, 1.0, rng);
  gradcheck::fill_uniform(b.data(), b.size(), -1.0, 1.0, rng);
  std::vector<float> current = a;
  int fetched = 0;
  auto source = [&](std::uint64_t stamp) {
    return KernelSource{stamp, [&] {
                          ++fetched;
                          return static_cast<const float*>(current.data());
                        }};
  };
  Tensor ya, yb, y;
  p.im2col.forward_with(x, ya, unstamped(a), nullptr, false);
  p.im2col.forward_with(x, yb, unstamped(b), nullptr, false);
  p.onednn.forward_with(x, y, source(7), nullptr, false);
  expect_close(y.data(), ya.data(), y.numel(), std::string(s.name) + " stamp 7");
  current = b;
  p.onednn.forward_with(x, y, source(7), nullptr, false);
  EXPECT_EQ(fetched, 1) << "the second call with stamp 7 reuses the held copy";
  expect_close(y.data(), ya.data(), y.numel(), std::string(s.name) + " stamp 7 again");
  p.onednn.forward_with(x, y, source(8), nullptr, false);
  EXPECT_EQ(fetched, 2);
  expect_close(y.data(), yb.data(), y.numel(), std::string(s.name) + " stamp 8");
  p.onednn.forward_with(x, y, unstamped(a), nullptr, false);
  p.onednn.forward_with(x, y, source(8), nullptr, false);
  EXPECT_EQ(fetched, 3) << "an unstamped call dropped the held copy";
}

INSTANTIATE_TEST_SUITE_P(OddShapes, ConvEngines, ::testing::ValuesIn(odd_shapes()),
                         [](const ::testing::TestParamInfo<Shape4>& i) {
                           return std::string(i.param.name);
                         });

// A rank with no samples in a step: both engines give an empty output and zero gradients.
TEST(ConvEngines, EmptyBatch) {
  const Shape4 s{"empty", 2, 6, 6, 3, 4, 3, 2, Padding::kSame};
  EnginePair p(s);
  Tensor x(Shape{0, 6, 6, 3}), y, dx;
  std::fill(p.dk_onednn.begin(), p.dk_onednn.end(), 1.0f);
  std::fill(p.dk_im2col.begin(), p.dk_im2col.end(), 1.0f);
  for (Conv2D* c : {&p.onednn, &p.im2col}) {
    c->forward({&x}, y, true);
    EXPECT_EQ(y.shape(), (Shape{0, 3, 3, 4}));
    Tensor dy(y.shape());
    c->backward({&x}, y, dy, {&dx});
    EXPECT_EQ(dx.shape(), x.shape());
  }
  for (float g : p.dk_onednn) ASSERT_EQ(g, 0.0f);
  for (float g : p.dk_im2col) ASSERT_EQ(g, 0.0f);
}

TEST(ConvEngines, Names) {
  EXPECT_STREQ(conv_engine_name(ConvEngine::kOneDnn), "onednn");
  EXPECT_STREQ(conv_engine_name(ConvEngine::kIm2col), "im2col");
}

}  // namespace
}  // namespace parafine
