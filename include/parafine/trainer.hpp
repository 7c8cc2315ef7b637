// The single-process two-phase fine-tuning run on an in-memory dataset, with Keras semantics:
// phase 1 freezes the base and trains the head with Adam(phase1_lr); phase 2 unfreezes the
// base's last N layers and continues with a fresh Adam(phase2_lr). Validation after every
// epoch with BN in inference mode.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <vector>

#include "parafine/dataset.hpp"
#include "parafine/loss.hpp"
#include "parafine/model.hpp"

namespace parafine {

struct TrainConfig {
  int batch_size = 32;
  int phase1_epochs = 10;
  double phase1_lr = 1e-3;
  int phase2_epochs = 10;
  double phase2_lr = 1e-5;
  int unfreeze_last = 10;
  bool shuffle = true;
  std::uint64_t seed = 0;
  // With a randomly initialised base: set frozen BN statistics from this many training
  // samples before phase 1 (0 = keep the loaded statistics, as Keras does).
  int calibrate_bn_samples = 0;
};

struct EpochStats {
  int phase = 0;  // 1 or 2
  int epoch = 0;  // 1-based within the phase
  double loss = 0, accuracy = 0, val_loss = 0, val_accuracy = 0;
  double seconds = 0, images_per_second = 0;
};

// Throws std::invalid_argument naming the option for a bad configuration.
void validate(const TrainConfig& config);

// Sample order of one epoch: identity without shuffling, else a permutation that depends only
// on (seed, epoch_index).
std::vector<int> epoch_order(int samples, bool shuffle, std::uint64_t seed, int epoch_index);

// Copies samples order[begin..end) of `data` into batch images [B,H,W,C] and labels.
void gather_batch(const Dataset& data, const std::vector<int>& order, int begin, int end,
                  Tensor& images, std::vector<int>& labels);

// Loss and accuracy of `model` on `data`, BN in inference mode.
LossResult evaluate(Model& model, const Dataset& data, int batch_size);

std::vector<EpochStats> run_two_phase(Model& model, const Dataset& train, const Dataset& val,
                                      const TrainConfig& config, std::ostream& log);

}  // namespace parafine
