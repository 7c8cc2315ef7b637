// Planning, building and reporting a training run's feature caches (see training_caches.hpp).
#include "parafine/train/training_caches.hpp"

#include <chrono>
#include <iomanip>
#include <ostream>
#include <sstream>

#include "parafine/cache/persistent_cache.hpp"
#include "parafine/dist/comm.hpp"

namespace parafine {

TrainingCaches build_training_caches(Model& model, const SampleSource& train,
                                     const SampleSource* val, const TrainConfig& c,
                                     int phase2_first_trainable, int from_phase,
                                     std::ostream& log) {
  TrainingCaches caches;
  caches.plan =
      plan_feature_cache(model, phase2_first_trainable, from_phase == 1 && c.phase1_epochs > 0,
                         from_phase <= 2 && c.phase2_epochs > 0, c.cache, c.augment);
  log << caches.plan.summary << std::endl;
  if (!caches.plan.any()) return caches;
  const auto start = std::chrono::steady_clock::now();
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
  caches.storage = std::make_unique<CacheStorage>(budget, c.cache.dir);
  const std::vector<int> nodes = caches.plan.nodes();
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
  load_or_build_caches(model, sets, c, p, log);  // builds, or with --cache-keep loads / keeps

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
  return caches;
}

}  // namespace parafine
