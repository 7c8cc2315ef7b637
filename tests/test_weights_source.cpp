// --weights imagenet|none|FILE resolution: the Keras cache directories in order, and an error
// that says where Keras downloads the file from and where to put it.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "parafine/io/weights_source.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;

namespace parafine {
namespace {

using test_util::TempDir;

TEST(WeightsSource, NoneMeansRandomInit) {
  EXPECT_EQ(resolve_weights("none"), "");
}

TEST(WeightsSource, ImagenetSearchOrder) {
  TempDir t("parafine_ws");
  setenv("HOME", (t.path / "home").c_str(), 1);
  setenv("KERAS_HOME", (t.path / "keras").c_str(), 1);
  unsetenv("PARAFINE_WEIGHTS_DIR");
  t.touch(fs::path("home/.keras/models") / kImagenetNotopFile);
  EXPECT_EQ(resolve_weights("imagenet"),
            (t.path / "home/.keras/models" / kImagenetNotopFile).string());
  t.touch(fs::path("keras/models") / kImagenetNotopFile);
  EXPECT_EQ(resolve_weights("imagenet"), (t.path / "keras/models" / kImagenetNotopFile).string());
  t.touch(fs::path("explicit") / kImagenetNotopFile);
  EXPECT_EQ(resolve_weights("imagenet", (t.path / "explicit").string()),
            (t.path / "explicit" / kImagenetNotopFile).string());
}

TEST(WeightsSource, MissingImagenetSaysWhereToGetIt) {
  TempDir t("parafine_ws");
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
