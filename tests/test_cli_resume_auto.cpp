// `train --resume auto` in every spelling Boost.ProgramOptions sees (a separate word, =auto, a
// --config key, after other options) resumes when --checkpoint-dir holds a checkpoint and starts
// a new run when it holds none, saying which; `--resume` alone still requires one. --train names
// a missing file, so each run stops right after the options (exit 1) with the decision logged.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "run_binary.hpp"

namespace parafine {
namespace {

namespace fs = std::filesystem;

struct Dirs {
  fs::path root =
      fs::temp_directory_path() / ("parafine_resume_auto_" + std::to_string(::getpid()));
  fs::path empty = root / "empty", used = root / "used";
  Dirs() {
    fs::create_directories(empty);
    fs::create_directories(used);
    std::ofstream(used / "ckpt-p1-e0001-s0000003.h5") << "x";  // only its name is looked at here
  }
  ~Dirs() { fs::remove_all(root); }
};

const std::string kTrain = "train --train /nonexistent/data.h5 ";

TEST(ResumeAuto, EverySpellingDecidesFromTheDirectory) {
  Dirs d;
  const std::string config = (d.root / "run.cfg").string();
  std::ofstream(config) << "resume = auto\n";
  for (const std::string& resume : std::vector<std::string>{
           "--resume auto", "--resume=auto", "--config " + config, "--resume auto --seed 1"}) {
    const std::vector<std::pair<fs::path, std::string>> dirs = {
        {d.empty, "--resume auto: no checkpoint yet, starting a new run in"},
        {d.used, "--resume auto: continuing from the newest checkpoint in"}};
    for (const auto& [dir, expected] : dirs) {
      const std::string args = kTrain + resume + " --checkpoint-dir " + dir.string();
      const CommandResult r = run_parafine(args);
      std::cout << args << " -> exit " << r.exit_code << ": " << r.output;
      EXPECT_NE(r.output.find(expected), std::string::npos) << args << ": " << r.output;
      EXPECT_EQ(r.exit_code, 1) << args << " (expected to stop at the missing --train)";
    }
  }
}

TEST(ResumeAuto, ResumeAloneStillNeedsACheckpointAndBadValuesAreRefused) {
  Dirs d;
  const std::vector<std::pair<std::string, std::string>> refused = {
      {"--resume --checkpoint-dir " + d.empty.string(), "no checkpoint"},
      {"--checkpoint-dir " + d.empty.string() + " --resume", "no checkpoint"},
      {"--resume auto", "--resume needs --checkpoint-dir"},
      {"--resume=maybe --checkpoint-dir " + d.empty.string(), "--resume must be"},
      {"--checkpoint-dir " + d.used.string(), "holds checkpoints of an earlier run"},
  };
  for (const auto& [args, message] : refused) {
    const CommandResult r = run_parafine(kTrain + args);
    std::cout << args << " -> exit " << r.exit_code << ": " << r.output;
    EXPECT_EQ(r.exit_code, 2) << args;
    EXPECT_NE(r.output.find(message), std::string::npos) << args << ": " << r.output;
  }
  const CommandResult alone = run_parafine(kTrain + "--resume --checkpoint-dir " + d.used.string());
  std::cout << "--resume with a checkpoint -> exit " << alone.exit_code << ": " << alone.output;
  EXPECT_EQ(alone.exit_code, 1) << "expected to pass the options and stop at the missing --train";
  EXPECT_NE(alone.output.find("/nonexistent/data.h5"), std::string::npos) << alone.output;
}

}  // namespace
}  // namespace parafine
