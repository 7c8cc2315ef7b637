// Inference-mode loss and accuracy over a data set (see evaluation.hpp).
#include "parafine/train/evaluation.hpp"

#include <stdexcept>

#include "parafine/core/out_of_memory.hpp"
#include "parafine/data/data_order.hpp"
#include "parafine/dist/comm.hpp"
#include "parafine/dist/replica.hpp"
#include "parafine/layers/activation_layer.hpp"
#include "parafine/layers/dense.hpp"

namespace parafine {

OutputHead output_head(const Model& model) {
  const int last = model.size() - 1;
  if (const auto* dense = dynamic_cast<const Dense*>(&model.layer(last)))
    return {dense, dense->activation()};
  const auto* act = dynamic_cast<const ElementwiseActivation*>(&model.layer(last));
  if (!act || model.inputs_of(last).size() != 1) return {};
  const auto* dense = dynamic_cast<const Dense*>(&model.layer(model.inputs_of(last)[0]));
  if (!dense || dense->activation() != Activation::kLinear) return {};
  if (act->kind() == ElementwiseKind::kSoftmax) return {dense, Activation::kSoftmax};
  if (act->kind() == ElementwiseKind::kSigmoid) return {dense, Activation::kSigmoid};
  return {};
}

namespace {

const Dense& head_of(const Model& model) {
  const Layer& last = model.layer(model.size() - 1);
  const Dense* head = output_head(model).dense;
  if (!head)
    throw std::invalid_argument("the model's output layer '" + last.name() + "' (" + last.type() +
                                ")" +
                                ": parafine trains and evaluates a classifier whose output is a "
                                "Dense with softmax, sigmoid or linear (logits) activation");
  return *head;
}

}  // namespace

OutputLoss output_loss(const Model& model) {
  const Dense& head = head_of(model);
  const Activation a = output_head(model).activation;
  const std::string where =
      "the output layer '" + head.name() + "' (Dense, " + std::to_string(head.units()) + " units";
  if (head.units() == 1) {
    if (a == Activation::kSigmoid || a == Activation::kLinear) return OutputLoss::kBinary;
    throw std::invalid_argument(where + (a == Activation::kSoftmax
                                             ? ", softmax): a softmax over one unit is always 1"
                                             : "): a single output unit needs sigmoid"));
  }
  if (a == Activation::kSoftmax || a == Activation::kLinear) return OutputLoss::kCategorical;
  throw std::invalid_argument(where +
                              "): a classifier over several units needs softmax (or a "
                              "linear output read as logits)");
}

int output_classes(const Model& model) {
  return output_loss(model) == OutputLoss::kBinary ? 2 : head_of(model).units();
}

LossResult model_loss(const Model& model, const std::vector<int>& labels, double divisor,
                      Tensor* dlogits, const ClassWeights& weights) {
  // A softmax/sigmoid Dense keeps its pre-activation outputs; a linear one's outputs are the
  // logits (kept: the model's output, or the input of the trailing Activation).
  const Dense& head = head_of(model);
  const Tensor& logits = head.activation() == Activation::kLinear
                             ? model.output(model.index_of(head.name()))
                             : head.logits();
  if (output_loss(model) == OutputLoss::kBinary)
    return sigmoid_binary_cross_entropy(logits, labels, divisor, dlogits, weights);
  return softmax_cross_entropy(logits, labels, divisor, dlogits, weights);
}

LossResult evaluate_feed(Model& model, EpochFeed& batches) {
  Batch batch;
  LossResult total;
  while (batches.next(batch)) {
    batches.forward(model, batch.images, false);
    total += model_loss(model, batch.labels, 1.0, nullptr);
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
