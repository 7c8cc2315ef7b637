// Keras's fit() callbacks as plain decision logic (no MPI, no Model): EarlyStopping,
// ModelCheckpoint(save_best_only=True), ReduceLROnPlateau, and learning-rate schedules with a
// warmup, transcribed from keras/src/callbacks/{monitor_callback,early_stopping,
// model_checkpoint,reduce_lr_on_plateau}.py and keras/src/optimizers/schedules/
// learning_rate_schedule.py. The trainer feeds them the exact global metrics of each epoch,
// so every rank takes the same decisions at any rank count.
//
// Schedules (--lr-schedule), with lr = the phase's rate, s = the phase's optimizer step
// (Adam's iterations before the step, 0-based, restarting at 0 with each phase's fresh Adam),
// E = steps per epoch, P = the phase's steps (epochs * E):
//   constant          lr (a float32 variable, as Keras's; ReduceLROnPlateau may lower it)
//   cosine            CosineDecay(lr, decay_steps=P, alpha=0): lr * 0.5*(1 + cos(pi*min(s,P)/P))
//   exponential,RATE  ExponentialDecay(lr, decay_steps=E, decay_rate=RATE): lr * RATE^(s/E)
// Warmup (--warmup-epochs K, W = K*E): for s < W the rate is multiplied by (s+1)/W, so the
// first step takes lr/W and step W-1 the full rate. This is the large-rank-count limit of
// Horovod's LearningRateWarmupCallback multiplier 1/size*((s+1)/E*(size-1)/K + 1); Horovod
// starts at lr/size because it scales lr by the rank count, ours does not depend on it. With
// the constant schedule the warmup sets the float32 variable before each step (as Horovod's
// callback does at on_batch_begin), so a ReduceLROnPlateau cut made during the warmup is
// overwritten by the next warmup step, and cuts after it stick.
// Every rate is rounded to float32 (Keras's learning-rate variable and schedule dtype).
#pragma once

#include <optional>
#include <string>

namespace parafine {

struct EpochStats;

// --monitor: which epoch metric the callbacks watch.
enum class Monitor { kValLoss, kValAccuracy, kLoss, kAccuracy };
// "val_loss" | "val_accuracy" | "loss" | "accuracy", else throws std::invalid_argument naming
// --monitor.
Monitor parse_monitor(const std::string& name);
const char* monitor_name(Monitor m);
bool monitor_needs_validation(Monitor m);
// Keras's mode "auto": max for accuracies, min for losses.
bool monitor_maximises(Monitor m);
// The epoch's value of `m`, rounded to float32 as Keras's logs hold it.
double monitored_value(const EpochStats& s, Monitor m);

enum class ScheduleKind { kConstant, kCosine, kExponential };

// Every callback option of a run (TrainConfig::callbacks). Off by default.
struct CallbackOptions {
  Monitor monitor = Monitor::kValLoss;
  bool save_best = false;            // --save-best FILE given
  int early_stopping_patience = -1;  // --early-stopping PATIENCE; < 0: off
  double min_delta = 0;              // --min-delta (EarlyStopping's)
  bool restore_best = false;         // --restore-best
  bool reduce_lr = false;            // --reduce-lr-on-plateau FACTOR,PATIENCE[,MIN_LR]
  double reduce_factor = 0.1;
  int reduce_patience = 10;
  double reduce_min_lr = 0;
  ScheduleKind schedule = ScheduleKind::kConstant;  // --lr-schedule
  double decay_rate = 1;                            // exponential's RATE
  int warmup_epochs = 0;                            // --warmup-epochs

  bool any_monitor_callback() const {
    return save_best || early_stopping_patience >= 0 || reduce_lr;
  }
  // Whether the trainer sets the optimizer's rate before every step.
  bool controls_rate() const {
    return reduce_lr || schedule != ScheduleKind::kConstant || warmup_epochs > 0;
  }
};

// --lr-schedule "constant" | "cosine" | "exponential,RATE" into `o` (RATE > 0, finite); throws
// std::invalid_argument naming --lr-schedule.
void parse_lr_schedule(const std::string& text, CallbackOptions& o);
// --reduce-lr-on-plateau "FACTOR,PATIENCE[,MIN_LR]" into `o`; throws naming the option.
void parse_reduce_lr(const std::string& text, CallbackOptions& o);
// The combinations and ranges; throws std::invalid_argument naming the option.
void validate(const CallbackOptions& o);

// MonitorCallback._is_improvement: min_delta is |min_delta|, negated in min mode;
// improvement = op(current - min_delta, reference), with no reference always an improvement.
// The difference is taken in double (Python floats), the comparison in float32 (ops.less and
// ops.greater convert Python floats to float32 tensors on the TensorFlow and JAX backends).
class Improvement {
 public:
  Improvement(Monitor m, double min_delta);
  bool operator()(double current, std::optional<double> reference) const;

