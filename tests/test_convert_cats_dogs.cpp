// The real photos decode, resize and convert: write_image_dataset (what `parafine convert` runs)
// packs the 400 validation JPEGs of ../shared/data/cats_dogs (read in place) at 64x64 into a
// temporary HDF5 file; the file has class_names {cats, dogs}, 200/200 labels in folder order,
// and every stored image equals decoding its file directly + resize_bilinear + rounding (within
// 0.5 per pixel). The training split's 500/500 class counts are checked through FolderSource.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "parafine/data/folder_source.hpp"
#include "parafine/data/h5_dataset.hpp"
#include "parafine/data/h5_dataset_writer.hpp"
#include "parafine/data/image_decode.hpp"
#include "parafine/data/sample_source.hpp"
#include "parafine/io/h5_tensors.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;

namespace parafine {
namespace {

using test_util::seconds_since;
using test_util::sorted_class_files;
using test_util::TempDir;

const fs::path kRoot = PARAFINE_CATS_DOGS_DIR;

TEST(ConvertCatsDogs, ValidationPhotosConvertToWhatDirectDecodingGives) {
  if (!fs::exists(kRoot)) GTEST_SKIP() << kRoot << " not present";
  const std::string val = (kRoot / "val").string();
  const TempDir tmp("parafine_convert_cats_dogs");
  const std::string out = tmp.file("val.h5");
  const int S = 64;

  auto t0 = std::chrono::steady_clock::now();
  std::ostringstream log;
  const FolderSource src(val, BadImagePolicy::kFail, 2, &log);
  std::cout << val << ": " << src.size() << " images checked in " << seconds_since(t0)
            << " s (2 threads)\n";
  ASSERT_EQ(src.class_names(), (std::vector<std::string>{"cats", "dogs"}));
  EXPECT_TRUE(src.skipped().empty());
  EXPECT_TRUE(src.ignored().empty())
      << src.ignored().size() << " ignored, first " << src.ignored()[0];
  t0 = std::chrono::steady_clock::now();
  write_image_dataset(src, out, S, 2, &log);
  std::cout << "converted to " << S << "x" << S << " in " << seconds_since(t0) << " s; log:\n"
            << log.str();

  // The file as stored: uint8 [400,64,64,3], int64 labels, class_names.
  {
    const H5File f(out, H5File::Mode::kRead);
    EXPECT_EQ(f.dataset_shape("/images"), (std::vector<hsize_t>{400, S, S, 3}));
    EXPECT_EQ(f.dataset_type_name("/images"), "uint8");
    EXPECT_EQ(f.dataset_type_name("/labels"), "int64");
    EXPECT_EQ(f.read_string_list_attribute("/", "class_names"),
              (std::vector<std::string>{"cats", "dogs"}));
  }
  const H5ImageDataset ds(out);
  ASSERT_EQ(ds.size(), 400);
  EXPECT_EQ(ds.class_names(), (std::vector<std::string>{"cats", "dogs"}));
  EXPECT_EQ(ds.classes(), 2);
  const int cats = static_cast<int>(std::count(ds.labels().begin(), ds.labels().end(), 0));
  const int dogs = static_cast<int>(std::count(ds.labels().begin(), ds.labels().end(), 1));
  std::cout << "labels: cats " << cats << ", dogs " << dogs << "\n";
  EXPECT_EQ(cats, 200);
  EXPECT_EQ(dogs, 200);

  // Sample i is the i-th file in Keras order (cats sorted by name, then dogs), label = folder.
  std::vector<std::string> files = sorted_class_files(val, "cats");
  const std::vector<std::string> dog_files = sorted_class_files(val, "dogs");
  files.insert(files.end(), dog_files.begin(), dog_files.end());
  ASSERT_EQ(files.size(), 400u);
  for (int i = 0; i < 400; ++i) {
    EXPECT_EQ(src.sample_name(i), files[static_cast<size_t>(i)]);
    EXPECT_EQ(ds.labels()[static_cast<size_t>(i)], i < 200 ? 0 : 1)
        << files[static_cast<size_t>(i)];
  }

  // Every stored image against decode + resize_bilinear of its file, read back through H5Source.
  const H5Source stored(out);
  std::vector<float> want(static_cast<size_t>(S) * S * 3), got(want.size());
  double worst = 0;
  long long differing = 0, total = 0;
  int min_w = 1 << 30, max_w = 0, min_h = 1 << 30, max_h = 0;
  t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 400; ++i) {
    const RgbImage img = decode_image_file(files[static_cast<size_t>(i)]);
    min_w = std::min(min_w, img.width), max_w = std::max(max_w, img.width);
    min_h = std::min(min_h, img.height), max_h = std::max(max_h, img.height);
    resize_bilinear(img.pixels.data(), img.height, img.width, want.data(), S, S);
    stored.load(i, S, got.data());
    double image_worst = 0;
    for (size_t k = 0; k < want.size(); ++k) {
      const double d = std::fabs(static_cast<double>(got[k]) - want[k]);
      image_worst = std::max(image_worst, d);
      differing += got[k] != std::round(want[k]);
    }
    total += static_cast<long long>(want.size());
    EXPECT_LE(image_worst, 0.5) << files[static_cast<size_t>(i)];
    worst = std::max(worst, image_worst);
  }
  std::cout << "source photos " << min_w << ".." << max_w << " wide, " << min_h << ".." << max_h
            << " high\n"
            << "stored vs decode+resize_bilinear: max |diff| = " << worst << " over " << total
            << " values; stored != round(resized) in " << differing
            << " (ties at .5 may round either way) [" << seconds_since(t0) << " s]\n";
  EXPECT_LE(worst, 0.5);
  EXPECT_GT(max_w, min_w) << "the photos should be of many sizes";
}

TEST(ConvertCatsDogs, TrainingSplitHas500CatsAnd500Dogs) {
  if (!fs::exists(kRoot)) GTEST_SKIP() << kRoot << " not present";
  const auto t0 = std::chrono::steady_clock::now();
  const FolderSource src((kRoot / "train").string(), BadImagePolicy::kFail, 2, nullptr);
  int counts[2] = {0, 0};
  for (int i = 0; i < src.size(); ++i) {
    ASSERT_GE(src.label(i), 0);
    ASSERT_LT(src.label(i), 2);
    ++counts[src.label(i)];
    const std::string expected_dir =
        (kRoot / "train" / src.class_names()[static_cast<size_t>(src.label(i))]).string() + "/";
    EXPECT_EQ(src.sample_name(i).rfind(expected_dir, 0), 0u) << src.sample_name(i);
  }
  std::cout << "train: " << src.size() << " images (cats " << counts[0] << ", dogs " << counts[1]
            << "), " << src.skipped().size() << " skipped, decoded and checked in "
            << seconds_since(t0) << " s (2 threads)\n";
  EXPECT_EQ(src.class_names(), (std::vector<std::string>{"cats", "dogs"}));
  EXPECT_EQ(src.size(), 1000);
  EXPECT_EQ(counts[0], 500);
  EXPECT_EQ(counts[1], 500);
  EXPECT_TRUE(src.skipped().empty());
}

}  // namespace
}  // namespace parafine
