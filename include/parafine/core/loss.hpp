// Categorical cross-entropy of a softmax, computed from logits, and accuracy.
#pragma once

#include <vector>

#include "parafine/core/tensor.hpp"

namespace parafine {

struct LossResult {
  double loss_sum = 0.0;  // sum over the batch of -log p[label]
  int correct = 0;        // argmax(logits) == label
  int count = 0;
  LossResult& operator+=(const LossResult& o) {
    loss_sum += o.loss_sum;
    correct += o.correct;
    count += o.count;
    return *this;
  }
};

// logits [N,C], labels[i] in [0,C). When dlogits is given it is set to
// (softmax(logits) - onehot(label)) / divisor: with divisor = the (global) batch size this is
// the gradient of the batch-mean loss. Throws std::invalid_argument for a label out of range.
LossResult softmax_cross_entropy(const Tensor& logits, const std::vector<int>& labels,
                                 double divisor, Tensor* dlogits);

}  // namespace parafine
