// Training checkpoints: everything a run needs to continue bit for bit — all weights, the BN
// statistics, Adam's m, v and t, and where the run is (phase, epoch, steps done, and the
// epoch's partial global loss/accuracy sums). The data order needs no saved RNG state: it
// depends only on (seed, epoch), and flips on (seed, epoch, sample). Rank 0 writes
// <dir>/ckpt-p<phase>-e<epoch>-s<step>.h5 under a temporary name and renames it; the newest
// few are kept.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "parafine/core/adam.hpp"
#include "parafine/core/loss.hpp"
#include "parafine/model/model.hpp"

namespace parafine {

// Where a run stands: the next step to take is `step` (0-based) of `epoch` (1-based) of
// `phase`; `partial` holds the global sums of that epoch's steps already taken.
struct TrainPosition {
  int phase = 1, epoch = 1, step = 0;
  LossResult partial;
  // What the position means: the data order is a function of these, so a resume must match.
  std::uint64_t seed = 0;
  int batch_size = 0, samples = 0;
  bool operator<(const TrainPosition& o) const;
};

std::string checkpoint_name(const TrainPosition& p);

// Writes a checkpoint (call on rank 0 only) and deletes all but the newest `keep`. `adam` may
// be null at a phase boundary (the next phase starts a fresh optimizer).
// `run_options` (trajectory_options of the run, train_config.hpp) is stored so a resume can
// list every option that differs.
// What the callbacks (callbacks.hpp) carry between epochs: their state as text and, with
// --restore-best, EarlyStopping's best weights (empty when it holds none).
struct CallbackCheckpoint {
  std::string state;  // TrainingCallbacks::state_json(); "" = no callbacks
  std::vector<float> best_params, best_state;
};
void save_checkpoint(const std::string& dir, const Model& model, const Adam* adam,
                     const TrainPosition& position, int keep, const std::string& run_options = "",
                     const CallbackCheckpoint* callbacks = nullptr);

// Whether `dir` holds files named like checkpoints (ckpt-p*-e*-s*.h5; not temporary files).
bool has_checkpoints(const std::string& dir);

struct Checkpoint {
  std::string path;
  TrainPosition position;
  std::string run_options;  // "" in checkpoints written before they were recorded
  std::vector<float> params, state, adam_m, adam_v;
  long adam_t = 0;
  CallbackCheckpoint callbacks;  // empty in checkpoints of runs without callbacks
};

// The newest checkpoint in `dir` that reads back whole and fits `model` (params/state sizes);
// newer ones that do not are reported to `log` and skipped. Throws std::runtime_error when
// there is none (naming the directory).
Checkpoint load_latest_checkpoint(const std::string& dir, const Model& model, std::ostream& log);

// One run at a time per checkpoint directory: rank 0 holds an exclusive lock (flock) on
// <dir>/.parafine.lock for the run's lifetime. Throws std::runtime_error naming the directory
// and the run holding it (host and process id) when another run has it.
class CheckpointDirLock {
 public:
  explicit CheckpointDirLock(const std::string& dir);
  ~CheckpointDirLock();
  CheckpointDirLock(const CheckpointDirLock&) = delete;
  CheckpointDirLock& operator=(const CheckpointDirLock&) = delete;

 private:
  int fd_ = -1;
};

// Collective: rank 0's position, optimizer state and path on every rank. Not the weights:
// rank 0 loads them into its model, and the trainer broadcasts the model to every replica.
void broadcast_checkpoint(Checkpoint& checkpoint);

}  // namespace parafine
