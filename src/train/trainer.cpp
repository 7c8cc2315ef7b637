// The two-phase training loop (see trainer.hpp): a run is prepared once (starting state,
// BN modes, feature caches, shard plan), then each phase starts a fresh optimizer and trains
// its epochs; an epoch is its steps, validation, the log line and the next checkpoint.
#include "parafine/train/trainer.hpp"
#include "parafine/layers/dropout.hpp"

#include <chrono>
#include <cmath>
#include <iomanip>
#include <memory>
#include <optional>
#include <ostream>
#include <sstream>
#include <stdexcept>

#include "parafine/core/adam.hpp"
#include "parafine/core/out_of_memory.hpp"
#include "parafine/core/stop_signal.hpp"
#include "parafine/data/data_order.hpp"
#include "parafine/dist/comm.hpp"
#include "parafine/dist/gradient_sync.hpp"
#include "parafine/dist/replica.hpp"
#include "parafine/layers/batch_norm.hpp"
#include "parafine/model/backbone.hpp"
#include "parafine/train/callbacks.hpp"
#include "parafine/train/checkpoint.hpp"
#include "parafine/train/epoch_feed.hpp"
#include "parafine/train/progress.hpp"
#include "parafine/train/starting_state.hpp"
#include "parafine/train/training_caches.hpp"

namespace parafine {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

void unfreeze(Model& model, const TrainConfig& c) {
  if (!c.unfreeze_from.empty())
    unfreeze_base_from(model, c.unfreeze_from);
  else
    unfreeze_last_base_layers(model, c.unfreeze_last);
}

void set_batch_norm_inference_only(Model& model, bool inference_only) {
  for (int i = 0; i < model.size(); ++i)
    if (auto* bn = dynamic_cast<BatchNormalization*>(&model.layer(i)))
      bn->set_inference_only(inference_only);
}

// The Dropout key of each sample of a batch (layers/dropout.hpp): its dataset index and the
// epoch, so a sample's mask is the same at any rank count and changes every epoch.
std::vector<std::uint64_t> dropout_keys(const Batch& batch, int global_epoch) {
  std::vector<std::uint64_t> keys(batch.indices.size());
  for (std::size_t i = 0; i < keys.size(); ++i)
    keys[i] = (static_cast<std::uint64_t>(global_epoch) << 32) |
              static_cast<std::uint32_t>(batch.indices[i]);
  return keys;
}

void check_classes(const Model& model, const SampleSource& data, const char* option) {
  const int classes = output_classes(model);
  const Layer& head = model.layer(model.size() - 1);
  if (data.classes() != classes)
    throw std::invalid_argument(std::string(option) + " has " + std::to_string(data.classes()) +
                                " classes, the model's output layer '" + head.name() + "' has " +
                                (output_loss(model) == OutputLoss::kBinary
                                     ? std::string("one sigmoid unit (2 classes)")
                                     : std::to_string(classes) + " units"));
}

// Where one epoch's training time went on this rank, in seconds (validation excluded).
struct StepTimes {
  double data = 0, comm = 0, total = 0;
};

// Where an epoch starts: 0 and no carry, or a resumed epoch's next step and the global sums
// of the steps it had already taken.
struct EpochStart {
  int phase = 1;
  int global_epoch = 0;  // 0-based over both phases
  int first_step = 0;
  LossResult carry;
};

struct EpochResult {
  LossResult sums;       // exact global sums of the epoch's steps, the carry included
  bool stopped = false;  // --max-steps or a stop signal ended the run inside this epoch
  StepTimes times;
};

// Called after every step with (steps done in the epoch, global sums so far); true = stop.
using AfterStep = std::function<bool(int, const LossResult&)>;

class TwoPhaseRun {
 public:
  TwoPhaseRun(Model& model, const SampleSource& train, const SampleSource* val,
              const TrainConfig& config, std::ostream& log,
              const std::function<void(const EpochStats&)>& on_epoch,
              const std::function<void(const EpochStats&)>& on_best, const SweepStage* sweep)
      : model_(model),
        train_(train),
        val_(val),
        c_(config),
        log_(log),
        on_epoch_(on_epoch),
        on_best_(on_best),
        callbacks_(config.callbacks),
        sweep_(sweep),
        resuming_(config.resume || (sweep && sweep->phase2_start)) {}

