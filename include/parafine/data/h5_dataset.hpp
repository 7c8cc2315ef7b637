// An HDF5 image dataset (DESIGN.md §4): `images` uint8 [N,H,W,3] RGB, `labels` integer [N]
// or float one-hot [N,C] (optional for prediction), optional attribute `class_names`.
// H5ImageDataset validates the file and holds its shape, labels and class names; the pixels
// are read by H5Source (sample_source.hpp), one hyperslab per sample.
#pragma once

#include <string>
#include <vector>

#include "parafine/io/h5_tensors.hpp"

namespace parafine {

// Most classes a dataset may have (from one-hot width, class_names, or max label + 1 without
// class_names): a label of 1e6 or INT_MAX is a damaged or wrong file, not a million-class task.
// 100000 is over four times ImageNet-21k's 21841 classes.
constexpr int kMaxClasses = 100000;

class H5ImageDataset {
 public:
  // Throws std::runtime_error naming the file for a missing/ill-shaped `images` (not uint8
  // [N,H,W,3], N = 0 or above INT_MAX, height or width 0, or larger than kMaxImageSide /
  // kMaxImagePixels of image_decode.hpp), labels that do not match it (count, [N,0] one-hot,
  // not one-hot), labels outside [0, classes), or more than kMaxClasses classes. A single class
  // is accepted here (evaluating one class's images is legitimate); training must refuse it.
  explicit H5ImageDataset(const std::string& path);

  // Walks the storage of `images` (every chunk's place, or the contiguous block) and throws
  // std::runtime_error naming the file when any of it lies beyond the end of the file: a
  // damaged index or a truncated copy, found before training reads a sample from it.
  void check_pixel_storage() const;

  const std::string& path() const { return file_.path(); }
  int size() const { return n_; }
  int height() const { return h_; }
  int width() const { return w_; }
  bool has_labels() const { return !labels_.empty(); }
  const std::vector<int>& labels() const { return labels_; }  // [N] class indices
  int classes() const { return classes_; }  // from one-hot width, class_names or max label + 1
  const std::vector<std::string>& class_names() const { return class_names_; }

 private:
  H5File file_;
  int n_ = 0, h_ = 0, w_ = 0, classes_ = 0;
  std::vector<int> labels_;
  std::vector<std::string> class_names_;
};

// Bilinear resize of one RGB uint8 image [h,w,3] to floats [oh,ow,3] with TensorFlow's
// half-pixel centres (tf.image.resize, antialias off). Throws std::invalid_argument for an
// empty source or target (a side below 1).
void resize_bilinear(const unsigned char* src, int h, int w, float* dst, int oh, int ow);

}  // namespace parafine
