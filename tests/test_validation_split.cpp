// keras_index_directory + keras_validation_split against Keras's algorithm in Python
// (tests/reference/keras_validation_split.py split, numpy's RandomState) on a folder tree with
// odd names, non-image files, hidden files and folders, nested and symlinked folders: both
// subsets, file for file and in order, for several seeds and fractions; and the errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "parafine/data/validation_split.hpp"
#include "test_util.hpp"

namespace parafine {
namespace {

namespace fs = std::filesystem;

void touch(const fs::path& p) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << "x";
}

// The tree; returns its root. Classes: "Zebra" (sorts first), "a cats", "b_dogs", "empty" (no
// image); ".hidden_class" and the top-level "top.jpg" are not Keras's.
fs::path make_tree() {
  char tmpl[] = "/tmp/parafine_split_XXXXXX";
  const fs::path root = mkdtemp(tmpl);
  touch(root / "top.jpg");
  touch(root / ".hidden_class" / "h.jpg");
  touch(root / "empty" / "readme.txt");
  for (int i = 0; i < 23; ++i) touch(root / "Zebra" / ("z" + std::to_string(i) + ".png"));
  const fs::path cats = root / "a cats";
  for (int i = 0; i < 37; ++i) touch(cats / ("img_" + std::to_string(i) + ".jpg"));
  for (const char* name :
       {"10.jpg", "2.JPG", "x.jpeg", "y.PnG", "z.bmp", "w.gif", "notes.txt", ".hidden.jpg",
        "a b.png", "\xc3\xbcn\xc3\xaf.jpg", "photo.jpg.txt", "noext", "sub.jpg", "sub-dir.jpg"})
    touch(cats / name);
  touch(cats / "sub" / "a.jpg");
  touch(cats / "sub" / "deeper" / "c.png");
  touch(cats / "sub-dir" / "b.jpg");
  touch(cats / "sub dir" / "b.jpg");
  touch(cats / ".hiddendir" / "d.jpg");
  fs::create_directory_symlink(cats / "sub", cats / "link_to_sub");  // not followed
  fs::create_symlink(cats / "10.jpg", cats / "link.jpg");            // a file: counted
  fs::create_symlink(cats / "missing.jpg", cats / "dangling.jpg");   // a non-directory: counted
  const fs::path dogs = root / "b_dogs";
  for (int i = 0; i < 31; ++i)
    touch(dogs / ("d" + std::to_string(i % 7) + "/" + std::to_string(i) + ".jpeg"));
  fs::create_directory_symlink(cats, root / "c_link_class");  // a class (isdir follows links)
  return root;
}

// Python's split as the same text the C++ split is printed to.
std::string python_split(const fs::path& root, const std::string& fraction, long long seed) {
  const std::string cmd = std::string(PARAFINE_REFERENCE_PYTHON) + " " + PARAFINE_SPLIT_REFERENCE +
                          " split '" + root.string() + "' " + fraction + " " + std::to_string(seed);
  const test_util::CommandResult reference = test_util::run_command(cmd);
  EXPECT_EQ(reference.exit_code, 0) << cmd << "\n" << reference.output;
  return reference.output;
}

std::string print_split(const ValidationSplit& s) {
  std::ostringstream out;
  for (const auto& f : s.training) out << "train\t" << f.label << "\t" << f.path << "\n";
  for (const auto& f : s.validation) out << "val\t" << f.label << "\t" << f.path << "\n";
  return out.str();
}

class ValidationSplitTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { root_ = make_tree(); }
  static void TearDownTestSuite() { fs::remove_all(root_); }
  static fs::path root_;
};
fs::path ValidationSplitTest::root_;

