// DepthwiseConv2D: forward against a direct depthwise convolution in double written from
// TensorFlow's definition (tf.nn.depthwise_conv2d: out[b,i,j,k*M+q] = sum_{di,dj}
// in[b, s*i+di-top, s*j+dj-left, k] * filter[di,dj,k,q], 'same' putting the extra padding at the
// bottom/right), backward (input, depthwise_kernel and bias gradients) against finite
// differences, for strides 1 and 2, 'same' and 'valid', odd sizes, with and without bias,
// depth_multiplier 1 (MobileNetV2) and 2; plus shape errors, empty batches and mixed_bfloat16.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <string>
#include <vector>

#include "gradient_checker.hpp"
#include "parafine/core/bfloat16.hpp"
#include "parafine/layers/depthwise_conv2d.hpp"

namespace parafine {
namespace {

using gradcheck::CorruptedBackward;
using gradcheck::LayerFixture;
using gradcheck::Rng;

struct DwCase {
  std::string name;
  int kernel, stride;
  Padding padding;
  int h, w, c;
  bool bias;
  int mult = 1;
  int n = 2;
};

void PrintTo(const DwCase& c, std::ostream* os) {
  *os << c.name << (c.bias ? " with bias" : " without bias") << " on input [" << c.n << "," << c.h
      << "," << c.w << "," << c.c << "] depth_multiplier " << c.mult;
}

std::vector<DwCase> cases() {
  std::vector<DwCase> v;
  for (bool bias : {true, false}) {
    v.push_back({"k3_same_s1", 3, 1, Padding::kSame, 6, 5, 4, bias});
    // 8 rows: total padding 1 -> 0 top, 1 bottom; 7 columns: 2 -> 1 left, 1 right.
    v.push_back({"k3_same_s2", 3, 2, Padding::kSame, 8, 7, 5, bias});
    v.push_back({"k3_valid_s1", 3, 1, Padding::kValid, 5, 6, 3, bias});
    // 9 rows (all read), 8 columns (the last never read).
    v.push_back({"k3_valid_s2_odd_n1", 3, 2, Padding::kValid, 9, 8, 3, bias, 1, 1});
    v.push_back({"k3_same_s2_odd_n1", 3, 2, Padding::kSame, 9, 7, 3, bias, 1, 1});
    v.push_back({"k3_same_s2_mult2", 3, 2, Padding::kSame, 7, 6, 3, bias, 2});
    v.push_back({"k5_valid_s1_mult3", 5, 1, Padding::kValid, 7, 6, 2, bias, 3});
    // Large enough for the OpenMP parallel paths (parallel_worth): 32 channels.
    v.push_back({"k3_same_s1_c32_parallel", 3, 1, Padding::kSame, 16, 15, 32, bias});
    v.push_back({"k3_same_s2_c32_parallel", 3, 2, Padding::kSame, 32, 31, 32, bias});
  }
  return v;
}

std::string case_name(const ::testing::TestParamInfo<DwCase>& info) {
  return info.param.name + (info.param.bias ? "_bias" : "_nobias");
}

// TensorFlow's output size and top/left padding, written out again here (not the layer's).
struct Ref {
  int ho = 0, wo = 0, top = 0, left = 0;
  std::vector<double> y, abs_sum;  // output, and sum |terms| (the float32 error's scale)
};

Ref reference(const Tensor& x, const float* w, const float* b, const DwCase& p) {
  const int n = x.shape()[0], h = x.shape()[1], wd = x.shape()[2], c = x.shape()[3];
  const int k = p.kernel, s = p.stride, m = p.mult;
  Ref r;
  if (p.padding == Padding::kValid) {
    r.ho = (h - k) / s + 1;
    r.wo = (wd - k) / s + 1;
  } else {
    r.ho = (h + s - 1) / s;
    r.wo = (wd + s - 1) / s;
    r.top = std::max((r.ho - 1) * s + k - h, 0) / 2;
    r.left = std::max((r.wo - 1) * s + k - wd, 0) / 2;
  }
  const int co = c * m;
  r.y.assign(static_cast<std::size_t>(n) * r.ho * r.wo * co, 0.0);
  r.abs_sum = r.y;
  for (int b0 = 0; b0 < n; ++b0)
    for (int i = 0; i < r.ho; ++i)
      for (int j = 0; j < r.wo; ++j)
        for (int kc = 0; kc < c; ++kc)
          for (int q = 0; q < m; ++q) {
            double acc = b ? b[kc * m + q] : 0.0, mag = b ? std::abs(b[kc * m + q]) : 0.0;
            for (int di = 0; di < k; ++di)
              for (int dj = 0; dj < k; ++dj) {
                const int yy = s * i + di - r.top, xx = s * j + dj - r.left;
                if (yy < 0 || yy >= h || xx < 0 || xx >= wd) continue;  // zero padding
                const double t =
                    static_cast<double>(
                        x[((static_cast<std::size_t>(b0) * h + yy) * wd + xx) * c + kc]) *
                    w[((di * k + dj) * c + kc) * m + q];
                acc += t;
                mag += std::abs(t);
              }
            const std::size_t idx =
                ((static_cast<std::size_t>(b0) * r.ho + i) * r.wo + j) * co + kc * m + q;
            r.y[idx] = acc;
            r.abs_sum[idx] = mag;
          }
  return r;
}

class DepthwiseGrad : public ::testing::TestWithParam<DwCase> {};

TEST_P(DepthwiseGrad, MatchesFiniteDifferences) {
  const DwCase& p = GetParam();
  Rng rng(1000 + p.kernel * 10 + p.stride + p.h);
  DepthwiseConv2D dw("dw_" + p.name, p.kernel, p.stride, p.padding, p.bias, p.mult);
  Tensor x(Shape{p.n, p.h, p.w, p.c});
  gradcheck::fill_uniform(x, -1.0, 1.0, rng);
  LayerFixture fx(dw, {x.shape()}, rng);
  gradcheck::Options opt;
  opt.input_names = {"input"};
  const gradcheck::Report rep = gradcheck::check_gradients(dw, {&x}, opt);
  EXPECT_EQ(rep.failed(), 0u);
  EXPECT_EQ(rep.tensors.size(), p.bias ? 3u : 2u);  // input, depthwise_kernel[, bias]
}

TEST_P(DepthwiseGrad, ForwardMatchesTensorFlowDefinition) {
  const DwCase& p = GetParam();
  Rng rng(2000 + p.kernel * 10 + p.stride + p.h);
  DepthwiseConv2D dw("dw_" + p.name, p.kernel, p.stride, p.padding, p.bias, p.mult);
  Tensor x(Shape{p.n, p.h, p.w, p.c});
  gradcheck::fill_uniform(x, -1.0, 1.0, rng);
  LayerFixture fx(dw, {x.shape()}, rng);
  Tensor y;
  dw.forward({&x}, y, /*training=*/true);
  const Ref ref = reference(x, fx.value("depthwise_kernel").data(),
                            p.bias ? fx.value("bias").data() : nullptr, p);
  ASSERT_EQ(y.shape(), (Shape{p.n, ref.ho, ref.wo, p.c * p.mult})) << "got " << y.shape().str();
  // float32 products and sums of at most k*k+1 terms: well under 1e-5 of sum |terms|; one
  // wrong tap moves an output by about 1/(k*k) of that sum.
  constexpr double kTol = 1e-5;
  double worst = 0.0;
  for (std::size_t i = 0; i < ref.y.size(); ++i) {
    const double err = std::abs(y[i] - ref.y[i]) / std::max(ref.abs_sum[i], 1e-30);
    worst = std::max(worst, err);
    ASSERT_LE(err, kTol) << "output " << i << " " << gradcheck::unravel(i, y.shape())
                         << ": parafine " << y[i] << ", reference " << ref.y[i];
  }
  std::cout << "[forward] DepthwiseConv2D " << p.name << (p.bias ? " bias" : " nobias")
            << " pad_top " << ref.top << " pad_left " << ref.left
            << ": max |y - reference| / sum|terms| " << worst << " (tolerance " << kTol << ")"
            << std::endl;
}

INSTANTIATE_TEST_SUITE_P(Shapes, DepthwiseGrad, ::testing::ValuesIn(cases()), case_name);

TEST(DepthwiseConv2D, ParamSpecsUseKerasNames) {
  DepthwiseConv2D dw("expanded_conv_depthwise", 3, 1, Padding::kSame, true, 2);
  dw.infer_shape({Shape{1, 5, 5, 6}});
  const std::vector<ParamSpec> specs = dw.param_specs();
  ASSERT_EQ(specs.size(), 2u);
  EXPECT_EQ(specs[0].name, "depthwise_kernel");
  EXPECT_EQ(specs[0].shape, (Shape{3, 3, 6, 2}));
  EXPECT_EQ(specs[1].name, "bias");
  EXPECT_EQ(specs[1].shape, (Shape{12}));
  DepthwiseConv2D nobias("block_1_depthwise", 3, 2, Padding::kValid, false);
  EXPECT_EQ(nobias.infer_shape({Shape{2, 9, 9, 4}}), (Shape{2, 4, 4, 4}));
  ASSERT_EQ(nobias.param_specs().size(), 1u);
  EXPECT_EQ(std::string(nobias.type()), "DepthwiseConv2D");
}

// 'same' placement by hand: all-ones 6x5 input and kernel, stride 2. Rows: 0 top, 1 bottom
// (windows of 3, 3, 2 image rows); columns: 1 left, 1 right (2, 3, 2 image columns).
TEST(DepthwiseConv2D, SamePaddingExtraGoesBottomRight) {
  Rng rng(3);
  DepthwiseConv2D dw("dw_same", 3, 2, Padding::kSame, false);
  Tensor x(Shape{1, 6, 5, 2});
  x.fill(1.0f);
  LayerFixture fx(dw, {x.shape()}, rng);
  std::fill(fx.value("depthwise_kernel").begin(), fx.value("depthwise_kernel").end(), 1.0f);
  Tensor y;
  dw.forward({&x}, y, true);
  ASSERT_EQ(y.shape(), (Shape{1, 3, 3, 2})) << "got " << y.shape().str();
  const float expected[3][3] = {{6, 9, 6}, {6, 9, 6}, {4, 6, 4}};
  for (int r = 0; r < 3; ++r)
    for (int q = 0; q < 3; ++q)
      for (int c = 0; c < 2; ++c)
        EXPECT_EQ(y[(r * 3 + q) * 2 + c], expected[r][q]) << "output (" << r << "," << q << ")";
}

TEST(DepthwiseConv2D, ShapeErrorsNameTheLayer) {
  auto message = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("(no exception)");
  };
  DepthwiseConv2D dw("block_3_depthwise", 3, 1, Padding::kValid, false);
  std::string m = message([&] { dw.infer_shape({Shape{1, 8, 3}}); });
  std::cout << "rank 3 input: " << m << std::endl;
  EXPECT_NE(m.find("DepthwiseConv2D layer 'block_3_depthwise'"), std::string::npos) << m;
  m = message([&] { dw.infer_shape({Shape{1, 2, 8, 3}}); });
  std::cout << "2 rows, 3x3 valid: " << m << std::endl;
  EXPECT_NE(m.find("'block_3_depthwise'"), std::string::npos) << m;
  EXPECT_NE(m.find("smaller than the 3x3 kernel"), std::string::npos) << m;
  dw.infer_shape({Shape{1, 5, 5, 3}});
  m = message([&] { dw.infer_shape({Shape{1, 5, 5, 4}}); });
  std::cout << "channels changed: " << m << std::endl;
  EXPECT_NE(m.find("expects 3 input channels"), std::string::npos) << m;
  m = message([] { DepthwiseConv2D bad("dw_bad", 3, 1, Padding::kSame, false, 0); });
  std::cout << "depth_multiplier 0: " << m << std::endl;
  EXPECT_NE(m.find("'dw_bad'"), std::string::npos) << m;
  EXPECT_NE(m.find("depth_multiplier (0)"), std::string::npos) << m;
}

// A rank with no samples in a step writes zero weight gradients (as Conv2D does).
TEST(DepthwiseConv2D, EmptyBatchGivesZeroWeightGradients) {
  Rng rng(5);
  DepthwiseConv2D dw("dw_empty", 3, 2, Padding::kSame, true);
  Tensor x(Shape{0, 7, 7, 4});
  LayerFixture fx(dw, {x.shape()}, rng);
  for (auto& g : fx.grads) std::fill(g.begin(), g.end(), 7.0f);
  Tensor y, dx;
  dw.forward({&x}, y, true);
  ASSERT_EQ(y.shape(), (Shape{0, 4, 4, 4}));
  dw.backward({&x}, y, y, {&dx});
  EXPECT_EQ(dx.shape(), x.shape());
  for (const auto& g : fx.grads)
    for (float v : g) ASSERT_EQ(v, 0.0f) << "a weight gradient of an empty batch is not zero";
}

// A frozen layer leaves its weight gradients alone; the input gradient is still computed.
TEST(DepthwiseConv2D, FrozenLayerWritesNoWeightGradients) {
  Rng rng(6);
  DepthwiseConv2D dw("dw_frozen", 3, 1, Padding::kSame, true);
  dw.trainable = false;
  Tensor x(Shape{2, 5, 5, 3});
  gradcheck::fill_uniform(x, -1.0, 1.0, rng);
  LayerFixture fx(dw, {x.shape()}, rng);
  for (auto& g : fx.grads) std::fill(g.begin(), g.end(), 7.0f);
  gradcheck::Options opt;
  opt.input_names = {"input"};
  const gradcheck::Report rep = gradcheck::check_gradients(dw, {&x}, opt);
  EXPECT_EQ(rep.failed(), 0u);
  EXPECT_EQ(rep.tensors.size(), 1u);
  for (const auto& g : fx.grads)
    for (float v : g) ASSERT_EQ(v, 7.0f) << "frozen DepthwiseConv2D wrote a weight gradient";
}

// mixed_bfloat16: the kernel and bias are rounded to bfloat16, the convolution's result is
// rounded, then the bias add is rounded again (TensorFlow's order, as Conv2D does).
TEST(DepthwiseConv2D, MixedBfloat16RoundsKernelResultAndBiasAdd) {
  Rng rng(7);
  const DwCase p{"bf16", 3, 2, Padding::kSame, 8, 7, 5, true};
  DepthwiseConv2D dw("dw_bf16", 3, 2, Padding::kSame, true);
  dw.set_bfloat16_compute(true);
  EXPECT_TRUE(dw.output_is_bfloat16());
  Tensor x(Shape{p.n, p.h, p.w, p.c});
  gradcheck::fill_uniform(x, -1.0, 1.0, rng);
  round_to_bfloat16(x.data(), x.numel());  // the Model feeds bfloat16 activations
  LayerFixture fx(dw, {x.shape()}, rng);
  std::vector<float> wk = fx.value("depthwise_kernel"), bias = fx.value("bias");
  round_to_bfloat16(wk.data(), wk.size());
  round_to_bfloat16(bias.data(), bias.size());
  Tensor y;
  dw.forward({&x}, y, true);
  const Ref conv = reference(x, wk.data(), nullptr, p);
  double worst = 0.0;
  std::size_t differ = 0;
  for (std::size_t i = 0; i < conv.y.size(); ++i) {
    ASSERT_EQ(y[i], round_to_bfloat16(y[i])) << "output " << i << " is not a bfloat16 value";
    const float want =
        round_to_bfloat16(round_to_bfloat16(static_cast<float>(conv.y[i])) + bias[i % p.c]);
    // float32 accumulation may round the sum to the neighbouring bfloat16 value: at most one
    // bfloat16 step (2^-8 relative) of the conv term, measured against sum |terms| + |bias|.
    const double err = std::abs(y[i] - want) / (conv.abs_sum[i] + std::abs(bias[i % p.c]));
    if (y[i] != want) ++differ;
    worst = std::max(worst, err);
    ASSERT_LE(err, 1.0 / 128) << "output " << i << ": " << y[i] << ", expected " << want;
  }
  std::cout << "[forward] mixed_bfloat16: " << differ << " of " << conv.y.size()
            << " outputs one bfloat16 step off the double-rounded reference; max error / scale "
            << worst << " (tolerance " << 1.0 / 128 << ")" << std::endl;
  EXPECT_LE(differ, conv.y.size() / 10) << "too many outputs differ from the rounded reference";
}

// The check must be able to fail: one kernel gradient element off by 5% of max(|g|, 1).
TEST(DepthwiseConv2DGradChecker, DetectsOneKernelGradientOff) {
  Rng rng(31);
  DepthwiseConv2D dw("dw_broken", 3, 2, Padding::kSame, false);
  CorruptedBackward bad(dw, [](Layer& inner, const std::vector<const Tensor*>&, const Tensor&,
                               const std::vector<Tensor*>&) {
    float& g = inner.grad(0)[4];
    g += 0.05f * std::max(std::abs(g), 1.0f);
  });
  Tensor x(Shape{2, 6, 5, 3});
  gradcheck::fill_uniform(x, -1.0, 1.0, rng);
  LayerFixture fx(bad, {x.shape()}, rng);
  gradcheck::Options opt;
  opt.input_names = {"input"};
  gradcheck::expect_check_fails([&] { gradcheck::check_gradients(bad, {&x}, opt); },
                                "gradient of depthwise_kernel");
}

}  // namespace
}  // namespace parafine
