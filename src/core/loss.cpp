// Softmax cross-entropy from logits (see loss.hpp).
#include "parafine/core/loss.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace parafine {

namespace {

void check_weights(const ClassWeights& weights, int classes, const char* what) {
  if (!weights.empty() && static_cast<int>(weights.size()) != classes)
    throw std::invalid_argument(std::string(what) + ": " + std::to_string(weights.size()) +
                                " class weights for " + std::to_string(classes) + " classes");
}

}  // namespace

LossResult softmax_cross_entropy(const Tensor& logits, const std::vector<int>& labels,
                                 double divisor, Tensor* dlogits, const ClassWeights& weights) {
  const Shape& s = logits.shape();
  if (s.rank() != 2) throw std::invalid_argument("loss: logits must be [N,C], got " + s.str());
  const int n = s[0], c = s[1];
  if (static_cast<int>(labels.size()) != n)
    throw std::invalid_argument("loss: " + std::to_string(labels.size()) + " labels for " +
                                std::to_string(n) + " logits rows");
  check_weights(weights, c, "loss");
  if (dlogits) dlogits->resize(s);
  LossResult r;
  r.count = n;
  for (int i = 0; i < n; ++i) {
    const int y = labels[static_cast<size_t>(i)];
    if (y < 0 || y >= c)
      throw std::invalid_argument("loss: label " + std::to_string(y) + " of sample " +
                                  std::to_string(i) + " is outside [0," + std::to_string(c) + ")");
    const float* z = logits.data() + static_cast<size_t>(i) * c;
    const int arg = static_cast<int>(std::max_element(z, z + c) - z);
    const double m = z[arg];
    double sum = 0.0;
    for (int k = 0; k < c; ++k) sum += std::exp(z[k] - m);
    const double log_sum = std::log(sum) + m;
    const double w = weights.empty() ? 1.0 : weights[static_cast<size_t>(y)];
    r.loss_sum += w * (log_sum - z[y]);
    r.correct += arg == y;
    r.weighted_correct += arg == y ? w : 0.0;
    r.weight_sum += w;
    if (dlogits) {
      float* d = dlogits->data() + static_cast<size_t>(i) * c;
      for (int k = 0; k < c; ++k)
        d[k] = static_cast<float>(w * (std::exp(z[k] - log_sum) - (k == y ? 1.0 : 0.0)) / divisor);
    }
  }
  return r;
}

}  // namespace parafine

namespace parafine {

LossResult sigmoid_binary_cross_entropy(const Tensor& logits, const std::vector<int>& labels,
                                        double divisor, Tensor* dlogits,
                                        const ClassWeights& weights) {
  const Shape& s = logits.shape();
  if (s.rank() != 2 || s[1] != 1)
    throw std::invalid_argument(
        "binary cross-entropy: logits must be [N,1] (one sigmoid unit), got " + s.str());
  const int n = s[0];
  if (static_cast<int>(labels.size()) != n)
    throw std::invalid_argument("binary cross-entropy: " + std::to_string(labels.size()) +
                                " labels for " + std::to_string(n) + " logits");
  check_weights(weights, 2, "binary cross-entropy");
  if (dlogits) dlogits->resize(s);
  LossResult r;
  r.count = n;
  for (int i = 0; i < n; ++i) {
    const int y = labels[static_cast<size_t>(i)];
    if (y != 0 && y != 1)
      throw std::invalid_argument("binary cross-entropy: label " + std::to_string(y) +
                                  " of sample " + std::to_string(i) + " is not 0 or 1");
    const double z = logits[static_cast<size_t>(i)];
    const double w = weights.empty() ? 1.0 : weights[static_cast<size_t>(y)];
    r.loss_sum += w * (std::max(z, 0.0) - z * y + std::log1p(std::exp(-std::abs(z))));
    const double p = 1.0 / (1.0 + std::exp(-z));
    const bool right = (static_cast<float>(p) > 0.5f) == (y == 1);
    r.correct += right;
    r.weighted_correct += right ? w : 0.0;
    r.weight_sum += w;
    if (dlogits) (*dlogits)[static_cast<size_t>(i)] = static_cast<float>(w * (p - y) / divisor);
  }
  return r;
}

}  // namespace parafine
