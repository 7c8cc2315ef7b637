// HDF5 image dataset reading (see h5_dataset.hpp).
#include "parafine/data/h5_dataset.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "parafine/data/image_decode.hpp"  // kMaxImageSide, kMaxImagePixels

namespace parafine {
namespace {

[[noreturn]] void fail(const std::string& message) {
  throw std::runtime_error(message);
}

std::string shape_str(const std::vector<hsize_t>& dims) {
  std::string s;
  for (auto d : dims) s += (s.empty() ? "" : ",") + std::to_string(d);
  return "[" + s + "]";
}

// A label value as stored (read as double, so exact up to 2^53), printed as an integer.
std::string label_str(double v) {
  if (std::abs(v) < 9e18) return std::to_string(static_cast<long long>(v));
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}

// What is wrong with the storage layout of `images` (shape `dims`, already checked), or "".
// HDF5 1.10 trusts a damaged layout message when reading: a compact dataset storing fewer
// bytes than its shape crashed in H5Dread (or returned memory past the message as pixels), and
// so did chunks larger than a fixed-size dataset (tests/fuzz findings).
std::string images_layout_problem(hid_t dataset, const std::vector<hsize_t>& dims) {
  const hid_t plist = H5Dget_create_plist(dataset);
  const hid_t space = H5Dget_space(dataset);
  std::string problem;
  hsize_t current[4] = {}, max_dims[4] = {}, chunk[4] = {};
  const hsize_t bytes = dims[0] * dims[1] * dims[2] * dims[3];  // < 2^31 * 2^28 * 3: no overflow
  const H5D_layout_t layout = plist >= 0 ? H5Pget_layout(plist) : H5D_LAYOUT_ERROR;
  if (plist < 0 || space < 0 || H5Sget_simple_extent_dims(space, current, max_dims) != 4) {
    problem = "has no readable storage layout";
  } else if (layout == H5D_COMPACT || layout == H5D_CONTIGUOUS) {
    const hsize_t stored = H5Dget_storage_size(dataset);
    const int filters = H5Pget_nfilters(plist);
    if (filters != 0)
      problem = "is not chunked but lists " + std::to_string(filters) + " filter(s)";
    else if (layout == H5D_COMPACT ? stored != bytes : stored != 0 && stored != bytes)
      problem = "stores " + std::to_string(stored) + " bytes for " + shape_str(dims) + " (" +
                std::to_string(bytes) + " bytes)";
  } else if (layout != H5D_CHUNKED) {
    problem = "has a storage layout other than contiguous, chunked or compact";
  } else if (H5Pget_chunk(plist, 4, chunk) != 4) {
    problem = "has chunks of another rank than its 4 dimensions";
  } else {
    for (int i = 0; i < 4 && problem.empty(); ++i)
      if (chunk[i] == 0 || (max_dims[i] != H5S_UNLIMITED && chunk[i] > max_dims[i]))
        problem = "has chunks " + shape_str({chunk, chunk + 4}) +
                  " larger than its maximum shape " + shape_str({max_dims, max_dims + 4});
  }
  if (space >= 0) H5Sclose(space);
  if (plist >= 0) H5Pclose(plist);
  return problem;
}

void check_images_layout(const H5File& file, const std::string& path,
                         const std::vector<hsize_t>& dims) {
  const hid_t dataset = H5Dopen2(file.id(), "/images", H5P_DEFAULT);
  if (dataset < 0) fail(path + ": cannot open 'images'");
  const std::string problem = images_layout_problem(dataset, dims);
  H5Dclose(dataset);
  if (!problem.empty()) fail(path + ": 'images' " + problem + " (a damaged file?)");
}

// Refuses an `images` that is not uint8 [N,H,W,3] with N >= 1, 1 <= H,W <= kMaxImageSide,
// H*W <= kMaxImagePixels and N <= INT_MAX, before any size is cast to int, or whose storage
// layout does not fit that shape.
void check_images(const H5File& file, const std::string& path) {
  const auto dims = file.dataset_shape("/images");
  const std::string type = file.dataset_type_name("/images");
  const std::string what = path + ": 'images' is " + type + " " + shape_str(dims);
  if (dims.size() != 4 || dims[3] != 3 || type != "uint8")
    fail(what + ", expected uint8 [N,H,W,3]");
  if (dims[0] == 0) fail(path + ": 'images' holds no samples");
  if (dims[0] > static_cast<hsize_t>(INT_MAX))
    fail(what + ": more than " + std::to_string(INT_MAX) + " samples are not supported");
  if (dims[1] == 0 || dims[2] == 0)
    fail(what + ": images of height or width 0 cannot be used (rewrite the file with " +
         "`parafine convert`)");
  if (dims[1] > static_cast<hsize_t>(kMaxImageSide) ||
      dims[2] > static_cast<hsize_t>(kMaxImageSide) ||
      dims[1] * dims[2] > static_cast<hsize_t>(kMaxImagePixels))
    fail(what + ": images above " + std::to_string(kMaxImageSide) +
         " on a side or 2^28 pixels are refused (resize them)");
  check_images_layout(file, path, dims);
}

// Refuses a class count above kMaxClasses; `source` says where the count came from.
void check_class_count(const std::string& path, long long classes, const std::string& source) {
  if (classes > kMaxClasses)
    fail(path + ": " + source + " gives " + std::to_string(classes) + " classes; at most " +
         std::to_string(kMaxClasses) + " are supported (are the labels class indices 0..C-1?)");
}

// The class index of each row of one-hot `labels` [n,classes].
std::vector<int> read_onehot(const H5File& file, const std::string& path, int n, int classes) {
  const std::vector<double> onehot = file.read_doubles("/labels");
  if (onehot.size() != static_cast<std::size_t>(n) * static_cast<std::size_t>(classes))
    fail(path + ": read " + std::to_string(onehot.size()) + " values of 'labels', expected " +
         std::to_string(n) + "x" + std::to_string(classes));
  std::vector<int> labels;
  labels.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    const double* row = onehot.data() + static_cast<std::size_t>(i) * classes;
    double sum = 0;
    for (int c = 0; c < classes; ++c) sum += row[c];
    const double* top = std::max_element(row, row + classes);
    if (std::abs(sum - 1.0) > 1e-6 || std::abs(*top - 1.0) > 1e-6)
      fail(path + ": row " + std::to_string(i) + " of the [N,C] 'labels' is not one-hot");
    labels.push_back(static_cast<int>(top - row));
  }
  return labels;
}

// Integer `labels` [n] (read as doubles, so any stored integer is compared exactly in range);
// *classes is class_names.size() when there are names, else max label + 1.
std::vector<int> read_indices(const H5File& file, const std::string& path, int n, int names,
                              int* classes) {
  if (file.dataset_type_class("/labels") != H5T_INTEGER)
    fail(path + ": 'labels' [N] must be integers, found " + file.dataset_type_name("/labels"));
  const std::vector<double> values = file.read_doubles("/labels");
  if (values.size() != static_cast<std::size_t>(n))
    fail(path + ": read " + std::to_string(values.size()) + " 'labels' for " + std::to_string(n) +
         " images");
  const auto top = std::max_element(values.begin(), values.end());
  if (names == 0 && *top >= 0) {
    check_class_count(path, *top >= 1e18 ? LLONG_MAX : static_cast<long long>(*top) + 1,
                      "label " + label_str(*top) + " of sample " +
                          std::to_string(top - values.begin()) +
                          " (no class_names: classes = max label + 1)");
  }
  *classes = names > 0 ? names : static_cast<int>(std::max(*top, -1.0)) + 1;
  std::vector<int> labels(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (values[i] < 0 || values[i] >= *classes)
      fail(path + ": label " + label_str(values[i]) + " of sample " + std::to_string(i) +
           " is outside [0," + std::to_string(*classes) + ")");
    labels[i] = static_cast<int>(values[i]);
  }
  return labels;
}

}  // namespace

