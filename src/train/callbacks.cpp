// Keras's fit() callbacks as decision logic (see callbacks.hpp).
#include "parafine/train/callbacks.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <vector>

#include "parafine/train/train_config.hpp"

namespace parafine {

namespace {

void require(bool ok, const std::string& msg) {
  if (!ok) throw std::invalid_argument(msg);
}

// A finite number filling all of `text`, else throws naming `option`.
double number(const std::string& text, const std::string& option, const std::string& what) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  require(!text.empty() && *end == '\0' && std::isfinite(v),
          option + ": " + what + " must be a finite number, got '" + text + "'");
  return v;
}

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> parts;
  std::size_t from = 0;
  while (true) {
    const auto comma = text.find(',', from);
    parts.push_back(text.substr(from, comma == std::string::npos ? comma : comma - from));
    if (comma == std::string::npos) return parts;
    from = comma + 1;
  }
}

using nlohmann::json;

constexpr double kPi = 3.14159265358979323846;

json optional_json(const std::optional<double>& v) {
  return v ? json(*v) : json(nullptr);
}
std::optional<double> optional_from(const json& j) {
  if (j.is_null()) return std::nullopt;
  return j.get<double>();
}

}  // namespace

Monitor parse_monitor(const std::string& name) {
  if (name == "val_loss") return Monitor::kValLoss;
  if (name == "val_accuracy") return Monitor::kValAccuracy;
  if (name == "loss") return Monitor::kLoss;
  if (name == "accuracy") return Monitor::kAccuracy;
  throw std::invalid_argument("--monitor must be val_loss, val_accuracy, loss or accuracy, got '" +
                              name + "'");
}

const char* monitor_name(Monitor m) {
  switch (m) {
    case Monitor::kValLoss:
      return "val_loss";
    case Monitor::kValAccuracy:
      return "val_accuracy";
    case Monitor::kLoss:
      return "loss";
    case Monitor::kAccuracy:
      return "accuracy";
  }
  return "?";
}

bool monitor_needs_validation(Monitor m) {
  return m == Monitor::kValLoss || m == Monitor::kValAccuracy;
}

bool monitor_maximises(Monitor m) {
  return m == Monitor::kValAccuracy || m == Monitor::kAccuracy;
}

double monitored_value(const EpochStats& s, Monitor m) {
  double v = 0;
  switch (m) {
    case Monitor::kValLoss:
      v = s.val_loss;
      break;
    case Monitor::kValAccuracy:
      v = s.val_accuracy;
      break;
    case Monitor::kLoss:
      v = s.loss;
      break;
    case Monitor::kAccuracy:
      v = s.accuracy;
      break;
  }
  return static_cast<float>(v);
}

void parse_lr_schedule(const std::string& text, CallbackOptions& o) {
  const auto parts = split_commas(text);
  if (parts.size() == 1 && parts[0] == "constant") {
    o.schedule = ScheduleKind::kConstant;
  } else if (parts.size() == 1 && parts[0] == "cosine") {
    o.schedule = ScheduleKind::kCosine;
  } else if (parts.size() == 2 && parts[0] == "exponential") {
    o.schedule = ScheduleKind::kExponential;
    o.decay_rate = number(parts[1], "--lr-schedule", "exponential's RATE");
    require(o.decay_rate > 0,
            "--lr-schedule: exponential's RATE must be > 0, got '" + parts[1] + "'");
  } else {
    throw std::invalid_argument(
        "--lr-schedule must be constant, cosine or exponential,RATE (e.g. exponential,0.9), got '" +
        text + "'");
  }
}

void parse_reduce_lr(const std::string& text, CallbackOptions& o) {
  const std::string option = "--reduce-lr-on-plateau";
  const auto parts = split_commas(text);
  require(parts.size() == 2 || parts.size() == 3,
          option + " must be FACTOR,PATIENCE[,MIN_LR] (e.g. 0.1,5), got '" + text + "'");
  o.reduce_lr = true;
  o.reduce_factor = number(parts[0], option, "FACTOR");
  const double patience = number(parts[1], option, "PATIENCE");
  require(patience >= 0 && patience <= kMaxEpochs && patience == std::floor(patience),
          option + ": PATIENCE must be a whole number of epochs between 0 and " +
              std::to_string(kMaxEpochs) + ", got '" + parts[1] + "'");
  o.reduce_patience = static_cast<int>(patience);
  o.reduce_min_lr = parts.size() == 3 ? number(parts[2], option, "MIN_LR") : 0.0;
}

