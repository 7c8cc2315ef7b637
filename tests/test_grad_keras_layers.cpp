// The Keras layers of issue 14 against hand values and finite differences: Flatten, Rescaling,
// the Activation layers of make_activation (sigmoid, tanh, softmax, swish/silu, gelu, elu,
// linear, relu, relu6), Normalization (constants and adapted state), PassThrough, and Dense
// without a bias and with the sigmoid and tanh activations.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "gradient_checker.hpp"
#include "parafine/core/bfloat16.hpp"
#include "parafine/layers/activation_layer.hpp"
#include "parafine/layers/dense.hpp"
#include "parafine/layers/flatten.hpp"
#include "parafine/layers/normalization.hpp"
#include "parafine/layers/pass_through.hpp"
#include "parafine/layers/rescaling.hpp"

namespace parafine {
namespace {

using gradcheck::LayerFixture;
using gradcheck::Rng;

gradcheck::Options input_only() {
  gradcheck::Options opt;
  opt.input_names = {"input"};
  return opt;
}

// Largest |a - b| over two equally long arrays.
double max_abs_diff(const float* a, const float* b, std::size_t n) {
  double m = 0.0;
  for (std::size_t i = 0; i < n; ++i)
    m = std::max(m, std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
  return m;
}

// ---- Flatten ----
TEST(FlattenGrad, RowMajorOrderAndGradient) {
  Rng rng(141);
  Flatten flat("flatten");
  Tensor x(Shape{2, 3, 4, 5});
  gradcheck::fill_uniform(x, -1.0, 1.0, rng);
  LayerFixture fx(flat, {x.shape()}, rng);
  ASSERT_EQ(fx.out_shape, (Shape{2, 60})) << "got " << fx.out_shape.str();
  Tensor y;
  flat.forward({&x}, y, false);
  // NHWC row-major: y[i, (h*4 + w)*5 + c] = x[i, h, w, c].
  int misplaced = 0;
  for (int i = 0; i < 2; ++i)
    for (int h = 0; h < 3; ++h)
      for (int w = 0; w < 4; ++w)
        for (int c = 0; c < 5; ++c)
          misplaced += y[i * 60 + (h * 4 + w) * 5 + c] != x[((i * 3 + h) * 4 + w) * 5 + c];
  EXPECT_EQ(misplaced, 0) << "values out of NHWC row-major order";
  EXPECT_EQ(gradcheck::check_gradients(flat, {&x}, input_only()).failed(), 0u);
}

TEST(FlattenGrad, RejectsARankOneInput) {
  Flatten flat("flatten");
  EXPECT_THROW(flat.infer_shape({Shape{4}}), std::invalid_argument);
}

// ---- Rescaling ----
TEST(RescalingGrad, ScalarAndPerChannel) {
  Rng rng(142);
  Tensor pixels(Shape{2, 3, 3, 3}), x(Shape{2, 3, 3, 3});
  gradcheck::fill_uniform(pixels, 0.0, 255.0, rng);
  gradcheck::fill_uniform(x, -2.0, 2.0, rng);  // for finite differences: outputs of O(1)
  struct Case {
    std::vector<float> scale, offset;
  };
  const Case cases[] = {{{1.0f / 127.5f}, {-1.0f}},
                        {{0.5f, 2.0f, -1.5f}, {0.1f}},
                        {{1.0f / 255.0f}, {-0.485f, -0.456f, -0.406f}}};
  for (const Case& c : cases) {
    Rescaling layer("rescaling", c.scale, c.offset);
    LayerFixture fx(layer, {x.shape()}, rng);
    Tensor y;
    layer.forward({&pixels}, y, false);
    // Keras's `x * scale + offset`: two float32 operations, each rounded (the product goes
    // through a volatile so that the compiler cannot fuse it with the sum here either).
    double worst = 0.0;
    for (std::size_t e = 0; e < pixels.numel(); ++e) {
      const std::size_t ch = e % 3;
      const float s = c.scale.size() == 1 ? c.scale[0] : c.scale[ch];
      const float o = c.offset.size() == 1 ? c.offset[0] : c.offset[ch];
      volatile float product = pixels[e] * s;
      const float want = product + o;
      worst = std::max(worst, std::abs(static_cast<double>(y[e]) - want));
    }
    std::cout << "[rescaling] scale " << c.scale.size() << " value(s), offset " << c.offset.size()
              << ": max |y - (x*s + o)| = " << worst << std::endl;
    EXPECT_EQ(worst, 0.0);
    EXPECT_EQ(gradcheck::check_gradients(layer, {&x}, input_only()).failed(), 0u);
  }
}

// mixed_bfloat16: Keras casts scale and offset to bfloat16 and the product is a bfloat16 op.
// 1/127.5 = 0.00784313... (float32 bits 0x3C008081) is 0.00787353515625 in bfloat16 (0x3C01:
// the dropped half 0x8081 rounds up).
TEST(RescalingGrad, MixedBfloat16RoundsScaleOffsetAndProduct) {
  Rescaling layer("rescaling", {1.0f / 127.5f}, {-1.0f});
  layer.set_bfloat16_compute(true);
  Tensor x(Shape{1, 2, 2, 3}), y;
  for (std::size_t e = 0; e < x.numel(); ++e) x[e] = static_cast<float>(e * 21 + 3);  // ints
  layer.infer_shape({x.shape()});
  layer.forward({&x}, y, false);
  double worst = 0.0;
  for (std::size_t e = 0; e < x.numel(); ++e) {
    const float product = round_to_bfloat16(x[e] * 0.00787353515625f);
    worst = std::max(worst, std::abs(static_cast<double>(y[e]) - (product - 1.0f)));
  }
  std::cout << "[rescaling] mixed_bfloat16: max |y - (bf16(x * bf16(s)) + o)| " << worst
            << std::endl;
  EXPECT_EQ(worst, 0.0);
}

TEST(RescalingGrad, RejectsAScaleOfAnotherChannelCount) {
  Rescaling layer("rescaling", {1.0f, 2.0f}, {0.0f});
  try {
    layer.infer_shape({Shape{1, 4, 4, 3}});
    FAIL() << "two scales for three channels were accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'rescaling'"), std::string::npos) << e.what();
  }
}

// ---- Activation ----
// Hand values (Python's math module, float64) at x = -2, -0.5, 0, 0.75, 3.
struct HandValues {
  const char* activation;
  double y[5];
};
constexpr float kHandX[5] = {-2.0f, -0.5f, 0.0f, 0.75f, 3.0f};
const HandValues kHand[] = {
    {"sigmoid",
     {0.11920292202211755, 0.3775406687981454, 0.5, 0.679178699175393, 0.9525741268224334}},
    {"tanh",
     {-0.9640275800758169, -0.46211715726000974, 0.0, 0.6351489523872873, 0.9950547536867305}},
    {"swish", {-0.2384058440442351, -0.1887703343990727, 0.0, 0.5093840243815447, 2.8577223804673}},
    {"silu", {-0.2384058440442351, -0.1887703343990727, 0.0, 0.5093840243815447, 2.8577223804673}},
    {"gelu",
     {-0.04550026389635842, -0.15426876936299344, 0.0, 0.5800294857173488, 2.99595030590511}},
    {"elu", {-0.8646647167633873, -0.3934693402873666, 0.0, 0.75, 3.0}},
    {"linear", {-2.0, -0.5, 0.0, 0.75, 3.0}},
    {"relu", {0.0, 0.0, 0.0, 0.75, 3.0}},
    {"relu6", {0.0, 0.0, 0.0, 0.75, 3.0}},
};

TEST(ActivationLayer, HandValues) {
  Tensor x(Shape{1, 5});
  for (int i = 0; i < 5; ++i) x[i] = kHandX[i];
  for (const HandValues& h : kHand) {
    auto layer = make_activation("act", h.activation);
    EXPECT_STREQ(layer->type(), "Activation") << h.activation;
    layer->infer_shape({x.shape()});
    Tensor y;
    layer->forward({&x}, y, false);
    double worst = 0.0;
    for (int i = 0; i < 5; ++i)
      worst = std::max(worst, std::abs(y[i] - h.y[i]) / std::max(1.0, std::abs(h.y[i])));
    std::cout << "[activation] " << h.activation << ": max relative error vs hand values " << worst
              << std::endl;
    EXPECT_LE(worst, 2e-7) << h.activation;  // float32 rounding of the result
  }
}

TEST(ActivationLayer, SoftmaxOverTheLastAxis) {
  // softmax([1, 2, 3]) in float64 (Python), then each row shifted: softmax is shift-invariant.
  const double want[3] = {0.09003057317038046, 0.24472847105479767, 0.6652409557748219};
  auto layer = make_activation("predictions", "softmax");
  Tensor x(Shape{2, 2, 2, 3});
  for (std::size_t r = 0; r < 8; ++r)
    for (int c = 0; c < 3; ++c) x[r * 3 + c] = static_cast<float>(c + 1 + 100.0 * r);  // up to 703
  layer->infer_shape({x.shape()});
  Tensor y;
  layer->forward({&x}, y, false);
  double worst = 0.0;
  for (std::size_t r = 0; r < 8; ++r)
    for (int c = 0; c < 3; ++c) worst = std::max(worst, std::abs(y[r * 3 + c] - want[c]));
  std::cout << "[activation] softmax of shifted rows (max 703): max error " << worst << std::endl;
  EXPECT_LE(worst, 1e-7) << "softmax over the last axis, stable for large logits";
}

TEST(ActivationLayer, UnknownNameIsRefusedWithTheSupportedList) {
  try {
    make_activation("head_act", "mish");
    FAIL() << "mish was accepted";
  } catch (const std::invalid_argument& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("'mish'"), std::string::npos) << m;
    EXPECT_NE(m.find("'head_act'"), std::string::npos) << m;
    EXPECT_NE(m.find("sigmoid"), std::string::npos) << m;
  }
}

