// Categorical cross-entropy of a softmax and binary cross-entropy of a sigmoid, both computed
// from logits, and their accuracies.
#pragma once

#include <vector>

#include "parafine/core/tensor.hpp"

namespace parafine {

// With class weights w (Keras's class_weight, turned into sample weights w[label]) the sums
// are what Keras's fit logs: the loss tracker averages the batch losses sum(w l) / batch size
// weighted by the batch size, so loss = loss_sum / count. The compiled `metrics=["accuracy"]`
// do NOT get the sample weights (keras/src/trainers/compile_utils.py CompileMetrics
// .update_state: only `weighted_metrics` do), so accuracy = correct / count.
// weighted_correct / weight_sum is Keras's weighted_metrics figure, kept in the sums (and in
// checkpoints) for it. Without weights w = 1.
struct LossResult {
  double loss_sum = 0.0;  // sum over the batch of w * -log p[label]
  int correct = 0;        // argmax(logits) == label (binary: (p > 0.5) == label), unweighted
  int count = 0;
  double weighted_correct = 0.0;  // sum of w over the correct samples
  double weight_sum = 0.0;        // sum of w
  LossResult& operator+=(const LossResult& o) {
    loss_sum += o.loss_sum;
    correct += o.correct;
    count += o.count;
    weighted_correct += o.weighted_correct;
    weight_sum += o.weight_sum;
    return *this;
  }
  double loss() const { return count > 0 ? loss_sum / count : 0.0; }
  double accuracy() const { return count > 0 ? static_cast<double>(correct) / count : 0.0; }
  // weighted_metrics=["accuracy"]: Keras's weighted Mean, divide_no_nan (0 when every weight
  // is 0).
  double weighted_accuracy() const { return weight_sum > 0 ? weighted_correct / weight_sum : 0.0; }
};

// Per-class weights (index = label); empty = every weight 1.
using ClassWeights = std::vector<double>;

// logits [N,C], labels[i] in [0,C). When dlogits is given it is set to
// w[label] (softmax(logits) - onehot(label)) / divisor: with divisor = the (global) batch size
// this is the gradient of Keras's "sum_over_batch_size" reduction, sum(w l) / batch size (the
// divisor is the batch size, not the weight sum). Throws std::invalid_argument for a label out
// of range or class weights not one per class.
LossResult softmax_cross_entropy(const Tensor& logits, const std::vector<int>& labels,
                                 double divisor, Tensor* dlogits, const ClassWeights& weights = {});

// Keras's binary_crossentropy of a Dense(1, activation='sigmoid') output (or a sigmoid
// Activation after it). Keras computes it from the logits: keras.activations.sigmoid caches
// its input on the output (`_keras_logits`), and the backend's binary_crossentropy (TF's
// _get_logits, also recognising a Sigmoid op) then calls
// tf.nn.sigmoid_cross_entropy_with_logits on them; per sample, in double here,
//   loss = max(z, 0) - z y + log1p(exp(-|z|)),   z the logit [N,1], y the label in {0, 1},
// finite for any finite z. correct counts Keras's binary_accuracy: the float32 probability
// sigmoid(z) > 0.5 (z > 0, but for |z| below ~6e-8, where the probability rounds to 0.5).
// When dlogits is given it is set to w[y] (sigmoid(z) - y) / divisor. Throws
// std::invalid_argument for logits not [N,1], a label count other than N, a label outside
// {0, 1}, or class weights not two.
LossResult sigmoid_binary_cross_entropy(const Tensor& logits, const std::vector<int>& labels,
                                        double divisor, Tensor* dlogits,
                                        const ClassWeights& weights = {});

}  // namespace parafine