  std::vector<EpochStats> run() {
    prepare();
    const bool phase1_only = sweep_ && sweep_->phase1_end;  // a sweep's phase-1 run
    bool finished = true;
    for (int phase = from_.phase; phase <= (phase1_only ? 1 : 2) && finished; ++phase)
      finished = run_phase(phase);
    if (phase1_only && finished) *sweep_->phase1_end = phase_boundary_state();
    if (stop_signal_) {
      // Every rank waits for rank 0's checkpoint: under mpirun the first rank to exit non-zero
      // makes mpirun kill the others, which must not cut the checkpoint (or MPI_Finalize) short.
      std::vector<int> written{1};
      Comm::allreduce_max(written);
      log_ << stop_message() << std::endl;
      throw StoppedBySignal(stop_message());  // main() exits with kStoppedBySignalExitCode
    }
    return history_;
  }

 private:
  void prepare();
  void lock_checkpoint_dir();
  void prepare_caches(int phase2_first_trainable);
  Adam start_phase(int phase);
  bool run_phase(int phase);
  bool run_epoch(int phase, int epoch, Adam& adam, double& phase_seconds);
  std::unique_ptr<EpochFeed> training_feed(int phase, int global_epoch, int first_step) const;
  EpochResult train_epoch(Adam& adam, EpochFeed& batches, const EpochStart& start,
                          const AfterStep& after_step);
  LossResult train_step(Adam& adam, const Batch& batch, int step, int phase, StepTimes& times);
  bool after_step(int phase, int epoch, const Adam& adam, int steps_done, const LossResult& sums);
  bool stop_signalled();
  std::string stop_message() const;
  LossResult validation(int phase) const;
  void checkpoint(const Adam* adam, TrainPosition at) const;
  bool epoch_end_callbacks(EpochStats& s, Adam& adam);
  void end_phase_callbacks(int phase);
  TrainPosition position(TrainPosition at) const;
  CallbackCheckpoint callback_checkpoint() const;
  Checkpoint phase_boundary_state() const;

  int epochs_of(int phase) const { return phase == 1 ? c_.phase1_epochs : c_.phase2_epochs; }
  bool continuing(int phase) const { return resuming_ && phase == from_.phase; }
  int cached_node(int phase) const { return phase == 1 ? plan_.phase1_node : plan_.phase2_node; }

  Model& model_;
  const SampleSource& train_;
  const SampleSource* val_;
  const TrainConfig& c_;
  std::ostream& log_;
  const std::function<void(const EpochStats&)>& on_epoch_;
  const std::function<void(const EpochStats&)>& on_best_;
  TrainingCallbacks callbacks_;                  // --early-stopping, --lr-schedule, ...
  std::vector<float> best_params_, best_state_;  // EarlyStopping's best_weights
  bool stop_phase_ = false;                      // EarlyStopping set stop_training
  std::ostringstream callback_notes_;            // logged after the epoch's line

