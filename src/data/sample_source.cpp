// In-memory and HDF5 sample sources (see sample_source.hpp).
#include "parafine/data/sample_source.hpp"

#include "parafine/core/content_hash.hpp"

#include <filesystem>
#include <stdexcept>

namespace parafine {

namespace {

void check_index(int i, int n, const std::string& where) {
  if (i < 0 || i >= n)
    throw std::out_of_range(where + ": sample " + std::to_string(i) + " is outside the " +
                            std::to_string(n) + " samples");
}

void check_image_size(int image_size, const std::string& where) {
  if (image_size < 1)
    throw std::invalid_argument(where + ": --image-size must be at least 1, got " +
                                std::to_string(image_size));
}

}  // namespace

void rgb_to_floats(const unsigned char* src, int h, int w, int image_size, float* out) {
  if (h == image_size && w == image_size) {
    const std::size_t n = static_cast<std::size_t>(h) * w * 3;
    for (std::size_t k = 0; k < n; ++k) out[k] = src[k];
  } else {
    resize_bilinear(src, h, w, out, image_size, image_size);
  }
}

// ---- InMemorySource ----------------------------------------------------------------------

InMemorySource::InMemorySource(int samples, int height, int width,
                               std::vector<unsigned char> pixels, std::vector<int> labels,
                               int classes, std::vector<std::string> class_names)
    : n_(samples),
      h_(height),
      w_(width),
      classes_(classes),
      pixels_(std::move(pixels)),
      labels_(std::move(labels)),
      class_names_(std::move(class_names)) {
  if (n_ < 0 || h_ < 1 || w_ < 1)
    throw std::invalid_argument("in-memory images: need N >= 0 samples of H,W >= 1, got [" +
                                std::to_string(n_) + "," + std::to_string(h_) + "," +
                                std::to_string(w_) + ",3]");
  const std::size_t want = static_cast<std::size_t>(n_) * h_ * w_ * 3;
  if (pixels_.size() != want)
    throw std::invalid_argument("in-memory images: " + std::to_string(pixels_.size()) +
                                " bytes for [" + std::to_string(n_) + "," + std::to_string(h_) +
                                "," + std::to_string(w_) + ",3] = " + std::to_string(want));
  if (!labels_.empty() && static_cast<int>(labels_.size()) != n_)
    throw std::invalid_argument("in-memory images: " + std::to_string(labels_.size()) +
                                " labels for " + std::to_string(n_) + " images");
  for (std::size_t i = 0; i < labels_.size(); ++i)
    if (labels_[i] < 0 || labels_[i] >= classes_)
      throw std::invalid_argument("in-memory images: label " + std::to_string(labels_[i]) +
                                  " of sample " + std::to_string(i) + " is outside [0," +
                                  std::to_string(classes_) + ")");
  if (!class_names_.empty() && static_cast<int>(class_names_.size()) != classes_)
    throw std::invalid_argument("in-memory images: " + std::to_string(class_names_.size()) +
                                " class names for " + std::to_string(classes_) + " classes");
}

int InMemorySource::label(int i) const {
  check_index(i, n_, "in-memory images");
  return labels_.empty() ? -1 : labels_[static_cast<std::size_t>(i)];
}

void InMemorySource::load(int i, int image_size, float* out) const {
  check_index(i, n_, "in-memory images");
  check_image_size(image_size, "in-memory images");
  rgb_to_floats(pixels_.data() + static_cast<std::size_t>(i) * h_ * w_ * 3, h_, w_, image_size,
                out);
}

std::optional<std::uint64_t> InMemorySource::content_hash(int i) const {
  if (i < 0 || i >= n_) throw std::out_of_range("in-memory data: no sample " + std::to_string(i));
  const std::size_t bytes = static_cast<std::size_t>(h_) * w_ * 3;
  ContentHasher h;
  h.update_u64(static_cast<std::uint64_t>(i));
  h.update_u64(static_cast<std::uint64_t>(h_));
  h.update_u64(static_cast<std::uint64_t>(w_));
  h.update(pixels_.data() + static_cast<std::size_t>(i) * bytes, bytes);
  return h.digest();
}

std::string InMemorySource::identity() const {
  return "in-memory data of " + std::to_string(n_) + " images " + std::to_string(h_) + "x" +
         std::to_string(w_);
}

// ---- H5Source ----------------------------------------------------------------------------

H5Source::H5Source(const std::string& path) : path_(path) {
  // The metadata, labels, class names and the index of the pixel chunks are read first where a
  // crash of HDF5 on a damaged file is a message (io/h5_tensors.hpp).
  check_untrusted_hdf5(path, "HDF5 image dataset",
                       [&] { H5ImageDataset(path).check_pixel_storage(); });
  std::lock_guard<std::mutex> lock(hdf5_mutex());
  try {
    meta_ = std::make_unique<H5ImageDataset>(path);
    file_ = std::make_unique<H5File>(path, H5File::Mode::kRead);
    images_ = H5Dopen2(file_->id(), "/images", H5P_DEFAULT);
    if (images_ < 0) throw std::runtime_error(path + ": cannot open 'images' for reading");
  } catch (...) {
    file_.reset();  // close under the lock, not during member unwinding
    meta_.reset();
    throw;
  }
}

H5Source::~H5Source() {
  std::lock_guard<std::mutex> lock(hdf5_mutex());
  if (images_ >= 0) H5Dclose(images_);
  file_.reset();
  meta_.reset();
}

int H5Source::label(int i) const {
  check_index(i, meta_->size(), path_);
  return meta_->has_labels() ? meta_->labels()[static_cast<std::size_t>(i)] : -1;
}

void H5Source::read_raw(int i, std::vector<unsigned char>& raw) const {
  check_index(i, meta_->size(), path_);
  const int h = meta_->height(), w = meta_->width();
  raw.resize(static_cast<std::size_t>(h) * w * 3);
  herr_t status = -1;
  {
    std::lock_guard<std::mutex> lock(hdf5_mutex());
    // A thread-safe HDF5 keeps the error-printing switch per thread: silence it here too, so a
    // damaged file gives our exception, not an HDF5 stack dump on stderr.
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    const hid_t fspace = H5Dget_space(images_);
    const hsize_t start[4] = {static_cast<hsize_t>(i), 0, 0, 0};
    const hsize_t count[4] = {1, static_cast<hsize_t>(h), static_cast<hsize_t>(w), 3};
    const hid_t mspace = H5Screate_simple(4, count, nullptr);
    if (fspace >= 0 && mspace >= 0 &&
        H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, nullptr, count, nullptr) >= 0)
      status = H5Dread(images_, H5T_NATIVE_UCHAR, mspace, fspace, H5P_DEFAULT, raw.data());
    if (mspace >= 0) H5Sclose(mspace);
    if (fspace >= 0) H5Sclose(fspace);
  }
  if (status < 0)
    throw std::runtime_error(path_ + ": cannot read image " + std::to_string(i) +
                             " of 'images' (a damaged or truncated file?)");
}

void H5Source::load(int i, int image_size, float* out) const {
  check_index(i, meta_->size(), path_);
  check_image_size(image_size, path_);
  // One stored image [h,w,3] per thread, reused across calls (no allocation per sample).
  thread_local std::vector<unsigned char> raw;
  read_raw(i, raw);
  rgb_to_floats(raw.data(), meta_->height(), meta_->width(), image_size, out);
}

std::string H5Source::identity() const {
  std::error_code ec;
  const std::filesystem::path absolute = std::filesystem::absolute(path_, ec);
  return "HDF5 " + (ec ? path_ : absolute.lexically_normal().string());
}

std::optional<std::uint64_t> H5Source::content_hash(int i) const {
  thread_local std::vector<unsigned char> raw;
  read_raw(i, raw);
  ContentHasher h;
  h.update_u64(static_cast<std::uint64_t>(i));
  h.update_u64(static_cast<std::uint64_t>(meta_->height()));
  h.update_u64(static_cast<std::uint64_t>(meta_->width()));
  h.update(raw.data(), raw.size());
  return h.digest();
}

}  // namespace parafine
