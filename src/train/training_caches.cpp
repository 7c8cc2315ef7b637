// Planning, building and reporting a training run's feature caches (see training_caches.hpp).
#include "parafine/train/training_caches.hpp"

#include <algorithm>
#include <chrono>
#include <iomanip>
#include <ostream>
#include <sstream>

#include "parafine/cache/persistent_cache.hpp"
#include "parafine/dist/comm.hpp"
#include "parafine/model/backbone.hpp"

namespace parafine {

namespace {

// This rank's memory budget for the caches: --cache-mem, or the default share of the node.
std::size_t memory_budget(const TrainConfig& c, std::ostream& log) {
  const int ranks_here = Comm::ranks_on_node();
  std::size_t budget = 0;
  if (c.cache.memory_bytes < 0) {
    budget = default_cache_budget(ranks_here);
  } else {
    budget = static_cast<std::size_t>(c.cache.memory_bytes);
    const double ram_per_rank = physical_memory_bytes() / ranks_here;
    if (static_cast<double>(budget) > ram_per_rank)
      log << "warning: --cache-mem " << format_bytes(static_cast<double>(budget))
          << " is more than this node's memory per rank (" << format_bytes(ram_per_rank)
          << "): the cache may be swapped out or the job killed; lower --cache-mem" << std::endl;
  }
  return budget;
}

// Allocates and fills the stores of caches.nodes for --train and --val in one pass over each,
// and logs their sizes and where they live.
void build_nodes(TrainingCaches& caches, std::size_t budget, Model& model,
                 const SampleSource& train, const SampleSource* val, const TrainConfig& c,
                 std::ostream& log) {
  const auto start = std::chrono::steady_clock::now();
  caches.storage = std::make_unique<CacheStorage>(budget, c.cache.dir);
  const std::vector<int>& nodes = caches.nodes;
  caches.train = std::make_unique<DatasetCache>(model, train, c.batch_size, nodes, "--train");
  if (val) caches.val = std::make_unique<DatasetCache>(model, *val, c.batch_size, nodes, "--val");
  // The small pooled vectors claim memory first, then the phase-2 activations.
  for (int node : nodes) {
    caches.train->allocate(node, *caches.storage);
    if (caches.val) caches.val->allocate(node, *caches.storage);
  }
  const PrefetchConfig p = prefetch_config(c, AugmentSpec{}, -1);
  std::vector<DatasetCache*> sets{caches.train.get()};
  if (caches.val) sets.push_back(caches.val.get());
  KeptCacheOptions kept;
  kept.cache = c.cache;
  kept.model = c.model_from_file
                   ? std::string("model read from a file (--init)")
                   : std::string(backbone_info(c.backbone).name) +
                         (c.backbone == Backbone::kMobileNetV2 ? " alpha " + alpha_text(c.alpha)
                                                               : std::string());
  kept.preprocess = c.preprocess;
  kept.image_size = c.image_size;
  kept.batch_size = c.batch_size;
  kept.loader_threads = c.loader_threads;
  load_or_build_caches(model, sets, kept, p, log);  // builds, or with --cache-keep loads / keeps

  const CacheStorage& mine = *caches.storage;
  std::vector<double> totals{static_cast<double>(mine.memory_used()),
                             static_cast<double>(mine.spill_bytes())};
  Comm::allreduce_sum(totals);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::ostringstream line;
  line << "feature cache: " << train.size() << " --train"
       << (val ? " + " + std::to_string(val->size()) + " --val" : "") << " samples x "
       << format_bytes(static_cast<double>(caches.train->bytes_per_sample()))
       << (caches.train->bfloat16() ? " (bfloat16)" : "") << " = "
       << format_bytes(totals[0] + totals[1]) << " over " << Comm::size() << " rank(s), ready in "
       << std::fixed << std::setprecision(1) << seconds << "s; rank 0 keeps "
       << format_bytes(static_cast<double>(mine.memory_used())) << " in memory (--cache-mem "
       << format_bytes(static_cast<double>(mine.memory_budget())) << ")";
  if (mine.spill_bytes() > 0)
    line
        << " and " << format_bytes(static_cast<double>(mine.spill_bytes())) << " in "
        << mine.spill_path() << " (unlinked: removed when the process ends)"
        << (mine.spill_in_memory_fs()
                ? "; that directory is tmpfs, so the spill uses RAM too: give --cache-dir on a disk"
                : "");
  if (totals[1] > 0 && mine.spill_bytes() == 0)
    line << "; other ranks spill " << format_bytes(totals[1]);
  log << line.str() << std::endl;
}

// Bytes one sample's features at `nodes` take (float32, or bfloat16 under mixed_bfloat16).
double bytes_per_sample(const Model& model, const std::vector<int>& nodes) {
  double floats = 0;
  for (const int node : nodes) floats += static_cast<double>(model.output_shape(node, 1).numel());
  return floats * (model.precision() == Precision::kMixedBfloat16 ? 2 : 4);
}

}  // namespace

TrainingCaches build_training_caches(Model& model, const SampleSource& train,
                                     const SampleSource* val, const TrainConfig& c,
                                     int phase2_first_trainable, int from_phase,
                                     std::ostream& log) {
  TrainingCaches caches;
  caches.plan =
      plan_feature_cache(model, phase2_first_trainable, from_phase == 1 && c.phase1_epochs > 0,
                         from_phase <= 2 && c.phase2_epochs > 0, c.cache, c.augment);
  caches.nodes = caches.plan.nodes();
  log << caches.plan.summary << std::endl;
  if (caches.plan.any()) build_nodes(caches, memory_budget(c, log), model, train, val, c, log);
  return caches;
}

TrainingCaches build_sweep_caches(Model& model, const SampleSource& train, const SampleSource* val,
                                  const TrainConfig& c,
                                  const std::vector<int>& phase2_first_trainables,
                                  std::ostream& log) {
  TrainingCaches caches;
  std::vector<int> phase2_nodes;  // each setting's, shallowest first
  for (const int first : phase2_first_trainables) {
    const CachePlan own = plan_feature_cache(model, first, c.phase1_epochs > 0, c.phase2_epochs > 0,
                                             c.cache, c.augment);
    if (caches.plan.summary.empty()) caches.plan = own;  // phase 1's node and the log's reason
    if (own.phase2_node >= 0) phase2_nodes.push_back(own.phase2_node);
  }
  std::sort(phase2_nodes.begin(), phase2_nodes.end());
  phase2_nodes.erase(std::unique(phase2_nodes.begin(), phase2_nodes.end()), phase2_nodes.end());
  if (caches.plan.phase1_node >= 0) caches.nodes.push_back(caches.plan.phase1_node);
  for (const int node : phase2_nodes)
    if (node != caches.plan.phase1_node) caches.nodes.push_back(node);
  if (caches.nodes.empty()) {
    log << caches.plan.summary << " (for every run of the sweep)" << std::endl;
    return caches;
  }
  const std::size_t budget = memory_budget(c, log);
  const double samples =
      (static_cast<double>(train.size()) + (val ? val->size() : 0)) / Comm::size() + 1;
  std::ostringstream line;
  line << "feature cache: on for the sweep: one pass over the frozen base for "
       << phase2_first_trainables.size() << " phase-2 setting(s)";
  // Every rank must cache the same nodes: the budget is each rank's own (the memory it saw free).
  std::vector<int> too_big{phase2_nodes.size() > 1 &&
                           bytes_per_sample(model, caches.nodes) * samples >
                               static_cast<double>(budget)};
  Comm::allreduce_max(too_big);
  if (too_big[0]) {
    // Every setting's node does not fit: keep the deepest cut all settings share.
    caches.nodes.resize(caches.plan.phase1_node >= 0 ? 1 : 0);
    if (phase2_nodes.front() != caches.plan.phase1_node)
      caches.nodes.push_back(phase2_nodes.front());
    line << "; the features of every setting's cut would exceed --cache-mem, so only the "
            "deepest cut they share is kept ("
         << model.layer(phase2_nodes.front()).name()
         << "): the deeper settings run their frozen layers after it forward every epoch";
  }
  line << "; cached at:";
  for (const int node : caches.nodes) line << " " << model.layer(node).name();
  log << line.str() << std::endl;
  build_nodes(caches, budget, model, train, val, c, log);
  return caches;
}

CachePlan plan_on_shared_caches(const Model& model, const TrainingCaches& shared,
                                const CachePlan& own) {
  const auto cached = [&](int node) {
    return std::find(shared.nodes.begin(), shared.nodes.end(), node) != shared.nodes.end();
  };
  CachePlan p;
  p.phase1_node = own.phase1_node >= 0 && cached(own.phase1_node) ? own.phase1_node : -1;
  if (own.phase2_node >= 0)
    for (const int node : shared.nodes)  // the deepest cached node at or before its own
      if (node <= own.phase2_node && node > p.phase2_node) p.phase2_node = node;
  std::ostringstream s;
  s << "feature cache: shared by the sweep's runs: this run's phase 2 trains from "
    << (p.phase2_node >= 0 ? model.layer(p.phase2_node).name() : std::string("the images"));
  if (p.phase2_node >= 0 && p.phase2_node != own.phase2_node)
    s << " (its own cut, " << model.layer(own.phase2_node).name()
      << ", is not cached: the frozen layers between run forward)";
  p.summary = s.str();
  return p;
}

}  // namespace parafine
