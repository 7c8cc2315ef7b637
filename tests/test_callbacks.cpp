// The Keras callbacks' decision logic (train/callbacks.hpp) on scripted metric sequences:
// when EarlyStopping stops and keeps weights (patience, min_delta and its sign per mode, the
// baseline, the epoch-0 rule), ModelCheckpoint(save_best_only) across phases, ReduceLROnPlateau
// (patience, min_lr, float32 rounding), the schedules and warmup at chosen steps against the
// formulas written out here in double, option parsing, and the checkpointed state round trip.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <optional>
#include <stdexcept>
#include <vector>

#include "parafine/train/callbacks.hpp"
#include "parafine/train/train_config.hpp"

namespace parafine {
namespace {

// Runs EarlyStopping over `values` (one per epoch from 0); returns the epoch it stopped at
// (-1: never) and the epochs whose weights it kept.
struct EarlyRun {
  int stopped = -1;
  std::vector<int> kept;
  int best_epoch = 0;
};
EarlyRun run_early(EarlyStopping es, const std::vector<double>& values) {
  EarlyRun r;
  es.train_begin();
  for (int e = 0; e < static_cast<int>(values.size()); ++e) {
    const auto d = es.epoch_end(e, values[e]);
    if (d.keep_weights) r.kept.push_back(e);
    if (d.stop) {
      r.stopped = e;
      break;
    }
  }
  r.best_epoch = es.state.best_epoch;
  return r;
}

TEST(EarlyStopping, StopsAfterPatienceEpochsWithoutImprovement) {
  // val_loss: best at epoch 1, then 3 epochs without improvement; patience 2 stops at epoch 3
  // (wait reaches 2 there).
  const auto r =
      run_early(EarlyStopping(Monitor::kValLoss, 2, 0, false), {1.0, 0.5, 0.6, 0.7, 0.4});
  std::printf("stopped at epoch %d\n", r.stopped);
  EXPECT_EQ(r.stopped, 3);
  EXPECT_TRUE(r.kept.empty());  // no weights without restore_best_weights
}

TEST(EarlyStopping, PatienceZeroNeverStopsAtEpochZero) {
  // patience 0: wait >= 0 always holds; epoch 0 improves (on_train_begin set best to None)
  // and returns before the check; a worse epoch 1 stops.
  const auto r = run_early(EarlyStopping(Monitor::kValLoss, 0, 0, false), {1.0, 1.1});
  EXPECT_EQ(r.stopped, 1);
  // Epoch 0 with a baseline it does not beat: an improvement that does not reset the wait.
  EarlyStopping es(Monitor::kValLoss, 0, 0, false, 0.5);
  es.train_begin();
  const auto d0 = es.epoch_end(0, 1.0);
  EXPECT_FALSE(d0.stop);
  EXPECT_EQ(es.state.wait, 1);  // improved over None, but not over the baseline: no reset
  const auto d1 = es.epoch_end(1, 1.2);
  EXPECT_TRUE(d1.stop);
}

TEST(EarlyStopping, MinDeltaSignPerMode) {
  // min mode: an improvement must be below best - min_delta. 1.0 -> 0.95 is not (delta 0.1).
  auto r = run_early(EarlyStopping(Monitor::kValLoss, 1, 0.1, false), {1.0, 0.95, 0.8});
  EXPECT_EQ(r.stopped, 1);
  // 1.0 -> 0.85 is (strictly below 0.9).
  r = run_early(EarlyStopping(Monitor::kValLoss, 1, 0.1, false), {1.0, 0.85, 0.84});
  EXPECT_EQ(r.stopped, 2);
  // max mode (accuracy): an improvement must exceed best + min_delta; a negative min_delta is
  // taken as its absolute value, as Keras's abs(min_delta).
  r = run_early(EarlyStopping(Monitor::kValAccuracy, 1, -0.1, false), {0.5, 0.55, 0.9});
  EXPECT_EQ(r.stopped, 1);
  r = run_early(EarlyStopping(Monitor::kAccuracy, 1, 0.1, false), {0.5, 0.65, 0.7});
  EXPECT_EQ(r.stopped, 2);
  // Equal is no improvement in either mode.
  r = run_early(EarlyStopping(Monitor::kLoss, 1, 0, false), {1.0, 1.0});
  EXPECT_EQ(r.stopped, 1);
}

TEST(Improvement, DifferenceInDoubleComparisonInFloat32) {
  // 0.99989999 + 1e-4 is 0.99999999 in double, below 1.0; float32 rounds it to 1.0, and
  // Keras's ops.less compares float32 tensors: no improvement.
  EXPECT_LT(0.99989999 + 1e-4, 1.0);
  EXPECT_FALSE(Improvement(Monitor::kValLoss, 1e-4)(0.99989999, 1.0));
  EXPECT_TRUE(Improvement(Monitor::kValLoss, 1e-4)(0.9998, 1.0));
  // max mode: current - min_delta > reference.
  EXPECT_FALSE(Improvement(Monitor::kAccuracy, 0.25)(0.75, 0.5));
  EXPECT_TRUE(Improvement(Monitor::kAccuracy, 0.25)(0.8, 0.5));
  EXPECT_TRUE(Improvement(Monitor::kLoss, 0)(5.0, std::nullopt));
}

TEST(EarlyStopping, RestoreBestKeepsTheFirstAndEveryImprovingEpoch) {
  const auto r =
      run_early(EarlyStopping(Monitor::kValAccuracy, 2, 0, true), {0.5, 0.7, 0.6, 0.8, 0.7, 0.7});
  EXPECT_EQ(r.kept, (std::vector<int>{0, 1, 3}));
  EXPECT_EQ(r.stopped, 5);
  EXPECT_EQ(r.best_epoch, 3);
}

TEST(EarlyStopping, BaselineOnlyResetsWaitWhenBeaten) {
  // Keras 3: on_train_begin sets best = None; the baseline only decides whether an improvement
  // restarts the wait. Values improving but never below 0.5: wait keeps growing.
  const auto r = run_early(EarlyStopping(Monitor::kValLoss, 2, 0, false, 0.5), {0.9, 0.8, 0.7});
  EXPECT_EQ(r.stopped, -1);  // improvements return before the patience check
  EarlyStopping es(Monitor::kValLoss, 2, 0, false, 0.5);
  es.train_begin();
  for (int e = 0; e < 3; ++e) es.epoch_end(e, 0.9 - 0.1 * e);
  EXPECT_EQ(es.state.wait, 3);
  EXPECT_TRUE(es.epoch_end(3, 0.95).stop);  // the first non-improvement stops
}

TEST(EarlyStopping, TrainBeginResets) {
  EarlyStopping es(Monitor::kValLoss, 1, 0, true);
  es.train_begin();
  es.epoch_end(0, 1.0);
  es.epoch_end(1, 2.0);
  es.train_begin();
  EXPECT_EQ(es.state.wait, 0);
  EXPECT_FALSE(es.state.best.has_value());
  EXPECT_FALSE(es.state.has_best_weights);
}

TEST(BestCheckpoint, SavesOnStrictImprovementAndKeepsTheBestAcrossFits) {
  BestCheckpoint best(Monitor::kValLoss);
  std::vector<bool> saved;
  for (double v : {1.0, 0.8, 0.8, 0.9, 0.7}) saved.push_back(best.epoch_end(v));
  EXPECT_EQ(saved, (std::vector<bool>{true, true, false, false, true}));
  // "Phase 2": the same object, no reset; 0.75 is worse than phase 1's 0.7.
  EXPECT_FALSE(best.epoch_end(0.75));
  EXPECT_TRUE(best.epoch_end(0.69));
  BestCheckpoint acc(Monitor::kValAccuracy);
  EXPECT_TRUE(acc.epoch_end(0.0));  // initial best -inf for max (None: always improves)
  EXPECT_FALSE(acc.epoch_end(0.0));
  EXPECT_TRUE(acc.epoch_end(0.1));
}

TEST(ReduceLrOnPlateau, ReducesAfterPatienceAndRoundsToFloat32) {
  ReduceLrOnPlateau r(Monitor::kValLoss, 0.5, 2, 0.0);
  r.train_begin();
  float rate = static_cast<float>(1e-3);
  std::vector<int> cut_at;
  const std::vector<double> values = {1.0, 0.99995, 1.0, 1.0, 0.5, 0.6, 0.6};
  for (int e = 0; e < static_cast<int>(values.size()); ++e)
    if (const auto next = r.epoch_end(values[e], rate)) {
      // Keras: float(variable) * factor in double, then assigned to the float32 variable.
      const float expected = static_cast<float>(static_cast<double>(rate) * 0.5);
      std::printf("epoch %d: %.9g -> %.9g\n", e, rate, *next);
      EXPECT_EQ(*next, expected);
      rate = *next;
      cut_at.push_back(e);
    }
  // 0.99995 is within min_delta 1e-4 of 1.0: no improvement. wait 1,2 -> cut at epoch 2;
  // epoch 3 wait 1; 0.5 improves; 0.6, 0.6 -> cut at epoch 6.
  EXPECT_EQ(cut_at, (std::vector<int>{2, 6}));
}

TEST(ReduceLrOnPlateau, StopsAtMinLrAndKeepsWaiting) {
  ReduceLrOnPlateau r(Monitor::kLoss, 0.1, 0, 1e-4);
  r.train_begin();
  float rate = static_cast<float>(1e-3);
  EXPECT_FALSE(r.epoch_end(1.0, rate));  // improvement over None
  auto next = r.epoch_end(1.0, rate);    // patience 0: wait 1 >= 0
  ASSERT_TRUE(next);
  EXPECT_EQ(*next, static_cast<float>(std::max(static_cast<double>(rate) * 0.1, 1e-4)));
  rate = *next;  // 1.00000005e-4: still above float32(1e-4) = 9.9999997e-05
  next = r.epoch_end(1.0, rate);
  ASSERT_TRUE(next);
  EXPECT_EQ(*next, static_cast<float>(1e-4));  // max(rate * 0.1, min_lr), rounded
  rate = *next;
  // rate == float32(1e-4): not > np.float32(min_lr), no cut, and wait is no longer reset.
  EXPECT_FALSE(r.epoch_end(1.0, rate));
  EXPECT_EQ(r.state.wait, 1);
  EXPECT_FALSE(r.epoch_end(1.0, rate));
  EXPECT_EQ(r.state.wait, 2);
}

TEST(ReduceLrOnPlateau, FactorOneIsRefused) {
  EXPECT_THROW(ReduceLrOnPlateau(Monitor::kLoss, 1.0, 1, 0), std::invalid_argument);
}

TEST(LearningRateSchedule, CosineExponentialAndWarmupAgainstTheFormulas) {
  const double pi = std::acos(-1.0);
  const double lr = 1e-3;
  const long E = 7;  // steps per epoch
  const int epochs = 3;
  CallbackOptions o;
  o.schedule = ScheduleKind::kCosine;
  LearningRateSchedule cosine(o, lr, E, epochs);
  for (long s : {0L, 1L, 10L, 20L, 21L, 30L}) {
    const double P = E * epochs;
    const double expected = lr * 0.5 * (1 + std::cos(pi * std::min<double>(s, P) / P));
    std::printf("cosine step %ld: %.17g (formula %.17g)\n", s, cosine.exact(s), expected);
    EXPECT_NEAR(cosine.exact(s), expected, 1e-18);
    EXPECT_EQ(cosine.rate(s), static_cast<float>(expected));
  }
  EXPECT_EQ(cosine.exact(21), 0.0);
  o.schedule = ScheduleKind::kExponential;
  o.decay_rate = 0.5;
  LearningRateSchedule exponential(o, lr, E, epochs);
  for (long s : {0L, 3L, 7L, 14L, 100L}) {
    const double expected = lr * std::pow(0.5, static_cast<double>(s) / E);
    std::printf("exponential step %ld: %.17g (formula %.17g)\n", s, exponential.exact(s), expected);
    EXPECT_NEAR(exponential.exact(s), expected, 1e-18);
  }
  EXPECT_NEAR(exponential.exact(7), lr / 2, 1e-18);  // one epoch halves it
  o.warmup_epochs = 2;                               // W = 14 steps
  LearningRateSchedule warm(o, lr, E, epochs);
  for (long s : {0L, 6L, 13L, 14L, 20L}) {
    const double base = lr * std::pow(0.5, static_cast<double>(s) / E);
    const double expected = s < 14 ? base * (s + 1) / 14.0 : base;
    std::printf("warmup step %ld: %.17g (formula %.17g)\n", s, warm.exact(s), expected);
    EXPECT_NEAR(warm.exact(s), expected, 1e-18);
  }
}

TEST(TrainingCallbacks, WarmupSetsTheVariableAndCutsAfterItStick) {
  CallbackOptions o;
  o.monitor = Monitor::kLoss;
  o.warmup_epochs = 1;
  o.reduce_lr = true;
  o.reduce_factor = 0.5;
  o.reduce_patience = 0;
  TrainingCallbacks cb(o);
  const long E = 4;
  cb.begin_phase(1e-3, E, 5, false);
  std::vector<float> rates;
  for (long s = 0; s < E; ++s) rates.push_back(cb.rate_for_step(s));
  for (long s = 0; s < E; ++s)
    EXPECT_EQ(rates[s], static_cast<float>(1e-3 * (s + 1) / E)) << "step " << s;
  EpochStats st;
  st.loss = 1.0;
  auto d = cb.epoch_end(0, st, E, 0);
  EXPECT_EQ(d.logged_rate, static_cast<float>(1e-3));  // the variable's value at epoch end
  EXPECT_FALSE(d.new_rate);
  d = cb.epoch_end(1, st, 2 * E, 0);  // no improvement, patience 0: cut
  ASSERT_TRUE(d.new_rate);
  EXPECT_EQ(cb.rate_for_step(2 * E), *d.new_rate);  // after the warmup the cut sticks
  // State round trip (what a checkpoint stores).
  TrainingCallbacks copy(o);
  copy.begin_phase(1e-3, E, 5, false);
  copy.load_state(cb.state_json());
  copy.begin_phase(1e-3, E, 5, true);
  EXPECT_EQ(copy.state_json(), cb.state_json());
  EXPECT_EQ(copy.rate_for_step(2 * E), *d.new_rate);
  EXPECT_THROW(copy.load_state("{not json"), std::runtime_error);
}

// --save-best's best is kept across a resume only for the same --monitor: a loss of 0.3 is no
// best accuracy (a resumed run with another metric starts afresh, as a new ModelCheckpoint).
TEST(TrainingCallbacks, SaveBestStateIsForItsMonitorOnly) {
  CallbackOptions o;
  o.save_best = true;
  o.monitor = Monitor::kLoss;
  TrainingCallbacks cb(o);
  cb.begin_phase(1e-3, 4, 5, false);
  EpochStats st;
  st.loss = 0.3;
  st.accuracy = 0.2;
  EXPECT_TRUE(cb.epoch_end(0, st, 4, 0).save_best);  // the first value is the best
  const std::string state = cb.state_json();
  TrainingCallbacks same(o);  // same monitor: the stored best 0.3 holds
  same.begin_phase(1e-3, 4, 5, false);
  same.load_state(state);
  st.loss = 0.5;
  EXPECT_FALSE(same.epoch_end(1, st, 8, 0).save_best);
  o.monitor = Monitor::kAccuracy;
  TrainingCallbacks other(o);  // another monitor: no best yet, so 0.2 is the best
  other.begin_phase(1e-3, 4, 5, false);
  other.load_state(state);
  EXPECT_TRUE(other.epoch_end(1, st, 8, 0).save_best);
}

TEST(TrainingCallbacks, MonitorValueIsFloat32AndModeFollowsTheMetric) {
  EpochStats s;
  s.val_loss = 0.1;
  s.val_accuracy = 0.3;
  s.loss = 0.2;
  s.accuracy = 0.4;
  EXPECT_EQ(monitored_value(s, Monitor::kValLoss), static_cast<double>(0.1f));
  EXPECT_EQ(monitored_value(s, Monitor::kAccuracy), static_cast<double>(0.4f));
  EXPECT_TRUE(monitor_maximises(Monitor::kValAccuracy));
  EXPECT_TRUE(monitor_maximises(Monitor::kAccuracy));
  EXPECT_FALSE(monitor_maximises(Monitor::kValLoss));
  EXPECT_FALSE(monitor_maximises(Monitor::kLoss));
  EXPECT_EQ(parse_monitor("val_accuracy"), Monitor::kValAccuracy);
  EXPECT_THROW(parse_monitor("val_acc"), std::invalid_argument);
}

TEST(CallbackOptions, ParsingAndValidationNameTheOption) {
  const auto message = [](auto f) {
    try {
      CallbackOptions o;
      f(o);
      validate(o);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(
      message([](CallbackOptions& o) { parse_lr_schedule("linear", o); }).find("--lr-schedule"),
      std::string::npos);
  EXPECT_NE(message([](CallbackOptions& o) {
              parse_lr_schedule("exponential,-0.5", o);
            }).find("--lr-schedule"),
            std::string::npos);
  EXPECT_NE(message([](CallbackOptions& o) {
              parse_lr_schedule("exponential,nan", o);
            }).find("--lr-schedule"),
            std::string::npos);
  EXPECT_NE(message([](CallbackOptions& o) {
              parse_reduce_lr("1.0,3", o);
            }).find("--reduce-lr-on-plateau"),
            std::string::npos);
  EXPECT_NE(message([](CallbackOptions& o) {
              parse_reduce_lr("-0.1,3", o);
            }).find("--reduce-lr-on-plateau"),
            std::string::npos);
  EXPECT_NE(message([](CallbackOptions& o) {
              parse_reduce_lr("0.1,-1", o);
            }).find("--reduce-lr-on-plateau"),
            std::string::npos);
  EXPECT_NE(message([](CallbackOptions& o) {
              parse_reduce_lr("0.1,2", o);
              parse_lr_schedule("cosine", o);
            }).find("--lr-schedule constant"),
            std::string::npos);
  EXPECT_EQ(message([](CallbackOptions& o) {
              parse_reduce_lr("0.2,3,1e-6", o);
              parse_lr_schedule("exponential,0.9", o);
              o.schedule = ScheduleKind::kConstant;
            }),
            "");
  CallbackOptions o;
  parse_reduce_lr("0.2,3,1e-6", o);
  EXPECT_EQ(o.reduce_factor, 0.2);
  EXPECT_EQ(o.reduce_patience, 3);
  EXPECT_EQ(o.reduce_min_lr, 1e-6);
}

}  // namespace
}  // namespace parafine
