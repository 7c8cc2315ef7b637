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
#include <stdexcept>
#include <vector>

#include "parafine/data/sample_source.hpp"
#include "parafine/model/model.hpp"
#include "parafine/train/checkpoint.hpp"
#include "parafine/train/evaluation.hpp"
#include "parafine/train/train_config.hpp"
#include "parafine/train/training_caches.hpp"

namespace parafine {

// The loss became NaN or infinite. Thrown on every rank at the same step (the loss is a global
// sum), so every rank leaves the run together: a sweep goes on with its next run.
struct TrainingDiverged : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// How `parafine sweep` (cli/sweep.cpp) runs one backbone's grid of phase-2 settings: a phase-1
// run builds the feature caches for every setting in one pass (build_sweep_caches), trains
// phase 1 and stops at the phase boundary, handing over its state; then one run per setting
// starts phase 2 from that state and trains from the same caches. Phase 1 does not depend on
// the setting, so each run is bitwise the run the setting would make alone.
struct SweepStage {
  TrainingCaches* caches = nullptr;  // the phase-1 run builds them; the phase-2 runs read them
  // The phase-1 run: every setting's Model::first_trainable_node() in phase 2, and where it
  // leaves its state at the phase boundary (what a checkpoint there holds: weights, callbacks).
  std::vector<int> phase2_first_trainables;
  Checkpoint* phase1_end = nullptr;
  // A phase-2 run: starts at phase 2, epoch 1 from this state (as a --resume from that
  // checkpoint would, on every rank at once: no broadcast).
  const Checkpoint* phase2_start = nullptr;
};

// val may be null (no validation). Throws when the sources' classes do not match the model.
// on_epoch (optional) is called on every rank after each epoch, e.g. to append --history rows.
// on_best (optional, with --save-best) is called on every rank when the monitored value
// improved (ModelCheckpoint(save_best_only=True)), before on_epoch, with the epoch's weights.
// Returns the epochs trained in this run (fewer when --max-steps or early stopping ended them).
std::vector<EpochStats> run_two_phase(Model& model, const SampleSource& train,
                                      const SampleSource* val, const TrainConfig& config,
                                      std::ostream& log,
                                      const std::function<void(const EpochStats&)>& on_epoch = {},
                                      const std::function<void(const EpochStats&)>& on_best = {},
                                      const SweepStage* sweep = nullptr);

}  // namespace parafine
