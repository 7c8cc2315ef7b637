// The frozen-prefix feature cache of one data set (DESIGN.md §5): the outputs at the cached
// nodes (cache_plan.hpp) for the samples this rank owns (feature_routing.hpp), computed in one
// pass before phase 1 and kept in FeatureStores (memory, then spill file); and the batches of
// an epoch read back from them, each global batch's records routed between ranks so every
// rank gets exactly the slice it would read without the cache.
#pragma once

#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "parafine/cache/feature_routing.hpp"
#include "parafine/cache/feature_store.hpp"
#include "parafine/data/prefetcher.hpp"
#include "parafine/data/sample_source.hpp"
#include "parafine/model/model.hpp"

namespace parafine {

class DatasetCache {
 public:
  // batch: the global batch size (ownership follows its unshuffled shards). `name` names the
  // data in messages ("--train", "--val"). Throws std::invalid_argument as ShardPlan does.
  // Under mixed_bfloat16 (the model's precision now) features are kept in 16 bits each.
  DatasetCache(const Model& model, const SampleSource& data, int batch,
               const std::vector<int>& nodes, const std::string& name);

  // Creates the store of `node`: [owned samples, node's sample size] records (stores claim the
  // memory budget in call order).
  void allocate(int node, CacheStorage& storage);
  // Runs the frozen network over this rank's samples (BN in inference mode, no augmentation)
  // and stores the outputs at every allocated node. `progress` (rank 0) gets a few lines.
  void build(Model& model, const PrefetchConfig& prefetch, std::ostream* progress);

  const std::string& name() const { return name_; }
  const SampleSource& data() const { return *data_; }
  const FeatureOwnership& ownership() const { return ownership_; }
  const FeatureStore& store(int node) const;
  FeatureStore& store(int node);  // e.g. to fill it from a kept cache (persistent_cache.hpp)
  const std::vector<int>& nodes() const { return nodes_; }
  Shape sample_shape(int node) const;  // [1, ...]: the node's output shape for one sample
  std::size_t bytes_per_sample() const;
  bool bfloat16() const { return bfloat16_; }  // features kept in 16 bits each

 private:
  std::size_t index_of(int node) const;  // throws std::logic_error for a node not cached

  const SampleSource* data_;
  std::string name_;
  FeatureOwnership ownership_;
  std::vector<int> nodes_;
  std::vector<Shape> shapes_;                          // parallel to nodes_
  bool bfloat16_ = false;                              // stores keep 16-bit values
  std::vector<std::unique_ptr<FeatureStore>> stores_;  // parallel to nodes_, null until allocated
};

// One epoch of cached batches for this rank, in step order: for each global batch of `order`
// ([N] sample ids, ShardPlan::order), this rank's slice of records at `node`, routed from their
// owners with one collective exchange per step (skipped when no rank needs another's records).
// Every rank must call next() the same number of times. Batch::images is [b, node's sample
// shape] (b may be 0 in the last step); Batch::step counts from first_step.
class CachedBatches {
 public:
  CachedBatches(const DatasetCache& cache, int node, int batch, std::vector<int> order,
                int first_step);
  bool next(Batch& out);
  // Seconds spent in the exchange so far (collective time: reported as communication).
  double exchange_seconds() const { return exchange_seconds_; }

 private:
  const DatasetCache& cache_;
  const FeatureStore& store_;
  Shape sample_shape_;
  int batch_, step_;
  const int first_step_;
  std::vector<int> order_;          // [N]
  std::vector<float> send_, recv_;  // [records, record_floats] in rank order
  double exchange_seconds_ = 0;
};

}  // namespace parafine