TEST_F(ValidationSplitTest, ListsTheFolderAsKerasDoes) {
  const KerasFolderIndex index = keras_index_directory(root_.string());
  const std::vector<std::string> classes = {"Zebra", "a cats", "b_dogs", "c_link_class", "empty"};
  EXPECT_EQ(index.class_names, classes);
  // "a cats": 37 img_*.jpg + 10 2.JPG x.jpeg y.PnG z.bmp w.gif .hidden.jpg "a b.png" ünï sub.jpg
  // sub-dir.jpg link.jpg dangling.jpg = 50 top-level, then the walk's directories sorted by path:
  // ".hiddendir" < "sub" < "sub dir" < "sub-dir" < "sub/deeper" (a prefix first, ' ' < '-' < '/'),
  // so "sub"'s files and "sub/deeper"'s are not adjacent.
  std::vector<std::string> cats;
  for (std::size_t i = 0; i < index.files.size(); ++i)
    if (index.labels[i] == 1) cats.push_back(index.files[i]);
  ASSERT_EQ(cats.size(), 55u);
  const std::vector<std::string> nested(cats.end() - 5, cats.end());
  const std::vector<std::string> expected_nested = {"a cats/.hiddendir/d.jpg", "a cats/sub/a.jpg",
                                                    "a cats/sub dir/b.jpg", "a cats/sub-dir/b.jpg",
                                                    "a cats/sub/deeper/c.png"};
  EXPECT_EQ(nested, expected_nested);
  EXPECT_EQ(cats.front(), "a cats/.hidden.jpg");
  EXPECT_EQ(index.files.size(), 23u + 55u + 31u + 55u);
  std::printf("listed %zu files in %zu classes\n", index.files.size(), index.class_names.size());
}

TEST_F(ValidationSplitTest, BothSubsetsMatchKerasForSeveralSeedsAndFractions) {
  const KerasFolderIndex index = keras_index_directory(root_.string());
  for (long long seed : {0LL, 1LL, 42LL, 1337LL, 4294967295LL}) {
    for (const char* fraction : {"0.1", "0.2", "0.25", "0.5", "0.9"}) {
      const ValidationSplit split =
          keras_validation_split(index.files, index.labels, std::atof(fraction), seed);
      const std::string expected = python_split(root_, fraction, seed);
      const std::string got = print_split(split);
      EXPECT_EQ(got, expected) << "seed " << seed << " fraction " << fraction;
      std::printf("seed %lld fraction %s: %zu training, %zu validation, %s Keras\n", seed, fraction,
                  split.training.size(), split.validation.size(),
                  got == expected ? "same as" : "DIFFERENT from");
    }
  }
}

TEST(ValidationSplit, RejectsFractionsOutsideZeroOneAndEmptySubsets) {
  const std::vector<std::string> files = {"a/1.jpg", "a/2.jpg", "b/3.jpg"};
  const std::vector<int> labels = {0, 0, 1};
  for (double f : {0.0, 1.0, -0.1, 1.5, std::nan("")}) {
    try {
      keras_validation_split(files, labels, f, 1);
      ADD_FAILURE() << "fraction " << f << " accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("--validation-split"), std::string::npos) << e.what();
    }
  }
  // int(0.2 * 3) = 0: an empty validation subset.
  try {
    keras_validation_split(files, labels, 0.2, 1);
    ADD_FAILURE() << "empty validation subset accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("--validation-split"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("validation subset empty"), std::string::npos);
  }
  EXPECT_THROW(keras_validation_split(files, labels, 0.5, -1), std::invalid_argument);
  EXPECT_THROW(keras_validation_split(files, {0, 1}, 0.5, 1), std::invalid_argument);
  const ValidationSplit s = keras_validation_split(files, labels, 0.34, 1);  // int(1.02) = 1
  EXPECT_EQ(s.training.size(), 2u);
  EXPECT_EQ(s.validation.size(), 1u);
}

TEST(ValidationSplit, MissingFolderIsNamed) {
  try {
    keras_index_directory("/nonexistent/parafine_split");
    ADD_FAILURE() << "missing folder accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/parafine_split"), std::string::npos);
  }
}

}  // namespace
}  // namespace parafine