void validate(const CallbackOptions& o) {
  require(o.early_stopping_patience < 0 || o.early_stopping_patience <= kMaxEpochs,
          "--early-stopping: PATIENCE must be at most " + std::to_string(kMaxEpochs));
  require(std::isfinite(o.min_delta) && o.min_delta >= 0,
          "--min-delta must be a finite number >= 0");
  if (o.reduce_lr) {
    require(o.reduce_factor >= 0 && o.reduce_factor < 1,
            "--reduce-lr-on-plateau: FACTOR must be >= 0 and < 1 (Keras's ReduceLROnPlateau "
            "does not support a factor >= 1)");
    require(o.reduce_patience >= 0, "--reduce-lr-on-plateau: PATIENCE must be >= 0");
    require(std::isfinite(o.reduce_min_lr) && o.reduce_min_lr >= 0,
            "--reduce-lr-on-plateau: MIN_LR must be a finite number >= 0");
    require(o.schedule == ScheduleKind::kConstant,
            "--reduce-lr-on-plateau needs --lr-schedule constant (Keras cannot set the rate of "
            "an optimizer built with a LearningRateSchedule)");
  }
  require(
      o.schedule != ScheduleKind::kExponential || (std::isfinite(o.decay_rate) && o.decay_rate > 0),
      "--lr-schedule: exponential's RATE must be a finite number > 0");
  require(o.warmup_epochs >= 0 && o.warmup_epochs <= kMaxEpochs,
          "--warmup-epochs must be between 0 and " + std::to_string(kMaxEpochs));
  require(!o.restore_best || o.early_stopping_patience >= 0,
          "--restore-best needs --early-stopping PATIENCE (it is EarlyStopping's "
          "restore_best_weights)");
}

Improvement::Improvement(Monitor m, double min_delta)
    : maximise_(monitor_maximises(m)), min_delta_(std::fabs(min_delta)) {
  if (!maximise_) min_delta_ *= -1;  // _set_monitor_op: ops.less
}

bool Improvement::operator()(double current, std::optional<double> reference) const {
  if (!reference) return true;
  // Python floats subtracted, then ops.less/ops.greater convert both to float32 tensors (the
  // TensorFlow and JAX backends) and compare those.
  const float shifted = static_cast<float>(current - min_delta_);
  const float ref = static_cast<float>(*reference);
  return maximise_ ? shifted > ref : shifted < ref;
}

EarlyStopping::EarlyStopping(Monitor m, int patience, double min_delta, bool restore_best,
                             std::optional<double> baseline)
    : better_(m, min_delta),
      patience_(patience),
      restore_best_(restore_best),
      baseline_(baseline) {}

EarlyStopping::Decision EarlyStopping::epoch_end(int epoch, double current) {
  Decision d;
  if (restore_best_ && !state.has_best_weights) {  // never set: the current ones are the best
    d.keep_weights = true;
    state.has_best_weights = true;
    state.best_epoch = epoch;
  }
  state.wait += 1;
  if (better_(current, state.best)) {
    state.best = current;
    state.best_epoch = epoch;
    if (restore_best_) d.keep_weights = true;
    // Only restart wait if we beat both the baseline and our previous best.
    if (!baseline_ || better_(current, baseline_)) state.wait = 0;
    return d;
  }
  if (state.wait >= patience_ && epoch > 0) {
    state.stopped_epoch = epoch;
    d.stop = true;
  }
  return d;
}

bool BestCheckpoint::epoch_end(double current) {
  if (!better_(current, best)) return false;
  best = current;
  return true;
}

ReduceLrOnPlateau::ReduceLrOnPlateau(Monitor m, double factor, int patience, double min_lr,
                                     double min_delta, int cooldown)
    : better_(m, min_delta),
      factor_(factor),
      min_lr_(min_lr),
      patience_(patience),
      cooldown_(cooldown) {
  if (factor >= 1.0)
    throw std::invalid_argument("ReduceLROnPlateau does not support a factor >= 1.0");
}

std::optional<float> ReduceLrOnPlateau::epoch_end(double current, float rate) {
  const bool in_cooldown = state.cooldown_counter > 0;
  if (in_cooldown) {
    state.cooldown_counter -= 1;
    state.wait = 0;
  }
  if (better_(current, state.best)) {
    state.best = current;
    state.wait = 0;
    return std::nullopt;
  }
  if (state.cooldown_counter > 0) return std::nullopt;  // elif not self.in_cooldown()
  state.wait += 1;
  if (state.wait < patience_) return std::nullopt;
  // _reduce_optimizer_lr: Python floats (double), the variable float32.
  const double old_lr = rate;
  if (!(old_lr > static_cast<double>(static_cast<float>(min_lr_)))) return std::nullopt;
  const double new_lr = std::max(old_lr * factor_, min_lr_);
  state.cooldown_counter = cooldown_;
  state.wait = 0;
  return static_cast<float>(new_lr);
}

LearningRateSchedule::LearningRateSchedule(const CallbackOptions& o, double lr,
                                           long steps_per_epoch, int epochs)
    : kind_(o.schedule),
      lr_(lr),
      decay_rate_(o.decay_rate),
      steps_per_epoch_(std::max(1L, steps_per_epoch)),
      phase_steps_(std::max(1L, steps_per_epoch * epochs)),
      warmup_steps_(steps_per_epoch * o.warmup_epochs) {}

