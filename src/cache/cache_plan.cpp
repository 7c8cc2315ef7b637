// The feature cache's plan: restart nodes, FLOP shares, the decision (see cache_plan.hpp).
#include "parafine/cache/cache_plan.hpp"
#include "parafine/layers/dropout.hpp"

#include <algorithm>
#include <iomanip>
#include <sstream>
#include <stdexcept>

namespace parafine {

namespace {

std::string node_text(const Model& model, int node) {
  Shape s = model.output_shape(node, 1);
  s = Shape(std::vector<int>(s.begin() + 1, s.end()));  // drop the batch dim
  return model.layer(node).name() + " " + s.str();
}

}  // namespace

CacheMode parse_cache_mode(const std::string& name) {
  if (name == "auto") return CacheMode::kAuto;
  if (name == "off") return CacheMode::kOff;
  throw std::invalid_argument("--cache must be auto or off, got '" + name + "'");
}

int first_active_dropout(const Model& model) {
  for (int i = 0; i < model.size(); ++i)
    if (const auto* d = dynamic_cast<const Dropout*>(&model.layer(i)))
      if (d->active()) return i;
  return model.size();
}

int restart_node(const Model& model, int first_trainable) {
  for (int b = std::min(first_trainable, model.size()) - 1; b > 0; --b) {
    bool boundary = true;
    for (int j = b + 1; j < model.size() && boundary; ++j)
      for (int k : model.inputs_of(j)) boundary = boundary && k >= b;
    if (boundary) return b;
  }
  return 0;
}

double forward_flops_through(const Model& model, int node) {
  double flops = 0;
  for (const ParamRef& r : model.param_refs())
    if (r.node <= node && r.optimised && r.name == "kernel")
      flops += 2.0 * static_cast<double>(r.shape.numel()) *
               static_cast<double>(model.output_shape(r.node, 1).rows());
  return flops;
}

std::vector<int> CachePlan::nodes() const {
  std::vector<int> n;
  for (int node : {phase1_node, phase2_node})
    if (node >= 0 && std::find(n.begin(), n.end(), node) == n.end()) n.push_back(node);
  return n;
}

CachePlan plan_feature_cache(const Model& model, int phase2_first_trainable, bool need_phase1,
                             bool need_phase2, const CacheOptions& options,
                             const AugmentSpec& augment) {
  CachePlan p;
  if (options.mode == CacheMode::kOff) {
    p.summary =
        "feature cache: off (--cache off): the frozen base runs for every sample in every epoch";
    return p;
  }
  if (augment.any()) {
    p.summary =
        "feature cache: off: --augment changes the frozen base's input every epoch, so its output "
        "cannot be reused";
    return p;
  }
  // A Dropout that drops in training (Keras: even when frozen) makes its output differ every
  // epoch: the cache stops before it.
  const int random = first_active_dropout(model);
  if (need_phase1)
    p.phase1_node = restart_node(model, std::min(model.first_trainable_node(), random));
  std::string phase2_reason;
  if (need_phase2) {
    const int cut = restart_node(model, std::min(phase2_first_trainable, random));
    const double share =
        forward_flops_through(model, cut) / forward_flops_through(model, model.size() - 1);
    std::ostringstream why;
    why << std::fixed << std::setprecision(0) << 100 * share << "% of the forward's FLOPs";
    if (share <= 0) {
      phase2_reason =
          "phase 2 trains every base layer with weights: there is no frozen computation to cache";
    } else if (share >= 0.10) {
      p.phase2_node = cut;
      phase2_reason = " (its frozen prefix is " + why.str() + ")";
    } else {
      phase2_reason = "phase 2's frozen prefix (up to " + model.layer(cut).name() + ") is only " +
                      why.str() + ", too little to be worth caching";
    }
  }
  if (p.phase1_node >= 0 && p.phase2_node >= 0) {
    p.summary = "feature cache: on: phase 1 trains from " + node_text(model, p.phase1_node) +
                ", phase 2 from " + node_text(model, p.phase2_node) + phase2_reason;
  } else if (p.phase1_node >= 0) {
    p.summary = "feature cache: on for phase 1 only (trains from " +
                node_text(model, p.phase1_node) + ")" + (need_phase2 ? ": " + phase2_reason : "");
  } else if (p.phase2_node >= 0) {
    p.summary =
        "feature cache: on: phase 2 trains from " + node_text(model, p.phase2_node) + phase2_reason;
  } else {
    p.summary = "feature cache: off: " +
                (need_phase2 ? phase2_reason : std::string("nothing left to train"));
  }
  return p;
}

}  // namespace parafine