TEST(ActivationLayer, ReluIsTheFusableReLUAndRelu6ReportsActivation) {
  auto relu = make_activation("a", "relu");
  EXPECT_TRUE(is_plain_relu(*relu));
  auto relu6 = make_activation("b", "relu6");
  const auto* as_relu = dynamic_cast<const ReLU*>(relu6.get());
  ASSERT_NE(as_relu, nullptr) << "relu6 must stay a ReLU (the Model's ReLU6 fusions)";
  ASSERT_TRUE(as_relu->max_value().has_value());
  EXPECT_EQ(*as_relu->max_value(), 6.0f);
  EXPECT_FALSE(is_plain_relu(*relu6));
  EXPECT_STREQ(relu6->type(), "Activation");
}

struct SmoothCase {
  const char* activation;
  double lo, hi;
};

class ActivationGrad : public ::testing::TestWithParam<SmoothCase> {};

TEST_P(ActivationGrad, FiniteDifferences) {
  const SmoothCase& c = GetParam();
  Rng rng(143);
  auto layer = make_activation("act", c.activation);
  Tensor x(Shape{2, 3, 3, 4});
  gradcheck::fill_uniform(x, c.lo, c.hi, rng);
  LayerFixture fx(*layer, {x.shape()}, rng);
  gradcheck::Options opt = input_only();
  if (std::string(c.activation) == "relu6") {
    opt.kink_signature = [](const std::vector<const Tensor*>&, const Tensor& out) {
      std::vector<std::int64_t> s(out.numel());
      for (std::size_t i = 0; i < out.numel(); ++i) s[i] = (out[i] > 0.0f) + (out[i] >= 6.0f);
      return s;
    };
  }
  EXPECT_EQ(gradcheck::check_gradients(*layer, {&x}, opt).failed(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Keras, ActivationGrad,
                         ::testing::Values(SmoothCase{"sigmoid", -4, 4}, SmoothCase{"tanh", -2, 2},
                                           SmoothCase{"softmax", -3, 3}, SmoothCase{"swish", -4, 4},
                                           SmoothCase{"gelu", -3, 3}, SmoothCase{"elu", -3, 3},
                                           SmoothCase{"linear", -3, 3},
                                           SmoothCase{"relu6", -4, 10}),
                         [](const ::testing::TestParamInfo<SmoothCase>& i) {
                           return std::string(i.param.activation);
                         });

// A sigmoid or softmax fused with its loss passes dLoss/dlogits through; others refuse.
TEST(ActivationLayer, FusedWithLossPassesTheLogitGradient) {
  ElementwiseActivation sig("predictions", ElementwiseKind::kSigmoid);
  sig.set_fused_with_loss(true);
  EXPECT_FALSE(sig.backward_reads_output_values());
  Tensor x(Shape{3, 1}), dy(Shape{3, 1}), y, dx;
  for (int i = 0; i < 3; ++i) {
    x[i] = static_cast<float>(i) - 1.0f;
    dy[i] = 0.25f * static_cast<float>(i + 1);
  }
  sig.infer_shape({x.shape()});
  sig.forward({&x}, y, true);
  sig.backward({&x}, y, dy, {&dx});
  EXPECT_EQ(max_abs_diff(dx.data(), dy.data(), 3), 0.0);
  ElementwiseActivation tanh_layer("t", ElementwiseKind::kTanh);
  EXPECT_THROW(tanh_layer.set_fused_with_loss(true), std::invalid_argument);
}

// ---- Normalization ----
TEST(NormalizationGrad, ConstantMeanAndVariance) {
  Rng rng(144);
  const std::vector<float> mean{0.485f, 0.456f, 0.406f}, var{0.052f, 0.050f, 0.0f};
  Normalization norm("normalization", mean, var);
  Tensor x(Shape{2, 3, 3, 3});
  gradcheck::fill_uniform(x, -1.0, 1.0, rng);
  LayerFixture fx(norm, {x.shape()}, rng);
  EXPECT_TRUE(fx.specs.empty()) << "constants of the config are not weights";
  Tensor y;
  norm.forward({&x}, y, false);
  double worst = 0.0;  // relative to the double formula; the zero variance divides by 1e-7
  for (std::size_t e = 0; e < x.numel(); ++e) {
    const std::size_t c = e % 3;
    const double want = (static_cast<double>(x[e]) - mean[c]) /
                        std::max(std::sqrt(static_cast<double>(var[c])), 1e-7);
    worst = std::max(worst, std::abs(y[e] - want) / std::max(1.0, std::abs(want)));
  }
  std::cout << "[normalization] constants: max relative error " << worst << std::endl;
  EXPECT_LE(worst, 1e-6);
  EXPECT_EQ(gradcheck::check_gradients(norm, {&x}, input_only()).failed(), 0u);
}

TEST(NormalizationGrad, AdaptedStateIsLoadableAndUsed) {
  Rng rng(145);
  Normalization norm("normalization");
  Tensor x(Shape{3, 4});
  gradcheck::fill_uniform(x, -2.0, 2.0, rng);
  LayerFixture fx(norm, {x.shape()}, rng);
  ASSERT_EQ(fx.specs.size(), 2u);
  EXPECT_EQ(fx.specs[0].name, "mean");
  EXPECT_EQ(fx.specs[1].name, "variance");
  for (const ParamSpec& s : fx.specs) {
    EXPECT_FALSE(s.optimised) << s.name;
    EXPECT_EQ(s.shape, (Shape{4})) << s.name;
  }
  fx.value("mean") = {0.5f, -1.0f, 0.0f, 2.0f};
  fx.value("variance") = {4.0f, 0.25f, 1.0f, 9.0f};
  Tensor y;
  norm.forward({&x}, y, false);
  const double sd[4] = {2.0, 0.5, 1.0, 3.0};
  double worst = 0.0;
  for (std::size_t e = 0; e < x.numel(); ++e)
    worst = std::max(worst, std::abs(y[e] - (x[e] - fx.value("mean")[e % 4]) / sd[e % 4]));
  std::cout << "[normalization] adapted: max error " << worst << std::endl;
  EXPECT_LE(worst, 1e-6);
  const gradcheck::Report rep = gradcheck::check_gradients(norm, {&x}, input_only());
  EXPECT_EQ(rep.failed(), 0u);
  EXPECT_EQ(rep.tensors.size(), 1u) << "state gets no gradient";
}

TEST(NormalizationGrad, InvertIsRefused) {
  try {
    Normalization norm("denormalize", true);
    FAIL() << "invert=True was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'denormalize'"), std::string::npos) << e.what();
  }
}

