// Issue 11: every size option is bounded when the options are parsed, before any data or MPI
// work, through the real binary: an out-of-range value (or one too large for its type) gives
// exit 2 and a message naming the option, the value and the allowed range, in every command
// that has the option. And an allocation failure is reported as running out of memory, with
// what to do, not as a bare "std::bad_alloc".
#include <gtest/gtest.h>

#include <iostream>
#include <string>
#include <vector>

#include "run_binary.hpp"

namespace parafine {
namespace {

struct Case {
  std::string args;                   // after the command's own required options
  std::vector<std::string> expected;  // substrings of the message
};

bool contains(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

// Runs `command` + each case; every one must exit 2 with its expected words, and must not
// reach the data (the paths in `command` do not exist).
void expect_refused(const std::string& command, const std::vector<Case>& cases) {
  for (const auto& c : cases) {
    const CommandResult r = run_parafine(command + " " + c.args);
    std::cout << command << " " << c.args << " -> exit " << r.exit_code << ": " << r.output;
    EXPECT_EQ(r.exit_code, 2) << c.args << ": " << r.output;
    for (const auto& word : c.expected)
      EXPECT_TRUE(contains(r.output, word)) << c.args << ": no '" << word << "' in " << r.output;
    EXPECT_FALSE(contains(r.output, "/nonexistent/")) << c.args << " reached the data first";
  }
}

const std::vector<Case> kShared = {
    {"--threads 100000", {"--threads", "got 100000", "allowed: 0..1024"}},
    {"--threads -1", {"--threads", "got -1", "allowed: 0..1024"}},
    {"--image-size 20000", {"--image-size", "got 20000", "32..4096"}},
    {"--image-size 2e4", {"--image-size", "2e4", "32..4096"}},
};

TEST(CliBounds, TrainRefusesOutOfRangeSizes) {
  std::vector<Case> cases = kShared;
  const std::vector<Case> more = {
      {"--head-units 2e9", {"--head-units", "2e9", "allowed: 1..65536"}},
      {"--head-units 2000000000", {"--head-units", "got 2000000000", "allowed: 1..65536"}},
      {"--batch-size 100000", {"--batch-size", "got 100000", "allowed: 1..65536"}},
      {"--batch-size 1e9", {"--batch-size", "1e9", "allowed: 1..65536"}},
      {"--bucket-mb 1e-9", {"--bucket-mb", "got 1e-09", "allowed:", "one float"}},
      {"--bucket-mb 1e9", {"--bucket-mb", "got 1e+09", "allowed:", "4096"}},
      {"--phase1-epochs 1e6", {"--phase1-epochs", "1e6", "allowed: 0..100000"}},
      {"--phase2-epochs 200000", {"--phase2-epochs", "got 200000", "allowed: 0..100000"}},
      {"--checkpoint-steps 3e9", {"--checkpoint-steps", "3e9", "allowed: 0..2147483647"}},
      {"--checkpoint-steps 3000000000", {"--checkpoint-steps", "allowed: 0..2147483647"}},
      {"--max-steps -5", {"--max-steps", "got -5", "allowed: 0.."}},
      {"--max-steps 1e30", {"--max-steps", "1e30", "allowed: 0.."}},
      {"--cache-mem lots", {"--cache-mem", "lots", "allowed: 0.."}},
      {"--cache-mem 1000T", {"--cache-mem", "1000T", "at most", "this node's memory"}},
      {"--loader-threads 100000", {"--loader-threads", "got 100000", "allowed: 1..1024"}},
  };
  cases.insert(cases.end(), more.begin(), more.end());
  expect_refused("train --train /nonexistent/data.h5", cases);
}

TEST(CliBounds, PredictAndEvaluateRefuseOutOfRangeSizes) {
  std::vector<Case> cases = kShared;
  cases.push_back({"--batch-size 100000", {"--batch-size", "got 100000", "allowed: 1..65536"}});
  cases.push_back({"--batch-size 5e5", {"--batch-size", "5e5", "allowed: 1..65536"}});
  expect_refused("predict --model /nonexistent/m.h5 --input /nonexistent/d.h5", cases);
  expect_refused("evaluate --model /nonexistent/m.h5 --data /nonexistent/d.h5", cases);
}

TEST(CliBounds, DemoRefusesOutOfRangeSizes) {
  std::vector<Case> cases = kShared;
  const std::vector<Case> more = {
      {"--head-units 2000000000", {"--head-units", "got 2000000000", "allowed: 1..65536"}},
      {"--batch-size 100000", {"--batch-size", "got 100000", "allowed: 1..65536"}},
      {"--train-samples 1e9", {"--train-samples", "1e9", "allowed: 1..1000000"}},
      {"--phase1-epochs 1000000", {"--phase1-epochs", "got 1000000", "allowed: 0..100000"}},
      {"--width 100000", {"--width", "got 100000", "allowed: 1..1024"}},
  };
  cases.insert(cases.end(), more.begin(), more.end());
  expect_refused("demo --save /tmp/unused_by_a_refused_run.h5", cases);
}

TEST(CliBounds, ConvertRefusesOutOfRangeSizes) {
  expect_refused("convert --input /nonexistent/images --output /tmp/unused_by_a_refused_run.h5",
                 kShared);
}

// The limit on address space makes a large (but allowed) synthetic dataset fail to allocate.
TEST(CliBounds, AllocationFailureSaysMemoryRanOutAndWhatToDo) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer reserves terabytes of shadow memory, which ulimit -v forbids";
#endif
  const CommandResult r = test_util::run_command(
      "ulimit -v 4000000 && " + std::string(PARAFINE_BINARY) +
      " demo --threads 1 --image-size 4096 --train-samples 1000 --val-samples 1000");
  std::cout << r.output;
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "out of memory")) << r.output;
  EXPECT_TRUE(contains(r.output, "--image-size")) << r.output;
  // What was being allocated, and how large: 1000 images of 4096x4096x3 bytes.
  EXPECT_TRUE(contains(r.output, "the synthetic dataset (1000 images of 4096x4096) (46.9 GiB)"))
      << r.output;
}

// A training step too large for the address space: the message names the step, the batch
// per rank and the image size, and how much the layer outputs and gradients take.
TEST(CliBounds, TrainingStepOutOfMemoryNamesTheBatchAndItsSize) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer reserves terabytes of shadow memory, which ulimit -v forbids";
#endif
  const CommandResult r = test_util::run_command(
      "ulimit -v 3000000 && " + std::string(PARAFINE_BINARY) +
      " demo --threads 1 --image-size 512 --batch-size 16 --train-samples 16 --val-samples 2 "
      "--unfreeze-last 175 --phase1-epochs 0 --phase2-epochs 1");
  std::cout << r.output;
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "out of memory allocating a training step of phase 2"))
      << r.output;
  EXPECT_TRUE(contains(r.output, "16 images of 512x512 per rank")) << r.output;
  EXPECT_TRUE(contains(r.output, "--batch-size")) << r.output;
}

}  // namespace
}  // namespace parafine
