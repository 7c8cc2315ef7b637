// --weights imagenet|none|FILE resolution: the Keras cache directories in order, and an error
// that says where Keras downloads the file from and where to put it.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "parafine/io/weights_source.hpp"

namespace fs = std::filesystem;

namespace parafine {
namespace {

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("parafine_ws_" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
};

void touch(const fs::path& p) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << "x";
}

TEST(WeightsSource, NoneMeansRandomInit) { EXPECT_EQ(resolve_weights("none"), ""); }

TEST(WeightsSource, ImagenetSearchOrder) {
  TempDir t;
  setenv("HOME", (t.path / "home").c_str(), 1);
  setenv("KERAS_HOME", (t.path / "keras").c_str(), 1);
  unsetenv("PARAFINE_WEIGHTS_DIR");
  touch(t.path / "home/.keras/models" / kImagenetNotopFile);
  EXPECT_EQ(resolve_weights("imagenet"), (t.path / "home/.keras/models" / kImagenetNotopFile).string());
  touch(t.path / "keras/models" / kImagenetNotopFile);
  EXPECT_EQ(resolve_weights("imagenet"), (t.path / "keras/models" / kImagenetNotopFile).string());
  touch(t.path / "explicit" / kImagenetNotopFile);
  EXPECT_EQ(resolve_weights("imagenet", (t.path / "explicit").string()),
            (t.path / "explicit" / kImagenetNotopFile).string());
}

TEST(WeightsSource, MissingImagenetSaysWhereToGetIt) {
  TempDir t;
  setenv("HOME", (t.path / "home").c_str(), 1);
  unsetenv("KERAS_HOME");
  unsetenv("PARAFINE_WEIGHTS_DIR");
  try {
    resolve_weights("imagenet");
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    std::cout << msg << "\n";
    EXPECT_NE(msg.find(kImagenetNotopUrl), std::string::npos);
    EXPECT_NE(msg.find((t.path / "home/.keras/models").string()), std::string::npos);
  }
}

TEST(WeightsSource, MissingFileIsNamed) {
  try {
    resolve_weights("/nonexistent/w.h5");
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/w.h5"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace parafine
