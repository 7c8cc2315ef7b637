// The parafine binary under a file size limit (`ulimit -f`, as on a full disk or a quota):
// `demo --save` and `convert` end with a message and exit code 1 (never killed by SIGXFSZ),
// name the file, leave the previous file byte for byte as it was and no temporary file.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "image_writers.hpp"
#include "run_binary.hpp"
#include "test_util.hpp"

namespace parafine {
namespace {

namespace fs = std::filesystem;

std::string bytes_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

bool has_temp_file(const fs::path& dir) {
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(".tmp") != std::string::npos) return true;
  return false;
}

// `args` run with the size of written files limited to `kib` KiB. MPI's start-up writes a few
// MiB of its own (PMIx shared memory), so limits stay above 4 MiB and outputs above them.
CommandResult run_limited(int kib, const std::string& args) {
  return test_util::run_command("bash -c 'ulimit -f " + std::to_string(kib) + "; exec " +
                                PARAFINE_BINARY + " " + args + "'");
}

TEST(CliDiskFull, DemoSaveFailsWithAMessageAndKeepsThePreviousModel) {
  test_util::TempDir dir;
  const std::string model = dir.file("model.h5");
  const std::string args =
      "demo --width 32 --train-samples 16 --val-samples 8 --phase1-epochs 1 "
      "--phase2-epochs 0 --threads 2 --save " +
      model;
  const CommandResult first = run_parafine(args + " --seed 1");
  ASSERT_EQ(first.exit_code, 0) << first.output;
  const std::string good = bytes_of(model);
  const CommandResult r = run_limited(8192, args + " --seed 2");
  std::cout << r.output.substr(r.output.size() > 600 ? r.output.size() - 600 : 0) << "\n";
  EXPECT_EQ(r.exit_code, 1) << "killed by a signal (-1) or wrong code";
  EXPECT_NE(r.output.find("cannot write the saved model " + model), std::string::npos);
  const std::string after = bytes_of(model);
  EXPECT_TRUE(after == good) << "the previous model changed: " << good.size() << " bytes before, "
                             << after.size() << " after";
  EXPECT_FALSE(has_temp_file(dir.path)) << "a temporary file was left in " << dir.path;
}

TEST(CliDiskFull, ConvertFailsWithAMessageAndWritesNothing) {
  test_util::TempDir dir;
  const std::vector<unsigned char> pixels = test_util::random_pixels(64 * 64 * 3, 5);
  for (int i = 0; i < 100; ++i)
    dir.write("photos/" + std::string(i % 2 ? "cat" : "dog") + "/" + std::to_string(i) + ".png",
              test_images::encode_png(pixels, 64, 64, PNG_COLOR_TYPE_RGB, 8));
  const std::string out = dir.file("data.h5");
  const CommandResult r = run_limited(
      8192, "convert --input " + dir.file("photos") + " --output " + out + " --image-size 224");
  std::cout << r.output << "\n";
  EXPECT_EQ(r.exit_code, 1) << "killed by a signal (-1) or wrong code";
  EXPECT_NE(r.output.find("cannot write the converted dataset " + out), std::string::npos);
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(has_temp_file(dir.path)) << "a temporary file was left in " << dir.path;
}

}  // namespace
}  // namespace parafine
