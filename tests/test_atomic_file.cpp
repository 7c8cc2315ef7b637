// AtomicFile's temporary files (issue 11, defect 6): a run killed while writing a checkpoint
// (SIGKILL, or SIGTERM under mpirun, runs no destructor) left a ckpt-*.h5.tmp file of tens of
// MB that nothing removed. The next checkpoint write removes such files when their process is
// gone, and never a live writer's or another host's.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "parafine/core/adam.hpp"
#include "parafine/core/atomic_file.hpp"
#include "parafine/train/checkpoint.hpp"
#include "test_util.hpp"

namespace parafine {
namespace {

namespace fs = std::filesystem;

std::string this_host() {
  char name[256] = {};
  gethostname(name, sizeof name - 1);
  std::string h(name);
  for (char& c : h)
    if (c == '-' || c == '/') c = '_';
  return h;
}

// The id of a process that has ended (a child that exited and was reaped).
pid_t dead_pid() {
  const pid_t child = fork();
  if (child == 0) _exit(0);
  waitpid(child, nullptr, 0);
  return child;
}

TEST(AtomicFile, TemporaryFileIsBesideTheTargetAndNamesHostAndProcess) {
  AtomicFile f("/some/dir/model.h5", "saved model");
  EXPECT_EQ(f.temp_path(),
            "/some/dir/model.h5.tmp-" + this_host() + "-" + std::to_string(getpid()));
}

TEST(AtomicFile, ACheckpointWriteRemovesOnlyTheTemporariesOfDeadProcesses) {
  test_util::TempDir dir;
  const std::string dead =
      dir.touch("ckpt-p1-e0002-s0000000.h5.tmp-" + this_host() + "-" + std::to_string(dead_pid()));
  const std::string mine =
      dir.touch("ckpt-p1-e0002-s0000000.h5.tmp-" + this_host() + "-" + std::to_string(getpid()));
  const std::string other_host = dir.touch("ckpt-p1-e0002-s0000000.h5.tmp-elsewhere-1");
  const std::string not_ours = dir.touch("notes.txt.tmp-" + this_host() + "-1");
  Model model = test_util::keras_initialized_resnet50(NetworkConfig{32, 2, 8, 4, 3}, 1);
  Adam adam(model.trainable_size(), 1e-3);
  save_checkpoint(dir.path.string(), model, &adam, TrainPosition{1, 3, 0, {}}, 3);
  EXPECT_FALSE(fs::exists(dead)) << "the dead writer's temporary file is still there";
  EXPECT_TRUE(fs::exists(mine)) << "a live process's temporary file was removed";
  EXPECT_TRUE(fs::exists(other_host)) << "another host's temporary file was removed";
  EXPECT_TRUE(fs::exists(not_ours)) << "a file that is not a checkpoint's was removed";
  EXPECT_TRUE(fs::exists(dir.file(checkpoint_name(TrainPosition{1, 3, 0, {}}))));
}

}  // namespace
}  // namespace parafine