double LearningRateSchedule::exact(long s) const {
  double r = lr_;
  if (kind_ == ScheduleKind::kCosine) {
    const double fraction = static_cast<double>(std::min(s, phase_steps_)) / phase_steps_;
    r = lr_ * (0.5 * (1.0 + std::cos(kPi * fraction)));
  } else if (kind_ == ScheduleKind::kExponential) {
    r = lr_ * std::pow(decay_rate_, static_cast<double>(s) / steps_per_epoch_);
  }
  if (s < warmup_steps_) r *= static_cast<double>(s + 1) / warmup_steps_;
  return r;
}

TrainingCallbacks::TrainingCallbacks(const CallbackOptions& o) : o_(o) {
  if (o.early_stopping_patience >= 0)
    early_.emplace(o.monitor, o.early_stopping_patience, o.min_delta, o.restore_best);
  if (o.save_best) best_.emplace(o.monitor);
  if (o.reduce_lr) reduce_.emplace(o.monitor, o.reduce_factor, o.reduce_patience, o.reduce_min_lr);
}

void TrainingCallbacks::begin_phase(double lr, long steps_per_epoch, int epochs,
                                    bool resumed_inside) {
  schedule_.emplace(o_, lr, steps_per_epoch, epochs);
  if (resumed_inside) return;
  variable_ = static_cast<float>(lr);  // a fresh Adam(learning_rate=lr)
  if (early_) early_->train_begin();
  if (reduce_) reduce_->train_begin();
}

float TrainingCallbacks::rate_for_step(long iterations) {
  if (o_.schedule != ScheduleKind::kConstant) return schedule_->rate(iterations);
  if (schedule_->in_warmup(iterations)) variable_ = schedule_->rate(iterations);
  return variable_;
}

TrainingCallbacks::EpochEnd TrainingCallbacks::epoch_end(int epoch, const EpochStats& s,
                                                         long iterations, double optimizer_rate) {
  EpochEnd r;
  if (!o_.controls_rate())
    r.logged_rate = static_cast<float>(optimizer_rate);
  else if (o_.schedule != ScheduleKind::kConstant)
    r.logged_rate = schedule_->rate(iterations);  // optimizer.learning_rate of a schedule
  else
    r.logged_rate = variable_;
  if (!o_.any_monitor_callback()) return r;
  const double current = monitored_value(s, o_.monitor);
  if (best_) r.save_best = best_->epoch_end(current);
  if (early_) {
    const auto d = early_->epoch_end(epoch, current);
    r.keep_weights = d.keep_weights;
    r.stop = d.stop;
  }
  if (reduce_) {
    r.new_rate = reduce_->epoch_end(current, variable_);
    if (r.new_rate) variable_ = *r.new_rate;
  }
  return r;
}

std::string TrainingCallbacks::state_json() const {
  json j;
  j["variable"] = variable_;
  if (early_) {
    const auto& e = early_->state;
    j["early_stopping"] = {{"wait", e.wait},
                           {"best", optional_json(e.best)},
                           {"best_epoch", e.best_epoch},
                           {"stopped_epoch", e.stopped_epoch},
                           {"has_best_weights", e.has_best_weights}};
  }
  if (best_)
    j["save_best"] = {{"best", optional_json(best_->best)}, {"monitor", monitor_name(o_.monitor)}};
  if (reduce_) {
    const auto& r = reduce_->state;
    j["reduce_lr"] = {{"best", optional_json(r.best)},
                      {"wait", r.wait},
                      {"cooldown_counter", r.cooldown_counter}};
  }
  return j.dump();
}

void TrainingCallbacks::load_state(const std::string& text) {
  try {
    const json j = json::parse(text);
    variable_ = j.at("variable").get<float>();
    // A callback the checkpoint did not have starts fresh (e.g. --save-best added on resume).
    if (early_ && j.contains("early_stopping")) {
      const json& e = j["early_stopping"];
      auto& s = early_->state;
      s.wait = e.at("wait").get<int>();
      s.best = optional_from(e.at("best"));
      s.best_epoch = e.at("best_epoch").get<int>();
      s.stopped_epoch = e.at("stopped_epoch").get<int>();
      s.has_best_weights = e.at("has_best_weights").get<bool>();
    }
    // --save-best's best only means something for the metric it was measured on: a resume
    // with another --monitor (or a checkpoint from before the monitor was recorded) starts its
    // best afresh, as a new ModelCheckpoint would.
    if (best_ && j.contains("save_best") &&
        j["save_best"].value("monitor", std::string()) == monitor_name(o_.monitor))
      best_->best = optional_from(j["save_best"].at("best"));
    if (reduce_ && j.contains("reduce_lr")) {
      const json& r = j["reduce_lr"];
      auto& s = reduce_->state;
      s.best = optional_from(r.at("best"));
      s.wait = r.at("wait").get<int>();
      s.cooldown_counter = r.at("cooldown_counter").get<int>();
    }
  } catch (const json::exception& e) {
    throw std::runtime_error(std::string("the callbacks' state is not readable: ") + e.what());
  }
}

}  // namespace parafine