H5ImageDataset::H5ImageDataset(const std::string& path) : file_(path, H5File::Mode::kRead) {
  if (!file_.exists("/images"))
    fail(path + ": no 'images' dataset (expected uint8 [N,H,W,3]; `parafine convert` makes one)");
  check_images(file_, path);
  const auto dims = file_.dataset_shape("/images");
  n_ = static_cast<int>(dims[0]);
  h_ = static_cast<int>(dims[1]);
  w_ = static_cast<int>(dims[2]);
  if (file_.has_attribute("/", "class_names"))
    class_names_ = file_.read_string_list_attribute("/", "class_names");
  check_class_count(path, static_cast<long long>(class_names_.size()), "attribute class_names");
  const int names = static_cast<int>(class_names_.size());
  if (file_.exists("/labels")) {
    const auto ld = file_.dataset_shape("/labels");
    if (ld.empty() || ld[0] != dims[0])
      fail(path + ": 'labels' has " + (ld.empty() ? std::string("no") : std::to_string(ld[0])) +
           " entries for " + std::to_string(n_) + " images");
    if (ld.size() == 2) {  // one-hot [N,C]
      if (ld[1] == 0)
        fail(path + ": 'labels' is " + shape_str(ld) +
             ", one-hot labels need at least one column (class)");
      check_class_count(
          path, ld[1] > static_cast<hsize_t>(LLONG_MAX) ? LLONG_MAX : static_cast<long long>(ld[1]),
          "one-hot 'labels' " + shape_str(ld));
      classes_ = static_cast<int>(ld[1]);
      labels_ = read_onehot(file_, path, n_, classes_);
    } else if (ld.size() == 1) {
      labels_ = read_indices(file_, path, n_, names, &classes_);
    } else {
      fail(path + ": 'labels' " + shape_str(ld) + " must be [N] integers or [N,C] one-hot");
    }
  } else {
    classes_ = names;
  }
  if (names != 0 && names != classes_)
    fail(path + ": " + std::to_string(names) + " class_names for " + std::to_string(classes_) +
         " label columns");
}

