// The two-phase fine-tuning run with Keras semantics: phase 1 freezes the base and trains the
// head with Adam(phase1_lr); phase 2 unfreezes the base's last N layers and continues with a
// fresh Adam(phase2_lr). Validation after every epoch with BN in inference mode. Samples come
// from a SampleSource through the deterministic prefetcher, in the order of DESIGN.md §2, or
// from the feature cache of the frozen prefix (training_caches.hpp) when it applies.
//
// Data-parallel over the MPI world (Comm): every rank holds a replica, takes its slice of each
// global batch, and the weight gradients are summed over ranks and divided by the global batch
// size, so N ranks take the same step as one. Rank 0's initial state is broadcast; losses and
// accuracies are exact global sums; replicas are compared by checksum after every epoch.
#pragma once

#include <functional>
#include <iosfwd>
#include <vector>

#include "parafine/data/sample_source.hpp"
#include "parafine/model/model.hpp"
#include "parafine/train/evaluation.hpp"
#include "parafine/train/train_config.hpp"

namespace parafine {

// val may be null (no validation). Throws when the sources' classes do not match the model.
// on_epoch (optional) is called on every rank after each epoch, e.g. to append --history rows.
// on_best (optional, with --save-best) is called on every rank when the monitored value
// improved (ModelCheckpoint(save_best_only=True)), before on_epoch, with the epoch's weights.
// Returns the epochs trained in this run (fewer when --max-steps or early stopping ended them).
std::vector<EpochStats> run_two_phase(Model& model, const SampleSource& train,
                                      const SampleSource* val, const TrainConfig& config,
                                      std::ostream& log,
                                      const std::function<void(const EpochStats&)>& on_epoch = {},
                                      const std::function<void(const EpochStats&)>& on_best = {});

}  // namespace parafine
