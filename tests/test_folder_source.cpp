// FolderSource and open_sample_source on generated image folders: bad files (zero bytes, a
// truncated JPEG, random bytes named .jpg, PNG and JPEG headers that lie about their size) are
// skipped and counted under --on-bad-image skip, with the log naming the first few and the total,
// while good-but-unusual files (CMYK JPEG, 16-bit PNG, grey+alpha PNG) are kept; the remaining
// files keep their class folder's label, in the same order for any thread count, so every rank
// shards the same list. Under fail the error names the bad file; a class emptied by skipping is
// an error. open_sample_source opens a directory, an HDF5 dataset, or says what is missing.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "image_writers.hpp"
#include "parafine/data/data_order.hpp"
#include "parafine/data/folder_source.hpp"
#include "parafine/data/h5_dataset_writer.hpp"
#include "parafine/data/image_decode.hpp"
#include "parafine/io/h5_tensors.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;

namespace parafine {
namespace {

using namespace test_images;

using test_util::TempDir;

// A 24x20 RGB JPEG / PNG of one colour (with a little noise).
Bytes colour_jpeg(unsigned char r, unsigned char g, unsigned char b, unsigned seed) {
  return encode_jpeg(flat_rgb(24, 20, r, g, b, 8, seed), 24, 20, 3, JCS_RGB);
}
Bytes colour_png(unsigned char r, unsigned char g, unsigned char b, unsigned seed) {
  return encode_png(flat_rgb(24, 20, r, g, b, 8, seed), 24, 20, PNG_COLOR_TYPE_RGB, 8);
}

// The generated folder: three classes of good files, the good-but-unusual kinds, and bad files.
struct MixedFolder {
  std::string dir;
  std::vector<std::string> good;  // every file that must be kept, in scan order
  std::vector<std::string> bad;   // every file that must be skipped, in scan order
  std::vector<std::string> unusual;
};

MixedFolder make_mixed_folder(const TempDir& tmp) {
  MixedFolder f;
  f.dir = (tmp.path / "mixed").string();
  const Bytes jpeg64 = encode_jpeg(smooth_rgb(64, 64), 64, 64, 3, JCS_RGB);
  const Bytes png64 = encode_png(random_bytes(64 * 64 * 3, 6), 64, 64, PNG_COLOR_TYPE_RGB, 8);
  // Class "a" (label 0): good JPEG/PNG, a zero-byte file, a truncated JPEG, an Adobe CMYK JPEG.
  f.good.push_back(tmp.write("mixed/a/a00.jpg", colour_jpeg(220, 30, 30, 1)));
  f.good.push_back(tmp.write("mixed/a/a01.png", colour_png(220, 30, 30, 2)));
  f.bad.push_back(tmp.write("mixed/a/a02_zero.jpg", {}));
  f.bad.push_back(tmp.write("mixed/a/a03_truncated.jpg",
                            Bytes(jpeg64.begin(), jpeg64.begin() + jpeg64.size() / 2)));
  Bytes cmyk(32 * 32 * 4);  // Adobe (inverted) CMYK red: stored 255 - ink, ink = (0, 255, 255, 0)
  for (size_t i = 0; i < cmyk.size(); i += 4)
    cmyk[i] = 255, cmyk[i + 1] = 0, cmyk[i + 2] = 0, cmyk[i + 3] = 255;
  f.good.push_back(tmp.write("mixed/a/a04_cmyk.jpg", encode_jpeg(cmyk, 32, 32, 4, JCS_CMYK)));
  f.unusual.push_back(f.good.back());
  f.good.push_back(tmp.write("mixed/a/a05.jpg", colour_jpeg(220, 30, 30, 3)));
  // Class "b" (label 1): random bytes named .jpg, grey+alpha PNG, a PNG whose IHDR lies.
  f.bad.push_back(tmp.write("mixed/b/b00_random.jpg", random_bytes(3000, 7)));
  Bytes grey_alpha;
  for (int i = 0; i < 24 * 20; ++i)
    grey_alpha.insert(grey_alpha.end(), {150, static_cast<unsigned char>(i % 256)});
  f.good.push_back(tmp.write("mixed/b/b01_grey_alpha.png",
                             encode_png(grey_alpha, 24, 20, PNG_COLOR_TYPE_GRAY_ALPHA, 8)));
  f.unusual.push_back(f.good.back());
  f.bad.push_back(tmp.write("mixed/b/b02_lying_ihdr.png", png_claiming_size(png64, 4000, 3000)));
  f.good.push_back(tmp.write("mixed/b/b03.jpg", colour_jpeg(30, 220, 30, 4)));
  tmp.write("mixed/b/notes.txt", {'h', 'i'});  // not an image: ignored, not "bad"
  // Class "c" (label 2): a 16-bit PNG, a JPEG whose SOF lies, and a dozen more zero-byte files
  // so that there are more bad files than the log names.
  Bytes rgb16;
  for (int i = 0; i < 24 * 20; ++i) rgb16.insert(rgb16.end(), {0x10, 0xFF, 0x20, 0x00, 0xE0, 0x80});
  f.good.push_back(
      tmp.write("mixed/c/c00_16bit.png", encode_png(rgb16, 24, 20, PNG_COLOR_TYPE_RGB, 16)));
  f.unusual.push_back(f.good.back());
  f.bad.push_back(tmp.write("mixed/c/c01_lying_sof.jpg", jpeg_claiming_size(jpeg64, 4000, 4000)));
  f.good.push_back(tmp.write("mixed/c/c02.png", colour_png(30, 30, 220, 5)));
  for (int k = 10; k < 22; ++k)
    f.bad.push_back(tmp.write("mixed/c/c" + std::to_string(k) + "_zero.png", {}));
  f.good.push_back(tmp.write("mixed/c/c30.jpg", colour_jpeg(30, 30, 220, 6)));
  return f;
}

// Label a file must have: the index of its class folder among the sorted class names.
int label_from_path(const std::string& dir, const std::string& path,
                    const std::vector<std::string>& classes) {
  const std::string cls = fs::path(path).lexically_relative(dir).begin()->string();
  const auto it = std::find(classes.begin(), classes.end(), cls);
  return it == classes.end() ? -1 : static_cast<int>(it - classes.begin());
}

TEST(FolderSource, SkipDropsBadFilesKeepsUnusualOnesAndLabels) {
  TempDir tmp("parafine_folder_source");
  const MixedFolder f = make_mixed_folder(tmp);
  std::ostringstream log;
  const FolderSource src(f.dir, BadImagePolicy::kSkip, 3, &log);
  std::cout << "log:\n" << log.str();

  EXPECT_EQ(src.class_names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(src.classes(), 3);
  std::cout << "kept " << src.size() << " of " << f.good.size() + f.bad.size()
            << " images, skipped " << src.skipped().size() << " (expected " << f.good.size()
            << " and " << f.bad.size() << ")\n";
  ASSERT_EQ(src.size(), static_cast<int>(f.good.size()));
  ASSERT_EQ(src.skipped().size(), f.bad.size());

  // The kept files are exactly the good ones, in scan order, and each keeps its folder's label.
  for (int i = 0; i < src.size(); ++i) {
    EXPECT_EQ(src.sample_name(i), f.good[static_cast<size_t>(i)]);
    EXPECT_EQ(src.label(i), label_from_path(f.dir, src.sample_name(i), src.class_names()))
        << src.sample_name(i);
  }
  for (const std::string& u : f.unusual)
    EXPECT_NE(std::find(f.good.begin(), f.good.end(), u), f.good.end()) << u << " must be kept";
  // The skipped ones are exactly the bad ones, in scan order, each reason naming its file.
  for (size_t k = 0; k < f.bad.size(); ++k) {
    EXPECT_EQ(src.skipped()[k].path, f.bad[k]);
    EXPECT_EQ(src.skipped()[k].reason.rfind(f.bad[k] + ": ", 0), 0u) << src.skipped()[k].reason;
  }
  EXPECT_EQ(src.ignored(), (std::vector<std::string>{f.dir + "/b/notes.txt"}));

  // The log names the first few bad files (not all of them) and gives the total.
  const std::string text = log.str();
  int named = 0;
  for (const std::string& b : f.bad) named += text.find(b + ":") != std::string::npos;
  std::cout << "log names " << named << " of the " << f.bad.size() << " bad files\n";
  for (size_t k = 0; k < 3; ++k)
    EXPECT_NE(text.find(f.bad[k]), std::string::npos) << "log should name " << f.bad[k];
  EXPECT_GE(named, 3);
  EXPECT_LT(named, static_cast<int>(f.bad.size())) << "the log should name only the first few";
  EXPECT_NE(text.find("skipped " + std::to_string(f.bad.size()) + " bad image"), std::string::npos)
      << text;
  // The reasons say what is wrong with each kind.
  const auto reason_of = [&](const std::string& name) {
    for (const BadImage& b : src.skipped())
      if (fs::path(b.path).filename() == name) return b.reason;
    return std::string("(not skipped)");
  };
  for (const auto& [name, says] : std::vector<std::pair<std::string, std::string>>{
           {"a02_zero.jpg", "empty"},
           {"a03_truncated.jpg", "Premature end"},
           {"b00_random.jpg", "unknown format"},
           {"b02_lying_ihdr.png", "compressed pixel data"},
           {"c01_lying_sof.jpg", "4000x4000"}}) {
    std::cout << "  " << reason_of(name) << "\n";
    EXPECT_NE(reason_of(name).find(says), std::string::npos)
        << name << ": expected '" << says << "'";
  }

  // Every kept file loads as RGB in [0,255]; the unusual ones give the colours they encode
  // (flat images, so the centre pixel after resizing is the stored colour).
  const std::vector<std::array<float, 3>> expected_unusual = {
      {255, 0, 0},      // Adobe CMYK ink (0,255,255,0): red
      {150, 150, 150},  // grey 150 with alpha: alpha dropped, grey replicated
      {16, 32, 224}};   // 16-bit 0x10FF 0x2000 0xE080: high bytes
  std::vector<float> px(16 * 16 * 3);
  for (int i = 0; i < src.size(); ++i) {
    src.load(i, 16, px.data());
    const auto [lo, hi] = std::minmax_element(px.begin(), px.end());
    EXPECT_GE(*lo, 0.0f);
    EXPECT_LE(*hi, 255.0f);
    for (size_t u = 0; u < f.unusual.size(); ++u) {
      if (src.sample_name(i) != f.unusual[u]) continue;
      const float* centre = &px[(8 * 16 + 8) * 3];
      float err = 0;
      for (int c = 0; c < 3; ++c)
        err = std::max(err, std::fabs(centre[c] - expected_unusual[u][static_cast<size_t>(c)]));
      std::cout << fs::path(f.unusual[u]).filename().string() << ": centre pixel " << centre[0]
                << " " << centre[1] << " " << centre[2] << ", max channel error " << err << "\n";
      EXPECT_LE(err, u == 0 ? 3.0f : 0.0f) << f.unusual[u];
    }
  }
}

// Every rank builds its own FolderSource; the list (and so the sharding) must not depend on the
// decoding threads or their timing, else ranks would disagree about sample k.
TEST(FolderSource, SameSampleListForAnyThreadCountSoRanksAgree) {
  TempDir tmp("parafine_folder_source");
  const MixedFolder f = make_mixed_folder(tmp);
  const FolderSource one(f.dir, BadImagePolicy::kSkip, 1, nullptr);
  for (int threads : {2, 5}) {
    for (int repeat = 0; repeat < 3; ++repeat) {
      const FolderSource other(f.dir, BadImagePolicy::kSkip, threads, nullptr);
      ASSERT_EQ(other.size(), one.size());
      for (int i = 0; i < one.size(); ++i) {
        EXPECT_EQ(other.sample_name(i), one.sample_name(i));
        EXPECT_EQ(other.label(i), one.label(i));
      }
      ASSERT_EQ(other.skipped().size(), one.skipped().size());
      for (size_t k = 0; k < one.skipped().size(); ++k)
        EXPECT_EQ(other.skipped()[k].path, one.skipped()[k].path);
    }
  }
  // Two ranks sharding the (same) list cover every kept sample exactly once per epoch.
  std::multiset<int> seen;
  for (int rank = 0; rank < 2; ++rank) {
    const ShardPlan plan(one.size(), 4, 2, rank, true, 7, "--train");
    for (const auto& step : plan.local_batches(0)) seen.insert(step.begin(), step.end());
  }
  std::cout << one.size() << " kept samples, " << seen.size() << " seen by 2 ranks in one epoch\n";
  ASSERT_EQ(seen.size(), static_cast<size_t>(one.size()));
  for (int i = 0; i < one.size(); ++i) EXPECT_EQ(seen.count(i), 1u) << i;
}

TEST(FolderSource, FailNamesTheFirstBadFile) {
  TempDir tmp("parafine_folder_source");
  const MixedFolder f = make_mixed_folder(tmp);
  for (int threads : {1, 4}) {
    try {
      const FolderSource src(f.dir, BadImagePolicy::kFail, threads, nullptr);
      ADD_FAILURE() << "--on-bad-image fail accepted a folder with " << f.bad.size()
                    << " bad files";
    } catch (const std::runtime_error& e) {
      const std::string msg = e.what();
      std::cout << "threads " << threads << ": " << msg << "\n";
      EXPECT_NE(msg.find(f.bad[0]), std::string::npos)
          << "expected the first bad file " << f.bad[0];
      EXPECT_NE(msg.find("--on-bad-image"), std::string::npos) << msg;
    }
  }
  // A clean folder passes under fail.
  tmp.write("clean/x/1.jpg", colour_jpeg(10, 200, 10, 1));
  tmp.write("clean/y/1.png", colour_png(200, 10, 10, 2));
  const FolderSource clean((tmp.path / "clean").string(), BadImagePolicy::kFail, 2, nullptr);
  EXPECT_EQ(clean.size(), 2);
  EXPECT_TRUE(clean.skipped().empty());
}

TEST(FolderSource, ClearErrorsForFoldersThatCannotTrain) {
  TempDir tmp("parafine_folder_source");
  struct Case {
    std::string dir, says;
  };
  // A class whose only images are bad: skipping empties it.
  tmp.write("emptied/good/1.jpg", colour_jpeg(10, 200, 10, 1));
  tmp.write("emptied/broken/1.jpg", {});
  tmp.write("emptied/broken/2.jpg", random_bytes(500, 3));
  // A class folder holding no images at all, an empty folder, a folder of images without classes.
  tmp.write("no_images/good/1.jpg", colour_jpeg(10, 200, 10, 1));
  tmp.write("no_images/empty_class/readme.txt", {'x'});
  fs::create_directories(tmp.path / "empty");
  tmp.write("flat/1.jpg", colour_jpeg(10, 200, 10, 1));
  const std::string root = tmp.path.string();
  const std::vector<Case> cases = {
      {root + "/emptied", root + "/emptied/broken: no readable images left after skipping 2"},
      {root + "/no_images", "class folder 'empty_class' has no .jpg/.jpeg/.png images"},
      {root + "/empty", "has no class sub-folders"},
      {root + "/flat", "no class sub-folders"},
      {root + "/missing", "no such directory"},
  };
  for (const Case& c : cases) {
    try {
      const FolderSource src(c.dir, BadImagePolicy::kSkip, 2, nullptr);
      ADD_FAILURE() << c.dir << ": accepted with " << src.size() << " images";
    } catch (const std::runtime_error& e) {
      std::cout << "  " << e.what() << "\n";
      EXPECT_NE(std::string(e.what()).find(c.says), std::string::npos)
          << "expected '" << c.says << "' in: " << e.what();
    }
  }
}

TEST(OpenSampleSource, DirectoryHdf5FileOrMissingPath) {
  TempDir tmp("parafine_folder_source");
  tmp.write("data/blue/1.png", colour_png(20, 20, 230, 1));
  tmp.write("data/blue/2.jpg", colour_jpeg(20, 20, 230, 2));
  tmp.write("data/red/1.jpg", colour_jpeg(230, 20, 20, 3));
  tmp.write("data/red/2.jpg", {});  // skipped
  const std::string dir = (tmp.path / "data").string(), h5 = (tmp.path / "data.h5").string();
  std::ostringstream log;
  SourceOptions so;
  so.log = &log;
  const auto folder = open_sample_source(dir, "--train", so);
  ASSERT_NE(dynamic_cast<const FolderSource*>(folder.get()), nullptr)
      << "a directory opens as a FolderSource";
  EXPECT_EQ(folder->size(), 3);
  EXPECT_EQ(folder->class_names(), (std::vector<std::string>{"blue", "red"}));
  EXPECT_NE(log.str().find(dir + "/red/2.jpg"), std::string::npos) << log.str();

  write_image_dataset(*folder, h5, 16, 2, nullptr);
  const auto file = open_sample_source(h5, "--train", so);
  ASSERT_NE(dynamic_cast<const H5Source*>(file.get()), nullptr) << "a file opens as an H5Source";
  EXPECT_EQ(file->size(), 3);
  EXPECT_EQ(file->class_names(), folder->class_names());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(file->label(i), folder->label(i));
  std::vector<float> a(16 * 16 * 3), b(16 * 16 * 3);
  double worst = 0;
  for (int i = 0; i < 3; ++i) {
    folder->load(i, 16, a.data());
    file->load(i, 16, b.data());
    worst = std::max(worst, test_util::max_abs_diff(a, b));
  }
  std::cout << "folder vs converted HDF5 at 16x16: max |diff| = " << worst
            << " (rounding to uint8)\n";
  EXPECT_LE(worst, 0.5);

  // --on-bad-image fail through the factory.
  SourceOptions fail = so;
  fail.on_bad_image = BadImagePolicy::kFail;
  try {
    open_sample_source(dir, "--train", fail);
    ADD_FAILURE() << "fail policy accepted a zero-byte file";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(dir + "/red/2.jpg"), std::string::npos) << e.what();
  }

  // A missing path names the option and the path; an empty one says the option is required;
  // a file that is not HDF5 names the file.
  const std::string missing = (tmp.path / "nope").string();
  try {
    open_sample_source(missing, "--val", so);
    ADD_FAILURE() << "opened a missing path";
  } catch (const std::runtime_error& e) {
    std::cout << "  " << e.what() << "\n";
    EXPECT_NE(std::string(e.what()).find("--val " + missing + ": no such file"), std::string::npos)
        << e.what();
  }
  try {
    open_sample_source("", "--data", so);
    ADD_FAILURE() << "opened an empty path";
  } catch (const std::invalid_argument& e) {
    std::cout << "  " << e.what() << "\n";
    EXPECT_NE(std::string(e.what()).find("--data is required"), std::string::npos) << e.what();
  }
  const std::string jpg = dir + "/blue/2.jpg";
  try {
    open_sample_source(jpg, "--input", so);
    ADD_FAILURE() << "opened a JPEG as an HDF5 dataset";
  } catch (const std::exception& e) {
    std::cout << "  " << e.what() << "\n";
    EXPECT_NE(std::string(e.what()).find(jpg), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace parafine
