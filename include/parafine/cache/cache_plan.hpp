// What the frozen-prefix feature cache stores (DESIGN.md §5): the --cache options, where the
// network can be restarted from a stored activation, and the decision for a run, with the one
// log line that states it and why.
//  - phase 1 trains the head from the pooled 2048-vector (global_average_pooling2d);
//  - phase 2 trains from the activation at the cut just before the earliest residual block
//    holding a trainable layer (conv5_block2_out for --unfreeze-last 10);
//  - nothing is cached with --cache off or --augment (the prefix's input changes every
//    epoch), and phase 2 is not when its frozen prefix is under 10% of the forward's FLOPs.
#pragma once

#include <string>
#include <vector>

#include "parafine/data/augment.hpp"  // AugmentSpec
#include "parafine/model/model.hpp"

namespace parafine {

enum class CacheMode { kAuto, kOff };
CacheMode parse_cache_mode(const std::string& name);  // "auto" | "off", else throws naming --cache

struct CacheOptions {
  CacheMode mode = CacheMode::kAuto;
  long long memory_bytes = -1;  // --cache-mem; -1: default_cache_budget()
  std::string dir;              // --cache-dir; "": the system temporary directory
  bool keep = false;            // --cache-keep: keep the features in dir (persistent_cache.hpp)
};

// The latest node before `first_trainable` from which the network can be restarted with
// Model::forward_from: no later node reads an output from before it (a block boundary such as
// conv5_block2_out, or global_average_pooling2d). 0 (the input) when there is none.
int restart_node(const Model& model, int first_trainable);

// The first Dropout that drops in a training forward (layers/dropout.hpp), or model.size().
int first_active_dropout(const Model& model);

// Forward FLOPs of one sample through nodes [0, node] (the kernels of Conv2D and Dense layers);
// node = size() - 1 gives the whole network.
double forward_flops_through(const Model& model, int node);

// The node each phase trains from (-1: that phase runs the full network), and the log line.
struct CachePlan {
  int phase1_node = -1;
  int phase2_node = -1;
  std::string summary;  // "feature cache: on: ..." or "feature cache: off: <why>"
  bool any() const { return phase1_node >= 0 || phase2_node >= 0; }
  std::vector<int> nodes() const;  // the distinct cached nodes, phase 1's first
};

// `model` has phase 1's trainable flags (the base frozen); phase2_first_trainable is
// Model::first_trainable_node() once phase 2 has unfrozen its layers. need_phase1/2: whether
// the run still trains that phase (a resume may be past phase 1).
CachePlan plan_feature_cache(const Model& model, int phase2_first_trainable, bool need_phase1,
                             bool need_phase2, const CacheOptions& options,
                             const AugmentSpec& augment);

}  // namespace parafine
