// HDF5 image dataset reading (see h5_dataset.hpp).
#include "parafine/data/h5_dataset.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace parafine {

H5ImageDataset::H5ImageDataset(const std::string& path) : file_(path, H5File::Mode::kRead) {
  if (!file_.exists("/images"))
    throw std::runtime_error(
        path + ": no 'images' dataset (expected uint8 [N,H,W,3]; `parafine convert` makes one)");
  const auto dims = file_.dataset_shape("/images");
  if (dims.size() != 4 || dims[3] != 3 || file_.dataset_type_name("/images") != "uint8") {
    std::string shape;
    for (auto d : dims) shape += (shape.empty() ? "" : ",") + std::to_string(d);
    throw std::runtime_error(path + ": 'images' is " + file_.dataset_type_name("/images") + " [" +
                             shape + "], expected uint8 [N,H,W,3]");
  }
  n_ = static_cast<int>(dims[0]);
  h_ = static_cast<int>(dims[1]);
  w_ = static_cast<int>(dims[2]);
  if (n_ == 0) throw std::runtime_error(path + ": 'images' holds no samples");
  if (file_.has_attribute("/", "class_names"))
    class_names_ = file_.read_string_list_attribute("/", "class_names");
  if (file_.exists("/labels")) {
    const auto ld = file_.dataset_shape("/labels");
    if (ld.empty() || static_cast<int>(ld[0]) != n_)
      throw std::runtime_error(path + ": 'labels' has " +
                               (ld.empty() ? std::string("no") : std::to_string(ld[0])) +
                               " entries for " + std::to_string(n_) + " images");
    if (ld.size() == 2) {  // one-hot [N,C]
      classes_ = static_cast<int>(ld[1]);
      const std::vector<double> onehot = file_.read_doubles("/labels");
      for (int i = 0; i < n_; ++i) {
        const double* row = onehot.data() + static_cast<size_t>(i) * classes_;
        double sum = 0;
        for (int c = 0; c < classes_; ++c) sum += row[c];
        const double top = *std::max_element(row, row + classes_);
        if (std::abs(sum - 1.0) > 1e-6 || std::abs(top - 1.0) > 1e-6)
          throw std::runtime_error(path + ": row " + std::to_string(i) +
                                   " of the [N,C] 'labels' is not one-hot");
        labels_.push_back(static_cast<int>(std::max_element(row, row + classes_) - row));
      }
    } else if (ld.size() == 1) {
      if (file_.dataset_type_class("/labels") != H5T_INTEGER)
        throw std::runtime_error(path + ": 'labels' [N] must be integers, found " +
                                 file_.dataset_type_name("/labels"));
      labels_ = file_.read_ints("/labels");
      classes_ = class_names_.empty() ? *std::max_element(labels_.begin(), labels_.end()) + 1
                                      : static_cast<int>(class_names_.size());
      for (int i = 0; i < n_; ++i)
        if (labels_[static_cast<size_t>(i)] < 0 || labels_[static_cast<size_t>(i)] >= classes_)
          throw std::runtime_error(
              path + ": label " + std::to_string(labels_[static_cast<size_t>(i)]) + " of sample " +
              std::to_string(i) + " is outside [0," + std::to_string(classes_) + ")");
    } else {
      throw std::runtime_error(path + ": 'labels' must be [N] integers or [N,C] one-hot");
    }
  } else if (!class_names_.empty()) {
    classes_ = static_cast<int>(class_names_.size());
  }
  if (!class_names_.empty() && static_cast<int>(class_names_.size()) != classes_)
    throw std::runtime_error(path + ": " + std::to_string(class_names_.size()) +
                             " class_names for " + std::to_string(classes_) + " label columns");
}

void resize_bilinear(const unsigned char* src, int h, int w, float* dst, int oh, int ow) {
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
