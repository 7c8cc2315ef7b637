// The data pipeline as a user drives it (the real binary, via the shell): a generated image
// folder (3 classes told apart by colour, 32x32 PNGs and 40x40 JPEGs) is converted with
// `parafine convert`, trained on as a folder and as the .h5, and both models are used by
// `predict` and `evaluate` on both forms. Bad input (empty folders, an empty class, a --val whose
// classes differ, HDF5 files with out-of-range labels or no images, a corrupt file under
// --on-bad-image fail, bad options) gives a message naming the problem and a non-zero exit
// before any training starts.
#include <gtest/gtest.h>

#include <unistd.h>
#include "run_binary.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "image_writers.hpp"
#include "parafine/io/h5_tensors.hpp"

namespace fs = std::filesystem;

namespace parafine {
namespace {

using namespace test_images;

CommandResult run(const std::string& args) {
  return run_parafine(args);
}

bool contains(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

const std::vector<std::string> kClasses = {"blue", "green", "red"};  // sorted: labels 0, 1, 2
const unsigned char kColours[3][3] = {{30, 40, 210}, {40, 200, 50}, {215, 35, 30}};

// Small, fast training runs: full-width ResNet50 at 32x32 on 18 images.
const std::string kTrainArgs =
    " --weights none --image-size 32 --batch-size 6 --phase1-epochs 1 --phase2-epochs 1 "
    "--head-units 8"
    " --threads 2 --seed 3";

class CliData : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("parafine_cli_data_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    // images/<class>/<class>_k: k = 0..2 lossless 32x32 PNGs (stored exactly by convert at 32),
    // k = 3..5 40x40 JPEGs (resized by both paths).
    for (int c = 0; c < 3; ++c)
      for (int k = 0; k < 6; ++k) {
        const unsigned char* rgb = kColours[c];
        const unsigned seed = static_cast<unsigned>(10 * c + k);
        const std::string name =
            "images/" + kClasses[c] + "/" + kClasses[c] + "_" + std::to_string(k);
        if (k < 3)
          files_.push_back(
              write(name + ".png", encode_png(flat_rgb(32, 32, rgb[0], rgb[1], rgb[2], 40, seed),
                                              32, 32, PNG_COLOR_TYPE_RGB, 8)));
        else
          files_.push_back(write(
              name + ".jpg",
              encode_jpeg(flat_rgb(40, 40, rgb[0], rgb[1], rgb[2], 40, seed), 40, 40, 3, JCS_RGB)));
      }
    convert_ = run("convert --input " + path("images") + " --output " + path("images.h5") +
                   " --image-size 32");
    train_folder_ = run("train --train " + path("images") + " --val " + path("images") +
                        kTrainArgs + " --save " + path("model_folder.h5"));
    train_h5_ = run("train --train " + path("images.h5") + " --val " + path("images.h5") +
                    kTrainArgs + " --save " + path("model_h5.h5"));
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static std::string path(const std::string& name) { return (dir_ / name).string(); }
  static std::string write(const std::string& rel, const Bytes& bytes) {
    const fs::path p = dir_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
    return p.string();
  }

  static fs::path dir_;
  static std::vector<std::string> files_;  // [18] in Keras order; label = index / 6
  static CommandResult convert_, train_folder_, train_h5_;
};
fs::path CliData::dir_;
std::vector<std::string> CliData::files_;
CommandResult CliData::convert_, CliData::train_folder_, CliData::train_h5_;

TEST_F(CliData, ConvertPacksTheFolder) {
  std::cout << convert_.output;
  ASSERT_EQ(convert_.exit_code, 0) << convert_.output;
  EXPECT_TRUE(contains(convert_.output, "18 images in 3 classes (blue, green, red)"))
      << convert_.output;
  EXPECT_TRUE(contains(convert_.output, "0 bad file(s) skipped")) << convert_.output;
  const H5File f(path("images.h5"), H5File::Mode::kRead);
  EXPECT_EQ(f.dataset_shape("/images"), (std::vector<hsize_t>{18, 32, 32, 3}));
  EXPECT_EQ(f.read_string_list_attribute("/", "class_names"), kClasses);
  std::vector<int> expected;
  for (int i = 0; i < 18; ++i) expected.push_back(i / 6);
  EXPECT_EQ(f.read_ints("/labels"), expected);
  for (const auto& e : fs::directory_iterator(dir_))
    EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << "left behind: " << e.path();
}

TEST_F(CliData, TrainsOnTheFolderAndOnTheHdf5) {
  for (const CommandResult* r : {&train_folder_, &train_h5_}) {
    std::cout << r->output;
    ASSERT_EQ(r->exit_code, 0) << r->output;
    EXPECT_TRUE(contains(r->output, "18 training images, 18 validation images, 3 classes, 32x32"))
        << r->output;
    EXPECT_TRUE(contains(r->output, "phase 1 epoch 1:")) << r->output;
    EXPECT_TRUE(contains(r->output, "phase 2 epoch 1:")) << r->output;
    EXPECT_TRUE(contains(r->output, "final validation accuracy")) << r->output;
  }
  EXPECT_TRUE(fs::exists(path("model_folder.h5")));
  EXPECT_TRUE(fs::exists(path("model_h5.h5")));
}

// Evaluate's "loss L - accuracy A (N samples)" line.
struct Evaluation {
  double loss = -1, accuracy = -1;
  int samples = -1;
};
Evaluation parse_evaluation(const std::string& output) {
  Evaluation e;
  const size_t at = output.find("loss ");
  if (at != std::string::npos)
    std::sscanf(output.c_str() + at, "loss %lf - accuracy %lf (%d samples)", &e.loss, &e.accuracy,
                &e.samples);
  return e;
}

TEST_F(CliData, PredictAndEvaluateOnTheFolderAndTheHdf5) {
  ASSERT_EQ(train_folder_.exit_code, 0) << train_folder_.output;
  ASSERT_EQ(train_h5_.exit_code, 0) << train_h5_.output;
  for (const char* model : {"model_folder.h5", "model_h5.h5"}) {
    SCOPED_TRACE(model);
    // The folder needs --image-size 32 (predict's default for folders is 224); the .h5 is 32x32.
    const CommandResult pf = run("predict --model " + path(model) + " --input " + path("images") +
                                 " --image-size 32 --output " + path("pred_folder.csv"));
    const CommandResult ph = run("predict --model " + path(model) + " --input " +
                                 path("images.h5") + " --output " + path("pred_h5.csv"));
    ASSERT_EQ(pf.exit_code, 0) << pf.output;
    ASSERT_EQ(ph.exit_code, 0) << ph.output;
    const auto folder_rows = read_csv(path("pred_folder.csv")),
               h5_rows = read_csv(path("pred_h5.csv"));
    std::cout << model << ": predict rows: folder " << folder_rows.size() << ", h5 "
              << h5_rows.size() << " (18 images + header)\n";
    ASSERT_EQ(folder_rows.size(), 19u);
    ASSERT_EQ(h5_rows.size(), 19u);
    EXPECT_EQ(folder_rows[0],
              (std::vector<std::string>{"file", "p_blue", "p_green", "p_red", "predicted"}));
    EXPECT_EQ(h5_rows[0],
              (std::vector<std::string>{"index", "p_blue", "p_green", "p_red", "predicted"}));
    int folder_correct = 0, h5_correct = 0;
    double png_worst = 0, jpeg_worst = 0;
    for (int i = 0; i < 18; ++i) {
      const auto& fr = folder_rows[static_cast<size_t>(i) + 1];
      const auto& hr = h5_rows[static_cast<size_t>(i) + 1];
      ASSERT_EQ(fr.size(), 5u);
      ASSERT_EQ(hr.size(), 5u);
      EXPECT_EQ(fr[0], files_[static_cast<size_t>(i)])
          << "folder rows name the files, in folder order";
      EXPECT_EQ(hr[0], std::to_string(i));
      double sum = 0;
      for (int c = 1; c <= 3; ++c) {
        sum += std::stod(fr[static_cast<size_t>(c)]);
        const double d = std::fabs(std::stod(fr[static_cast<size_t>(c)]) -
                                   std::stod(hr[static_cast<size_t>(c)]));
        (i % 6 < 3 ? png_worst : jpeg_worst) = std::max(i % 6 < 3 ? png_worst : jpeg_worst, d);
      }
      EXPECT_NEAR(sum, 1.0, 1e-5);
      folder_correct += fr[4] == kClasses[static_cast<size_t>(i / 6)];
      h5_correct += hr[4] == kClasses[static_cast<size_t>(i / 6)];
    }
    // The PNGs are 32x32: convert stores them unchanged, so both forms feed identical pixels and
    // must give identical probabilities. The JPEG rows differ by up to 0.5 per pixel (the .h5
    // holds rounded resized pixels), and this randomly initialised ResNet50, its BN statistics
    // calibrated on 18 images, amplifies that to tenths of a probability: printed, not checked.
    std::cout << model << ": |p(folder) - p(h5)| max over the PNG rows (identical pixels) "
              << png_worst << ", over the JPEG rows (resized, then rounded in the .h5) "
              << jpeg_worst << "\n";
    EXPECT_LE(png_worst, 2e-6) << "identical pixels must give the same probabilities";

    const CommandResult ef =
        run("evaluate --model " + path(model) + " --data " + path("images") + " --image-size 32");
    const CommandResult eh =
        run("evaluate --model " + path(model) + " --data " + path("images.h5"));
    std::cout << model << ": evaluate folder: " << ef.output << model
              << ": evaluate h5: " << eh.output;
    ASSERT_EQ(ef.exit_code, 0) << ef.output;
    ASSERT_EQ(eh.exit_code, 0) << eh.output;
    const Evaluation evf = parse_evaluation(ef.output), evh = parse_evaluation(eh.output);
    ASSERT_EQ(evf.samples, 18) << ef.output;
    ASSERT_EQ(evh.samples, 18) << eh.output;
    EXPECT_TRUE(std::isfinite(evf.loss) && evf.loss >= 0) << ef.output;
    EXPECT_TRUE(std::isfinite(evh.loss) && evh.loss >= 0) << eh.output;
    std::cout << model << ": accuracy from predict's CSV: folder " << folder_correct / 18.0
              << ", h5 " << h5_correct / 18.0 << "\n";
    EXPECT_NEAR(evf.accuracy, folder_correct / 18.0, 1e-4)
        << "evaluate and predict disagree on the folder";
    EXPECT_NEAR(evh.accuracy, h5_correct / 18.0, 1e-4)
        << "evaluate and predict disagree on the .h5";
  }
}

TEST_F(CliData, BadFilesAreSkippedAndNamedOrFailTheRun) {
  // The good images plus a zero-byte file and a truncated JPEG in class "green".
  for (const std::string& f : files_) {
    const fs::path to =
        dir_ / "with_bad" / fs::path(f).parent_path().filename() / fs::path(f).filename();
    fs::create_directories(to.parent_path());
    fs::copy_file(f, to, fs::copy_options::overwrite_existing);
  }
  const Bytes jpeg = encode_jpeg(smooth_rgb(64, 64), 64, 64, 3, JCS_RGB);
  const std::string zero = write("with_bad/green/green_7_zero.jpg", {});
  const std::string truncated = write("with_bad/green/green_8_truncated.jpg",
                                      Bytes(jpeg.begin(), jpeg.begin() + jpeg.size() / 2));

  const std::string short_run =
      " --weights none --image-size 32 --batch-size 6 --phase1-epochs 1 --phase2-epochs 0 "
      "--head-units 8 --threads 2";
  const CommandResult skip = run("train --train " + path("with_bad") + short_run);
  std::cout << skip.output;
  EXPECT_EQ(skip.exit_code, 0) << skip.output;
  EXPECT_TRUE(contains(skip.output, zero)) << "the log should name " << zero;
  EXPECT_TRUE(contains(skip.output, truncated)) << "the log should name " << truncated;
  EXPECT_TRUE(contains(skip.output, "skipped 2 bad image(s) of 20")) << skip.output;
  EXPECT_TRUE(contains(skip.output, "18 training images")) << skip.output;

  const CommandResult conv = run("convert --input " + path("with_bad") + " --output " +
                                 path("with_bad.h5") + " --image-size 32");
  EXPECT_EQ(conv.exit_code, 0) << conv.output;
  EXPECT_TRUE(contains(conv.output,
                       "wrote " + path("with_bad.h5") + ": 18 images 32x32, 2 bad file(s) skipped"))
      << conv.output;

  const CommandResult fail =
      run("train --train " + path("with_bad") + short_run + " --on-bad-image fail");
  std::cout << fail.output;
  EXPECT_NE(fail.exit_code, 0) << fail.output;
  EXPECT_TRUE(contains(fail.output, zero)) << "--on-bad-image fail should name " << zero << ":\n"
                                           << fail.output;
  EXPECT_FALSE(contains(fail.output, "phase 1")) << "training started:\n" << fail.output;
  const CommandResult conv_fail = run("convert --input " + path("with_bad") + " --output " +
                                      path("fail.h5") + " --image-size 32 --on-bad-image fail");
  EXPECT_NE(conv_fail.exit_code, 0) << conv_fail.output;
  EXPECT_TRUE(contains(conv_fail.output, zero)) << conv_fail.output;
  EXPECT_FALSE(fs::exists(path("fail.h5")));

  // predict lists only the readable files.
  const CommandResult pred =
      run("predict --model " + path("model_folder.h5") + " --input " + path("with_bad") +
          " --image-size 32 --output " + path("pred_bad.csv"));
  EXPECT_EQ(pred.exit_code, 0) << pred.output;
  const auto rows = read_csv(path("pred_bad.csv"));
  std::cout << "predict on the folder with 2 bad files: " << rows.size() - 1 << " rows\n";
  EXPECT_EQ(rows.size(), 19u);
  EXPECT_TRUE(contains(pred.output, zero)) << pred.output;
}

// File names with a comma or a quote are CSV-quoted in predict's output, so the columns stay
// where the header says (an unquoted "a,b.png" would shift every probability one column right).
TEST_F(CliData, PredictQuotesFileNamesThatNeedIt) {
  const unsigned char* rgb = kColours[2];
  for (int c = 0; c < 3; ++c) {
    const std::string name = c == 2 ? "odd/red/a,b \"c\".png" : "odd/" + kClasses[c] + "/x.png";
    write(name, encode_png(flat_rgb(32, 32, rgb[0], rgb[1], rgb[2], 40, 7), 32, 32,
                           PNG_COLOR_TYPE_RGB, 8));
  }
  const CommandResult pred = run("predict --model " + path("model_folder.h5") + " --input " +
                                 path("odd") + " --image-size 32 --output " + path("pred_odd.csv"));
  ASSERT_EQ(pred.exit_code, 0) << pred.output;
  std::ifstream in(path("pred_odd.csv"));
  std::string header, line, odd;
  std::getline(in, header);
  while (std::getline(in, line))
    if (contains(line, "a,b")) odd = line;
  std::cout << "row of the odd name: " << odd << "\n";
  // RFC 4180: the field is quoted and its quotes doubled; what follows is
  // p_blue,p_green,p_red,predicted.
  const std::string field = "\"" + path("odd/red/a,b \"\"c\"\".png") + "\"";
  ASSERT_EQ(odd.rfind(field, 0), 0u) << odd;
  const std::string rest = odd.substr(field.size());
  EXPECT_EQ(std::count(rest.begin(), rest.end(), ','), 4) << rest;
}

TEST_F(CliData, BadInputFailsBeforeTrainingWithAClearMessage) {
  // Folders: empty; a class folder without images; validation classes that differ.
  fs::create_directories(dir_ / "empty");
  write("no_images/blue/blue_0.png",
        encode_png(flat_rgb(32, 32, 30, 40, 210, 10, 1), 32, 32, PNG_COLOR_TYPE_RGB, 8));
  write("no_images/red/readme.txt", {'x'});
  for (const char* cls : {"blue", "green", "yellow"})
    for (int k = 0; k < 2; ++k)
      write(std::string("other_classes/") + cls + "/" + std::to_string(k) + ".png",
            encode_png(flat_rgb(32, 32, 100, 100, 100, 20, static_cast<unsigned>(k)), 32, 32,
                       PNG_COLOR_TYPE_RGB, 8));
  const CommandResult conv_other = run("convert --input " + path("other_classes") + " --output " +
                                       path("other_classes.h5") + " --image-size 32");
  ASSERT_EQ(conv_other.exit_code, 0) << conv_other.output;
  // HDF5 files: labels out of range; no `images`.
  std::vector<unsigned char> pixels(6 * 32 * 32 * 3, 128);
  {
    H5File f(path("bad_labels.h5"), H5File::Mode::kTruncate);
    f.write_uint8("/images", {6, 32, 32, 3}, pixels.data());
    f.write_int64("/labels", {0, 1, 2, 0, 1, 7});
    f.write_string_list_attribute("/", "class_names", kClasses);
  }
  {
    H5File f(path("no_images.h5"), H5File::Mode::kTruncate);
    f.write_int64("/labels", {0, 1, 2});
  }

  struct Case {
    std::string args;
    int code;  // the exit code, or kAnyFailure: any non-zero code (a data error, not a usage error)
    std::string says;
  };
  const int kAnyFailure = -1;
  const std::string t = "train" + kTrainArgs + " --save " + path("never.h5");
  const std::string images = path("images");
  const std::vector<Case> cases = {
      {t + " --train " + path("empty"), kAnyFailure, path("empty") + ": has no class sub-folders"},
      {t + " --train " + path("no_images"), kAnyFailure,
       "class folder 'red' has no .jpg/.jpeg/.png images"},
      {t + " --train " + images + " --val " + path("other_classes"), kAnyFailure,
       "--val's classes differ from --train's"},
      {t + " --train " + images + " --val " + path("other_classes.h5"), kAnyFailure,
       "--val's classes differ from --train's"},
      {t + " --train " + path("bad_labels.h5"), kAnyFailure,
       "label 7 of sample 5 is outside [0,3)"},
      {t + " --train " + images + " --val " + path("bad_labels.h5"), kAnyFailure,
       "label 7 of sample 5 is outside [0,3)"},
      {t + " --train " + path("no_images.h5"), kAnyFailure, "no 'images' dataset"},
      {t + " --train " + path("missing"), kAnyFailure,
       "--train " + path("missing") + ": no such file or directory"},
      {t, 2, "--train is required"},
      {t + " --train " + images + " --frobnicate 1", 2, "frobnicate"},
      {t + " --train " + images + " --shuffle maybe", 2, "--shuffle must be true or false"},
      {t + " --train " + images + " --on-bad-image maybe", 2,
       "--on-bad-image must be 'skip' or 'fail'"},
      {"train --weights none --image-size 32 --batch-size 0 --train " + images, 2,
       "--batch-size must be at least 1"},
      {t + " --train " + images + " --classes 5", 2, "--classes 5 but --train has 3 classes"},
      {"convert --input " + path("empty") + " --output " + path("never.h5"), kAnyFailure,
       "has no class sub-folders"},
      {"convert --input " + path("no_images") + " --output " + path("never.h5"), kAnyFailure,
       "class folder 'red'"},
      {"convert --output " + path("never.h5"), 2, "--input"},
      {"evaluate --model " + path("model_folder.h5") + " --data " + path("no_images"), kAnyFailure,
       "class folder 'red'"},
      {"evaluate --model " + path("model_folder.h5") + " --data " + path("bad_labels.h5"),
       kAnyFailure, "label 7 of sample 5"},
      {"predict --model " + path("model_folder.h5") + " --input " + path("no_images.h5"),
       kAnyFailure, "no 'images' dataset"},
      {"predict --model " + path("model_folder.h5") + " --input " + path("empty"), kAnyFailure,
       "has no class sub-folders"},
  };
  for (const Case& c : cases) {
    const CommandResult r = run(c.args);
    std::cout << "exit " << r.exit_code << ": " << r.output.substr(0, r.output.find('\n')) << "\n";
    if (c.code == kAnyFailure)
      EXPECT_NE(r.exit_code, 0) << c.args << "\n" << r.output;
    else
      EXPECT_EQ(r.exit_code, c.code) << c.args << "\n" << r.output;
    EXPECT_TRUE(contains(r.output, c.says)) << "expected '" << c.says << "' from\n"
                                            << c.args << "\n"
                                            << r.output;
    EXPECT_FALSE(contains(r.output, "phase 1")) << "training started before the error:\n"
                                                << c.args << "\n"
                                                << r.output;
  }
  EXPECT_FALSE(fs::exists(path("never.h5")));
}

// Unlabelled HDF5 data (no `labels`) cannot be trained or validated on: that must be said up
// front, not discovered by the loss after training has started.
TEST_F(CliData, UnlabelledHdf5IsRejectedBeforeTraining) {
  std::vector<unsigned char> pixels(6 * 32 * 32 * 3, 100);
  {
    H5File f(path("unlabelled.h5"), H5File::Mode::kTruncate);
    f.write_uint8("/images", {6, 32, 32, 3}, pixels.data());
    f.write_string_list_attribute("/", "class_names", kClasses);
  }
  const std::string t = "train" + kTrainArgs;
  for (const std::string& args :
       {t + " --train " + path("unlabelled.h5"),
        t + " --train " + path("images") + " --val " + path("unlabelled.h5")}) {
    const CommandResult r = run(args);
    std::cout << "exit " << r.exit_code << ":\n" << r.output;
    EXPECT_NE(r.exit_code, 0) << args;
    EXPECT_TRUE(contains(r.output, "label")) << r.output;
    EXPECT_FALSE(contains(r.output, "phase 1"))
        << "training started before the missing labels were noticed:\n"
        << args << "\n"
        << r.output;
  }
}

// The model file records its class names (--save writes the training set's); evaluating it on
// data whose classes differ would score label k of one set against class k of the other, so it
// must be refused, as train refuses a --val whose classes differ from --train's.
TEST_F(CliData, EvaluateRefusesDataWhoseClassesDifferFromTheModels) {
  ASSERT_EQ(train_folder_.exit_code, 0) << train_folder_.output;
  for (const char* cls : {"blue", "green", "yellow"})  // model: blue, green, red
    for (int k = 0; k < 2; ++k)
      write(std::string("renamed/") + cls + "/" + std::to_string(k) + ".png",
            encode_png(flat_rgb(32, 32, 100, 100, 100, 20, static_cast<unsigned>(k)), 32, 32,
                       PNG_COLOR_TYPE_RGB, 8));
  const CommandResult r = run("evaluate --model " + path("model_folder.h5") + " --data " +
                              path("renamed") + " --image-size 32");
  std::cout << "exit " << r.exit_code << ": " << r.output;
  EXPECT_NE(r.exit_code, 0)
      << "evaluate scored {blue, green, yellow} data against a {blue, green, red} model:\n"
      << r.output;
  EXPECT_TRUE(contains(r.output, "class")) << r.output;
}

}  // namespace
}  // namespace parafine
