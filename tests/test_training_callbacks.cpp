// The callbacks inside the trainer (one process): the schedule's rate reaches Adam (an
// exponential decay to ~0 after the first step leaves the weights where one step put them),
// EpochStats.learning_rate is Keras's logs["learning_rate"] (CosineDecay at the phase's step
// count, float32), and ReduceLROnPlateau's cut shows in the next epoch's logged rate.
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <sstream>

#include "parafine/data/data_order.hpp"
#include "parafine/data/synthetic_data.hpp"
#include "parafine/model/backbone.hpp"
#include "parafine/train/trainer.hpp"
#include "test_util.hpp"

namespace parafine {
namespace {

constexpr double kLr = 0.0009765625;  // 2^-10: the same in float32 and double

// test_util::tiny_run with rates exact in float32 (kLr, kLr / 8) and seed 2.
TrainConfig tiny_run(int phase1_epochs, int phase2_epochs) {
  TrainConfig c = test_util::tiny_run(phase1_epochs, phase2_epochs);
  c.phase1_lr = kLr;
  c.phase2_lr = kLr / 8;
  c.seed = 2;
  return c;
}

Model tiny_model() {
  return test_util::keras_initialized_resnet50(NetworkConfig{32, 3, 8, 4, 3}, 1);
}

double max_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (std::size_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(double(a[i]) - b[i]));
  return d;
}

TEST(TrainingCallbacks, TheScheduleRateReachesTheOptimizer) {
  const InMemorySource train = make_synthetic_source(12, 32, 3, 4);
  std::ostringstream log;
  Model one_step = tiny_model();
  TrainConfig c = tiny_run(2, 0);
  c.max_steps = 1;
  run_two_phase(one_step, train, nullptr, c, log);
  Model decayed = tiny_model();
  c = tiny_run(2, 0);
  c.callbacks.schedule = ScheduleKind::kExponential;
  c.callbacks.decay_rate = 1e-30;  // step 1 already takes lr * 1e-10
  run_two_phase(decayed, train, nullptr, c, log);
  Model constant = tiny_model();
  run_two_phase(constant, train, nullptr, tiny_run(2, 0), log);
  const double after_decay = max_difference(one_step.params(), decayed.params());
  const double after_constant = max_difference(one_step.params(), constant.params());
  std::cout << "max |dw| from the one-step weights: exponential,1e-30 " << after_decay
            << " (tol 1e-8), constant " << after_constant << " (must exceed 1e-4)\n";
  EXPECT_LT(after_decay, 1e-8);
  EXPECT_GT(after_constant, 1e-4);
}

TEST(TrainingCallbacks, LoggedRateIsKerasLogsLearningRate) {
  const InMemorySource train = make_synthetic_source(12, 32, 3, 4);
  const InMemorySource val = make_synthetic_source(6, 32, 3, 5);
  const int E = steps_per_epoch(12, 4);
  std::ostringstream log;
  Model model = tiny_model();
  TrainConfig c = tiny_run(3, 2);
  c.callbacks.schedule = ScheduleKind::kCosine;
  const auto h = run_two_phase(model, train, &val, c, log);
  ASSERT_EQ(h.size(), 5u);
  const double pi = std::acos(-1.0);
  for (const EpochStats& s : h) {
    const double lr = s.phase == 1 ? kLr : kLr / 8;
    const double P = (s.phase == 1 ? 3 : 2) * E;
    const double steps = s.epoch * E;  // optimizer.iterations at the epoch's end
    const float expected = static_cast<float>(lr * 0.5 * (1 + std::cos(pi * steps / P)));
    std::cout << "phase " << s.phase << " epoch " << s.epoch << ": learning_rate "
              << s.learning_rate << " (CosineDecay " << expected << ")\n";
    EXPECT_EQ(s.learning_rate, expected);
  }
  // ReduceLROnPlateau on the training loss with patience 0, at a rate (1e-12) too small to
  // move the loss by min_delta 1e-4: epoch 1 improves over None, epochs 2 and 3 cut. The
  // logged rate is the epoch's, before its cut: float32(1e-12), the same, then half of it.
  Model reduced = tiny_model();
  c = tiny_run(3, 0);
  c.phase1_lr = 1e-12;
  c.callbacks.monitor = Monitor::kLoss;
  c.callbacks.reduce_lr = true;
  c.callbacks.reduce_factor = 0.5;
  c.callbacks.reduce_patience = 0;
  const auto r = run_two_phase(reduced, train, nullptr, c, log);
  ASSERT_EQ(r.size(), 3u);
  for (const auto& s : r)
    std::cout << "reduce: epoch " << s.epoch << " loss " << s.loss << " lr " << s.learning_rate
              << "\n";
  const float variable = static_cast<float>(1e-12);
  EXPECT_EQ(r[0].learning_rate, variable);
  EXPECT_EQ(r[1].learning_rate, variable);
  EXPECT_EQ(r[2].learning_rate, static_cast<float>(static_cast<double>(variable) * 0.5));
  const std::string text = log.str();
  EXPECT_NE(text.find("phase 1 epoch 2: ReduceLROnPlateau"), std::string::npos) << text;
  EXPECT_NE(text.find("phase 1 epoch 3: ReduceLROnPlateau"), std::string::npos) << text;
}

}  // namespace
}  // namespace parafine