// ---- PassThrough ----
TEST(PassThroughGrad, IdentityUnderTheGivenClass) {
  Rng rng(146);
  PassThrough layer("random_flip", "RandomFlip");
  EXPECT_STREQ(layer.type(), "RandomFlip");
  Tensor x(Shape{2, 4, 4, 3});
  gradcheck::fill_uniform(x, -1.0, 1.0, rng);
  LayerFixture fx(layer, {x.shape()}, rng);
  Tensor y;
  layer.forward({&x}, y, false);
  EXPECT_EQ(max_abs_diff(x.data(), y.data(), x.numel()), 0.0);
  EXPECT_EQ(gradcheck::check_gradients(layer, {&x}, input_only()).failed(), 0u);
}

// ---- Dense ----
TEST(DenseOptionsGrad, WithoutBias) {
  Rng rng(147);
  Dense dense("dense_nobias", 5, Activation::kLinear, /*use_bias=*/false);
  Tensor x(Shape{4, 6});
  gradcheck::fill_uniform(x, -1.0, 1.0, rng);
  LayerFixture fx(dense, {x.shape()}, rng);
  ASSERT_EQ(fx.specs.size(), 1u);
  EXPECT_EQ(fx.specs[0].name, "kernel");
  Tensor y;
  dense.forward({&x}, y, false);
  double worst = 0.0;  // y = x W, no bias
  for (int n = 0; n < 4; ++n)
    for (int j = 0; j < 5; ++j) {
      double z = 0.0;
      for (int i = 0; i < 6; ++i) z += static_cast<double>(x[n * 6 + i]) * fx.values[0][i * 5 + j];
      worst = std::max(worst, std::abs(y[n * 5 + j] - z));
    }
  std::cout << "[dense] use_bias=false: max |y - xW| " << worst << std::endl;
  EXPECT_LE(worst, 1e-5);
  const gradcheck::Report rep = gradcheck::check_gradients(dense, {&x}, input_only());
  EXPECT_EQ(rep.failed(), 0u);
  EXPECT_EQ(rep.tensors.size(), 2u);  // input, kernel
}

