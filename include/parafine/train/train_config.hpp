// What a two-phase training run is asked to do (the train command's options as one struct),
// its validation, and what the run reports per epoch.
#pragma once

#include <cstdint>
#include <string>

#include "parafine/cache/cache_plan.hpp"
#include "parafine/core/loss.hpp"
#include "parafine/data/prefetcher.hpp"
#include "parafine/model/backbone.hpp"
#include "parafine/train/callbacks.hpp"

namespace parafine {

// --bn-mode: how a trainable BatchNormalization normalises when the batch is split over ranks.
enum class BnMode {
  kSync,    // statistics of the global batch (identical to one process)
  kLocal,   // each rank's own statistics; moving averages averaged across ranks after each step
  kFrozen,  // inference mode even when trainable (the Keras transfer-learning guide's advice)
};
// "sync" | "local" | "frozen", else throws naming --bn-mode.
BnMode parse_bn_mode(const std::string& name);

struct TrainConfig {
  int batch_size = 32;  // global batch
  int phase1_epochs = 10;
  double phase1_lr = 1e-3;
  int phase2_epochs = 10;
  double phase2_lr = 1e-5;
  int unfreeze_last = 10;
  std::string unfreeze_from;  // a base layer name; when set it wins over unfreeze_last
  bool shuffle = true;
  std::uint64_t seed = 0;
  double validation_split = 0;  // --validation-split: Keras's split of --train (0 = none)
  Backbone backbone = Backbone::kResNet50;  // which network (model/backbone.hpp)
  float alpha = 1.0f;                       // MobileNetV2's width multiplier
  int image_size = 224;
  Preprocess preprocess = Preprocess::kCaffe;
  AugmentSpec augment;     // --augment (data/augment.hpp); none by default
  int loader_threads = 2;  // background decoding threads
  BnMode bn_mode = BnMode::kSync;
  double bucket_mb = 25.0;     // gradient allreduce bucket size (MiB)
  std::string checkpoint_dir;  // "" = no checkpoints
  int checkpoint_steps = 0;    // also checkpoint every this many steps (0 = at epoch ends only)
  int keep_checkpoints = 3;
  bool resume = false;  // continue from the newest valid checkpoint in checkpoint_dir
  long max_steps = 0;   // stop (with a checkpoint) after this many steps in this run; 0 = none
  // With a randomly initialised base: set frozen BN statistics from this many training
  // samples before phase 1 (0 = keep the loaded statistics, as Keras does).
  int calibrate_bn_samples = 0;
  CacheOptions cache;         // --cache, --cache-mem, --cache-dir (cache_plan.hpp)
  CallbackOptions callbacks;  // --monitor, --early-stopping, --lr-schedule, ... (callbacks.hpp)
  // A model read from a Keras config (train --init m.keras): its base's layer count bounds
  // --unfreeze-last instead of the backbone's, and its input size is its own.
  bool model_from_file = false;
  int base_layers = 0;
  // --class-weight resolved against the training classes (class_weights.hpp); empty = none.
  ClassWeights class_weights;
  float dropout = 0.0f;  // --dropout: the head's Dropout rate (0: no Dropout layer)
};

// Upper bounds of the options (validate, and the commands at parse time): far beyond any
// sensible run, below where memory or int arithmetic fails.
constexpr int kMaxBatchSize = 65536;
constexpr int kMaxEpochs = 100000;
// A gradient bucket holds at least one float (4 bytes) and at most 4 GiB (ResNet50's gradients
// are ~100 MB, so one bucket already holds them all).
constexpr double kMinBucketMb = 4.0 / (1024 * 1024);
constexpr double kMaxBucketMb = 4096.0;

// Throws std::invalid_argument naming the option for a bad configuration.
void validate(const TrainConfig& config);

// The options that decide a run's trajectory, one "--option value" per line (learning rates
// exactly): a checkpoint records them and a --resume must match every one. Not the rank or
// thread count, the bucket size or where files go: those do not change the result.
std::string trajectory_options(const TrainConfig& config);

// The lines of `checkpoint` and `now` (trajectory_options) that differ, as
// "--x A in the checkpoint, B now; ..."; "" when they agree.
std::string trajectory_differences(const std::string& checkpoint, const std::string& now);

// What the prefetcher needs from a TrainConfig (image size, preprocessing, loader threads,
// seed), with this augmentation for this (global, 0-based) epoch.
PrefetchConfig prefetch_config(const TrainConfig& config, const AugmentSpec& augment, int epoch);

struct EpochStats {
  int phase = 0;  // 1 or 2
  int epoch = 0;  // 1-based within the phase
  double loss = 0, accuracy = 0, val_loss = 0, val_accuracy = 0;
  // logs["learning_rate"] at the epoch's end, as Keras reports it (float32): the rate of the
  // epoch (before a ReduceLROnPlateau cut), or with a schedule/warmup the schedule at the
  // phase's step count (Keras's optimizer.learning_rate of a LearningRateSchedule).
  double learning_rate = 0;
  double seconds = 0;            // the epoch's wall time, validation included
  double images_per_second = 0;  // training images / training time
  // Where this rank's training time went (validation excluded): waiting for the prefetcher,
  // waiting for gradient/metric allreduces that backward did not hide, everything else.
  double data_wait_seconds = 0, comm_seconds = 0, compute_seconds = 0;
};

}  // namespace parafine
