// scan_image_folder: Keras' class and file order on the real seed data and on generated trees,
// ignored files, and an actionable error (naming the path) for each way a folder can be wrong.
// The scan only looks at names, so the generated "images" are placeholder bytes.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>

#include "parafine/data/image_folder.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;

namespace parafine {
namespace {

using test_util::TempDir;

void expect_real_split(const std::string& dir, int per_class) {
  const ImageFolder f = scan_image_folder(dir);
  ASSERT_EQ(f.class_names, (std::vector<std::string>{"cats", "dogs"}));
  ASSERT_EQ(f.files.size(), f.labels.size());
  std::map<int, int> counts;
  for (int l : f.labels) counts[l]++;
  std::cout << dir << ": cats " << counts[0] << ", dogs " << counts[1] << ", total "
            << f.files.size() << ", ignored " << f.ignored.size() << "\n";
  EXPECT_EQ(counts[0], per_class);
  EXPECT_EQ(counts[1], per_class);
  EXPECT_TRUE(std::is_sorted(f.labels.begin(), f.labels.end()));
  for (size_t i = 0; i < f.files.size(); ++i)
    EXPECT_EQ(f.files[i].rfind(dir + "/" + f.class_names[f.labels[i]] + "/", 0), 0u) << f.files[i];
  // Byte order within a class, as Python's sorted(): cat.1.jpg, cat.10.jpg, cat.100.jpg, ...
  std::vector<std::string> expected;
  for (const char* cls : {"cats", "dogs"})
    for (const std::string& p : test_util::sorted_class_files(dir, cls)) expected.push_back(p);
  EXPECT_EQ(f.files, expected);
  std::cout << "  first files: " << f.files[0] << ", " << f.files[1] << ", " << f.files[2] << "\n";
}

TEST(ImageFolder, RealSeedData) {
  const std::string root = PARAFINE_CATS_DOGS_DIR;
  if (!fs::exists(root)) GTEST_SKIP() << root << " not present";
  expect_real_split(root + "/train", 500);
  expect_real_split(root + "/val", 200);
}

TEST(ImageFolder, KerasOrderIgnoredAndHiddenFiles) {
  TempDir t("parafine_folder");
  const std::string d = t.path.string();
  // Classes in byte order: "B" < "a" < "b" (upper case first, as Python sorts).
  t.touch("b/one.png");
  t.touch("B/UPPER.JPG");
  t.touch("B/two.jpeg");
  // Keras walks directories sorted by path, files sorted within each: a.png, then a/, then "a b/"
  // (plain path order would put "a b/q.png" first, since ' ' < '.' < '/').
  t.touch("a/a b/q.png");
  t.touch("a/a/x.png");
  t.touch("a/a.png");
  t.touch("a/notes.txt");
  t.touch("a/picture.bmp");
  t.touch("a/.DS_Store");
  t.touch("a/.hidden/secret.jpg");
  t.touch(".git/HEAD.png");
  t.touch("README.md");
  const ImageFolder f = scan_image_folder(d);
  EXPECT_EQ(f.class_names, (std::vector<std::string>{"B", "a", "b"}));
  EXPECT_EQ(f.files,
            (std::vector<std::string>{d + "/B/UPPER.JPG", d + "/B/two.jpeg", d + "/a/a.png",
                                      d + "/a/a/x.png", d + "/a/a b/q.png", d + "/b/one.png"}));
  EXPECT_EQ(f.labels, (std::vector<int>{0, 0, 1, 1, 1, 2}));
  std::vector<std::string> ignored = f.ignored;
  std::sort(ignored.begin(), ignored.end());
  EXPECT_EQ(ignored,
            (std::vector<std::string>{d + "/README.md", d + "/a/notes.txt", d + "/a/picture.bmp"}));
  for (const auto& p : f.ignored) std::cout << "  ignored " << p << "\n";
}

TEST(ImageFolder, TrailingSlashGivesTheSamePaths) {
  TempDir t("parafine_folder");
  t.touch("x/1.jpg");
  t.touch("y/2.png");
  const ImageFolder f = scan_image_folder(t.path.string() + "/");
  ASSERT_EQ(f.files.size(), 2u);
  EXPECT_EQ(f.files[0], t.path.string() + "/x/1.jpg");
}

// Expects std::runtime_error whose message contains every string in `parts`.
void expect_error(const std::string& dir, std::vector<std::string> parts) {
  try {
    scan_image_folder(dir);
    ADD_FAILURE() << dir << " was accepted";
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    std::cout << "  " << msg << "\n";
    for (const auto& p : parts)
      EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

TEST(ImageFolder, ErrorsNameThePathAndTheFix) {
  TempDir t("parafine_folder");
  const std::string d = t.path.string();
  expect_error(d + "/missing", {d + "/missing", "no such directory", "one sub-folder per class"});
  const std::string file = t.touch("file.txt");
  expect_error(file, {file, "not a directory"});
  t.touch("flat/1.jpg");
  t.touch("flat/2.png");
  expect_error(d + "/flat", {d + "/flat", "2 images but no class sub-folders", "move the images"});
  fs::create_directories(t.path / "empty");
  expect_error(d + "/empty", {d + "/empty", "no class sub-folders"});
  t.touch("hidden_only/.cache/1.jpg");
  expect_error(d + "/hidden_only", {d + "/hidden_only", "no class sub-folders"});
  t.touch("one_empty/cats/1.jpg");
  t.touch("one_empty/dogs/readme.txt");
  expect_error(d + "/one_empty",
               {d + "/one_empty/dogs", "class folder 'dogs' has no", "remove the folder"});
  t.touch("no_images/cats/a.txt");
  fs::create_directories(t.path / "no_images/dogs");
  expect_error(
      d + "/no_images",
      {d + "/no_images", "no .jpg/.jpeg/.png images in any of its 2 class folders", "cats, dogs"});
}

}  // namespace
}  // namespace parafine
