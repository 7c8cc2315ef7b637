// One epoch's batches for the training loop and validation, from either source: decoded images
// through the prefetcher (the whole network runs on them), or cached features at a restart node
// (the network runs from there; feature_cache.hpp). The loop does not care which.
#pragma once

#include <memory>
#include <utility>
#include <vector>

#include "parafine/cache/feature_cache.hpp"
#include "parafine/data/prefetcher.hpp"
#include "parafine/model/model.hpp"

namespace parafine {

class EpochFeed {
 public:
  // Images: `steps` [steps][local b] sample ids of this rank (ShardPlan::local_batches).
  EpochFeed(const SampleSource& data, std::vector<std::vector<int>> steps, const PrefetchConfig& p)
      : images_(std::make_unique<BatchPrefetcher>(data, std::move(steps), p)) {}
  // Cached features at `node`: `order` [N] is the epoch's sample order (ShardPlan::order).
  EpochFeed(const DatasetCache& cache, int node, int batch, std::vector<int> order, int first_step)
      : cached_(std::make_unique<CachedBatches>(cache, node, batch, std::move(order), first_step)),
        node_(node) {}

  bool next(Batch& batch) { return images_ ? images_->next(batch) : cached_->next(batch); }
  // Seconds of the data-routing exchange so far (part of next(); communication, not data wait).
  double comm_seconds() const { return cached_ ? cached_->exchange_seconds() : 0.0; }
  // The model's output for a batch from this feed.
  const Tensor& forward(Model& model, const Tensor& x, bool training) {
    return node_ < 0 ? model.forward(x, training) : model.forward_from(node_, x, training);
  }

 private:
  std::unique_ptr<BatchPrefetcher> images_;
  std::unique_ptr<CachedBatches> cached_;
  int node_ = -1;
};

}  // namespace parafine
