// Categorical cross-entropy of a softmax and binary cross-entropy of a sigmoid, both computed
// from logits, and their accuracies.
#pragma once

#include <vector>

#include "parafine/core/tensor.hpp"

namespace parafine {

struct LossResult {
  double loss_sum = 0.0;  // sum over the batch of -log p[label]
  int correct = 0;        // argmax(logits) == label (binary: (p > 0.5) == label)
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

// Keras's binary_crossentropy of a Dense(1, activation='sigmoid') output (or a sigmoid
// Activation after it). Keras computes it from the logits: keras.activations.sigmoid caches
// its input on the output (`_keras_logits`), and the backend's binary_crossentropy (TF's
// _get_logits, also recognising a Sigmoid op) then calls
// tf.nn.sigmoid_cross_entropy_with_logits on them; per sample, in double here,
//   loss = max(z, 0) - z y + log1p(exp(-|z|)),   z the logit [N,1], y the label in {0, 1},
// finite for any finite z. correct counts Keras's binary_accuracy: the float32 probability
// sigmoid(z) > 0.5 (z > 0, but for |z| below ~6e-8, where the probability rounds to 0.5).
// When dlogits is given it is set to (sigmoid(z) - y) / divisor. Throws std::invalid_argument
// for logits not [N,1], a label count other than N, or a label outside {0, 1}.
LossResult sigmoid_binary_cross_entropy(const Tensor& logits, const std::vector<int>& labels,
                                        double divisor, Tensor* dlogits);

}  // namespace parafine
