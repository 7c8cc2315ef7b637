// Issue 11: the files a run writes at its end (train --save and --history, demo --save,
// predict and convert --output) are checked before any data is loaded: a missing or read-only
// directory is refused at once (exit 2, naming the option and the path), not after the whole run.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

#include "run_binary.hpp"

namespace fs = std::filesystem;

namespace parafine {
namespace {

bool contains(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

class CliOutputPaths : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("parafine_output_paths_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    std::ofstream(path("regular_file")) << "x";
  }
  void TearDown() override {
    fs::permissions(dir_, fs::perms::owner_all, fs::perm_options::add);
    fs::remove_all(dir_);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // `args` must be refused with exit 2, the message naming `option`, `target` and `why`, and
  // before the (nonexistent) data is opened.
  static void expect_refused(const std::string& args, const std::string& option,
                             const std::string& target, const std::string& why) {
    const CommandResult r = run_parafine(args);
    std::cout << args << " -> exit " << r.exit_code << ": " << r.output;
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_TRUE(contains(r.output, option + " " + target)) << r.output;
    EXPECT_TRUE(contains(r.output, why)) << r.output;
    EXPECT_FALSE(contains(r.output, "/nonexistent/")) << "reached the data first: " << r.output;
  }

  fs::path dir_;
};

const std::string kTrain = "train --train /nonexistent/data.h5 ";
const std::string kPredict = "predict --model /nonexistent/m.h5 --input /nonexistent/d.h5 ";

TEST_F(CliOutputPaths, MissingParentDirectoryIsRefusedBeforeTheData) {
  const std::string missing = path("no_such_dir/model.h5");
  expect_refused(kTrain + "--save " + missing, "--save", missing, "does not exist");
  expect_refused(kTrain + "--history " + missing, "--history", missing, "does not exist");
  expect_refused(kPredict + "--output " + missing, "--output", missing, "does not exist");
  expect_refused("demo --save " + missing, "--save", missing, "does not exist");
  expect_refused("convert --input /nonexistent/images --output " + missing, "--output", missing,
                 "does not exist");
}

TEST_F(CliOutputPaths, ParentThatIsAFileOrTargetThatIsADirectoryIsRefused) {
  const std::string under_file = path("regular_file/model.h5");
  expect_refused(kTrain + "--save " + under_file, "--save", under_file, "is not a directory");
  expect_refused(kPredict + "--output " + under_file, "--output", under_file, "is not a directory");
  expect_refused(kTrain + "--history " + dir_.string(), "--history", dir_.string(),
                 "is a directory");
}

TEST_F(CliOutputPaths, ReadOnlyDirectoryOrFileIsRefused) {
  if (::geteuid() == 0)
    GTEST_SKIP() << "running as root: access() ignores permission bits, so a read-only "
                    "directory is writable (the missing-directory cases cover the check)";
  const std::string file = path("readonly_file.csv");
  std::ofstream(file) << "x";
  fs::permissions(file, fs::perms::owner_read | fs::perms::group_read);
  expect_refused(kPredict + "--output " + file, "--output", file, "not writable");
  fs::permissions(dir_, fs::perms::owner_read | fs::perms::owner_exec);
  const std::string in_readonly = path("model.h5");
  expect_refused(kTrain + "--save " + in_readonly, "--save", in_readonly, "not writable");
  expect_refused(kPredict + "--output " + in_readonly, "--output", in_readonly, "not writable");
}

// demo --save writes the format its suffix names, as train --save does: a .keras file is a zip
// archive (not an HDF5 file under that name), and a suffix with no format is refused first.
TEST_F(CliOutputPaths, DemoSaveWritesTheFormatOfItsSuffix) {
  const std::string model = path("demo.keras");
  const CommandResult r = run_parafine(
      "demo --width 32 --train-samples 16 --val-samples 8 --phase1-epochs 1 --phase2-epochs 0 "
      "--threads 1 --save " +
      model);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream file(model, std::ios::binary);
  char magic[4] = {};
  file.read(magic, 4);
  std::cout << model << " starts with bytes " << std::hex << int(magic[0]) << " " << int(magic[1])
            << std::dec << "\n";
  EXPECT_TRUE(magic[0] == 'P' && magic[1] == 'K') << "not a zip archive";
  const CommandResult bad = run_parafine("demo --save " + path("demo.txt"));
  std::cout << "demo --save demo.txt -> exit " << bad.exit_code << ": " << bad.output;
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_TRUE(contains(bad.output, "the suffix decides the format")) << bad.output;
}

// A writable target passes the check: the run goes on to the data (and fails there, exit 1).
TEST_F(CliOutputPaths, WritableTargetsPassTheCheck) {
  const CommandResult r = run_parafine(kTrain + "--save " + path("m.h5") + " --history " +
                                       path("h.csv") + " --threads 1");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "/nonexistent/data.h5")) << r.output;
}

}  // namespace
}  // namespace parafine
