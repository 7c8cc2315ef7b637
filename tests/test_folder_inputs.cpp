// Image folders holding entries that are not regular files (issue 11): a FIFO named x.jpg and a
// symlink to /dev/zero named z.jpg are ignored by the scan (listed in `ignored`) and refused by
// the decoder without blocking or reading without bound; files above kMaxImageFileBytes are
// refused before they are read; a --train/--data path that is a FIFO or device is refused. Symlinks
// to regular images stay samples.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <future>

#include "image_writers.hpp"
#include "parafine/data/folder_source.hpp"
#include "parafine/data/image_decode.hpp"
#include "parafine/data/image_folder.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;

namespace parafine {
namespace {

using test_util::TempDir;

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// A small real JPEG.
std::vector<unsigned char> jpeg() {
  return test_images::encode_jpeg(test_util::random_pixels(8 * 8 * 3, 3), 8, 8, 3, JCS_RGB);
}

// Runs f on another thread; when it has not returned after 10 s, records a failure and opens
// `fifo` for writing and closes it, so a reader stuck opening it sees end of file and the test
// ends instead of hanging.
template <class F>
void within_seconds(const std::string& fifo, F f) {
  auto done = std::async(std::launch::async, f);
  if (done.wait_for(std::chrono::seconds(10)) == std::future_status::timeout) {
    ADD_FAILURE() << "still blocked after 10 s (reading the FIFO " << fifo << ")";
    const int w = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
    if (w >= 0) ::close(w);
  }
  done.get();
}

// cats/ holds a.jpg (a JPEG), b.jpg (a symlink to a.jpg), x.jpg (a FIFO), z.jpg (a symlink to
// /dev/zero); dogs/ holds d.jpg.
struct SpecialFolder {
  TempDir tmp;
  std::string dir = tmp.file("folder"), fifo = tmp.file("folder/cats/x.jpg"),
              zero = tmp.file("folder/cats/z.jpg");
  SpecialFolder() {
    tmp.write("folder/cats/a.jpg", jpeg());
    tmp.write("folder/dogs/d.jpg", jpeg());
    fs::create_symlink("a.jpg", tmp.file("folder/cats/b.jpg"));
    if (::mkfifo(fifo.c_str(), 0600) != 0) throw std::runtime_error("mkfifo " + fifo);
    fs::create_symlink("/dev/zero", zero);
  }
};

TEST(FolderInputs, ScanIgnoresFifosAndDevicesKeepsSymlinksToFiles) {
  SpecialFolder f;
  const ImageFolder folder = scan_image_folder(f.dir);
  EXPECT_EQ(folder.files, (std::vector<std::string>{f.dir + "/cats/a.jpg", f.dir + "/cats/b.jpg",
                                                    f.dir + "/dogs/d.jpg"}));
  EXPECT_TRUE(contains(folder.ignored, f.fifo));
  EXPECT_TRUE(contains(folder.ignored, f.zero));
}

TEST(FolderInputs, DecodingAFifoFailsAtOnce) {
  SpecialFolder f;
  within_seconds(f.fifo, [&] {
    const std::string msg =
        test_util::error_message<BadImageError>([&] { decode_image_file(f.fifo); });
    EXPECT_NE(msg.find(f.fifo + ": not a regular file but a FIFO"), std::string::npos) << msg;
  });
}

TEST(FolderInputs, DecodingADeviceIsRefusedNotReadWithoutBound) {
  SpecialFolder f;
  const std::string msg =
      test_util::error_message<BadImageError>([&] { decode_image_file(f.zero); });
  EXPECT_NE(msg.find(f.zero + ": not a regular file but a character device"), std::string::npos)
      << msg;
}

TEST(FolderInputs, FilesAboveTheSizeBoundAreRefusedBeforeReading) {
  constexpr long long kBound = 256LL << 20;  // kMaxImageFileBytes, as the message states it
  TempDir tmp;
  const std::string path = tmp.write("big.jpg", jpeg());
  fs::resize_file(path, static_cast<std::uintmax_t>(kBound) + 1);  // sparse
  const std::string msg = test_util::error_message<BadImageError>([&] { decode_image_file(path); });
  EXPECT_NE(msg.find(path + ": " + std::to_string(kBound + 1) +
                     " bytes; image files above 256 MiB are refused"),
            std::string::npos)
      << msg;
}

TEST(FolderInputs, FolderSourceWithAFifoNeitherHangsNorSkipsIt) {
  SpecialFolder f;
  fs::remove(f.zero);  // the FIFO alone: a decoder reading /dev/zero would exhaust memory
  within_seconds(f.fifo, [&] {
    const FolderSource src(f.dir, BadImagePolicy::kFail, 2, nullptr);
    EXPECT_EQ(src.size(), 3);
    EXPECT_TRUE(contains(src.ignored(), f.fifo));
    EXPECT_TRUE(src.skipped().empty());
  });
}

TEST(FolderInputs, ADataPathThatIsAFifoOrDeviceIsRefusedWithoutOpening) {
  SpecialFolder f;
  within_seconds(f.fifo, [&] {
    const std::string msg = test_util::error_message<std::runtime_error>(
        [&] { open_sample_source(f.fifo, "--train", SourceOptions{}); });
    EXPECT_NE(msg.find("--train " + f.fifo + ": not a regular file or a directory"),
              std::string::npos)
        << msg;
  });
  const std::string msg = test_util::error_message<std::runtime_error>(
      [&] { open_sample_source(f.zero, "--data", SourceOptions{}); });
  EXPECT_NE(msg.find("--data " + f.zero + ": not a regular file or a directory"), std::string::npos)
      << msg;
}

}  // namespace
}  // namespace parafine
