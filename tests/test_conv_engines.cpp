// The two Conv2D engines against each other (oneDNN primitives, im2col + OpenBLAS sgemm; the
// finite-difference and naive-convolution tests in test_grad_conv2d.cpp check each on its own):
// forward, input and kernel gradients agree on odd shapes; the oneDNN primitive cache gives the
// right result when the batch size changes and back; forward_with (substitute kernel and bias,
// fused ReLU) agrees; non-square kernels and activation='relu' agree; under mixed_bfloat16 the
// ReLU activation is exactly the ReLU of the unactivated bfloat16 output; PARAFINE_CONV_ENGINE's
// values are named.
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
  int n, h, w, cin, cout, k, stride;  // k: the kernel's height (and width unless kw is set)
  Padding padding;
  int kw = 0;         // kernel width; 0: square
  bool relu = false;  // activation='relu'
  KernelSize kernel() const { return {k, kw > 0 ? kw : k}; }
  ConvActivation activation() const { return relu ? ConvActivation::kRelu : ConvActivation::kNone; }
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
      : onednn(std::string("onednn_") + s.name, s.cout, s.kernel(), s.stride, s.padding, true,
               s.activation()),
        im2col(std::string("im2col_") + s.name, s.cout, s.kernel(), s.stride, s.padding, true,
               s.activation()) {
    onednn.set_engine(ConvEngine::kOneDnn);
    im2col.set_engine(ConvEngine::kIm2col);
    const Shape in{s.n, s.h, s.w, s.cin};
    onednn.infer_shape({in});
    im2col.infer_shape({in});
    const std::size_t kn = static_cast<std::size_t>(s.kernel().h) * s.kernel().w * s.cin * s.cout;
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
      // InceptionV3's non-square kernels, and strided / 'valid' ones.
      {"k1x7_same_s1", 2, 9, 11, 6, 8, 1, 1, Padding::kSame, 7},
      {"k7x1_same_s1", 2, 11, 9, 6, 8, 7, 1, Padding::kSame, 1},
      {"k3x1_same_s2_odd", 1, 9, 8, 5, 7, 3, 2, Padding::kSame, 1},
      {"k1x3_valid_s2_odd", 1, 8, 9, 5, 7, 1, 2, Padding::kValid, 3},
      {"k5x3_same_s2_odd", 1, 11, 10, 4, 6, 5, 2, Padding::kSame, 3},
      // activation='relu' (VGG's 3x3 'same'), and with a non-square kernel.
      {"k3_same_s1_relu", 2, 7, 6, 5, 8, 3, 1, Padding::kSame, 0, true},
      {"k1x7_same_s2_relu", 1, 9, 11, 4, 6, 1, 2, Padding::kSame, 7, true},
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
// A conv with its own activation refuses it (a BN folded past the ReLU would be wrong).
TEST_P(ConvEngines, ForwardWithReluAgrees) {
  const Shape4& s = GetParam();
  EnginePair p(s);
  Rng rng(31);
  Tensor x(Shape{s.n, s.h, s.w, s.cin});
  gradcheck::fill_uniform(x, -1.0, 1.0, rng);
  std::vector<float> kernel(p.kernel.size()), bias(p.bias.size());
  gradcheck::fill_uniform(kernel.data(), kernel.size(), -1.0, 1.0, rng);
  gradcheck::fill_uniform(bias.data(), bias.size(), -1.0, 1.0, rng);
  if (s.relu) {
    Tensor y;
    for (Conv2D* c : {&p.onednn, &p.im2col})
      EXPECT_THROW(c->forward_with(x, y, unstamped(kernel), bias.data(), false),
                   std::invalid_argument);
    return;
  }
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
  if (s.relu) GTEST_SKIP() << "forward_with refuses a conv with an activation";
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
  if (s.relu) GTEST_SKIP() << "forward_with refuses a conv with an activation";
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

// activation='relu' against the same layer without it: forward is relu of its output exactly
// (float32 and mixed_bfloat16: the ReLU of a bfloat16 value is one), the gradients are those of
// dy masked by out > 0, on both engines; a frozen (stamped) kernel gives the same.
TEST(ConvEngines, ReluActivationIsReluOfTheLinearConv) {
  const Shape4 lin{"k3x1_same_s2_linear", 2, 9, 8, 5, 6, 3, 2, Padding::kSame, 1};
  Shape4 act = lin;
  act.name = "k3x1_same_s2_relu";
  act.relu = true;
  for (const bool bf16 : {false, true}) {
    EnginePair a(act), l(lin);
    for (Conv2D* c : {&a.onednn, &a.im2col, &l.onednn, &l.im2col}) c->set_bfloat16_compute(bf16);
    Rng rng(51);
    Tensor x(Shape{act.n, act.h, act.w, act.cin});
    gradcheck::fill_uniform(x, -1.0, 1.0, rng);
    for (const std::uint64_t stamp : {0, 9}) {
      for (auto [ca, cl] : {std::pair<Conv2D*, Conv2D*>{&a.onednn, &l.onednn},
                            std::pair<Conv2D*, Conv2D*>{&a.im2col, &l.im2col}}) {
        const std::string what = std::string(conv_engine_name(ca->engine())) +
                                 (bf16 ? " mixed_bfloat16" : " float32") +
                                 (stamp ? " stamped" : "");
        ca->set_kernel_stamp(stamp);
        Tensor ya, yl, dxa, dxl;
        ca->forward({&x}, ya, true);
        cl->forward({&x}, yl, true);
        ASSERT_EQ(ya.shape(), yl.shape());
        std::size_t zeros = 0;
        for (std::size_t i = 0; i < ya.numel(); ++i) {
          ASSERT_EQ(ya[i], yl[i] > 0.0f ? yl[i] : 0.0f) << what << " output " << i;
          zeros += ya[i] == 0.0f;
        }
        EXPECT_GT(zeros, 0u) << what << ": the case exercises the ReLU";
        EXPECT_LT(zeros, ya.numel()) << what;
        Tensor dy(ya.shape()), masked(ya.shape());
        gradcheck::fill_uniform(dy, -1.0, 1.0, rng);
        for (std::size_t i = 0; i < dy.numel(); ++i) masked[i] = ya[i] > 0.0f ? dy[i] : 0.0f;
        ca->backward({&x}, ya, dy, {&dxa});
        cl->backward({&x}, yl, masked, {&dxl});
        for (std::size_t i = 0; i < dxa.numel(); ++i)
          ASSERT_EQ(dxa[i], dxl[i]) << what << " input gradient " << i;
        const auto& dka = ca == &a.onednn ? a.dk_onednn : a.dk_im2col;
        const auto& dkl = cl == &l.onednn ? l.dk_onednn : l.dk_im2col;
        const auto& dba = ca == &a.onednn ? a.db_onednn : a.db_im2col;
        const auto& dbl = cl == &l.onednn ? l.db_onednn : l.db_im2col;
        EXPECT_EQ(dka, dkl) << what << " kernel gradient";
        EXPECT_EQ(dba, dbl) << what << " bias gradient";
      }
    }
  }
}

// A BatchNormalization after a conv with a ReLU does not cancel its bias: the bias gradient
// is kept even when the Model says it would be zero.
TEST(ConvEngines, ReluActivationKeepsTheBiasGradientBeforeBatchNormalization) {
  Shape4 s{"k3_same_s1_relu_bn", 2, 6, 5, 3, 4, 3, 1, Padding::kSame, 0, true};
  EnginePair p(s);
  Rng rng(61);
  Tensor x(Shape{s.n, s.h, s.w, s.cin});
  gradcheck::fill_uniform(x, -1.0, 1.0, rng);
  for (Conv2D* c : {&p.onednn, &p.im2col}) {
    c->set_bias_gradient_is_zero(true);
    Tensor y, dx;
    c->forward({&x}, y, true);
    Tensor dy(y.shape());
    gradcheck::fill_uniform(dy, -1.0, 1.0, rng);
    c->backward({&x}, y, dy, {&dx});
    double expected = 0.0;  // bias gradient of channel 0: sum of dy over outputs > 0
    for (std::size_t i = 0; i < y.numel(); i += static_cast<std::size_t>(s.cout))
      expected += y[i] > 0.0f ? dy[i] : 0.0f;
    const float got = c == &p.onednn ? p.db_onednn[0] : p.db_im2col[0];
    EXPECT_NEAR(got, expected, 1e-5) << conv_engine_name(c->engine());
    EXPECT_NE(got, 0.0f);
  }
}

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
