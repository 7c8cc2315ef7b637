// Small RAII helpers for reading and writing HDF5 datasets and attributes as tensors.
// Errors name the file and the object path.
#pragma once

#include <hdf5.h>

#include <string>
#include <vector>

#include "parafine/tensor.hpp"

namespace parafine {

// An open HDF5 file; closes on destruction. Errors from the HDF5 library are silenced and
// turned into exceptions that name the file.
class H5File {
 public:
  enum class Mode { kRead, kTruncate };
  H5File(const std::string& path, Mode mode);
  ~H5File();
  H5File(const H5File&) = delete;
  H5File& operator=(const H5File&) = delete;

  hid_t id() const { return id_; }
  const std::string& path() const { return path_; }

  bool exists(const std::string& object_path) const;
  // Shape of a dataset (a scalar has rank 0).
  std::vector<hsize_t> dataset_shape(const std::string& dataset) const;
  // Reads a numeric dataset converted to float / double / int (HDF5 converts the type).
  Tensor read_tensor(const std::string& dataset) const;
  std::vector<double> read_doubles(const std::string& dataset) const;
  std::vector<int> read_ints(const std::string& dataset) const;
  // Writes a float32 dataset, creating parent groups.
  void write_tensor(const std::string& dataset, const Tensor& t);
  // A string-array attribute (fixed or variable length) of a group or dataset.
  std::vector<std::string> read_string_attribute(const std::string& object_path,
                                                 const std::string& attr) const;

 private:
  hid_t open_dataset(const std::string& dataset) const;
  std::string path_;
  hid_t id_ = -1;
};

}  // namespace parafine
