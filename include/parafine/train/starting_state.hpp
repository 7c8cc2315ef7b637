// Where a training run starts, with every replica holding rank 0's state: the newest
// checkpoint for --resume, else phase 1, epoch 1, step 0 from the given weights, after
// calibrating the frozen BN statistics of a random base when asked.
#pragma once

#include <iosfwd>

#include "parafine/data/sample_source.hpp"
#include "parafine/model/model.hpp"
#include "parafine/train/checkpoint.hpp"
#include "parafine/train/train_config.hpp"

namespace parafine {

// Collective. With --resume, rank 0 picks and reads the checkpoint and every rank gets its
// position and optimizer state in `resumed`; a checkpoint written with another seed, batch
// size or sample count is refused (the data order would differ). Ends with rank 0's weights
// and BN statistics broadcast to every replica.
TrainPosition starting_state(Model& model, const SampleSource& train, const TrainConfig& config,
                             std::ostream& log, Checkpoint& resumed);

}  // namespace parafine
