// An in-memory labelled image set (already preprocessed floats), and the synthetic one the
// demo and tests learn from.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "parafine/data/sample_source.hpp"
#include "parafine/core/tensor.hpp"

namespace parafine {

struct Dataset {
  Tensor images;            // [N,H,W,3] preprocessed floats
  std::vector<int> labels;  // [N], in [0, classes)
  int classes = 0;
  std::vector<std::string> class_names;
  int size() const { return static_cast<int>(labels.size()); }
};

// Keras "caffe" preprocessing of one RGB pixel in [0,255]: BGR order, ImageNet means removed.
void caffe_preprocess(const float* rgb, float* out);

// `samples` RGB images of `image_size`^2, `classes` classes told apart by colour (and faint
// stripes whose orientation depends on the class) under noise, so that even a randomly
// initialised ResNet's features separate them. Deterministic in `seed`. Labels cycle 0..C-1.
InMemorySource make_synthetic_source(int samples, int image_size, int classes, std::uint64_t seed);
// The same images caffe-preprocessed into a float Dataset.
Dataset make_synthetic_dataset(int samples, int image_size, int classes, std::uint64_t seed);

}  // namespace parafine
