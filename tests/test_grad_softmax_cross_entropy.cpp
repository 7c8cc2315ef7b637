// parafine::softmax_cross_entropy: its gradient against finite differences of the batch-mean
// loss, its value against a log-sum-exp written out in double, stability for huge logits, and
// the error for a label out of range.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "gradient_checker.hpp"
#include "parafine/core/loss.hpp"

namespace parafine {
namespace {

using gradcheck::Rng;

// Sum over rows of log(sum_k exp(z_k)) - z_label, in double, max subtracted.
double reference_loss_sum(const Tensor& logits, const std::vector<int>& labels) {
  const int n = logits.shape()[0], c = logits.shape()[1];
  double total = 0.0;
  for (int i = 0; i < n; ++i) {
    double m = -INFINITY;
    for (int k = 0; k < c; ++k) m = std::max(m, static_cast<double>(logits[i * c + k]));
    double s = 0.0;
    for (int k = 0; k < c; ++k) s += std::exp(static_cast<double>(logits[i * c + k]) - m);
    total += m + std::log(s) - logits[i * c + labels[i]];
  }
  return total;
}

struct Batch {
  Tensor logits;
  std::vector<int> labels;
};

Batch random_batch(int n, int c, double scale, Rng& rng) {
  Batch b{Tensor(Shape{n, c}), std::vector<int>(static_cast<std::size_t>(n))};
  gradcheck::fill_uniform(b.logits, -scale, scale, rng);
  for (int& y : b.labels) y = static_cast<int>(rng.below(static_cast<std::size_t>(c)));
  return b;
}

// The loss is a double computation of float logits, so central differences with h = 1e-3 are
// accurate to ~1e-8 (truncation h^2/6 * |f'''| with |f'''| <= 1/divisor); dlogits is float32
// (relative 6e-8). The gradients are at most 1/divisor < 1, so the floor of 1 makes this an
// absolute bound: 1e-5 is ~1% of the smallest non-trivial entries and >100x the noise.
constexpr double kGradTol = 1e-5;

// Finite differences of loss_sum / divisor against dlogits.
void check_loss_gradient(Batch& b, double divisor) {
  Tensor d;
  softmax_cross_entropy(b.logits, b.labels, divisor, &d);
  ASSERT_EQ(d.shape(), b.logits.shape());
  double worst = 0.0, max_grad = 0.0;
  for (std::size_t e = 0; e < b.logits.numel(); ++e) {
    const float x0 = b.logits[e];
    const float xp = static_cast<float>(x0 + gradcheck::kDefaultStep);
    const float xm = static_cast<float>(x0 - gradcheck::kDefaultStep);
    b.logits[e] = xp;
    const double lp =
        softmax_cross_entropy(b.logits, b.labels, divisor, nullptr).loss_sum / divisor;
    b.logits[e] = xm;
    const double lm =
        softmax_cross_entropy(b.logits, b.labels, divisor, nullptr).loss_sum / divisor;
    b.logits[e] = x0;
    const double numeric = (lp - lm) / (static_cast<double>(xp) - xm);
    const double analytic = d[e];
    const double err =
        std::abs(analytic - numeric) / std::max({std::abs(analytic), std::abs(numeric), 1.0});
    worst = std::max(worst, err);
    max_grad = std::max(max_grad, std::abs(analytic));
    EXPECT_LE(err, kGradTol) << "dlogits element " << e << " " << gradcheck::unravel(e, d.shape())
                             << ": analytic " << analytic << ", numeric " << numeric;
  }
  std::cout << "[gradcheck] softmax_cross_entropy " << b.logits.shape().str() << " divisor "
            << divisor << ": max scaled error " << worst << " (max |grad| " << max_grad
            << ", tolerance " << kGradTol << ")" << std::endl;
}

TEST(SoftmaxCrossEntropyGrad, MeanOverBatch) {
  Rng rng(61);
  Batch b = random_batch(4, 5, 3.0, rng);
  check_loss_gradient(b, 4.0);
}

// A rank's share of a global batch: the divisor is the global batch size, not the local rows.
TEST(SoftmaxCrossEntropyGrad, DivisorIsGlobalBatchSize) {
  Rng rng(62);
  Batch b = random_batch(3, 7, 3.0, rng);
  check_loss_gradient(b, 10.0);
}

// The check must be able to fail: a gradient divided by N - 1 instead of N.
TEST(SoftmaxCrossEntropyGradChecker, DetectsWrongDivisor) {
  Rng rng(63);
  Batch b = random_batch(4, 5, 3.0, rng);
  Tensor d;
  softmax_cross_entropy(b.logits, b.labels, 3.0, &d);  // the bug: divisor N - 1
  double worst = 0.0;
  for (std::size_t e = 0; e < d.numel(); ++e) {
    const float x0 = b.logits[e];
    b.logits[e] = x0 + 1e-3f;
    const double lp = softmax_cross_entropy(b.logits, b.labels, 4.0, nullptr).loss_sum / 4.0;
    b.logits[e] = x0 - 1e-3f;
    const double lm = softmax_cross_entropy(b.logits, b.labels, 4.0, nullptr).loss_sum / 4.0;
    b.logits[e] = x0;
    const double numeric = (lp - lm) / (static_cast<double>(x0 + 1e-3f) - (x0 - 1e-3f));
    worst = std::max(worst, std::abs(d[e] - numeric));
  }
  std::cout << "[gradcheck] dlogits with divisor N-1: max error " << worst << " (tolerance "
            << kGradTol << ")" << std::endl;
  EXPECT_GT(worst, 100 * kGradTol) << "the gradient check could not tell N from N-1";
}

TEST(SoftmaxCrossEntropyValue, MatchesLogSumExpInDouble) {
  Rng rng(64);
  Batch b = random_batch(6, 9, 8.0, rng);
  const LossResult r = softmax_cross_entropy(b.logits, b.labels, 6.0, nullptr);
  const double want = reference_loss_sum(b.logits, b.labels);
  int correct = 0;
  for (int i = 0; i < 6; ++i) {
    const float* z = b.logits.data() + i * 9;
    correct += static_cast<int>(std::max_element(z, z + 9) - z) == b.labels[i];
  }
  // Both evaluate in double from the same float logits: only summation order differs.
  constexpr double kTol = 1e-12;
  const double err = std::abs(r.loss_sum - want) / std::max(1.0, std::abs(want));
  EXPECT_LE(err, kTol) << "loss_sum " << r.loss_sum << ", log-sum-exp " << want;
  EXPECT_EQ(r.count, 6);
  EXPECT_EQ(r.correct, correct);
  std::cout << "[loss] loss_sum " << r.loss_sum << " vs log-sum-exp " << want << ": relative error "
            << err << " (tolerance " << kTol << ")" << std::endl;
}

// Logits of +-1000 overflow a naive exp. Row 0: the label holds the max: loss 0 (exp(-1000)
// and exp(-2000) vanish next to 1). Row 1: label at -1000: loss 2000. Row 2: label at 0:
// loss 1000. Row 3: three equal huge logits: log 3.
TEST(SoftmaxCrossEntropyValue, StableForHugeLogits) {
  Tensor z(Shape{4, 3});
  const float rows[4][3] = {
      {1000, -1000, 0}, {1000, -1000, 0}, {1000, -1000, 0}, {1000, 1000, 1000}};
  for (int i = 0; i < 4; ++i)
    for (int k = 0; k < 3; ++k) z[i * 3 + k] = rows[i][k];
  const std::vector<int> labels{0, 1, 2, 1};
  const double want[4] = {0.0, 2000.0, 1000.0, std::log(3.0)};
  Tensor d;
  double total = 0.0;
  for (int i = 0; i < 4; ++i) {
    Tensor zi(Shape{1, 3});
    for (int k = 0; k < 3; ++k) zi[k] = z[i * 3 + k];
    const LossResult r = softmax_cross_entropy(zi, {labels[i]}, 1.0, &d);
    ASSERT_TRUE(std::isfinite(r.loss_sum)) << "row " << i;
    const double err = std::abs(r.loss_sum - want[i]) / std::max(1.0, want[i]);
    EXPECT_LE(err, 1e-12) << "row " << i << ": loss " << r.loss_sum << ", expected " << want[i];
    for (int k = 0; k < 3; ++k) ASSERT_TRUE(std::isfinite(d[k])) << "row " << i << " dlogit " << k;
    total += r.loss_sum;
  }
  // Row 1's gradient: softmax is (1, 0, 0), so dlogits = (1, -1, 0).
  const LossResult r = softmax_cross_entropy(z, labels, 4.0, &d);
  EXPECT_NEAR(r.loss_sum, total, 1e-9);
  EXPECT_NEAR(d[3] * 4.0, 1.0, 1e-7);
  EXPECT_NEAR(d[4] * 4.0, -1.0, 1e-7);
  EXPECT_NEAR(d[5] * 4.0, 0.0, 1e-7);
  std::cout << "[loss] huge logits: loss_sum " << r.loss_sum << " (expected "
            << want[0] + want[1] + want[2] + want[3] << ")" << std::endl;
}

TEST(SoftmaxCrossEntropyErrors, LabelOutOfRangeNamesTheLabel) {
  Tensor z(Shape{2, 5});
  z.fill(0.5f);
  for (int bad : {5, 7, -1}) {
    try {
      softmax_cross_entropy(z, {0, bad}, 2.0, nullptr);
      ADD_FAILURE() << "label " << bad << " with 5 classes did not throw";
    } catch (const std::invalid_argument& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("label " + std::to_string(bad)), std::string::npos)
          << "message does not name the label: " << msg;
      std::cout << "[loss] label " << bad << ": " << msg << std::endl;
    }
  }
}

}  // namespace
}  // namespace parafine