  std::unique_ptr<CheckpointDirLock> lock_;      // rank 0's, with --checkpoint-dir
  Checkpoint resumed_;                           // the checkpoint a --resume continues from
  TrainPosition from_;                           // where this run starts
  const SweepStage* sweep_;                      // null unless `parafine sweep` runs this
  const bool resuming_;                          // --resume, or a sweep's phase-2 run
  TrainingCaches own_caches_;                    // the frozen prefix's features, when cached
  const TrainingCaches* caches_ = &own_caches_;  // own_caches_ or the sweep's
  CachePlan plan_;                               // which cached node each phase trains from
  std::optional<ShardPlan> train_plan_;
  long steps_this_run_ = 0;  // for --max-steps
  int stop_signal_ = 0;      // the stop signal all ranks agreed on (core/stop_signal.hpp)
  std::vector<EpochStats> history_;
  Tensor dlogits_;  // [local b, classes]
};

// Options and classes checked, BN modes set, every replica at the starting state, the caches
// built for the phases that remain.
void TwoPhaseRun::prepare() {
  validate(c_);
  if (train_.classes() < 2)
    throw std::invalid_argument(
        "--train has " + std::to_string(train_.classes()) +
        " class: a classifier needs at least 2 (a softmax over one class has loss 0 and learns "
        "nothing); add another class folder, or for an HDF5 dataset set class_names or check "
        "the labels (without class_names, classes = max label + 1)");
  check_classes(model_, train_, "--train");
  if (val_) check_classes(model_, *val_, "--val");
  lock_checkpoint_dir();
  set_batch_norm_inference_only(model_, c_.bn_mode == BnMode::kFrozen);
  for (int i = 0; i < model_.size(); ++i)  // --seed decides the Dropout masks too
    if (auto* dropout = dynamic_cast<Dropout*>(&model_.layer(i))) dropout->set_run_seed(c_.seed);
  use_global_batch_statistics(model_, false);
  freeze_base(model_);
  if (sweep_ && sweep_->phase2_start) {  // every rank holds the phase-1 run's end state
    resumed_ = *sweep_->phase2_start;
    model_.set_weights(resumed_.params, resumed_.state);
    from_ = resumed_.position;
  } else {
    from_ = starting_state(model_, train_, c_, log_, resumed_);
  }
  use_global_batch_statistics(model_, c_.bn_mode == BnMode::kSync);
  unfreeze(model_, c_);  // phase 2's trainable layers decide its cache cut
  const int phase2_first = model_.first_trainable_node();
  freeze_base(model_);
  prepare_caches(phase2_first);
  train_plan_.emplace(train_.size(), c_.batch_size, Comm::size(), Comm::rank(), c_.shuffle, c_.seed,
                      "--train");
}

// The feature caches this run trains from: its own, or in a sweep the ones built by the
// phase-1 run for every setting (which that run builds here, once its starting state is set).
void TwoPhaseRun::prepare_caches(int phase2_first_trainable) {
  if (!sweep_) {
    own_caches_ =
        build_training_caches(model_, train_, val_, c_, phase2_first_trainable, from_.phase, log_);
    plan_ = own_caches_.plan;
    return;
  }
  if (!sweep_->phase2_start)
    *sweep_->caches =
        build_sweep_caches(model_, train_, val_, c_, sweep_->phase2_first_trainables, log_);
  caches_ = sweep_->caches;
  const CachePlan own = plan_feature_cache(model_, phase2_first_trainable, from_.phase == 1,
                                           c_.phase2_epochs > 0, c_.cache, c_.augment);
  plan_ = plan_on_shared_caches(model_, *caches_, own);
  if (sweep_->phase2_start) log_ << plan_.summary << std::endl;
}

// Rank 0 takes the checkpoint directory for this run; every rank stops if it cannot.
void TwoPhaseRun::lock_checkpoint_dir() {
  if (c_.checkpoint_dir.empty()) return;
  bool failed = false;
  std::string message;
  if (Comm::is_root()) {
    try {
      lock_ = std::make_unique<CheckpointDirLock>(c_.checkpoint_dir);
    } catch (const std::exception& e) {
      failed = true;
      message = e.what();
    }
  }
  agree_on_failure(failed, message);
}

// Unfreezes phase 2's layers, logs the phase, and builds its fresh optimizer (with the
// checkpoint's state when the run resumes inside this phase).
Adam TwoPhaseRun::start_phase(int phase) {
  const double lr = phase == 1 ? c_.phase1_lr : c_.phase2_lr;
  if (phase == 2 && epochs_of(2) > 0) {
    unfreeze(model_, c_);
    log_ << "phase 2: "
         << (c_.unfreeze_from.empty() ? "last " + std::to_string(c_.unfreeze_last) + " base layers"
                                      : "base layers from " + c_.unfreeze_from)
         << " unfrozen (from " << model_.layer(model_.first_trainable_node()).name() << ", "
         << model_.trainable_size() << " weights), fresh Adam lr " << lr << std::endl;
  } else if (phase == 1) {
    log_ << "phase 1: base frozen, training the head (" << model_.trainable_size()
         << " weights), Adam lr " << lr << std::endl;
  }
  Adam adam(model_.trainable_size(), lr);
  if (continuing(phase) && resumed_.adam_t > 0) {
    if (resumed_.adam_m.size() != adam.size())
      throw std::runtime_error(resumed_.path + ": its optimizer state covers " +
                               std::to_string(resumed_.adam_m.size()) +
                               " weights, this run trains " + std::to_string(adam.size()) +
                               " (was --unfreeze-last/--unfreeze-from changed?)");
    adam.m() = resumed_.adam_m;
    adam.v() = resumed_.adam_v;
    adam.set_iterations(resumed_.adam_t);
  }
  // A --resume inside the phase continues the callbacks' state; a new phase is a new fit().
  const bool inside = continuing(phase) && !(from_.epoch == 1 && from_.step == 0);
  if (continuing(phase) && !resumed_.callbacks.state.empty()) {
    callbacks_.load_state(resumed_.callbacks.state);
    best_params_ = resumed_.callbacks.best_params;
    best_state_ = resumed_.callbacks.best_state;
  }
  callbacks_.begin_phase(lr, train_plan_->steps(), epochs_of(phase), inside);
  if (!inside) best_params_.clear(), best_state_.clear();
  stop_phase_ = false;
  return adam;
}

// False when --max-steps stopped the run.
bool TwoPhaseRun::run_phase(int phase) {
  Adam adam = start_phase(phase);
  double phase_seconds = 0;
  const int local_batch = (c_.batch_size + Comm::size() - 1) / Comm::size();
  const double step_bytes = model_.step_bytes(local_batch, true);
  const std::string what =
      "a training step of phase " + std::to_string(phase) +
      " (the layer outputs and their gradients for " + std::to_string(local_batch) + " images of " +
      std::to_string(c_.image_size) + "x" + std::to_string(c_.image_size) + " per rank, estimated)";
  const std::string advice =
      "Try a smaller --batch-size or --image-size, fewer ranks per node, or a smaller "
      "--cache-mem.";
  for (int e = continuing(phase) ? from_.epoch : 1; e <= epochs_of(phase); ++e)
    if (!allocating(what, step_bytes, advice,
                    [&] { return run_epoch(phase, e, adam, phase_seconds); }))
      return false;
    else if (stop_phase_)
      break;
  if (epochs_of(phase) > 0) {
    std::ostringstream line;
    line << "phase " << phase << " took " << std::fixed << std::setprecision(1) << phase_seconds
         << "s (training and validation)";
    log_ << line.str() << std::endl;
  }
  return true;
}

// Trains and validates epoch `e` of `phase`, logs and records it, checks the replicas and
// checkpoints the next position. False when --max-steps stopped the run inside it.
bool TwoPhaseRun::run_epoch(int phase, int e, Adam& adam, double& phase_seconds) {
  const bool resumed_epoch = continuing(phase) && e == from_.epoch;
  EpochStart start;
  start.phase = phase;
  start.first_step = resumed_epoch ? from_.step : 0;
  start.carry = resumed_epoch ? from_.partial : LossResult{};
  const int global_epoch = (phase == 1 ? 0 : c_.phase1_epochs) + e - 1;
  start.global_epoch = global_epoch;
  const auto started = Clock::now();
  const auto feed = training_feed(phase, global_epoch, start.first_step);
  const EpochResult r = train_epoch(adam, *feed, start, [&](int done, const LossResult& sums) {
    return after_step(phase, e, adam, done, sums);
  });
  if (r.stopped && stop_signal_) return false;  // run() reports it
  if (r.stopped) {
    log_ << "stopped after " << steps_this_run_ << " step(s) (--max-steps) in phase " << phase
         << " epoch " << e << (c_.checkpoint_dir.empty() ? "" : "; continue with --resume")
         << std::endl;
    return false;
  }
  EpochStats s;
  s.phase = phase;
  s.epoch = e;
  s.loss = r.sums.loss();          // Keras's fit logs with class_weight: loss_sum is weighted
  s.accuracy = r.sums.accuracy();  // the compiled accuracy metric is unweighted
  s.images_per_second = (r.sums.count - start.carry.count) / r.times.total;
  s.data_wait_seconds = r.times.data;
  s.comm_seconds = r.times.comm;
  s.compute_seconds = r.times.total - r.times.data - r.times.comm;
  if (val_) {
    const LossResult v = validation(phase);
    s.val_loss = v.loss_sum / v.count;
    s.val_accuracy = static_cast<double>(v.correct) / v.count;
  }
  const bool save_best = epoch_end_callbacks(s, adam);
  s.seconds = seconds_since(started);  // with validation
  phase_seconds += s.seconds;
  log_epoch(log_, s, val_ != nullptr);
  if (save_best && on_best_) on_best_(s);
  log_ << callback_notes_.str() << std::flush;
  callback_notes_.str("");
  history_.push_back(s);
  check_replicas(model_, "after phase " + std::to_string(phase) + " epoch " + std::to_string(e));
  if (on_epoch_) on_epoch_(s);
  // The next position: the next epoch of this phase (same optimizer), or the next phase (a
  // fresh one) after the phase's on_train_end.
  if (e < epochs_of(phase) && !stop_phase_) {
    checkpoint(&adam, TrainPosition{phase, e + 1, 0, {}});
  } else {
    end_phase_callbacks(phase);
    checkpoint(nullptr, TrainPosition{phase + 1, 1, 0, {}});
  }
  // A signal during validation stops here (this epoch end's checkpoint holds the state); after
  // the run's last epoch nothing is left to stop.
  const bool phase_ended = e == epochs_of(phase) || stop_phase_;
  const bool last_of_run = phase_ended && (phase == 2 || epochs_of(2) == 0);
  return last_of_run || !stop_signalled();
}

// The epoch's batches from `first_step` on: cached features when this phase trains from the
// cache, else this rank's slices of the global batches, decoded ahead by the prefetcher.
std::unique_ptr<EpochFeed> TwoPhaseRun::training_feed(int phase, int global_epoch,
                                                      int first_step) const {
  const int node = cached_node(phase);
  if (node >= 0)
    return std::make_unique<EpochFeed>(*caches_->train, node, c_.batch_size,
                                       train_plan_->order(global_epoch), first_step);
  auto steps = train_plan_->local_batches(global_epoch);
  steps.erase(
      steps.begin(),
      steps.begin() + std::min<std::size_t>(steps.size(), static_cast<std::size_t>(first_step)));
  return std::make_unique<EpochFeed>(train_, std::move(steps),
                                     prefetch_config(c_, c_.augment, global_epoch));
}

// The epoch's steps from start.first_step, with rank 0's progress line.
EpochResult TwoPhaseRun::train_epoch(Adam& adam, EpochFeed& batches, const EpochStart& start,
                                     const AfterStep& after_step) {
  const auto epoch_start = Clock::now();
  Progress progress(Comm::is_root() ? &log_ : nullptr, train_plan_->steps());
  EpochResult result;
  result.sums = start.carry;  // global sums, the same on every rank
  Batch batch;
  int images = 0;
  while (true) {
    const auto t = Clock::now();
    const double comm_before = batches.comm_seconds();
    if (!batches.next(batch)) break;
    const double routing = batches.comm_seconds() - comm_before;
    result.times.data += seconds_since(t) - routing;
    result.times.comm += routing;
    const int step = start.first_step + batch.step;
    model_.set_sample_keys(dropout_keys(batch, start.global_epoch));
    batches.forward(model_, batch.images, true);
    const LossResult step_sums = train_step(adam, batch, step, start.phase, result.times);
    result.sums += step_sums;
    images += step_sums.count;
    progress.update(step + 1, result.sums, images, seconds_since(epoch_start));
    if (after_step(step + 1, result.sums)) {
      result.stopped = true;
      break;
    }
  }
  result.times.total = seconds_since(epoch_start);
  return result;
}

// After the forward of global batch `step`: loss, backward with bucketed gradient allreduce,
// the global batch's Adam step. Returns the step's global loss/accuracy sums.
LossResult TwoPhaseRun::train_step(Adam& adam, const Batch& batch, int step, int phase,
                                   StepTimes& times) {
  if (c_.callbacks.controls_rate())  // the schedule, warmup or ReduceLROnPlateau's rate
    adam.set_learning_rate(callbacks_.rate_for_step(adam.iterations()));
  const Range global = train_plan_->global_range(step);
  const LossResult local =
      model_loss(model_, batch.labels, global.end - global.begin, &dlogits_, c_.class_weights);
  // The global batch's mean gradient: buckets are summed over ranks while backward goes on.
  const auto bucket_floats = static_cast<std::size_t>(c_.bucket_mb * 1024 * 1024 / sizeof(float));
  GradientSync sync(model_.grads().data(), model_.trainable_size(), bucket_floats);
  model_.backward(dlogits_, [&sync](std::size_t filled) { sync.ready(filled); });
  times.comm += sync.finish();
  const auto t = Clock::now();
  const LossResult sums = global_sum(local);
  times.comm += seconds_since(t);
  if (!std::isfinite(sums.loss_sum))
    throw TrainingDiverged("phase " + std::to_string(phase) + ": the loss became " +
                           std::to_string(sums.loss_sum) + " at step " + std::to_string(step + 1) +
                           " (diverged: lower the learning rate, check the input data); the "
                           "last checkpoint (if any) holds the last good state");
  model_.finish_gradients();  // mixed_bfloat16: the global gradient of the bfloat16 weights
  adam.step(model_.trainable_params(), model_.grads().data());
  if (c_.bn_mode == BnMode::kLocal) average_trainable_bn_state(model_);
  return sums;
}

// Counts the step for --max-steps, asks the ranks for a stop signal and writes the step
// checkpoints. True = stop the run.
bool TwoPhaseRun::after_step(int phase, int epoch, const Adam& adam, int steps_done,
                             const LossResult& sums) {
  ++steps_this_run_;
  const bool signalled = stop_signalled();  // collective: every rank asks at every step
  const bool stop = signalled || (c_.max_steps > 0 && steps_this_run_ >= c_.max_steps);
  const bool periodic = c_.checkpoint_steps > 0 && steps_done % c_.checkpoint_steps == 0;
  if (stop || periodic) checkpoint(&adam, TrainPosition{phase, epoch, steps_done, sums});
  return stop;
}

// Collective, at a step boundary or an epoch end: whether any rank received a stop signal, so
// that every rank stops at the same step. One int allreduce (nothing when run alone).
bool TwoPhaseRun::stop_signalled() {
  std::vector<int> signal{stop_signal_received()};
  Comm::allreduce_max(signal);
  stop_signal_ = signal[0];
  return stop_signal_ != 0;
}

std::string TwoPhaseRun::stop_message() const {
  return "stopped by " + signal_name(stop_signal_) + " after " + std::to_string(steps_this_run_) +
         " step(s) of this run; " +
         (c_.checkpoint_dir.empty()
              ? "nothing was saved (no --checkpoint-dir); a new run starts from the beginning"
              : "checkpoint written to " + c_.checkpoint_dir + ", continue with --resume auto") +
         " (exit code " + std::to_string(kStoppedBySignalExitCode) + ")";
}

// Validation loss/accuracy sums, from the cached features when this phase trains from them.
LossResult TwoPhaseRun::validation(int phase) const {
  const int node = cached_node(phase);
  if (node < 0)
    return evaluate(model_, *val_, c_.batch_size, c_.image_size, c_.preprocess, c_.loader_threads);
  EpochFeed cached_val(*caches_->val, node, c_.batch_size, epoch_order(val_->size(), false, 0, 0),
                       0);
  return evaluate_feed(model_, cached_val);
}

// Rank 0 writes a checkpoint at `at` when --checkpoint-dir is set.
void TwoPhaseRun::checkpoint(const Adam* adam, TrainPosition at) const {
  if (c_.checkpoint_dir.empty() || !Comm::is_root()) return;
  const CallbackCheckpoint cb = callback_checkpoint();
  save_checkpoint(c_.checkpoint_dir, model_, adam, position(at), c_.keep_checkpoints,
                  trajectory_options(c_), &cb);
}

// `at` with what a resume checks against: the seed, batch size and sample count.
TrainPosition TwoPhaseRun::position(TrainPosition at) const {
  at.seed = c_.seed;
  at.batch_size = c_.batch_size;
  at.samples = train_.size();
  return at;
}

// The callbacks' state and EarlyStopping's best weights; empty for runs without callbacks
// (their checkpoints are written as before callbacks existed).
CallbackCheckpoint TwoPhaseRun::callback_checkpoint() const {
  const CallbackOptions& o = c_.callbacks;
  if (!o.any_monitor_callback() && !o.controls_rate()) return {};
  return CallbackCheckpoint{callbacks_.state_json(), best_params_, best_state_};
}

// A sweep's phase-1 run at the phase boundary: what a checkpoint there holds (no optimizer:
// phase 2 starts a fresh one), in memory.
Checkpoint TwoPhaseRun::phase_boundary_state() const {
  Checkpoint end;
  end.path = "the sweep's phase 1";
  end.position = position(TrainPosition{2, 1, 0, {}});
  end.params = static_cast<const Model&>(model_).params();
  end.state = static_cast<const Model&>(model_).state();
  end.callbacks = callback_checkpoint();
  return end;
}

// The callbacks' on_epoch_end (after validation, from the global metrics: the same on every
// rank): the logged rate, EarlyStopping's best weights and stop, the rate cut. True: write
// --save-best.
bool TwoPhaseRun::epoch_end_callbacks(EpochStats& s, Adam& adam) {
  const auto d = callbacks_.epoch_end(s.epoch - 1, s, adam.iterations(), adam.learning_rate());
  s.learning_rate = d.logged_rate;
  const char* monitor = monitor_name(c_.callbacks.monitor);
  if (d.keep_weights) {
    best_params_ = static_cast<const Model&>(model_).params();
    best_state_ = static_cast<const Model&>(model_).state();
  }
  if (d.new_rate) {
    adam.set_learning_rate(*d.new_rate);
    callback_notes_ << "phase " << s.phase << " epoch " << s.epoch
                    << ": ReduceLROnPlateau: " << monitor
                    << " did not improve, learning rate reduced to " << *d.new_rate << "\n";
  }
  if (d.stop) {
    stop_phase_ = true;
    callback_notes_ << "phase " << s.phase << " epoch " << s.epoch << ": early stopping ("
                    << monitor << " did not improve for " << c_.callbacks.early_stopping_patience
                    << " epoch(s))"
                    << "\n";
  }
  return d.save_best;
}

// on_train_end: EarlyStopping's restore_best_weights sets every weight (BN statistics too)
// back to the best epoch's, on every rank.
void TwoPhaseRun::end_phase_callbacks(int phase) {
  if (callbacks_.restore_at_phase_end() && !best_params_.empty()) {
    model_.set_weights(best_params_, best_state_);
    log_ << "phase " << phase << ": restored the weights of epoch " << callbacks_.best_epoch() + 1
         << " (EarlyStopping restore_best_weights)" << std::endl;
  }
  best_params_.clear();  // the next phase is a new fit()
  best_state_.clear();
}

}  // namespace

std::vector<EpochStats> run_two_phase(Model& model, const SampleSource& train,
                                      const SampleSource* val, const TrainConfig& config,
                                      std::ostream& log,
                                      const std::function<void(const EpochStats&)>& on_epoch,
                                      const std::function<void(const EpochStats&)>& on_best,
                                      const SweepStage* sweep) {
  return TwoPhaseRun(model, train, val, config, log, on_epoch, on_best, sweep).run();
}

}  // namespace parafine
