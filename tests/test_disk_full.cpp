// Full disks never corrupt output (issue 11, defect 1): with the file size limited
// (RLIMIT_FSIZE, SIGXFSZ ignored, so a write past the limit fails with EFBIG as on a full
// disk; no mount privileges needed), saving a model, writing a checkpoint and converting a
// dataset each fail with a message naming the file and the space it needed, leave the
// previous file byte for byte as it was, and leave no temporary file behind. Limits are set
// both far below the file's size (raw data fails) and just below it (only HDF5's final
// metadata and chunk flush fail: the case that used to report success).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "parafine/data/h5_dataset.hpp"
#include "parafine/data/h5_dataset_writer.hpp"
#include "parafine/data/synthetic_data.hpp"
#include "parafine/io/model_file.hpp"
#include "parafine/train/checkpoint.hpp"
#include "test_util.hpp"

namespace parafine {
namespace {

namespace fs = std::filesystem;

// Limits the size of files this process writes, for the lifetime of the object.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    getrlimit(RLIMIT_FSIZE, &saved_);
    old_handler_ = signal(SIGXFSZ, SIG_IGN);
    rlimit r = saved_;
    r.rlim_cur = bytes;
    if (setrlimit(RLIMIT_FSIZE, &r) != 0) throw std::runtime_error("setrlimit failed");
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &saved_);
    signal(SIGXFSZ, old_handler_);
  }

 private:
  rlimit saved_{};
  sighandler_t old_handler_;
};

using test_util::bytes_of;

std::vector<std::string> temp_files_in(const fs::path& dir) {
  std::vector<std::string> found;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(".tmp") != std::string::npos)
      found.push_back(e.path().string());
  return found;
}

// Runs `write` under `limit` bytes and checks the failure: a runtime_error naming `target`
// and the space it needed, `target` unchanged (`before` its old bytes), no temporary file.
template <typename Write>
void expect_clean_failure(rlim_t limit, const std::string& target, const std::string& before,
                          Write&& write) {
  std::string message;
  {
    FileSizeLimit cap(limit);
    try {
      write();
    } catch (const std::runtime_error& e) {
      message = e.what();
    }
  }
  std::cout << "limit " << limit << " B: " << (message.empty() ? "no error" : message) << "\n";
  ASSERT_FALSE(message.empty()) << "writing " << target << " under a " << limit
                                << " B file size limit reported success";
  EXPECT_NE(message.find(target), std::string::npos) << message;
  EXPECT_NE(message.find("needs about"), std::string::npos) << message;
  EXPECT_NE(message.find("left as it was"), std::string::npos) << message;
  EXPECT_EQ(bytes_of(target), before) << target << " changed although the write failed";
  EXPECT_TRUE(temp_files_in(fs::path(target).parent_path()).empty())
      << "a temporary file was left beside " << target;
}

NetworkConfig small_net() {
  NetworkConfig c;
  c.image_size = 32;
  c.width = 8;
  c.classes = 3;
  c.head_units = 16;
  return c;
}

TEST(DiskFull, SavedModelFailsCleanlyAndKeepsThePreviousFile) {
  test_util::TempDir dir;
  const std::string path = dir.file("model.h5");
  save_keras_model(test_util::keras_initialized_resnet50(small_net(), 1), path, {"a", "b", "c"});
  const std::string good = bytes_of(path);
  ASSERT_GT(good.size(), 4096u);
  const Model other = test_util::keras_initialized_resnet50(small_net(), 2);
  for (rlim_t limit : {rlim_t(good.size() / 2), rlim_t(good.size() - 1024)})
    expect_clean_failure(limit, path, good, [&] {
      save_keras_model(other, path, {"a", "b", "c"});
    });
  // Without a limit the same save succeeds and replaces the file.
  save_keras_model(other, path, {"a", "b", "c"});
  EXPECT_NE(bytes_of(path), good);
}

TEST(DiskFull, CheckpointFailsCleanlyAndTheNewestValidOneStays) {
  test_util::TempDir dir;
  Model model = test_util::keras_initialized_resnet50(small_net(), 1);
  Adam adam(model.trainable_size(), 1e-3);
  TrainPosition first{1, 2, 0, {}};
  save_checkpoint(dir.path.string(), model, &adam, first, 3);
  const std::string first_path = dir.file(checkpoint_name(first));
  const std::string good = bytes_of(first_path);
  ASSERT_FALSE(good.empty());
  // The failed checkpoint's own target never appears; the earlier one is untouched.
  TrainPosition second{1, 3, 0, {}};
  const std::string second_path = dir.file(checkpoint_name(second));
  for (rlim_t limit : {rlim_t(good.size() / 2), rlim_t(good.size() - 1024)}) {
    expect_clean_failure(limit, second_path, "",
                         [&] { save_checkpoint(dir.path.string(), model, &adam, second, 3); });
    EXPECT_FALSE(fs::exists(second_path));
    EXPECT_EQ(bytes_of(first_path), good);
  }
  std::ostringstream log;
  const Checkpoint latest = load_latest_checkpoint(dir.path.string(), model, log);
  EXPECT_EQ(latest.path, first_path);
}

TEST(DiskFull, ConvertFailsCleanlyAndKeepsThePreviousDataset) {
  test_util::TempDir dir;
  const std::string path = dir.file("data.h5");
  const InMemorySource source = make_synthetic_source(48, 64, 3, 7);
  write_image_dataset(make_synthetic_source(8, 64, 3, 1), path, 64, 2, nullptr);
  const std::string good = bytes_of(path);
  const std::uint64_t full = 48ull * 64 * 64 * 3;  // the images alone
  for (rlim_t limit : {rlim_t(full / 2), rlim_t(full - 2048)})
    expect_clean_failure(limit, path, good,
                         [&] { write_image_dataset(source, path, 64, 2, nullptr); });
  // Without a limit it converts, and every image is there (none left as zeros).
  write_image_dataset(source, path, 64, 2, nullptr);
  const H5ImageDataset written(path);
  EXPECT_EQ(written.size(), 48);
  for (int i = 0; i < 48; ++i) {
    const Tensor image = test_util::read_h5_batch(path, i, i + 1, 64, Preprocess::kNone);
    double sum = 0;
    for (std::size_t k = 0; k < image.numel(); ++k) sum += image[k];
    EXPECT_GT(sum, 0.0) << "image " << i << " is all zeros";
  }
}

}  // namespace
}  // namespace parafine
