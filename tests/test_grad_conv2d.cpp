// Conv2D against finite differences (input, kernel and bias gradients) for the kernel sizes,
// strides and paddings ResNet50 uses (and odd sizes of them, batch 1), the non-square kernels
// of InceptionV3 (1x7, 7x1, 1x3, 3x1; also 5x3 and 3x5), and activation='relu' (VGG), and its
// forward against a naive direct convolution in double with TensorFlow's 'same' padding
// placement per axis (extra padding at the bottom/right), on both engines (oneDNN, im2col +
// sgemm).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <string>
#include <tuple>
#include <vector>

#include "gradient_checker.hpp"
#include "parafine/layers/conv2d.hpp"

namespace parafine {
namespace {

using gradcheck::CorruptedBackward;
using gradcheck::LayerFixture;
using gradcheck::Rng;

struct ConvCase {
  std::string name;
  int kernel, stride;  // kernel: its height (and width unless kw is set)
  Padding padding;
  int h, w;  // input height and width; Cin = 3, Cout = 4
  bool bias;
  int n = 2;          // batch
  int kw = 0;         // kernel width; 0: square
  bool relu = false;  // activation='relu'
  int kh() const { return kernel; }
  int kwidth() const { return kw > 0 ? kw : kernel; }
  ConvActivation activation() const { return relu ? ConvActivation::kRelu : ConvActivation::kNone; }
};

using EngineCase = std::tuple<ConvCase, ConvEngine>;

// gtest prints a failing parameter with this instead of its bytes.
void PrintTo(const ConvCase& c, std::ostream* os) {
  *os << c.name << " (" << c.kh() << "x" << c.kwidth() << (c.relu ? ", relu" : "") << ")"
      << (c.bias ? " with bias" : " without bias") << " on input [" << c.n << "," << c.h << ","
      << c.w << ",3]";
}

std::string case_name(const ::testing::TestParamInfo<EngineCase>& info) {
  const ConvCase& c = std::get<0>(info.param);
  return c.name + (c.bias ? "_bias_" : "_nobias_") + conv_engine_name(std::get<1>(info.param));
}

std::vector<ConvCase> cases() {
  std::vector<ConvCase> c;
  for (bool bias : {true, false}) {
    c.push_back({"k1_s1", 1, 1, Padding::kValid, 5, 5, bias});  // pointwise sgemm path
    c.push_back({"k1_s2", 1, 2, Padding::kValid, 7, 6, bias});  // strided 1x1 (block _1_conv)
    c.push_back({"k3_same_s1", 3, 1, Padding::kSame, 6, 5, bias});
    // 8 rows: padding 0 top / 1 bottom; 7 columns: 1 left / 1 right.
    c.push_back({"k3_same_s2", 3, 2, Padding::kSame, 8, 7, bias});
    c.push_back({"k7_valid_s2", 7, 2, Padding::kValid, 11, 12, bias});  // conv1_conv
    // Odd sizes, batch 1: a strided 'same' 3x3 on 9 rows (1 top / 1 bottom) and 7 columns;
    // a strided 1x1 on 9 rows (all read) and 8 columns (the last never read); a 7x7/2 'valid'
    // on 13 rows (all read) and 12 columns (the last never read).
    c.push_back({"k3_same_s2_odd_n1", 3, 2, Padding::kSame, 9, 7, bias, 1});
    c.push_back({"k1_s2_odd_n1", 1, 2, Padding::kValid, 9, 8, bias, 1});
    c.push_back({"k7_valid_s2_odd_n1", 7, 2, Padding::kValid, 13, 12, bias, 1});
    // InceptionV3's non-square kernels ('same', stride 1), and others strided and 'valid':
    // 1x3 stride 2 'same' on 7 rows / 8 columns (columns: 0 left, 1 right); 3x5 stride 2
    // 'same' on 9x10 (rows 1/1, columns 1/2); 5x3 and 3x1 'valid'.
    c.push_back({"k1x7_same_s1", 1, 1, Padding::kSame, 5, 9, bias, 2, 7});
    c.push_back({"k7x1_same_s1", 7, 1, Padding::kSame, 9, 5, bias, 2, 1});
    c.push_back({"k1x3_same_s2", 1, 2, Padding::kSame, 7, 8, bias, 2, 3});
    c.push_back({"k3x1_valid_s2", 3, 2, Padding::kValid, 8, 7, bias, 2, 1});
    c.push_back({"k5x3_valid_s1", 5, 1, Padding::kValid, 7, 6, bias, 2, 3});
    c.push_back({"k3x5_same_s2_odd_n1", 3, 2, Padding::kSame, 9, 10, bias, 1, 5});
    // activation='relu': the pointwise path, VGG's 3x3 'same', a strided non-square kernel.
    c.push_back({"k1_s1_relu", 1, 1, Padding::kValid, 5, 5, bias, 2, 0, true});
    c.push_back({"k3_same_s1_relu", 3, 1, Padding::kSame, 6, 5, bias, 2, 0, true});
    c.push_back({"k1x7_same_s2_relu", 1, 2, Padding::kSame, 6, 9, bias, 2, 7, true});
  }
  return c;
}

constexpr int kN = 2, kCin = 3, kCout = 4;

std::vector<EngineCase> engine_cases() {
  std::vector<EngineCase> e;
  for (const ConvEngine engine : {ConvEngine::kOneDnn, ConvEngine::kIm2col})
    for (const ConvCase& c : cases()) e.emplace_back(c, engine);
  return e;
}

// Direct convolution in double. ref[n,r,q,o] = b[o] + sum x[n, r*s - top + a, q*s - left + b, i]
// * w[a,b,i,o]; abs_sum holds sum |terms| (the scale of the float32 rounding error).
struct NaiveConv {
  int ho = 0, wo = 0, pad_top = 0, pad_left = 0;
  std::vector<double> ref, abs_sum;
};

NaiveConv naive_conv(const Tensor& x, const float* w, const float* b, int kh, int kw, int s,
                     Padding p, int cout, bool relu) {
  const int n = x.shape()[0], h = x.shape()[1], wd = x.shape()[2], cin = x.shape()[3];
  NaiveConv c;
  if (p == Padding::kValid) {
    c.ho = (h - kh) / s + 1;
    c.wo = (wd - kw) / s + 1;
  } else {
    // TensorFlow: out = ceil(in / s); total padding max((out-1)*s + k - in, 0), the smaller
    // half on top/left.
    c.ho = (h + s - 1) / s;
    c.wo = (wd + s - 1) / s;
    c.pad_top = std::max((c.ho - 1) * s + kh - h, 0) / 2;
    c.pad_left = std::max((c.wo - 1) * s + kw - wd, 0) / 2;
  }
  c.ref.assign(static_cast<std::size_t>(n) * c.ho * c.wo * cout, 0.0);
  c.abs_sum = c.ref;
  for (int i = 0; i < n; ++i)
    for (int r = 0; r < c.ho; ++r)
      for (int q = 0; q < c.wo; ++q)
        for (int o = 0; o < cout; ++o) {
          double acc = b ? b[o] : 0.0, mag = b ? std::abs(b[o]) : 0.0;
          for (int a = 0; a < kh; ++a)
            for (int bb = 0; bb < kw; ++bb) {
              const int y = r * s - c.pad_top + a, xx = q * s - c.pad_left + bb;
              if (y < 0 || y >= h || xx < 0 || xx >= wd) continue;
              for (int ci = 0; ci < cin; ++ci) {
                const double t =
                    static_cast<double>(
                        x[((static_cast<std::size_t>(i) * h + y) * wd + xx) * cin + ci]) *
                    w[((a * kw + bb) * cin + ci) * cout + o];
                acc += t;
                mag += std::abs(t);
              }
            }
          const std::size_t idx = ((static_cast<std::size_t>(i) * c.ho + r) * c.wo + q) * cout + o;
          c.ref[idx] = relu ? std::max(acc, 0.0) : acc;
          c.abs_sum[idx] = mag;
        }
  return c;
}

class Conv2DGrad : public ::testing::TestWithParam<EngineCase> {};

TEST_P(Conv2DGrad, MatchesFiniteDifferences) {
  const ConvCase& p = std::get<0>(GetParam());
  Rng rng(1000 + p.kh() * 100 + p.kwidth() * 10 + p.stride);
  Conv2D conv("conv_" + p.name, kCout, KernelSize{p.kh(), p.kwidth()}, p.stride, p.padding, p.bias,
              p.activation());
  conv.set_engine(std::get<1>(GetParam()));
  Tensor x(Shape{p.n, p.h, p.w, kCin});
  gradcheck::fill_uniform(x, -1.0, 1.0, rng);
  LayerFixture fx(conv, {x.shape()}, rng);

  gradcheck::Options opt;
  opt.input_names = {"input"};
  if (p.relu) {
    // Outputs whose ReLU flips under the perturbation are skipped; a kernel element moves
    // every output, so a smaller step keeps the skipped share low (float32 noise / step stays
    // far below the tolerance).
    opt.kink_signature = gradcheck::relu_signature();
    opt.step = gradcheck::kDefaultStep / 4;
  }
  const gradcheck::Report rep = gradcheck::check_gradients(conv, {&x}, opt);
  EXPECT_EQ(rep.failed(), 0u);
  EXPECT_EQ(conv.backward_reads_output_values(), p.relu);
  EXPECT_EQ(rep.tensors.size(), p.bias ? 3u : 2u);  // input, kernel[, bias]
}

TEST_P(Conv2DGrad, ForwardMatchesNaiveConvolution) {
  const ConvCase& p = std::get<0>(GetParam());
  Rng rng(2000 + p.kh() * 100 + p.kwidth() * 10 + p.stride);
  Conv2D conv("conv_" + p.name, kCout, KernelSize{p.kh(), p.kwidth()}, p.stride, p.padding, p.bias,
              p.activation());
  conv.set_engine(std::get<1>(GetParam()));
  Tensor x(Shape{p.n, p.h, p.w, kCin});
  gradcheck::fill_uniform(x, -1.0, 1.0, rng);
  LayerFixture fx(conv, {x.shape()}, rng);
  Tensor y;
  conv.forward({&x}, y, /*training=*/true);

  const NaiveConv ref =
      naive_conv(x, fx.value("kernel").data(), p.bias ? fx.value("bias").data() : nullptr, p.kh(),
                 p.kwidth(), p.stride, p.padding, kCout, p.relu);
  ASSERT_EQ(y.shape(), (Shape{p.n, ref.ho, ref.wo, kCout})) << "got " << y.shape().str();
  // float32 products and sums: error well under 1e-5 of sum |terms|; a wrong tap moves an
  // output by about one term, ~1/(k*k*Cin) of that sum.
  constexpr double kTol = 1e-5;
  double worst = 0.0;
  for (std::size_t i = 0; i < ref.ref.size(); ++i) {
    const double err = std::abs(y[i] - ref.ref[i]) / std::max(ref.abs_sum[i], 1e-30);
    worst = std::max(worst, err);
    ASSERT_LE(err, kTol) << "output " << i << " " << gradcheck::unravel(i, y.shape())
                         << ": parafine " << y[i] << ", naive " << ref.ref[i];
  }
  std::cout << "[forward] Conv2D " << conv_engine_name(conv.engine()) << " " << p.name
            << (p.bias ? " bias" : " nobias") << " pad_top " << ref.pad_top << " pad_left "
            << ref.pad_left << ": max |y - naive| / sum|terms| " << worst << " (tolerance " << kTol
            << ")" << std::endl;
}

INSTANTIATE_TEST_SUITE_P(BackboneShapes, Conv2DGrad, ::testing::ValuesIn(engine_cases()),
                         case_name);

// 'same' padding placement written out by hand: all-ones 6x5 input and 3x3 kernel, stride 2.
// Rows: out 3, total padding 1 -> 0 top, 1 bottom, so the windows hold 3, 3, 2 image rows.
// Columns: out 3, total padding 2 -> 1 left, 1 right: 2, 3, 2 image columns.
// Each output is the number of in-image taps (symmetric or top-heavy padding would put the
// short window first).
class Conv2DEngine : public ::testing::TestWithParam<ConvEngine> {};

TEST_P(Conv2DEngine, SamePaddingExtraGoesBottomRight) {
  Rng rng(3);
  Conv2D conv("conv_same", 1, 3, 2, Padding::kSame, /*use_bias=*/false);
  conv.set_engine(GetParam());
  Tensor x(Shape{1, 6, 5, 1});
  x.fill(1.0f);
  LayerFixture fx(conv, {x.shape()}, rng);
  std::fill(fx.value("kernel").begin(), fx.value("kernel").end(), 1.0f);
  Tensor y;
  conv.forward({&x}, y, true);
  ASSERT_EQ(y.shape(), (Shape{1, 3, 3, 1})) << "got " << y.shape().str();
  const float expected[3][3] = {{6, 9, 6}, {6, 9, 6}, {4, 6, 4}};
  for (int r = 0; r < 3; ++r)
    for (int q = 0; q < 3; ++q)
      EXPECT_EQ(y[r * 3 + q], expected[r][q]) << "output (" << r << "," << q << ")";
}

INSTANTIATE_TEST_SUITE_P(Engines, Conv2DEngine,
                         ::testing::Values(ConvEngine::kOneDnn, ConvEngine::kIm2col),
                         [](const ::testing::TestParamInfo<ConvEngine>& i) {
                           return std::string(conv_engine_name(i.param));
                         });

// The check must be able to fail: the same layer with a corrupted backward.
TEST(Conv2DGradChecker, DetectsInputGradientShiftedByOnePixel) {
  // What an off-by-one in col2im's padding offset looks like: dx moved one column right.
  Rng rng(4);
  Conv2D conv("conv_shifted", kCout, 3, 2, Padding::kSame, true);
  CorruptedBackward bad(conv, [](Layer&, const std::vector<const Tensor*>&, const Tensor&,
                                 const std::vector<Tensor*>& din) {
    Tensor& dx = *din[0];
    const Shape s = dx.shape();
    for (int i = 0; i < s[0]; ++i)
      for (int y = 0; y < s[1]; ++y)
        for (int xx = s[2] - 1; xx >= 0; --xx)
          for (int c = 0; c < s[3]; ++c) {
            const std::size_t at =
                ((static_cast<std::size_t>(i) * s[1] + y) * s[2] + xx) * s[3] + c;
            dx[at] = xx > 0 ? dx[at - s[3]] : 0.0f;
          }
  });
  Tensor x(Shape{kN, 8, 7, kCin});
  gradcheck::fill_uniform(x, -1.0, 1.0, rng);
  LayerFixture fx(bad, {x.shape()}, rng);
  gradcheck::Options opt;
  opt.input_names = {"input"};
  gradcheck::expect_check_fails([&] { gradcheck::check_gradients(bad, {&x}, opt); },
                                "gradient of input");
}

TEST(Conv2DGradChecker, DetectsOneKernelGradientOffByTwiceTheTolerance) {
  // A single element of dW wrong by 2 * tolerance * max(|g|, 1): the resolution of the check.
  Rng rng(5);
  Conv2D conv("conv_kernel", kCout, 3, 1, Padding::kSame, true);
  CorruptedBackward bad(conv, [](Layer& inner, const std::vector<const Tensor*>&, const Tensor&,
                                 const std::vector<Tensor*>&) {
    float& g = inner.grad(0)[17];
    g += static_cast<float>(2.0 * gradcheck::kDefaultTolerance * std::max(std::abs(g), 1.0f));
  });
  Tensor x(Shape{kN, 6, 5, kCin});
  gradcheck::fill_uniform(x, -1.0, 1.0, rng);
  LayerFixture fx(bad, {x.shape()}, rng);
  const std::size_t failures = gradcheck::expect_check_fails(
      [&] { gradcheck::check_gradients(bad, {&x}); }, "gradient of kernel element 17 ");
  EXPECT_EQ(failures, 1u) << "only the corrupted element should fail";
}

TEST(Conv2DGradChecker, DetectsMissingBiasGradient) {
  Rng rng(6);
  Conv2D conv("conv_bias", kCout, 1, 1, Padding::kValid, true);
  CorruptedBackward bad(conv, [](Layer& inner, const std::vector<const Tensor*>&, const Tensor&,
                                 const std::vector<Tensor*>&) {
    std::fill(inner.grad(1), inner.grad(1) + kCout, 0.0f);
  });
  Tensor x(Shape{kN, 5, 5, kCin});
  gradcheck::fill_uniform(x, -1.0, 1.0, rng);
  LayerFixture fx(bad, {x.shape()}, rng);
  gradcheck::expect_check_fails([&] { gradcheck::check_gradients(bad, {&x}); }, "gradient of bias");
}

}  // namespace
}  // namespace parafine
