// The pieces of train --validation-split below the CLI: keras_index_split (an HDF5 --train's
// split) is numpy's RandomState(seed).shuffle of the indices with the last int(F * N) held out,
// the same subsets keras_validation_split gives for a file list; SubsetSource maps labels and
// pixels through its indices; FolderSource from an explicit file list keeps empty classes, drops
// undecodable files after the split, and refuses bad labels or a list left without images.
// (test_cli_validation_split compares the whole split with Keras's algorithm in Python.)
#include <gtest/gtest.h>

#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "image_writers.hpp"
#include "parafine/core/numpy_random_state.hpp"
#include "parafine/data/folder_source.hpp"
#include "parafine/data/subset_source.hpp"
#include "parafine/data/validation_split.hpp"
#include "test_util.hpp"

namespace parafine {
namespace {

using namespace test_images;

TEST(KerasIndexSplit, IsTheFileSplitOnIndices) {
  for (const int n : {2, 13, 100, 1001})
    for (const double fraction : {0.1, 0.2, 0.5, 0.77})
      for (const std::int64_t seed : {0LL, 42LL, 4294967295LL}) {
        if (static_cast<int>(fraction * n) == 0) continue;
        std::vector<std::string> files;
        std::vector<int> labels;
        for (int i = 0; i < n; ++i) {
          files.push_back(std::to_string(i));
          labels.push_back(i % 3);
        }
        const ValidationSplit by_files = keras_validation_split(files, labels, fraction, seed);
        const IndexSplit by_index = keras_index_split(n, fraction, seed);
        ASSERT_EQ(by_index.training.size(), by_files.training.size());
        ASSERT_EQ(by_index.validation.size(), by_files.validation.size());
        for (std::size_t k = 0; k < by_files.training.size(); ++k)
          EXPECT_EQ(std::to_string(by_index.training[k]), by_files.training[k].path);
        for (std::size_t k = 0; k < by_files.validation.size(); ++k)
          EXPECT_EQ(std::to_string(by_index.validation[k]), by_files.validation[k].path);
      }
  // The permutation itself: numpy's shuffle of range(n), the last int(0.25 * 20) = 5 held out.
  NumpyRandomState rng(7);
  const std::vector<std::size_t> perm = rng.shuffled_indices(20);
  const IndexSplit s = keras_index_split(20, 0.25, 7);
  ASSERT_EQ(s.validation.size(), 5u);
  for (int k = 0; k < 5; ++k) EXPECT_EQ(static_cast<std::size_t>(s.validation[k]), perm[15 + k]);
}

TEST(KerasIndexSplit, RefusesWhatKerasRefuses) {
  for (const double f : {0.0, 1.0, -0.5, 2.0, std::nan("")})
    EXPECT_THROW(keras_index_split(10, f, 1), std::invalid_argument) << f;
  EXPECT_THROW(keras_index_split(10, 0.05, 1), std::invalid_argument);  // int(0.5) = 0
  EXPECT_THROW(keras_index_split(0, 0.5, 1), std::invalid_argument);
  EXPECT_THROW(keras_index_split(10, 0.5, -1), std::invalid_argument);
  EXPECT_THROW(keras_index_split(10, 0.5, 4294967296LL), std::invalid_argument);
  try {
    keras_index_split(10, 0.05, 1);
  } catch (const std::invalid_argument& e) {
    std::cout << "measured: " << e.what() << "\n";
    EXPECT_NE(std::string(e.what()).find("--validation-split"), std::string::npos);
  }
}

TEST(SubsetSource, MapsLabelsAndPixelsThroughItsIndices) {
  // 4 images of 1x1 pixel: pixel value 10 * i, label i % 2.
  std::vector<unsigned char> pixels;
  for (int i = 0; i < 4; ++i)
    for (int c = 0; c < 3; ++c) pixels.push_back(static_cast<unsigned char>(10 * i));
  auto whole = std::make_shared<InMemorySource>(4, 1, 1, pixels, std::vector<int>{0, 1, 0, 1}, 2);
  const SubsetSource subset(whole, {3, 0});
  EXPECT_EQ(subset.size(), 2);
  EXPECT_EQ(subset.classes(), 2);
  EXPECT_EQ(subset.label(0), 1);
  EXPECT_EQ(subset.label(1), 0);
  EXPECT_EQ(subset.sample_name(0), "3");
  float out[3];
  subset.load(0, 1, out);
  EXPECT_EQ(out[0], 30.0f);
  subset.load(1, 1, out);
  EXPECT_EQ(out[0], 0.0f);
  EXPECT_THROW(subset.label(2), std::out_of_range);
  EXPECT_THROW(SubsetSource(whole, {4}), std::out_of_range);
}

TEST(FolderSourceFromList, KeepsEmptyClassesAndDropsBadFilesAfterTheList) {
  test_util::TempDir tmp;
  const Bytes png = encode_png(flat_rgb(5, 4, 200, 10, 10, 0, 1), 5, 4, PNG_COLOR_TYPE_RGB, 8);
  const std::string a = tmp.write("x/a/1.png", png), b = tmp.write("x/c/2.PNG", png);
  const std::string bad = tmp.write("x/a/bad.bmp", Bytes{'B', 'M', 0, 0, 0});
  std::ostringstream log;
  const FolderSource s("the list", {b, bad, a}, {2, 0, 0}, {"a", "b", "c"}, BadImagePolicy::kSkip,
                       2, &log);
  std::cout << "measured log: " << log.str();
  EXPECT_EQ(s.size(), 2);
  EXPECT_EQ(s.classes(), 3);  // "b" has no file here, and stays a class
  EXPECT_EQ(s.sample_name(0), b);
  EXPECT_EQ(s.label(0), 2);
  EXPECT_EQ(s.label(1), 0);
  ASSERT_EQ(s.skipped().size(), 1u);
  EXPECT_EQ(s.skipped()[0].path, bad);
  EXPECT_NE(log.str().find("the list: skipped 1 bad image(s) of 3"), std::string::npos);
  EXPECT_THROW(FolderSource("l", {bad}, {0}, {"a"}, BadImagePolicy::kFail, 1, nullptr),
               std::runtime_error);
  EXPECT_THROW(FolderSource("l", {bad}, {0}, {"a"}, BadImagePolicy::kSkip, 1, nullptr),
               std::runtime_error);  // nothing left
  EXPECT_THROW(FolderSource("l", {a}, {1}, {"a"}, BadImagePolicy::kSkip, 1, nullptr),
               std::invalid_argument);  // label outside the classes
  EXPECT_THROW(FolderSource("l", {a}, {}, {"a"}, BadImagePolicy::kSkip, 1, nullptr),
               std::invalid_argument);
}

}  // namespace
}  // namespace parafine
