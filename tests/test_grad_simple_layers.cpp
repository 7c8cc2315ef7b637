// The weightless layers of ResNet50 against finite differences: ZeroPadding2D, ReLU, Add,
// MaxPooling2D (3x3 stride 2 on a zero-padded input, as pool1_pad + pool1_pool) and
// GlobalAveragePooling2D.
#include <gtest/gtest.h>

#include <algorithm>
#include <iostream>
#include <stdexcept>
#include <vector>

#include "gradient_checker.hpp"
#include "parafine/layers/simple_layers.hpp"

namespace parafine {
namespace {

using gradcheck::LayerFixture;
using gradcheck::Rng;

gradcheck::Options named(std::vector<std::string> names) {
  gradcheck::Options opt;
  opt.input_names = std::move(names);
  return opt;
}

TEST(ZeroPadding2DGrad, Pad1) {
  Rng rng(51);
  ZeroPadding2D pad("pool1_pad", 1);
  Tensor x(Shape{2, 5, 4, 3});
  gradcheck::fill_uniform(x, -1.0, 1.0, rng);
  LayerFixture fx(pad, {x.shape()}, rng);
  EXPECT_EQ(fx.out_shape, (Shape{2, 7, 6, 3})) << "got " << fx.out_shape.str();
  EXPECT_EQ(gradcheck::check_gradients(pad, {&x}, named({"input"})).failed(), 0u);
}

TEST(ZeroPadding2DGrad, Pad3) {
  Rng rng(52);
  ZeroPadding2D pad("conv1_pad", 3);
  Tensor x(Shape{2, 4, 5, 3});
  gradcheck::fill_uniform(x, -1.0, 1.0, rng);
  LayerFixture fx(pad, {x.shape()}, rng);
  EXPECT_EQ(fx.out_shape, (Shape{2, 10, 11, 3})) << "got " << fx.out_shape.str();
  EXPECT_EQ(gradcheck::check_gradients(pad, {&x}, named({"input"})).failed(), 0u);
}

// MobileNetV2's block_1_pad on an even input: correct_pad gives ((0, 1), (0, 1)); on an odd
// one ((1, 1), (1, 1)). Here a fully asymmetric pad, checked value by value and by finite
// differences.
TEST(ZeroPadding2DGrad, Asymmetric) {
  Rng rng(55);
  ZeroPadding2D pad("block_1_pad", 0, 1, 2, 1);
  Tensor x(Shape{2, 4, 3, 2});
  gradcheck::fill_uniform(x, -1.0, 1.0, rng);
  LayerFixture fx(pad, {x.shape()}, rng);
  ASSERT_EQ(fx.out_shape, (Shape{2, 5, 6, 2})) << "got " << fx.out_shape.str();
  Tensor y;
  pad.forward({&x}, y, false);
  int mismatches = 0;
  for (int i = 0; i < 2; ++i)
    for (int r = 0; r < 5; ++r)
      for (int q = 0; q < 6; ++q)
        for (int ch = 0; ch < 2; ++ch) {
          const int xr = r - 0, xq = q - 2;  // top 0, left 2
          const bool inside = xr >= 0 && xr < 4 && xq >= 0 && xq < 3;
          const float want = inside ? x[((i * 4 + xr) * 3 + xq) * 2 + ch] : 0.0f;
          mismatches += y[((i * 5 + r) * 6 + q) * 2 + ch] != want;
        }
  EXPECT_EQ(mismatches, 0) << "padded values out of place";
  EXPECT_EQ(gradcheck::check_gradients(pad, {&x}, named({"input"})).failed(), 0u);
}

TEST(ZeroPadding2DGrad, RejectsNegativePads) {
  EXPECT_THROW(ZeroPadding2D("block_1_pad", 0, -1, 0, 1), std::invalid_argument);
}

TEST(ReLUGrad, SkipsOnlyElementsAtTheKink) {
  Rng rng(53);
  ReLU relu("conv1_relu");
  Tensor x(Shape{2, 4, 4, 3});
  gradcheck::fill_uniform(x, -1.0, 1.0, rng);
  x[5] = 0.0004f;  // within h of the kink: must be skipped, not compared
  LayerFixture fx(relu, {x.shape()}, rng);
  gradcheck::Options opt = named({"input"});
  opt.kink_signature = gradcheck::relu_signature();
  const gradcheck::Report rep = gradcheck::check_gradients(relu, {&x}, opt);
  EXPECT_EQ(rep.failed(), 0u);
  ASSERT_EQ(rep.tensors.size(), 1u);
  EXPECT_GE(rep.tensors[0].skipped, 1u) << "the element at 0.0004 crosses the kink";
}

TEST(AddGrad, TwoInputs) {
  Rng rng(54);
  Add add("conv2_block1_add");
  Tensor a(Shape{2, 3, 3, 4}), b(Shape{2, 3, 3, 4});
  gradcheck::fill_uniform(a, -1.0, 1.0, rng);
  gradcheck::fill_uniform(b, -1.0, 1.0, rng);
  LayerFixture fx(add, {a.shape(), b.shape()}, rng);
  const gradcheck::Report rep = gradcheck::check_gradients(add, {&a, &b}, named({"a", "b"}));
  EXPECT_EQ(rep.failed(), 0u);
  EXPECT_EQ(rep.tensors.size(), 2u);
}

// pool1: ZeroPadding2D(1) then 3x3/2 valid max pooling of a post-ReLU (non-negative) tensor.
// The image values are distinct and 10h apart (a shuffled ramp), so no perturbation of h can
// create a tie; the padding zeros are below every image value, so they never win a window.
// Odd (9) and even (8) sizes: with 10 padded columns the last one is outside every window.
// A signed input is pooled without padding: zeros that tie with each other would win the
// border windows whose image values are all negative.
struct PoolCase {
  const char* name;
  int h, w;
  double lo;  // smallest image value
  int pad;
};

void PrintTo(const PoolCase& c, std::ostream* os) {
  *os << c.name << ": image " << c.h << "x" << c.w << ", padding " << c.pad;
}

class MaxPooling2DGrad : public ::testing::TestWithParam<PoolCase> {};

TEST_P(MaxPooling2DGrad, Pool3x3Stride2OnPaddedInput) {
  const PoolCase& p = GetParam();
  Rng rng(55);
  Tensor image(Shape{2, p.h, p.w, 3});
  gradcheck::fill_distinct(image, p.lo, 10 * gradcheck::kDefaultStep, rng);
  ZeroPadding2D pad("pool1_pad", p.pad);
  Tensor padded;
  pad.infer_shape({image.shape()});
  pad.forward({&image}, padded, true);

  MaxPooling2D pool("pool1_pool", 3, 2);
  LayerFixture fx(pool, {padded.shape()}, rng);
  const Shape expected{2, (p.h + 2 * p.pad - 3) / 2 + 1, (p.w + 2 * p.pad - 3) / 2 + 1, 3};
  EXPECT_EQ(fx.out_shape, expected) << "got " << fx.out_shape.str();
  gradcheck::Options opt = named({p.pad ? "padded_input" : "input"});
  opt.kink_signature = gradcheck::max_pool_signature(3, 2);
  opt.max_skipped_fraction = 0.0;     // ties are impossible by construction
  opt.max_elements = padded.numel();  // every element, padding included
  const gradcheck::Report rep = gradcheck::check_gradients(pool, {&padded}, opt);
  EXPECT_EQ(rep.failed(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Pool1, MaxPooling2DGrad,
                         ::testing::Values(PoolCase{"padded_odd", 9, 9, 0.05, 1},
                                           PoolCase{"padded_even", 8, 8, 0.05, 1},
                                           PoolCase{"signed_unpadded", 9, 8, -2.0, 0}),
                         [](const ::testing::TestParamInfo<PoolCase>& i) { return i.param.name; });

// dx = dy / (H*W): R is scaled by H*W so the gradients are O(1) and the check relative.
TEST(GlobalAveragePooling2DGrad, MeanOverHW) {
  Rng rng(56);
  GlobalAveragePooling2D gap("global_average_pooling2d");
  Tensor x(Shape{2, 3, 4, 5});
  gradcheck::fill_uniform(x, -1.0, 1.0, rng);
  LayerFixture fx(gap, {x.shape()}, rng);
  gradcheck::Options opt = named({"input"});
  opt.upstream_scale = 4.0 * 3 * 4;
  EXPECT_EQ(gradcheck::check_gradients(gap, {&x}, opt).failed(), 0u);
}

// The check must be able to fail: max-pool backward that spreads each output gradient over its
// window (average-pool backward) instead of routing it to the argmax.
TEST(MaxPooling2DGradChecker, DetectsGradientNotRoutedToArgmax) {
  Rng rng(57);
  MaxPooling2D pool("pool_broken", 3, 2);
  gradcheck::CorruptedBackward bad(pool, [](Layer&, const std::vector<const Tensor*>& in,
                                            const Tensor& dout, const std::vector<Tensor*>& din) {
    const Shape& s = in[0]->shape();
    const Shape& os = dout.shape();
    Tensor& dx = *din[0];
    dx.zero();
    for (int i = 0; i < os[0]; ++i)
      for (int r = 0; r < os[1]; ++r)
        for (int q = 0; q < os[2]; ++q)
          for (int c = 0; c < os[3]; ++c)
            for (int a = 0; a < 3; ++a)
              for (int b = 0; b < 3; ++b)
                dx[((static_cast<std::size_t>(i) * s[1] + 2 * r + a) * s[2] + 2 * q + b) * s[3] +
                   c] += dout[((static_cast<std::size_t>(i) * os[1] + r) * os[2] + q) * os[3] + c] /
                         9.0f;
  });
  Tensor x(Shape{2, 7, 7, 3});
  gradcheck::fill_distinct(x, 0.05, 10 * gradcheck::kDefaultStep, rng);
  LayerFixture fx(bad, {x.shape()}, rng);
  gradcheck::Options opt = named({"input"});
  opt.kink_signature = gradcheck::max_pool_signature(3, 2);
  gradcheck::expect_check_fails([&] { gradcheck::check_gradients(bad, {&x}, opt); },
                                "gradient of input");
}

}  // namespace
}  // namespace parafine
