// The feature caches of one training run: decides what to cache (cache_plan.hpp), logs the
// decision, and builds the training and validation caches for the phases that remain, with
// one memory budget and spill file per rank (feature_store.hpp). run_two_phase calls it after
// every replica holds rank 0's starting weights.
#pragma once

#include <iosfwd>
#include <memory>
#include <vector>

#include "parafine/cache/cache_plan.hpp"
#include "parafine/cache/feature_cache.hpp"
#include "parafine/train/train_config.hpp"

namespace parafine {

struct TrainingCaches {
  CachePlan plan;
  std::vector<int> nodes;                    // the cached nodes (plan.nodes(), or a sweep's)
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

// The caches of a sweep (cli/sweep.cpp): one pass over the frozen base for every phase-2
// setting of one backbone. `phase2_first_trainables`: each setting's first trainable node. The
// cached nodes are phase 1's and every setting's phase-2 node (each run then trains from the
// same features a run of its own would cache, bit for bit); when all of them would not fit in
// --cache-mem, only phase 1's and the shallowest phase-2 node (the deepest cut every setting
// shares), from which the deeper settings run their extra frozen layers forward. Collective.
TrainingCaches build_sweep_caches(Model& model, const SampleSource& train, const SampleSource* val,
                                  const TrainConfig& config,
                                  const std::vector<int>& phase2_first_trainables,
                                  std::ostream& log);

// One run's plan (`own`: plan_feature_cache for its settings) on caches built for several:
// each phase trains from its own node when it is cached, else from the deepest cached node
// before it (phase 2 only), else from the images.
CachePlan plan_on_shared_caches(const Model& model, const TrainingCaches& shared,
                                const CachePlan& own);

}  // namespace parafine
