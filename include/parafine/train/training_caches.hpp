// The feature caches of one training run: decides what to cache (cache_plan.hpp), logs the
// decision, and builds the training and validation caches for the phases that remain, with
// one memory budget and spill file per rank (feature_store.hpp). run_two_phase calls it after
// every replica holds rank 0's starting weights.
#pragma once

#include <iosfwd>
#include <memory>

#include "parafine/cache/cache_plan.hpp"
#include "parafine/cache/feature_cache.hpp"
#include "parafine/train/train_config.hpp"

namespace parafine {

struct TrainingCaches {
  CachePlan plan;
  std::unique_ptr<CacheStorage> storage;     // null when nothing is cached
  std::unique_ptr<DatasetCache> train, val;  // val null without validation data
};

// `model` has phase 1's trainable flags; phase2_first_trainable is its first trainable node
// once phase 2 has unfrozen its layers; from_phase: the phase the run starts (or resumes) in.
// Collective: every rank calls it. Logs the plan line and, when it builds, the sizes, where
// the cache lives and how long the build took.
TrainingCaches build_training_caches(Model& model, const SampleSource& train,
                                     const SampleSource* val, const TrainConfig& config,
                                     int phase2_first_trainable, int from_phase, std::ostream& log);

}  // namespace parafine
