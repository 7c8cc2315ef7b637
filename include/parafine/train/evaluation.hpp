// Loss and accuracy of a model on a data set with BatchNormalization in inference mode, as
// Keras's evaluate() and the validation after every epoch: each rank evaluates its share and
// the sums are global (exact figures at any rank count).
#pragma once

#include "parafine/core/loss.hpp"
#include "parafine/data/sample_source.hpp"
#include "parafine/model/model.hpp"
#include "parafine/train/epoch_feed.hpp"

namespace parafine {

// The logits [N,classes] of the last forward: the model's last layer must be a softmax Dense.
const Tensor& logits_of(const Model& model);

// Global loss/accuracy sums over every batch of `batches`, BN in inference mode.
LossResult evaluate_feed(Model& model, EpochFeed& batches);

// Loss and accuracy sums of `model` on every sample of `data`, decoded through the prefetcher.
LossResult evaluate(Model& model, const SampleSource& data, int batch_size, int image_size,
                    Preprocess preprocess, int loader_threads);

}  // namespace parafine
