// Where training samples come from, one at a time: the interface the prefetcher decodes
// through, an in-memory implementation (tests, small sets) and one over an HDF5 dataset
// (DESIGN.md §4). A source returns raw RGB pixels resized to the model's input size; flip
// augmentation and caffe preprocessing are applied afterwards, in one place (prefetcher.cpp).
//
// Thread safety: every const member, load() included, may be called from several threads at
// once. Sources hold no per-call mutable state, or guard it themselves.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "parafine/data/h5_dataset.hpp"

namespace parafine {

class SampleSource {
 public:
  virtual ~SampleSource() = default;

  virtual int size() const = 0;     // N samples
  virtual int classes() const = 0;  // C, 0 when unknown (unlabelled data)
  virtual const std::vector<std::string>& class_names() const = 0;  // [C] or empty
  // Class index in [0, C) of sample i, or -1 for unlabelled data.
  virtual int label(int i) const = 0;
  // Writes sample i as RGB floats in [0, 255] into out [image_size, image_size, 3], bilinearly
  // resized (TensorFlow half-pixel centres) when stored at another size. Throws (naming the
  // file and the sample) for i outside [0, N) or a sample that cannot be read. Thread-safe.
  virtual void load(int i, int image_size, float* out) const = 0;
  // How a user finds sample i again: its file path for image folders, else its index.
  virtual std::string sample_name(int i) const { return std::to_string(i); }
  // For the persistent feature cache's key (cache/persistent_cache.hpp): a hash of sample i's
  // stored bytes (an image file's bytes, the stored pixels) and of where it is stored (file
  // name, index), so equal hashes mean the same input. Reads only sample i; thread-safe.
  // nullopt: this source cannot say (then no cache is kept for it).
  virtual std::optional<std::uint64_t> content_hash(int /*i*/) const { return std::nullopt; }
  // Where the data comes from, for the cache manifest: "HDF5 /d/train.h5", ...
  virtual std::string identity() const { return "data of " + std::to_string(size()) + " samples"; }
};

// Stored uint8 [h,w,3] RGB -> floats [S,S,3] in [0,255]: a plain conversion at the same size,
// else resize_bilinear.
void rgb_to_floats(const unsigned char* src, int h, int w, int image_size, float* out);

// Images held in memory as uint8 [N,H,W,3] RGB with labels [N].
class InMemorySource : public SampleSource {
 public:
  // Throws std::invalid_argument when pixels is not N*H*W*3 bytes, labels not [N], or a label
  // is outside [0, classes) (labels may be empty: unlabelled, label() gives -1).
  InMemorySource(int samples, int height, int width, std::vector<unsigned char> pixels,
                 std::vector<int> labels, int classes, std::vector<std::string> class_names = {});

  int size() const override { return n_; }
  int classes() const override { return classes_; }
  const std::vector<std::string>& class_names() const override { return class_names_; }
  int label(int i) const override;
  void load(int i, int image_size, float* out) const override;
  std::optional<std::uint64_t> content_hash(int i) const override;
  std::string identity() const override;

 private:
  int n_, h_, w_, classes_;
  std::vector<unsigned char> pixels_;  // [N,H,W,3]
  std::vector<int> labels_;            // [N] or empty
  std::vector<std::string> class_names_;
};

// An HDF5 image dataset read one sample at a time with a hyperslab [i:i+1, :, :, :] of
// `images`. Labels, classes and class names come from H5ImageDataset (which validates the
// file); pixels are read through this source's own handle on the file. Reads are serialised
// by hdf5_mutex(); the resize runs outside the lock, so T threads still decode in parallel.
class H5Source : public SampleSource {
 public:
  explicit H5Source(const std::string& path);
  ~H5Source() override;
  H5Source(const H5Source&) = delete;
  H5Source& operator=(const H5Source&) = delete;

  const std::string& path() const { return path_; }
  const H5ImageDataset& dataset() const { return *meta_; }
  int size() const override { return meta_->size(); }
  int classes() const override { return meta_->classes(); }
  const std::vector<std::string>& class_names() const override { return meta_->class_names(); }
  int label(int i) const override;
  void load(int i, int image_size, float* out) const override;
  std::optional<std::uint64_t> content_hash(int i) const override;  // its pixels [h,w,3]
  std::string identity() const override;                            // "HDF5 " and its absolute path

 private:
  // Sample i's stored pixels [h,w,3] into `raw`; throws naming the file and the sample.
  void read_raw(int i, std::vector<unsigned char>& raw) const;
  std::string path_;
  std::unique_ptr<H5ImageDataset> meta_;
  std::unique_ptr<H5File> file_;  // own handle for pixel reads
  hid_t images_ = -1;             // `/images`, open for the source's lifetime
};

}  // namespace parafine
