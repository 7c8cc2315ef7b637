// The single-process two-phase mini-run: phase 1 trains the head on a frozen base, phase 2
// unfreezes the last 10 base layers with a fresh Adam; the training loss must fall in both.
#include <gtest/gtest.h>

#include <iostream>
#include <sstream>

#include "parafine/data/data_order.hpp"
#include "parafine/data/synthetic_data.hpp"
#include "parafine/model/backbone.hpp"
#include "parafine/model/initializers.hpp"
#include "parafine/train/checkpoint.hpp"
#include "parafine/train/trainer.hpp"
#include "test_util.hpp"

namespace parafine {
namespace {

using test_util::tiny_run;

TEST(TwoPhase, LossFallsInBothPhases) {
  Model model = test_util::keras_initialized_resnet50(NetworkConfig{32, 3, 32, 8, 3}, 11);
  const InMemorySource train = make_synthetic_source(96, 32, 3, 5);
  const InMemorySource val = make_synthetic_source(48, 32, 3, 6);
  TrainConfig c;
  c.batch_size = 16;
  c.phase1_epochs = 4;
  c.phase1_lr = 1e-3;
  c.phase2_epochs = 4;
  c.phase2_lr = 1e-4;
  c.calibrate_bn_samples = 64;
  c.seed = 3;
  c.image_size = 32;
  std::ostringstream log;
  const auto h = run_two_phase(model, train, &val, c, log);
  std::cout << log.str();
  ASSERT_EQ(h.size(), 8u);
  EXPECT_EQ(h[0].phase, 1);
  EXPECT_EQ(h[4].phase, 2);
  std::cout << "phase 1 loss " << h[0].loss << " -> " << h[3].loss << "; phase 2 loss " << h[4].loss
            << " -> " << h[7].loss << "\n";
  EXPECT_LT(h[3].loss, 0.8 * h[0].loss);
  EXPECT_LT(h[7].loss, h[4].loss);
  EXPECT_GT(h[7].val_accuracy, 1.0 / 3 + 0.1) << "validation accuracy should beat chance";
  EXPECT_NE(log.str().find("phase 2: last 10 base layers unfrozen (from conv5_block3_1_conv"),
            std::string::npos);
}

// A width-4 ResNet50 with `classes` outputs, Keras-initialised.
Model tiny_model(int classes) {
  return test_util::keras_initialized_resnet50(NetworkConfig{32, classes, 8, 4, 3}, 1);
}

TEST(TwoPhase, ZeroEpochPhasesAreAllowed) {
  Model model = tiny_model(2);
  const InMemorySource train = make_synthetic_source(8, 32, 2, 1);
  TrainConfig c = tiny_run(0, 1);
  std::ostringstream log;
  EXPECT_EQ(run_two_phase(model, train, nullptr, c, log).size(), 1u);
  c.phase2_epochs = 0;
  EXPECT_EQ(run_two_phase(model, train, nullptr, c, log).size(), 0u);
}

// A one-class "classifier" trains silently to loss 0 (issue 11, defect 3): refused, named.
TEST(TwoPhase, ASingleClassIsRefused) {
  Model model = tiny_model(1);
  const InMemorySource train = make_synthetic_source(8, 32, 1, 1);
  TrainConfig c = tiny_run(1, 0);
  std::ostringstream log;
  const std::string m = test_util::error_message<std::invalid_argument>(
      [&] { run_two_phase(model, train, nullptr, c, log); });
  std::cout << m << "\n";
  EXPECT_NE(m.find("--train has 1 class"), std::string::npos) << m;
  EXPECT_NE(m.find("at least 2"), std::string::npos) << m;
}

// Issue 11, defect 7: a resume with an option that changes the trajectory (here the phase-2
// learning rate) used to continue silently; it is refused, listing what differs.
TEST(TwoPhase, ResumeRefusesChangedTrajectoryOptions) {
  test_util::TempDir dir;
  const InMemorySource train = make_synthetic_source(8, 32, 2, 1);
  TrainConfig c = tiny_run(1, 1);
  c.checkpoint_dir = dir.file("ckpt");
  c.max_steps = 1;
  std::ostringstream log;
  Model model = tiny_model(2);
  run_two_phase(model, train, nullptr, c, log);
  c.resume = true;
  c.max_steps = 0;
  TrainConfig changed = c;
  changed.phase2_lr = 2e-5;
  changed.image_size = 64;
  Model again = tiny_model(2);
  const std::string m = test_util::error_message<std::invalid_argument>(
      [&] { run_two_phase(again, train, nullptr, changed, log); });
  std::cout << m << "\n";
  EXPECT_NE(m.find("--phase2-lr 1.0000000000000001e-05 in the checkpoint, 2.0000000000000002e-05 "
                   "now"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("--image-size 32 in the checkpoint, 64 now"), std::string::npos) << m;
  // With the checkpoint's options it continues: one step of phase 1 was left, then phase 2.
  EXPECT_EQ(run_two_phase(again, train, nullptr, c, log).size(), 2u);
}

// Issue 11, defect 7: two runs started together on one --checkpoint-dir both ran and replaced
// each other's checkpoints; the second is now refused while the first holds the directory.
TEST(TwoPhase, ACheckpointDirectoryServesOneRunAtATime) {
  test_util::TempDir dir;
  const std::string ckpt = dir.file("ckpt");
  {
    CheckpointDirLock first(ckpt);
    const std::string m =
        test_util::error_message<std::runtime_error>([&] { CheckpointDirLock second(ckpt); });
    std::cout << m << "\n";
    EXPECT_NE(m.find("is in use by another run (host "), std::string::npos) << m;
    TrainConfig c = tiny_run(1, 0);
    c.checkpoint_dir = ckpt;
    Model model = tiny_model(2);
    const InMemorySource train = make_synthetic_source(8, 32, 2, 1);
    std::ostringstream log;
    const std::string r = test_util::error_message<std::runtime_error>(
        [&] { run_two_phase(model, train, nullptr, c, log); });
    EXPECT_NE(r.find("is in use by another run"), std::string::npos) << r;
  }
  EXPECT_NO_THROW(CheckpointDirLock again(ckpt));  // released with the first run
}

TEST(TwoPhase, BadOptionsAreNamed) {
  auto message = [](const TrainConfig& c) {
    return test_util::error_message<std::invalid_argument>([&] { validate(c); });
  };
  TrainConfig c;
  c.batch_size = 0;
  EXPECT_NE(message(c).find("--batch-size"), std::string::npos);
  c = TrainConfig{};
  c.phase1_epochs = -1;
  EXPECT_NE(message(c).find("--phase1-epochs"), std::string::npos);
  c = TrainConfig{};
  c.phase2_lr = -1e-5;
  EXPECT_NE(message(c).find("--phase2-lr"), std::string::npos);
  c = TrainConfig{};
  c.unfreeze_last = 200;
  EXPECT_NE(message(c).find("--unfreeze-last"), std::string::npos);
}

TEST(TwoPhase, EpochOrderDependsOnlyOnSeedAndEpoch) {
  EXPECT_EQ(epoch_order(10, true, 5, 2), epoch_order(10, true, 5, 2));
  EXPECT_NE(epoch_order(10, true, 5, 2), epoch_order(10, true, 5, 3));
  EXPECT_NE(epoch_order(10, true, 5, 2), epoch_order(10, true, 6, 2));
  const auto identity = epoch_order(10, false, 5, 2);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(identity[i], i);
  auto sorted = epoch_order(1000, true, 1, 0);
  std::sort(sorted.begin(), sorted.end());
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(sorted[i], i) << "not a permutation";
}

}  // namespace
}  // namespace parafine