void H5ImageDataset::check_pixel_storage() const {
  struct stat st {};
  if (::stat(path().c_str(), &st) != 0) fail(path() + ": cannot stat the file");
  const auto file_size = static_cast<haddr_t>(st.st_size);
  const hid_t d = H5Dopen2(file_.id(), "/images", H5P_DEFAULT);
  if (d < 0) fail(path() + ": cannot open 'images'");
  std::string problem;
  hsize_t chunks = 0;
  const haddr_t contiguous = H5Dget_offset(d);
  if (contiguous != HADDR_UNDEF) {
    const hsize_t bytes = H5Dget_storage_size(d);
    if (contiguous > file_size || bytes > file_size - contiguous)
      problem = "its pixels (" + std::to_string(bytes) + " bytes at offset " +
                std::to_string(contiguous) + ") lie beyond the end of the file (" +
                std::to_string(file_size) + " bytes)";
  } else if (H5Dget_num_chunks(d, H5S_ALL, &chunks) >= 0) {
    for (hsize_t i = 0; i < chunks && problem.empty(); ++i) {
      haddr_t address = 0;
      hsize_t size = 0;
      unsigned filter_mask = 0;
      if (H5Dget_chunk_info(d, H5S_ALL, i, nullptr, &filter_mask, &address, &size) < 0)
        problem = "the index of its chunks cannot be read (chunk " + std::to_string(i) + ")";
      else if (address > file_size || size > file_size - address)
        problem = "pixel chunk " + std::to_string(i) + " (" + std::to_string(size) +
                  " bytes at offset " + std::to_string(address) +
                  ") lies beyond the end of the file (" + std::to_string(file_size) + " bytes)";
    }
  }
  H5Dclose(d);
  if (!problem.empty()) fail(path() + ": 'images' is damaged or truncated: " + problem);
}

void resize_bilinear(const unsigned char* src, int h, int w, float* dst, int oh, int ow) {
  if (h < 1 || w < 1 || oh < 1 || ow < 1)
    throw std::invalid_argument("resize_bilinear: empty image " + std::to_string(h) + "x" +
                                std::to_string(w) + " -> " + std::to_string(oh) + "x" +
                                std::to_string(ow));
  const float sy = static_cast<float>(h) / oh, sx = static_cast<float>(w) / ow;
  for (int y = 0; y < oh; ++y) {
    const float fy = std::clamp((y + 0.5f) * sy - 0.5f, 0.0f, static_cast<float>(h - 1));
    const int y0 = static_cast<int>(fy), y1 = std::min(y0 + 1, h - 1);
    const float ay = fy - y0;
    for (int x = 0; x < ow; ++x) {
      const float fx = std::clamp((x + 0.5f) * sx - 0.5f, 0.0f, static_cast<float>(w - 1));
      const int x0 = static_cast<int>(fx), x1 = std::min(x0 + 1, w - 1);
      const float ax = fx - x0;
      for (int c = 0; c < 3; ++c) {
        auto at = [&](int yy, int xx) {
          return static_cast<float>(src[(static_cast<size_t>(yy) * w + xx) * 3 + c]);
        };
        const float top = at(y0, x0) + (at(y0, x1) - at(y0, x0)) * ax;
        const float bottom = at(y1, x0) + (at(y1, x1) - at(y1, x0)) * ax;
        dst[(static_cast<size_t>(y) * ow + x) * 3 + c] = top + (bottom - top) * ay;
      }
    }
  }
}

}  // namespace parafine
