// `parafine train` refuses bad Keras callback options (--monitor, --early-stopping,
// --reduce-lr-on-plateau, --lr-schedule, ...) before any data is read: exit 2 and a message
// naming the option.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "run_binary.hpp"

namespace parafine {
namespace {

TEST(TrainCallbackOptions, BadOptionsExitTwoNamingTheOption) {
  // --train and --val name paths that do not exist: every case must fail on its option first.
  const std::string train = "train --train /nonexistent/data.h5 ";
  const std::string val = "--val /nonexistent/val.h5 ";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--early-stopping 2", "--monitor"},  // val_loss without validation data
      {"--save-best best.h5 --monitor val_accuracy", "--monitor"},
      {val + "--monitor val_acc --early-stopping 2", "--monitor"},
      {val + "--early-stopping -1", "--early-stopping"},
      {val + "--early-stopping 2 --min-delta -0.1", "--min-delta"},
      {val + "--early-stopping 2 --min-delta inf", "--min-delta"},
      {val + "--restore-best", "--restore-best"},
      {val + "--reduce-lr-on-plateau 1.0,2", "--reduce-lr-on-plateau"},
      {val + "--reduce-lr-on-plateau -0.5,2", "--reduce-lr-on-plateau"},
      {val + "--reduce-lr-on-plateau nan,2", "--reduce-lr-on-plateau"},
      {val + "--reduce-lr-on-plateau 0.5,-2", "--reduce-lr-on-plateau"},
      {val + "--reduce-lr-on-plateau 0.5", "--reduce-lr-on-plateau"},
      {val + "--reduce-lr-on-plateau 0.5,2,-1e-6", "--reduce-lr-on-plateau"},
      {val + "--reduce-lr-on-plateau 0.5,2 --lr-schedule cosine", "--lr-schedule constant"},
      {"--lr-schedule linear", "--lr-schedule"},
      {"--lr-schedule exponential", "--lr-schedule"},
      {"--lr-schedule exponential,-0.9", "--lr-schedule"},
      {"--lr-schedule exponential,inf", "--lr-schedule"},
      {"--warmup-epochs -1", "--warmup-epochs"},
      {val + "--save-best best.txt", "--save-best"},
      {val + "--min-delta 0.01", "--min-delta"},
      {val + "--save-best m.keras --save ./m.keras", "--save-best"},
      {val + "--history h.csv --split-file h.csv", "--split-file"},
  };
  for (const auto& [args, option] : cases) {
    const CommandResult r = run_parafine(train + args);
    std::cout << args << " -> exit " << r.exit_code << ": " << r.output;
    EXPECT_EQ(r.exit_code, 2) << args;
    EXPECT_NE(r.output.find(option), std::string::npos) << args << ": " << r.output;
    EXPECT_EQ(r.output.find("/nonexistent/data.h5"), std::string::npos)
        << args << " reached the data first";
  }
}

// --class-weight names classes an image folder does not have: refused from the folder's
// listing, before any image is decoded (the images here are not images at all: decoding them
// first would fail on them under --on-bad-image fail), with and without --validation-split
// (whose listing is Keras's).
TEST(TrainCallbackOptions, ClassWeightOfAMissingClassFailsBeforeDecoding) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("parafine_cw_" + std::to_string(::getpid()));
  for (const char* c : {"cats", "dogs"}) {
    fs::create_directories(dir / c);
    std::ofstream(dir / c / "x.jpg") << "not a jpeg";
  }
  for (const std::string split : {"", " --validation-split 0.5 --seed 1"}) {
    const CommandResult r = run_parafine("train --train " + dir.string() +
                                         " --on-bad-image fail --class-weight mice:2" + split);
    std::cout << "split '" << split << "': exit " << r.exit_code << ": " << r.output;
    EXPECT_EQ(r.exit_code, 2) << split;
    EXPECT_NE(r.output.find("unknown class 'mice'"), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("x.jpg"), std::string::npos) << "decoded before the check" << split;
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace parafine
