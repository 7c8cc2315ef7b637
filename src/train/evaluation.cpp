// Inference-mode loss and accuracy over a data set (see evaluation.hpp).
#include "parafine/train/evaluation.hpp"

#include <stdexcept>

#include "parafine/core/out_of_memory.hpp"
#include "parafine/data/data_order.hpp"
#include "parafine/dist/comm.hpp"
#include "parafine/dist/replica.hpp"
#include "parafine/layers/dense.hpp"

namespace parafine {

const Tensor& logits_of(const Model& model) {
  const auto* head = dynamic_cast<const Dense*>(&model.layer(model.size() - 1));
  if (!head || head->activation() != Activation::kSoftmax)
    throw std::logic_error("the model's last layer must be a softmax Dense");
  return head->logits();
}

LossResult evaluate_feed(Model& model, EpochFeed& batches) {
  Batch batch;
  LossResult total;
  while (batches.next(batch)) {
    batches.forward(model, batch.images, false);
    total += softmax_cross_entropy(logits_of(model), batch.labels, 1.0, nullptr);
  }
  return global_sum(total);
}

LossResult evaluate(Model& model, const SampleSource& data, int batch_size, int image_size,
                    Preprocess preprocess, int loader_threads) {
  const ShardPlan plan(data.size(), batch_size, Comm::size(), Comm::rank(), false, 0,
                       "the evaluation data");
  PrefetchConfig p;
  p.image_size = image_size;
  p.preprocess = preprocess;
  p.threads = loader_threads;
  const int local_batch = (batch_size + Comm::size() - 1) / Comm::size();
  return allocating(
      "inference on " + std::to_string(local_batch) + " images of " + std::to_string(image_size) +
          "x" + std::to_string(image_size) + " per rank (the layer outputs, estimated)",
      model.step_bytes(local_batch, false), "Try a smaller --batch-size or --image-size.", [&] {
        EpochFeed batches(data, plan.local_batches(0), p);
        return evaluate_feed(model, batches);
      });
}

}  // namespace parafine
