// Dense (the classifier head's layers) against finite differences: input, kernel and bias
// gradients with the linear and the relu activation, kinks of the relu skipped.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <vector>

#include "gradient_checker.hpp"
#include "parafine/layers/dense.hpp"

namespace parafine {
namespace {

using gradcheck::LayerFixture;
using gradcheck::Rng;

constexpr int kN = 4, kIn = 6, kUnits = 5;

gradcheck::Options dense_options(Activation act) {
  gradcheck::Options opt;
  opt.input_names = {"input"};
  if (act == Activation::kRelu) opt.kink_signature = gradcheck::relu_signature();
  return opt;
}

TEST(DenseGrad, Linear) {
  Rng rng(41);
  Dense dense("dense_linear", kUnits, Activation::kLinear);
  Tensor x(Shape{kN, kIn});
  gradcheck::fill_uniform(x, -1.0, 1.0, rng);
  LayerFixture fx(dense, {x.shape()}, rng);
  const gradcheck::Report rep =
      gradcheck::check_gradients(dense, {&x}, dense_options(Activation::kLinear));
  EXPECT_EQ(rep.failed(), 0u);
  EXPECT_EQ(rep.tensors.size(), 3u);  // input, kernel, bias
}

// Smallest |z| of the pre-activations z = x W + b, in double, and how many are positive.
double min_abs_preactivation(const Tensor& x, const LayerFixture& fx, int& positive) {
  const std::vector<float>& w = fx.values[0];
  const std::vector<float>& b = fx.values[1];
  double least = INFINITY;
  positive = 0;
  for (int n = 0; n < kN; ++n)
    for (int j = 0; j < kUnits; ++j) {
      double z = b[j];
      for (int i = 0; i < kIn; ++i) z += static_cast<double>(x[n * kIn + i]) * w[i * kUnits + j];
      least = std::min(least, std::abs(z));
      positive += z > 0.0;
    }
  return least;
}

// Caffe avoids ReLU kinks by construction: draw until every pre-activation is at least 0.05
// from zero (a perturbation of h moves z by at most h * max(|x|, |W|, 1) = 1e-3), with both
// signs present so the mask in backward is exercised. Then nothing may be skipped.
TEST(DenseGrad, Relu) {
  Rng rng(42);
  Dense dense("dense_relu", kUnits, Activation::kRelu);
  Tensor x(Shape{kN, kIn});
  LayerFixture fx(dense, {x.shape()}, rng);
  int positive = 0, draws = 0;
  double margin = 0.0;
  do {
    ASSERT_LT(draws++, 1000) << "no draw keeps the pre-activations away from the kink";
    gradcheck::fill_uniform(x, -1.0, 1.0, rng);
    for (auto& v : fx.values) gradcheck::fill_uniform(v.data(), v.size(), -1.0, 1.0, rng);
    margin = min_abs_preactivation(x, fx, positive);
  } while (margin < 0.05 || positive == 0 || positive == kN * kUnits);
  std::cout << "[gradcheck] dense_relu: " << positive << " of " << kN * kUnits
            << " outputs active, min |z| " << margin << " (draw " << draws << ")" << std::endl;
  gradcheck::Options opt = dense_options(Activation::kRelu);
  opt.max_skipped_fraction = 0.0;
  const gradcheck::Report rep = gradcheck::check_gradients(dense, {&x}, opt);
  EXPECT_EQ(rep.failed(), 0u);
  EXPECT_EQ(rep.tensors.size(), 3u);
}

TEST(DenseGrad, FrozenLayerHasInputGradientOnly) {
  Rng rng(43);
  Dense dense("dense_frozen", kUnits, Activation::kRelu);
  dense.trainable = false;
  Tensor x(Shape{kN, kIn});
  gradcheck::fill_uniform(x, -1.0, 1.0, rng);
  LayerFixture fx(dense, {x.shape()}, rng);
  const float sentinel = 777.0f;
  for (auto& g : fx.grads) std::fill(g.begin(), g.end(), sentinel);
  const gradcheck::Report rep =
      gradcheck::check_gradients(dense, {&x}, dense_options(Activation::kRelu));
  EXPECT_EQ(rep.failed(), 0u);
  EXPECT_EQ(rep.tensors.size(), 1u);
  for (const auto& g : fx.grads)
    for (float v : g) ASSERT_EQ(v, sentinel) << "frozen Dense wrote a weight gradient";
}

// The check must be able to fail: a kernel gradient that ignores the relu mask (x^T dy
// instead of x^T (dy * [z > 0])).
TEST(DenseGradChecker, DetectsKernelGradientIgnoringReluMask) {
  Rng rng(44);
  Dense dense("dense_broken", kUnits, Activation::kRelu);
  gradcheck::CorruptedBackward bad(dense, [](Layer& inner, const std::vector<const Tensor*>& in,
                                             const Tensor& dout, const std::vector<Tensor*>&) {
    float* dw = inner.grad(0);
    for (int i = 0; i < kIn; ++i)
      for (int j = 0; j < kUnits; ++j) {
        double s = 0.0;
        for (int n = 0; n < kN; ++n) s += (*in[0])[n * kIn + i] * dout[n * kUnits + j];
        dw[i * kUnits + j] = static_cast<float>(s);
      }
  });
  Tensor x(Shape{kN, kIn});
  gradcheck::fill_uniform(x, -1.0, 1.0, rng);
  LayerFixture fx(bad, {x.shape()}, rng);
  gradcheck::expect_check_fails(
      [&] { gradcheck::check_gradients(bad, {&x}, dense_options(Activation::kRelu)); },
      "gradient of kernel");
}

}  // namespace
}  // namespace parafine
