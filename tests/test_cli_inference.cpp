// `parafine predict`, `evaluate` and `inspect` run as a user runs them (the real binary, via
// the shell): CSV rows and class names, evaluate's loss against predict's probabilities, and
// bad input giving a clear message and a non-zero exit.
#include <gtest/gtest.h>

#include <unistd.h>
#include "run_binary.hpp"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "parafine/core/precision.hpp"
#include "parafine/core/rng.hpp"
#include "parafine/data/h5_dataset.hpp"
#include "parafine/io/h5_tensors.hpp"
#include "parafine/io/model_file.hpp"
#include "parafine/model/backbone.hpp"
#include "parafine/model/initializers.hpp"

namespace fs = std::filesystem;

namespace parafine {
namespace {

CommandResult run(const std::string& args) {
  return run_parafine(args);
}

class CliInference : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("parafine_cli_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    Model m = build_network(NetworkConfig{32, 3, 8, 4, 3});
    keras_initialize(m, 4);
    SplitMix64 rng(9);
    std::vector<unsigned char> pixels(7 * 40 * 40 * 3);
    for (auto& v : pixels) v = static_cast<unsigned char>(rng.next() % 256);
    {
      H5File d((dir_ / "data.h5").string(), H5File::Mode::kTruncate);
      d.write_uint8("/images", {7, 40, 40, 3}, pixels.data());
      d.write_int64("/labels", {0, 1, 2, 0, 1, 2, 0});
    }
    // BN statistics from this very data keep the logits moderate, so the CSV's 6-digit
    // probabilities carry the loss.
    Tensor calib;
    calib = test_util::read_h5_batch((dir_ / "data.h5").string(), 0, 7, 32, Preprocess::kCaffe);
    m.calibrate_batch_norm(calib);
    save_keras_model(m, (dir_ / "model.h5").string(), {"cat", "dog", "fox"});
    H5File bad((dir_ / "bad_labels.h5").string(), H5File::Mode::kTruncate);
    bad.write_uint8("/images", {7, 40, 40, 3}, pixels.data());
    bad.write_int64("/labels", {0, 1, 2, 0, 1, -2, 0});
    H5File no_images((dir_ / "no_images.h5").string(), H5File::Mode::kTruncate);
    no_images.write_int64("/labels", {0, 1});
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static std::string path(const char* name) { return (dir_ / name).string(); }
  static fs::path dir_;
};
fs::path CliInference::dir_;

TEST_F(CliInference, PredictWritesOneRowPerImageAndEvaluateAgrees) {
  const CommandResult p = run("predict --model " + path("model.h5") + " --input " +
                              path("data.h5") + " --image-size 32 --output " + path("preds.csv"));
  ASSERT_EQ(p.exit_code, 0) << p.output;
  const auto rows = read_csv(path("preds.csv"));
  ASSERT_EQ(rows.size(), 8u);
  EXPECT_EQ(rows[0], (std::vector<std::string>{"index", "p_cat", "p_dog", "p_fox", "predicted"}));
  const std::vector<int> labels = {0, 1, 2, 0, 1, 2, 0};
  const std::vector<std::string> names = {"cat", "dog", "fox"};
  double loss = 0;
  int correct = 0;
  for (int i = 1; i <= 7; ++i) {
    ASSERT_EQ(rows[i].size(), 5u);
    EXPECT_EQ(rows[i][0], std::to_string(i - 1));
    double sum = 0;
    int arg = 0;
    for (int c = 0; c < 3; ++c) {
      sum += std::stod(rows[i][c + 1]);
      if (std::stod(rows[i][c + 1]) > std::stod(rows[i][arg + 1])) arg = c;
    }
    EXPECT_NEAR(sum, 1.0, 1e-5);
    EXPECT_EQ(rows[i][4], names[arg]);
    loss -= std::log(std::max(1e-30, std::stod(rows[i][labels[i - 1] + 1])));
    correct += arg == labels[i - 1];
  }
  loss /= 7;
  const CommandResult e = run("evaluate --model " + path("model.h5") + " --data " +
                              path("data.h5") + " --image-size 32");
  ASSERT_EQ(e.exit_code, 0) << e.output;
  double reported_loss = 0, reported_acc = 0;
  ASSERT_EQ(std::sscanf(e.output.c_str(), "loss %lf - accuracy %lf", &reported_loss, &reported_acc),
            2)
      << e.output;
  std::cout << "evaluate: " << e.output << "from predict's CSV: loss " << loss << ", accuracy "
            << correct / 7.0 << "\n";
  EXPECT_NEAR(reported_loss, loss, 1e-3 * std::max(1.0, loss));  // CSV probabilities carry 6 digits
  EXPECT_NEAR(reported_acc, correct / 7.0, 1e-4);
}

// --precision mixed_bfloat16 on predict and evaluate: on a CPU with bfloat16 support both run
// under the policy (the log says so), predict's rows are distributions that differ from
// float32's, and evaluate's loss is predict's; on a CPU without it, exit 2 saying why.
TEST_F(CliInference, MixedBfloat16PredictAndEvaluate) {
  const std::string args =
      " --model " + path("model.h5") + " --image-size 32 --precision mixed_bfloat16";
  const CommandResult p =
      run("predict" + args + " --input " + path("data.h5") + " --output " + path("preds_bf16.csv"));
  const CpuBfloat16 cpu = cpu_bfloat16();
  if (!cpu.avx512_bf16 && !cpu.amx_bf16) {
    EXPECT_EQ(p.exit_code, 2) << p.output;
    EXPECT_NE(p.output.find("neither AVX512_BF16 nor AMX-BF16"), std::string::npos) << p.output;
    return;
  }
  ASSERT_EQ(p.exit_code, 0) << p.output;
  EXPECT_NE(p.output.find("mixed_bfloat16: Keras's policy"), std::string::npos) << p.output;
  const CommandResult f = run("predict --model " + path("model.h5") + " --image-size 32 --input " +
                              path("data.h5") + " --output " + path("preds_f32.csv"));
  ASSERT_EQ(f.exit_code, 0) << f.output;
  const auto bf16 = read_csv(path("preds_bf16.csv")), f32 = read_csv(path("preds_f32.csv"));
  ASSERT_EQ(bf16.size(), 8u);
  ASSERT_EQ(f32.size(), 8u);
  const std::vector<int> labels = {0, 1, 2, 0, 1, 2, 0};
  double loss = 0, apart = 0;
  for (int i = 1; i <= 7; ++i) {
    double sum = 0;
    for (int c = 1; c <= 3; ++c) {
      sum += std::stod(bf16[i][c]);
      apart = std::max(apart, std::abs(std::stod(bf16[i][c]) - std::stod(f32[i][c])));
    }
    EXPECT_NEAR(sum, 1.0, 1e-5);
    loss -= std::log(std::max(1e-30, std::stod(bf16[i][labels[i - 1] + 1])));
  }
  loss /= 7;
  std::cout << "mixed_bfloat16 vs float32 probabilities (a random network): max |difference| "
            << apart << "\n";
  EXPECT_GT(apart, 0.0) << "the policy changed nothing";
  const CommandResult e = run("evaluate" + args + " --data " + path("data.h5"));
  ASSERT_EQ(e.exit_code, 0) << e.output;
  const std::size_t at = e.output.find("loss ");
  ASSERT_NE(at, std::string::npos) << e.output;
  double reported = 0;
  ASSERT_EQ(std::sscanf(e.output.c_str() + at, "loss %lf", &reported), 1) << e.output;
  std::cout << "evaluate under mixed_bfloat16: loss " << reported << "; from predict's CSV " << loss
            << "\n";
  EXPECT_NEAR(reported, loss, 1e-3 * std::max(1.0, loss));
}

TEST_F(CliInference, InspectReportsLayoutAndLoadability) {
  const CommandResult r = run("inspect " + path("model.h5"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("tf.keras save_weights"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("conv2_block1_0_conv"), std::string::npos);
  EXPECT_NE(r.output.find("loads as a full model"), std::string::npos) << r.output;
}

TEST_F(CliInference, BadInputGivesAClearMessageAndNonZeroExit) {
  struct Case {
    std::string args;
    int code;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"predict --input " + path("data.h5"), 2, "--model"},
      {"evaluate --model " + path("model.h5") + " --data " + path("data.h5") + " --image-size 16",
       2, "--image-size"},
      // A --model file that is no model is bad input: exit 2, naming the option and the file.
      {"evaluate --model " + path("data.h5") + " --data " + path("data.h5"), 2,
       "--model " + path("data.h5") + ": not a Keras weight file"},
      {"evaluate --model " + path("model.json") + " --data " + path("data.h5"), 2,
       "the suffix decides the format"},
      {"evaluate --model " + path("model.h5") + " --data " + path("no_images.h5"), 1,
       "no 'images'"},
      {"evaluate --model " + path("model.h5") + " --data " + path("bad_labels.h5") +
           " --image-size 32",
       1, "label -2 of sample 5"},
      {"predict --model " + path("model.h5") + " --input " + path("missing.h5") + " --output " +
           path("failed.csv"),
       1, "no such file"},
      {"predict --model " + path("model.h5") + " --input " + path("data.h5") +
           " --preprocess sepia",
       2, "--preprocess"},
      {"predict --model " + path("model.h5") + " --input " + path("data.h5") +
           " --preprocess rescale:0",
       2, "rescale:F needs a finite, non-zero factor"},
      {"evaluate --model " + path("model.h5") + " --data " + path("data.h5") +
           " --precision float16",
       2, "--precision"},
      {"frobnicate", 2, "unknown command"},
      {"inspect", 2, "usage"},
  };
  for (const Case& c : cases) {
    const CommandResult r = run(c.args);
    EXPECT_EQ(r.exit_code, c.code) << c.args << "\n" << r.output;
    EXPECT_NE(r.output.find(c.says), std::string::npos) << c.args << "\n" << r.output;
  }
  // A failed predict leaves neither its output nor a temporary file behind.
  EXPECT_FALSE(fs::exists(path("failed.csv")));
  for (const auto& e : fs::directory_iterator(path("")))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos)
        << "left behind: " << e.path();
}

}  // namespace
}  // namespace parafine

namespace parafine {
namespace {

// Names read from a damaged file can hold any bytes; the message shows them escaped (\xNN),
// never raw control characters or invalid UTF-8 on the user's terminal, and keeps valid UTF-8.
TEST(CliMessages, NamesFromADamagedFileAreEscapedInMessages) {
  test_util::TempDir dir;
  const std::string path = dir.file("odd_names.h5");
  {
    H5File f(path, H5File::Mode::kTruncate);
    f.write_string_list_attribute("/", "layer_names",
                                  {std::string("conv\x01\x1b[2J\xff") + "\xc3\xa9"});
    f.close();
  }
  const CommandResult r = run_parafine("inspect " + path);
  std::cout << r.output;
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("layer_names lists 'conv\\x01\\x1b[2J\\xff\xc3\xa9'"), std::string::npos)
      << r.output;
}

}  // namespace
}  // namespace parafine
