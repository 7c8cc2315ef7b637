// The frozen-prefix feature cache (DESIGN.md §5). With no augmentation the frozen part of the
// network computes the same thing for a sample in every epoch, so it runs once per sample:
//  - phase 1 trains the head from the pooled 2048-vector (global_average_pooling2d);
//  - phase 2 trains from the activation at the cut just before the earliest residual block
//    holding a trainable layer (conv5_block2_out for --unfreeze-last 10).
// Both are computed in one pass over the data before phase 1, validation data too. Each rank
// runs the pass over the samples it owns (feature_routing.hpp) and keeps their records in a
// FeatureStore (memory, then spill file); each training step routes the records of the global
// batch so every rank gets exactly the slice it would read without the cache.
#pragma once

#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "parafine/feature_routing.hpp"
#include "parafine/feature_store.hpp"
#include "parafine/model.hpp"
#include "parafine/prefetcher.hpp"
#include "parafine/sample_source.hpp"

namespace parafine {

enum class CacheMode { kAuto, kOff };
CacheMode parse_cache_mode(const std::string& name);  // "auto" | "off", else throws naming --cache

struct CacheOptions {
  CacheMode mode = CacheMode::kAuto;
  long long memory_bytes = -1;  // --cache-mem; -1: default_cache_budget()
  std::string dir;              // --cache-dir; "": the system temporary directory
};

// The latest node before `first_trainable` from which the network can be restarted with
// Model::forward_from: no later node reads an output from before it (a block boundary such as
// conv5_block2_out, or global_average_pooling2d). 0 (the input) when there is none.
int restart_node(const Model& model, int first_trainable);

// Forward FLOPs of one sample through nodes [0, node] (kernels of Conv2D and Dense layers),
// and through the whole network for node = size() - 1.
double forward_flops_through(const Model& model, int node);

// What this run caches: the node each phase trains from (-1: that phase runs the full
// network), and the one log line that says so and why.
struct CachePlan {
  int phase1_node = -1;
  int phase2_node = -1;
  std::string summary;
  bool any() const { return phase1_node >= 0 || phase2_node >= 0; }
  std::vector<int> nodes() const;  // the distinct cached nodes
};

// phase2_first_trainable: Model::first_trainable_node() once phase 2 has unfrozen its layers.
// need_phase1/2: whether the run still trains that phase (a resume may be past phase 1).
// A phase-2 prefix below 10% of the forward's FLOPs is not worth its memory and is not cached.
CachePlan plan_feature_cache(const Model& model, int phase2_first_trainable, bool need_phase1, bool need_phase2,
                             const CacheOptions& options, Augment augment);

// One data set's cached records on this rank: the outputs at `nodes` for the samples it owns.
class DatasetCache {
 public:
  // batch: the global batch size (ownership follows the unshuffled shards of it).
  DatasetCache(const Model& model, const SampleSource& data, int batch, const std::vector<int>& nodes);

  // Creates the store of `node` (stores are allocated in call order against the budget).
  void allocate(int node, CacheStorage& storage);
  // Runs the frozen network over this rank's samples (BN in inference mode, no augmentation)
  // and stores the outputs at every allocated node. `progress` (rank 0) gets a few lines.
  void build(Model& model, const PrefetchConfig& prefetch, std::ostream* progress, const std::string& name);

  const SampleSource& data() const { return *data_; }
  const FeatureOwnership& ownership() const { return ownership_; }
  const FeatureStore& store(int node) const;
  Shape sample_shape(int node) const;  // [1, ...] output shape of the node for one sample
  std::size_t bytes_per_sample() const;

 private:
  const SampleSource* data_;
  FeatureOwnership ownership_;
  std::vector<int> nodes_;
  std::vector<Shape> shapes_;
  std::vector<std::unique_ptr<FeatureStore>> stores_;  // parallel to nodes_, null until allocated
};

// One epoch of cached batches for this rank, in step order: for each global batch of `order`
// (ShardPlan::order), this rank's slice of records at `node`, routed from their owners with
// one collective exchange per step (skipped when no rank needs another's records). Every rank
// must call next() the same number of times. Batch::images holds [b, node's sample shape].
class CachedBatches {
 public:
  CachedBatches(const DatasetCache& cache, int node, int batch, std::vector<int> order, int first_step);
  bool next(Batch& out);

 private:
  const DatasetCache& cache_;
  const FeatureStore& store_;
  Shape sample_shape_;
  int batch_, step_;
  const int first_step_;
  std::vector<int> order_;
  std::vector<float> send_, recv_;
};

}  // namespace parafine
