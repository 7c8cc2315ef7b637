// The run's starting point: resume, BN calibration, rank 0 broadcast (see starting_state.hpp).
#include "parafine/train/starting_state.hpp"

#include <algorithm>
#include <ostream>
#include <stdexcept>
#include <vector>

#include "parafine/core/out_of_memory.hpp"
#include "parafine/data/data_order.hpp"
#include "parafine/dist/comm.hpp"
#include "parafine/dist/replica.hpp"

namespace parafine {

namespace {

TrainPosition resume_position(Model& model, const SampleSource& train, const TrainConfig& c,
                              std::ostream& log, Checkpoint& resumed) {
  // Rank 0 chooses and reads the checkpoint, so every rank continues from the same one.
  if (Comm::is_root()) resumed = load_latest_checkpoint(c.checkpoint_dir, model, log);
  broadcast_checkpoint(resumed);
  const TrainPosition from = resumed.position;
  auto same = [&](bool ok, const std::string& what) {
    if (!ok)
      throw std::invalid_argument("--resume: " + resumed.path + " was written with " + what +
                                  "; the data order would differ, so the run cannot continue "
                                  "bit for bit");
  };
  same(from.seed == c.seed, "--seed " + std::to_string(from.seed));
  same(from.batch_size == c.batch_size, "--batch-size " + std::to_string(from.batch_size));
  same(from.samples == train.size(), std::to_string(from.samples) + " training samples");
  // Checkpoints written before the options were recorded carry none; they are checked above.
  const std::string differ =
      resumed.run_options.empty()
          ? ""
          : trajectory_differences(resumed.run_options, trajectory_options(c));
  if (!differ.empty())
    throw std::invalid_argument("--resume: " + resumed.path +
                                " was written by a run with other "
                                "options (" +
                                differ +
                                "); the run cannot continue as it was. "
                                "Use the checkpoint's options, or start a new run in another "
                                "--checkpoint-dir");
  // The other replicas get the weights with the broadcast that ends starting_state.
  if (Comm::is_root()) model.set_weights(resumed.params, resumed.state);
  log << "resuming from " << resumed.path << " (phase " << from.phase << ", epoch " << from.epoch
      << ", step " << from.step << ")" << std::endl;
  return from;
}

// The same first n samples of the seed's calibration order on every rank: no reducer needed.
// A network without BatchNormalization (VGG) has nothing to calibrate.
void calibrate_frozen_batch_norm(Model& model, const SampleSource& train, const TrainConfig& c,
                                 std::ostream& log) {
  bool any = false;
  for (int i = 0; i < model.size(); ++i)
    any = any || model.layer(i).type() == std::string("BatchNormalization");
  if (!any) return;
  const int n = std::min(train.size(), c.calibrate_bn_samples);
  const std::vector<int> order = epoch_order(train.size(), true, c.seed, -1);
  BatchPrefetcher one(train, {std::vector<int>(order.begin(), order.begin() + n)},
                      prefetch_config(c, AugmentSpec{}, -1));
  const std::string size = std::to_string(c.image_size);
  allocating(
      "the BatchNormalization calibration of the random base (one forward pass of " +
          std::to_string(n) + " images of " + size + "x" + size + ")",
      model.step_bytes(n, false) + static_cast<double>(n) * 3 * c.image_size * c.image_size * 4,
      "Try a smaller --image-size, or start from --weights (a random base is calibrated on up to "
      "64 training images).",
      [&] {
        Batch batch;
        one.next(batch);
        model.calibrate_batch_norm(batch.images);
      });
  log << "randomly initialised base: frozen BatchNormalization statistics calibrated on " << n
      << " training images" << std::endl;
}

}  // namespace

TrainPosition starting_state(Model& model, const SampleSource& train, const TrainConfig& c,
                             std::ostream& log, Checkpoint& resumed) {
  TrainPosition from;
  if (c.resume)
    from = resume_position(model, train, c, log, resumed);
  else if (c.calibrate_bn_samples > 0)
    calibrate_frozen_batch_norm(model, train, c, log);
  broadcast_model_state(model);
  return from;
}

}  // namespace parafine