 private:
  bool maximise_;
  double min_delta_;  // signed as Keras's after _set_monitor_op
};

// EarlyStopping(monitor, patience, min_delta, baseline, restore_best_weights,
// start_from_epoch=0). The weights themselves are the caller's: epoch_end says when to copy
// them, restore_at_end() whether on_train_end sets them back.
class EarlyStopping {
 public:
  struct State {
    int wait = 0;
    std::optional<double> best;
    int best_epoch = 0;     // 0-based within the fit
    int stopped_epoch = 0;  // 0: did not stop (Keras's convention)
    bool has_best_weights = false;
  };
  struct Decision {
    bool keep_weights = false;  // copy the current weights as best_weights
    bool stop = false;          // model.stop_training = True
  };
  EarlyStopping(Monitor m, int patience, double min_delta, bool restore_best,
                std::optional<double> baseline = std::nullopt);
  void train_begin() { state = State{}; }  // on_train_begin
  Decision epoch_end(int epoch, double current);
  bool restore_at_end() const { return restore_best_ && state.has_best_weights; }
  State state;

 private:
  Improvement better_;
  int patience_;
  bool restore_best_;
  std::optional<double> baseline_;
};

// ModelCheckpoint(save_best_only=True, initial_value_threshold=None): min_delta 0. Its best
// is never reset, so one object used for both fits keeps the best of the whole run.
class BestCheckpoint {
 public:
  explicit BestCheckpoint(Monitor m) : better_(m, 0.0) {}
  // True: save the model now.
  bool epoch_end(double current);
  std::optional<double> best;

 private:
  Improvement better_;
};

// ReduceLROnPlateau(monitor, factor, patience, min_lr, min_delta=1e-4, cooldown=0).
class ReduceLrOnPlateau {
 public:
  struct State {
    std::optional<double> best;
    int wait = 0, cooldown_counter = 0;
  };
  ReduceLrOnPlateau(Monitor m, double factor, int patience, double min_lr, double min_delta = 1e-4,
                    int cooldown = 0);
  void train_begin() { state = State{}; }  // on_train_begin: _reset
  // `rate`: the optimizer's float32 rate. Returns the new float32 rate when it reduces it.
  std::optional<float> epoch_end(double current, float rate);
  State state;

 private:
  Improvement better_;
  double factor_, min_lr_;
  int patience_, cooldown_;
};

// The rate of each step of a phase: the schedule and warmup of the header comment.
class LearningRateSchedule {
 public:
  LearningRateSchedule(const CallbackOptions& o, double lr, long steps_per_epoch, int epochs);
  // The schedule (with warmup) at step s, in double before the float32 rounding.
  double exact(long s) const;
  // float32(exact(s)).
  float rate(long s) const { return static_cast<float>(exact(s)); }
  bool in_warmup(long s) const { return s < warmup_steps_; }

 private:
  ScheduleKind kind_;
  double lr_, decay_rate_;
  long steps_per_epoch_, phase_steps_, warmup_steps_;
};

// All of a run's callbacks together, in the order the trainer calls them.
class TrainingCallbacks {
 public:
  explicit TrainingCallbacks(const CallbackOptions& o);
  // A phase's fit() begins: its schedule, and on_train_begin of the per-fit callbacks unless
  // `resumed_inside` (a --resume inside the phase: the state comes from load_state).
  void begin_phase(double lr, long steps_per_epoch, int epochs, bool resumed_inside);
  // The float32 rate of the step after `iterations` steps of the phase (controls_rate() only).
  float rate_for_step(long iterations);
  struct EpochEnd {
    double logged_rate = 0;  // logs["learning_rate"] as Keras reports it at on_epoch_end
    bool save_best = false, keep_weights = false, stop = false;
    std::optional<float> new_rate;  // ReduceLROnPlateau's cut, for the next steps
  };
  // After epoch `epoch` (0-based within the phase) with `iterations` steps taken in the phase;
  // `optimizer_rate` is the optimizer's rate now (used when nothing controls the rate).
  EpochEnd epoch_end(int epoch, const EpochStats& s, long iterations, double optimizer_rate);
  bool restore_at_phase_end() const { return early_ && early_->restore_at_end(); }
  int best_epoch() const { return early_ ? early_->state.best_epoch : 0; }
  std::optional<double> early_stopping_best() const {
    return early_ ? early_->state.best : std::nullopt;
  }
  const CallbackOptions& options() const { return o_; }

  // Everything above as JSON text (doubles exactly), for the checkpoints.
  std::string state_json() const;
  // Throws std::runtime_error for text that is not a state_json.
  void load_state(const std::string& json);

 private:
  CallbackOptions o_;
  std::optional<EarlyStopping> early_;
  std::optional<BestCheckpoint> best_;
  std::optional<ReduceLrOnPlateau> reduce_;
  std::optional<LearningRateSchedule> schedule_;
  float variable_ = 0;  // the float32 learning-rate variable (constant schedule)
};

}  // namespace parafine
