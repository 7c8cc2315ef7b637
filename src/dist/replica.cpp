// Replica consistency over the MPI world (see replica.hpp).
#include "parafine/dist/replica.hpp"

#include <stdexcept>
#include <vector>

#include "parafine/dist/comm.hpp"
#include "parafine/layers/batch_norm.hpp"

namespace parafine {

LossResult global_sum(const LossResult& local) {
  std::vector<double> v{local.loss_sum, static_cast<double>(local.correct),
                        static_cast<double>(local.count), local.weighted_correct, local.weight_sum};
  Comm::allreduce_sum(v);
  LossResult r;
  r.loss_sum = v[0];
  r.correct = static_cast<int>(v[1]);
  r.count = static_cast<int>(v[2]);
  r.weighted_correct = v[3];
  r.weight_sum = v[4];
  return r;
}

void broadcast_model_state(Model& model) {
  Comm::broadcast(model.params().data(), model.params().size());
  Comm::broadcast(model.state().data(), model.state().size());
}

void use_global_batch_statistics(Model& model, bool global) {
  const bool reduce = global && Comm::size() > 1;
  for (int i = 0; i < model.size(); ++i) {
    auto* bn = dynamic_cast<BatchNormalization*>(&model.layer(i));
    if (!bn) continue;
    if (reduce)
      bn->set_sum_reducer([](std::vector<double>& sums) { Comm::allreduce_sum(sums); });
    else
      bn->set_sum_reducer(nullptr);
  }
}

void average_trainable_bn_state(Model& model) {
  if (Comm::size() == 1) return;
  for (const ParamRef& r : model.param_refs()) {
    if (r.optimised || !model.layer(r.node).trainable) continue;
    const auto* bn = dynamic_cast<const BatchNormalization*>(&model.layer(r.node));
    const float had = bn && bn->last_rows() > 0 ? 1.0f : 0.0f;
    float* v = model.trainable_data(r);  // leaves the frozen prefix's folded kernels valid
    std::vector<float> weighted(v, v + r.shape.numel());
    for (float& x : weighted) x *= had;
    weighted.push_back(had);
    Comm::allreduce_sum(weighted.data(), weighted.size());
    const float ranks_with_rows = weighted.back();
    if (ranks_with_rows > 0)
      for (std::size_t k = 0; k < r.shape.numel(); ++k) v[k] = weighted[k] / ranks_with_rows;
  }
}

void check_replicas(const Model& model, const std::string& when) {
  if (Comm::size() == 1) return;
  double sum = 0;
  for (float v : model.params()) sum += v;
  for (float v : model.state()) sum += v;
  double lo = sum, hi = sum;
  Comm::allreduce_min_max(lo, hi);
  if (lo != hi)
    throw std::runtime_error("replicas diverged " + when + " (weight checksums range " +
                             std::to_string(lo) + " .. " + std::to_string(hi) +
                             "); this is a bug or a hardware fault: stopping");
}

}  // namespace parafine
