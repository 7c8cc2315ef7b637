// Loss and accuracy of a model on a data set with BatchNormalization in inference mode, as
// Keras's evaluate() and the validation after every epoch: each rank evaluates its share and
// the sums are global (exact figures at any rank count).
#pragma once

#include "parafine/core/loss.hpp"
#include "parafine/data/sample_source.hpp"
#include "parafine/layers/dense.hpp"
#include "parafine/model/model.hpp"
#include "parafine/train/epoch_feed.hpp"

namespace parafine {

// The loss Keras compiles for a classifier's output layer, a Dense: categorical cross-entropy
// for a softmax over >= 2 units, binary cross-entropy for one sigmoid unit (Keras's choice for
// a single sigmoid output); a linear Dense's outputs are logits (from_logits=True), read the
// same way by unit count. Anything else throws std::invalid_argument naming the layer.
enum class OutputLoss { kCategorical, kBinary };
// The classifier head: the output Dense and the activation on its outputs, its own or that of
// a trailing Activation('softmax' | 'sigmoid') layer after a linear Dense (which the loss then
// takes the Dense's outputs as logits from). Null dense when the model ends otherwise.
struct OutputHead {
  const Dense* dense = nullptr;
  Activation activation = Activation::kLinear;
};
OutputHead output_head(const Model& model);
OutputLoss output_loss(const Model& model);
// The classes the output stands for: its units, 2 for a single sigmoid unit.
int output_classes(const Model& model);
// The loss and accuracy sums of the last forward against `labels` (class indices); dlogits,
// when given, gets dLoss/d(the head's pre-activation output) of the loss summed and divided
// by `divisor` (see core/loss.hpp), each sample weighted by its class's weight (training
// only: validation is never weighted, as in Keras).
LossResult model_loss(const Model& model, const std::vector<int>& labels, double divisor,
                      Tensor* dlogits, const ClassWeights& weights = {});

// Global loss/accuracy sums over every batch of `batches`, BN in inference mode.
LossResult evaluate_feed(Model& model, EpochFeed& batches);

// Loss and accuracy sums of `model` on every sample of `data`, decoded through the prefetcher.
LossResult evaluate(Model& model, const SampleSource& data, int batch_size, int image_size,
                    Preprocess preprocess, int loader_threads);

}  // namespace parafine
