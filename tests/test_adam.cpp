// Adam against the Keras update written out independently in double precision:
//   lr_t = lr*sqrt(1-b2^t)/(1-b1^t); m = b1*m+(1-b1)*g; v = b2*v+(1-b2)*g^2;
//   w -= lr_t*m/(sqrt(v)+eps), b1 0.9, b2 0.999, eps 1e-7.
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>

#include "parafine/core/adam.hpp"
#include "parafine/core/rng.hpp"

namespace parafine {
namespace {

TEST(Adam, MatchesTheKerasFormulaOverManySteps) {
  const int n = 257, steps = 50;
  const double lr = 1e-3;
  SplitMix64 rng(3);
  std::vector<float> w(n);
  std::vector<double> wd(n), m(n, 0.0), v(n, 0.0);
  for (int i = 0; i < n; ++i) wd[i] = w[i] = static_cast<float>(rng.uniform() - 0.5);
  Adam adam(n, lr);
  double worst = 0;
  for (int t = 1; t <= steps; ++t) {
    std::vector<float> g(n);
    for (int i = 0; i < n; ++i)
      g[i] = static_cast<float>((rng.uniform() - 0.5) * (i % 7 == 0 ? 1e-6 : 1.0));
    adam.step(w.data(), g.data());
    const double lr_t = lr * std::sqrt(1 - std::pow(0.999, t)) / (1 - std::pow(0.9, t));
    for (int i = 0; i < n; ++i) {
      m[i] = 0.9 * m[i] + 0.1 * g[i];
      v[i] = 0.999 * v[i] + 0.001 * double(g[i]) * g[i];
      wd[i] -= lr_t * m[i] / (std::sqrt(v[i]) + 1e-7);
      worst = std::max(worst, std::abs(w[i] - wd[i]));
    }
  }
  std::cout << "max |w - w_ref| after " << steps << " steps: " << worst << " (tol 1e-6)\n";
  EXPECT_LT(worst, 1e-6);
  EXPECT_EQ(adam.iterations(), steps);
}

TEST(Adam, FirstStepMovesEachWeightByAboutTheLearningRate) {
  // With m = v = 0, the first Keras step is lr * g / (|g| + eps/sqrt(1-b2)) ~ lr * sign(g).
  std::vector<float> w = {0.0f, 0.0f, 0.0f}, g = {2.0f, -0.5f, 0.0f};
  Adam adam(3, 0.01);
  adam.step(w.data(), g.data());
  std::cout << "first step: " << w[0] << " " << w[1] << " " << w[2] << "\n";
  EXPECT_NEAR(w[0], -0.01, 1e-7);
  EXPECT_NEAR(w[1], 0.01, 1e-7);
  EXPECT_EQ(w[2], 0.0f);
}

TEST(Adam, FreshOptimizerStartsFromZeroState) {
  std::vector<float> w(4, 1.0f), g(4, 1.0f);
  Adam phase1(4, 1e-3);
  for (int i = 0; i < 5; ++i) phase1.step(w.data(), g.data());
  Adam phase2(4, 1e-5);
  EXPECT_EQ(phase2.iterations(), 0);
  for (float x : phase2.m()) EXPECT_EQ(x, 0.0f);
  for (float x : phase2.v()) EXPECT_EQ(x, 0.0f);
}

TEST(Adam, RejectsBadLearningRates) {
  EXPECT_THROW(Adam(1, -1e-3), std::invalid_argument);
  EXPECT_THROW(Adam(1, std::nan("")), std::invalid_argument);
}

}  // namespace
}  // namespace parafine
