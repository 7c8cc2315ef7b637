// What every command does with its options, through the real binary: `--config FILE` is read
// by predict, evaluate, convert, demo and inspect as by train (a key from the file is used, the
// command line wins, an unknown key or a bad value names the file and the key, exit 2); every
// command has --help (exit 0); an image size below 32 gives exit 2 and one wording everywhere.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "image_writers.hpp"
#include "parafine/core/rng.hpp"
#include "parafine/data/h5_dataset.hpp"
#include "parafine/io/h5_tensors.hpp"
#include "parafine/io/model_file.hpp"
#include "parafine/model/initializers.hpp"
#include "parafine/model/backbone.hpp"
#include "run_binary.hpp"

namespace fs = std::filesystem;

namespace parafine {
namespace {

using namespace test_images;

const std::string kImageSizeWording =
    "--image-size must be at least 32 for resnet50 (Keras's minimum input size for ResNet50), got 16";

bool contains(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

class CliOptions : public ::testing::Test {
 protected:
  // A tiny full model (3 classes), 32x32 and 16x16 HDF5 datasets and a 2-class image folder.
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("parafine_cli_options_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    Model m = build_network(NetworkConfig{32, 3, 8, 4, 3});
    keras_initialize(m, 4);
    save_keras_model(m, path("model.h5"), {"cat", "dog", "fox"});
    write_dataset("data.h5", 32);
    write_dataset("small.h5", 16);
    for (const char* cls : {"a", "b"})
      for (int k = 0; k < 2; ++k) {
        const Bytes png = encode_png(flat_rgb(40, 40, 100, 150, 200, 30, static_cast<unsigned>(k)),
                                     40, 40, PNG_COLOR_TYPE_RGB, 8);
        write(std::string("images/") + cls + "/" + std::to_string(k) + ".png",
              std::string(png.begin(), png.end()));
      }
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  static std::string path(const std::string& name) { return (dir_ / name).string(); }
  static std::string write(const std::string& name, const std::string& text) {
    const fs::path p = dir_ / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }
  static void write_dataset(const std::string& name, int size) {
    SplitMix64 rng(9);
    std::vector<unsigned char> pixels(static_cast<std::size_t>(6 * size * size * 3));
    for (auto& v : pixels) v = static_cast<unsigned char>(rng.next() % 256);
    H5File d(path(name), H5File::Mode::kTruncate);
    const auto side = static_cast<hsize_t>(size);
    d.write_uint8("/images", {6, side, side, 3}, pixels.data());
    d.write_int64("/labels", {0, 1, 2, 0, 1, 2});
  }
  static int stored_image_size(const std::string& name) {
    return H5ImageDataset(path(name)).height();
  }

  static fs::path dir_;
};
fs::path CliOptions::dir_;

// The config gives --image-size 16 (refused: proof the file is read) and --output; the command
// line's --image-size 32 wins, and its --output wins over the file's.
TEST_F(CliOptions, PredictReadsItsConfigAndTheCommandLineWins) {
  const std::string cfg =
      write("predict.cfg", "model = " + path("model.h5") + "\ninput = " + path("data.h5") +
                               "\nimage-size = 16\noutput = " + path("from_file.csv") + "\n");
  const CommandResult from_file = run_parafine("predict --config " + cfg);
  EXPECT_EQ(from_file.exit_code, 2) << from_file.output;
  EXPECT_TRUE(contains(from_file.output, kImageSizeWording)) << from_file.output;

  const CommandResult cli_wins = run_parafine("predict --config " + cfg + " --image-size 32");
  ASSERT_EQ(cli_wins.exit_code, 0) << cli_wins.output;
  EXPECT_EQ(read_csv(path("from_file.csv")).size(), 7u);

  const CommandResult other =
      run_parafine("predict --config " + cfg + " --image-size 32 --output " + path("from_cli.csv"));
  ASSERT_EQ(other.exit_code, 0) << other.output;
  EXPECT_EQ(read_csv(path("from_cli.csv")).size(), 7u);
}

TEST_F(CliOptions, EvaluateReadsItsConfigAndTheCommandLineWins) {
  const std::string cfg =
      write("evaluate.cfg",
            "model = " + path("model.h5") + "\ndata = " + path("data.h5") + "\nimage-size = 16\n");
  const CommandResult from_file = run_parafine("evaluate --config " + cfg);
  EXPECT_EQ(from_file.exit_code, 2) << from_file.output;
  EXPECT_TRUE(contains(from_file.output, kImageSizeWording)) << from_file.output;

  const CommandResult cli_wins = run_parafine("evaluate --config " + cfg + " --image-size 32");
  ASSERT_EQ(cli_wins.exit_code, 0) << cli_wins.output;
  EXPECT_TRUE(contains(cli_wins.output, "accuracy")) << cli_wins.output;
  EXPECT_TRUE(contains(cli_wins.output, "(6 samples)")) << cli_wins.output;
}

TEST_F(CliOptions, ConvertReadsItsConfigAndTheCommandLineWins) {
  const std::string cfg =
      write("convert.cfg", "input = " + path("images") + "\noutput = " + path("from_file.h5") +
                               "\nimage-size = 36\n");
  const CommandResult from_file = run_parafine("convert --config " + cfg);
  ASSERT_EQ(from_file.exit_code, 0) << from_file.output;
  EXPECT_EQ(stored_image_size("from_file.h5"), 36);

  const CommandResult cli_wins =
      run_parafine("convert --config " + cfg + " --image-size 40 --output " + path("from_cli.h5"));
  ASSERT_EQ(cli_wins.exit_code, 0) << cli_wins.output;
  EXPECT_EQ(stored_image_size("from_cli.h5"), 40);
}

TEST_F(CliOptions, DemoReadsItsConfigAndTheCommandLineWins) {
  const std::string cfg = write("demo.cfg",
                                "width = 4\nhead-units = 4\nclasses = 2\ntrain-samples = 8\n"
                                "val-samples = 4\nbatch-size = 4\nphase1-epochs = 1\n"
                                "phase2-epochs = 0\n");
  const CommandResult from_file = run_parafine("demo --config " + cfg);
  ASSERT_EQ(from_file.exit_code, 0) << from_file.output;
  EXPECT_TRUE(contains(from_file.output, "ResNet50 (width 4, 32x32")) << from_file.output;
  EXPECT_TRUE(contains(from_file.output, "on 8 synthetic training / 4 validation images, 2 class"))
      << from_file.output;

  const CommandResult cli_wins =
      run_parafine("demo --config " + cfg + " --width 8 --train-samples 12");
  ASSERT_EQ(cli_wins.exit_code, 0) << cli_wins.output;
  EXPECT_TRUE(contains(cli_wins.output, "ResNet50 (width 8, 32x32")) << cli_wins.output;
  EXPECT_TRUE(contains(cli_wins.output, "on 12 synthetic training / 4 validation images"))
      << cli_wins.output;
}

TEST_F(CliOptions, InspectTakesItsFileFromTheCommandLineOrTheConfig) {
  const CommandResult positional = run_parafine("inspect " + path("model.h5"));
  ASSERT_EQ(positional.exit_code, 0) << positional.output;
  EXPECT_TRUE(contains(positional.output, "loads as a full model")) << positional.output;
  const std::string cfg = write("inspect.cfg", "file = " + path("model.h5") + "\n");
  const CommandResult from_file = run_parafine("inspect --config " + cfg);
  ASSERT_EQ(from_file.exit_code, 0) << from_file.output;
  EXPECT_TRUE(contains(from_file.output, "loads as a full model")) << from_file.output;
  for (const std::string args : {"inspect", "inspect a.h5 b.h5"}) {
    const CommandResult r = run_parafine(args);
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.output;
    EXPECT_TRUE(contains(r.output, "usage: parafine inspect FILE.h5")) << args << "\n" << r.output;
  }
}

// An unknown key or a bad value in the file: exit 2, naming the file and the key. Nothing
// else is needed on the command line: the file is read before required options are checked.
TEST_F(CliOptions, AConfigFileProblemNamesTheFileAndTheKey) {
  const std::string unknown = write("unknown.cfg", "frobnicate = 1\n");
  const std::string bad_batch = write("bad_batch.cfg", "batch-size = lots\n");
  const std::string bad_size = write("bad_size.cfg", "image-size = lots\n");
  struct Case {
    std::string args, file, key;
  };
  std::vector<Case> cases;
  for (const char* command : {"train", "demo", "convert", "predict", "evaluate", "inspect"})
    cases.push_back({std::string(command) + " --config " + unknown, unknown, "frobnicate"});
  for (const char* command : {"train", "demo", "predict", "evaluate"})
    cases.push_back({std::string(command) + " --config " + bad_batch, bad_batch, "batch-size"});
  cases.push_back({"convert --config " + bad_size, bad_size, "image-size"});
  for (const Case& c : cases) {
    const CommandResult r = run_parafine(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args << "\n" << r.output;
    EXPECT_TRUE(contains(r.output, c.file)) << c.args << "\n" << r.output;
    EXPECT_TRUE(contains(r.output, c.key)) << c.args << "\n" << r.output;
  }
  const CommandResult missing = run_parafine("convert --config " + path("missing.cfg"));
  EXPECT_EQ(missing.exit_code, 2) << missing.output;
  EXPECT_TRUE(contains(missing.output, "--config: cannot read " + path("missing.cfg")))
      << missing.output;
}

TEST_F(CliOptions, EveryCommandHasHelp) {
  for (const std::string command : {"train", "demo", "convert", "inspect", "predict", "evaluate"}) {
    const CommandResult r = run_parafine(command + " --help");
    EXPECT_EQ(r.exit_code, 0) << command << "\n" << r.output;
    EXPECT_TRUE(contains(r.output, "usage: parafine " + command)) << r.output;
    EXPECT_TRUE(contains(r.output, "--config")) << r.output;
  }
}

// Every command that takes --image-size refuses 16 with exit 2 and the same message, before
// any data is read (the paths given do not exist).
TEST_F(CliOptions, ImageSizeBelow32IsExitTwoWithOneWording) {
  const std::vector<std::string> cases = {
      "train --train /nonexistent/data.h5 --image-size 16",
      "predict --model /nonexistent/m.h5 --input /nonexistent/d.h5 --image-size 16",
      "evaluate --model /nonexistent/m.h5 --data /nonexistent/d.h5 --image-size 16",
      "convert --input /nonexistent/images --output " + path("never.h5") + " --image-size 16",
      "demo --image-size 16",
  };
  for (const std::string& args : cases) {
    const CommandResult r = run_parafine(args);
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.output;
    EXPECT_TRUE(contains(r.output, kImageSizeWording)) << args << "\n" << r.output;
    EXPECT_FALSE(contains(r.output, "/nonexistent")) << args << " reached the data:\n" << r.output;
  }
  EXPECT_FALSE(fs::exists(path("never.h5")));
  // A 16x16 dataset without --image-size: its stored size is the one refused.
  const CommandResult stored =
      run_parafine("predict --model " + path("model.h5") + " --input " + path("small.h5"));
  EXPECT_EQ(stored.exit_code, 2) << stored.output;
  EXPECT_TRUE(contains(stored.output, path("small.h5") + " holds 16x16 images")) << stored.output;
  EXPECT_TRUE(contains(stored.output, kImageSizeWording)) << stored.output;
}

}  // namespace
}  // namespace parafine
