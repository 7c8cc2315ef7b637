// sigmoid_binary_cross_entropy (core/loss.hpp): the loss and gradient against a float64 loop
// over the probability form -[y log p + (1 - y) log(1 - p)], finite differences of the loss,
// finite values at extreme logits, Keras's binary_accuracy, the label checks, and the gradient
// through a Dense(1, sigmoid) head by finite differences of the loss.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <stdexcept>
#include <vector>

#include "gradient_checker.hpp"
#include "parafine/core/loss.hpp"
#include "parafine/layers/dense.hpp"

namespace parafine {
namespace {

using gradcheck::Rng;

TEST(SigmoidBinaryCrossEntropy, MatchesAFloat64LoopAndFiniteDifferences) {
  Rng rng(61);
  const int n = 16;
  Tensor z(Shape{n, 1}), dz;
  std::vector<int> labels(n);
  gradcheck::fill_uniform(z, -6.0, 6.0, rng);
  for (int i = 0; i < n; ++i) labels[static_cast<size_t>(i)] = static_cast<int>(rng.below(2));
  const double divisor = 32.0;  // e.g. the global batch
  const LossResult r = sigmoid_binary_cross_entropy(z, labels, divisor, &dz);

  double loss = 0.0, worst_grad = 0.0;
  int correct = 0;
  for (int i = 0; i < n; ++i) {
    const double p = 1.0 / (1.0 + std::exp(-static_cast<double>(z[i])));
    const int y = labels[static_cast<size_t>(i)];
    loss += -(y * std::log(p) + (1 - y) * std::log(1.0 - p));
    correct += (p > 0.5) == (y == 1);
    worst_grad = std::max(worst_grad, std::abs(dz[i] - (p - y) / divisor));
  }
  std::cout << "[bce] loss " << r.loss_sum << " vs float64 loop " << loss << ", max grad error "
            << worst_grad << std::endl;
  EXPECT_EQ(r.count, n);
  EXPECT_NEAR(r.loss_sum, loss, 1e-10 * std::max(1.0, loss));
  EXPECT_LE(worst_grad, 1e-8);
  EXPECT_EQ(r.correct, correct);

  // Central differences of loss_sum / divisor in each logit (float steps of 1e-3).
  double worst_fd = 0.0;
  for (int i = 0; i < n; ++i) {
    const float z0 = z[i];
    z[i] = z0 + 1e-3f;
    const double lp = sigmoid_binary_cross_entropy(z, labels, divisor, nullptr).loss_sum;
    const float zp = z[i];
    z[i] = z0 - 1e-3f;
    const double lm = sigmoid_binary_cross_entropy(z, labels, divisor, nullptr).loss_sum;
    const float zm = z[i];
    z[i] = z0;
    const double numeric = (lp - lm) / divisor / (static_cast<double>(zp) - zm);
    worst_fd = std::max(worst_fd, std::abs(numeric - dz[i]));
  }
  std::cout << "[bce] max |analytic - finite difference| " << worst_fd << " (tolerance 1e-6)"
            << std::endl;
  EXPECT_LE(worst_fd, 1e-6);
}

TEST(SigmoidBinaryCrossEntropy, ExtremeLogitsStayFinite) {
  Tensor z(Shape{4, 1}), dz;
  z[0] = 100.0f;   // y = 0: loss 100
  z[1] = -100.0f;  // y = 1: loss 100
  z[2] = 100.0f;   // y = 1: loss exp(-100) = 3.7e-44
  z[3] = -100.0f;  // y = 0: loss 3.7e-44
  const LossResult r = sigmoid_binary_cross_entropy(z, {0, 1, 1, 0}, 4.0, &dz);
  std::cout << "[bce] extreme logits: loss sum " << r.loss_sum << ", gradients " << dz[0] << " "
            << dz[1] << " " << dz[2] << " " << dz[3] << std::endl;
  EXPECT_TRUE(std::isfinite(r.loss_sum));
  EXPECT_NEAR(r.loss_sum, 200.0, 1e-9);
  EXPECT_NEAR(dz[0], 0.25, 1e-7);
  EXPECT_NEAR(dz[1], -0.25, 1e-7);
  EXPECT_NEAR(dz[2], 0.0, 1e-7);
  EXPECT_NEAR(dz[3], 0.0, 1e-7);
  EXPECT_EQ(r.correct, 2);
}

TEST(SigmoidBinaryCrossEntropy, BinaryAccuracyThresholdsTheProbability) {
  Tensor z(Shape{4, 1});
  z[0] = 0.0f;    // p = 0.5: not > 0.5, predicts 0
  z[1] = 1e-3f;   // p > 0.5: predicts 1
  z[2] = -1e-3f;  // predicts 0
  z[3] = 1e-9f;   // float32 p rounds to 0.5: predicts 0, as TensorFlow's float32 sigmoid
  EXPECT_EQ(sigmoid_binary_cross_entropy(z, {0, 1, 0, 0}, 1.0, nullptr).correct, 4);
  EXPECT_EQ(sigmoid_binary_cross_entropy(z, {1, 0, 1, 1}, 1.0, nullptr).correct, 0);
}

TEST(SigmoidBinaryCrossEntropy, RejectsBadLabelsAndShapes) {
  Tensor z(Shape{2, 1});
  z.zero();
  EXPECT_THROW(sigmoid_binary_cross_entropy(z, {0, 2}, 1.0, nullptr), std::invalid_argument);
  EXPECT_THROW(sigmoid_binary_cross_entropy(z, {-1, 0}, 1.0, nullptr), std::invalid_argument);
  EXPECT_THROW(sigmoid_binary_cross_entropy(z, {0}, 1.0, nullptr), std::invalid_argument);
  Tensor two(Shape{2, 2});
  two.zero();
  EXPECT_THROW(sigmoid_binary_cross_entropy(two, {0, 1}, 1.0, nullptr), std::invalid_argument);
}

// Dense(1, sigmoid) + binary cross-entropy: the head's backward of dlogits gives the gradient
// of the mean loss in x, W and b (central differences of the loss, scaled error as gradcheck).
TEST(SigmoidBinaryCrossEntropy, ThroughADenseSigmoidHead) {
  Rng rng(62);
  const int n = 6, in = 5;
  Dense head("predictions", 1, Activation::kSigmoid);
  Tensor x(Shape{n, in});
  gradcheck::fill_uniform(x, -1.0, 1.0, rng);
  gradcheck::LayerFixture fx(head, {x.shape()}, rng);
  const std::vector<int> labels{0, 1, 1, 0, 1, 0};
  auto mean_loss = [&]() {
    Tensor y;
    head.forward({&x}, y, true);
    return sigmoid_binary_cross_entropy(head.logits(), labels, n, nullptr).loss_sum / n;
  };
  Tensor y, dz, dx;
  head.forward({&x}, y, true);
  sigmoid_binary_cross_entropy(head.logits(), labels, n, &dz);
  head.backward({&x}, y, dz, {&dx});
  struct Target {
    const char* name;
    float* values;
    const float* analytic;
    std::size_t count;
  };
  const Target targets[] = {{"input", x.data(), dx.data(), x.numel()},
                            {"kernel", fx.values[0].data(), fx.grads[0].data(), fx.grads[0].size()},
                            {"bias", fx.values[1].data(), fx.grads[1].data(), 1}};
  for (const Target& t : targets) {
    const std::vector<float> analytic(t.analytic, t.analytic + t.count);
    double worst = 0.0;
    for (std::size_t e = 0; e < t.count; ++e) {
      const float v0 = t.values[e];
      t.values[e] = v0 + 1e-3f;
      const float vp = t.values[e];
      const double lp = mean_loss();
      t.values[e] = v0 - 1e-3f;
      const float vm = t.values[e];
      const double lm = mean_loss();
      t.values[e] = v0;
      const double numeric = (lp - lm) / (static_cast<double>(vp) - vm);
      worst = std::max(worst, std::abs(numeric - analytic[e]) /
                                  std::max({std::abs(numeric), std::abs(1.0 * analytic[e]), 1.0}));
    }
    std::cout << "[bce] dense sigmoid head, " << t.name << ": max scaled error " << worst
              << " (tolerance 1e-3)" << std::endl;
    EXPECT_LE(worst, 1e-3) << t.name;
  }
}

}  // namespace
}  // namespace parafine