TEST(DenseOptionsGrad, Tanh) {
  Rng rng(148);
  Dense dense("dense_tanh", 5, Activation::kTanh);
  Tensor x(Shape{4, 6});
  gradcheck::fill_uniform(x, -1.0, 1.0, rng);
  LayerFixture fx(dense, {x.shape()}, rng);
  Tensor y;
  dense.forward({&x}, y, false);
  for (std::size_t e = 0; e < y.numel(); ++e) ASSERT_LT(std::abs(y[e]), 1.0f);
  const gradcheck::Report rep = gradcheck::check_gradients(dense, {&x}, input_only());
  EXPECT_EQ(rep.failed(), 0u);
  EXPECT_EQ(rep.tensors.size(), 3u);
}

// Sigmoid is fused with its loss: forward gives sigmoid(logits) and keeps the logits, and
// backward takes dLoss/dlogits, so it must equal a linear Dense's backward of the same values.
TEST(DenseOptionsGrad, SigmoidKeepsLogitsAndTakesTheirGradient) {
  Rng rng(149);
  Dense sig("predictions", 1, Activation::kSigmoid), lin("linear", 1, Activation::kLinear);
  Tensor x(Shape{5, 6}), dz(Shape{5, 1});
  gradcheck::fill_uniform(x, -1.0, 1.0, rng);
  gradcheck::fill_uniform(dz, -1.0, 1.0, rng);
  LayerFixture fs(sig, {x.shape()}, rng), fl(lin, {x.shape()}, rng);
  fl.values = fs.values;
  for (int i = 0; i < 2; ++i) lin.bind_param(i, fl.values[i].data(), fl.grads[i].data());
  Tensor ys, yl, dxs, dxl;
  sig.forward({&x}, ys, true);
  lin.forward({&x}, yl, true);
  EXPECT_EQ(max_abs_diff(sig.logits().data(), yl.data(), 5), 0.0) << "logits() = x W + b";
  double worst = 0.0;
  for (int i = 0; i < 5; ++i)
    worst = std::max(worst, std::abs(ys[i] - 1.0 / (1.0 + std::exp(-static_cast<double>(yl[i])))));
  std::cout << "[dense] sigmoid: max |y - sigmoid(logits)| " << worst << std::endl;
  EXPECT_LE(worst, 1e-7);
  sig.backward({&x}, ys, dz, {&dxs});
  lin.backward({&x}, yl, dz, {&dxl});
  EXPECT_EQ(max_abs_diff(dxs.data(), dxl.data(), dxs.numel()), 0.0);
  EXPECT_EQ(max_abs_diff(fs.grads[0].data(), fl.grads[0].data(), fs.grads[0].size()), 0.0);
  EXPECT_EQ(max_abs_diff(fs.grads[1].data(), fl.grads[1].data(), 1), 0.0);
}

}  // namespace
}  // namespace parafine
