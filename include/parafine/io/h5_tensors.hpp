// Small RAII helpers for reading and writing HDF5 datasets and attributes as tensors.
// Errors name the file and the object path.
#pragma once

#include <hdf5.h>

#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "parafine/core/tensor.hpp"

namespace parafine {

// The serial HDF5 library is not guaranteed thread-safe (this machine's build is, others are
// not): every HDF5 call made while a prefetcher may be reading an H5Source must hold this
// process-wide mutex. H5Source takes it around each read, and around opening and closing.
std::mutex& hdf5_mutex();

// HDF5 is not hardened against hostile files: a damaged heap or object header can crash it
// (inside its variable-length string read, for one) or make it loop. Reading a file a user
// gives therefore goes through these. check_untrusted_hdf5 runs check() in a forked child
// process (core/isolated_call.hpp) and returns when it finished there; a clean failure in the
// child is rethrown with the child's message, and a crash or a hang becomes
// std::runtime_error "<path>: damaged, or not a <what> ...". The child is given 60 s plus 1 s
// per 20 MB of file (PARAFINE_HDF5_CHECK_TIMEOUT=SECONDS overrides, for a very slow
// filesystem). When no child can be forked (no memory or processes left) it returns at once.
// parse_untrusted_hdf5 checks with parse() itself and then runs parse() here, where its
// results are kept. Both hold hdf5_mutex() throughout: the caller must not hold it, and
// check() / parse() must not take it.
void check_untrusted_hdf5(const std::string& path, const std::string& what,
                          const std::function<void()>& check);
void parse_untrusted_hdf5(const std::string& path, const std::string& what,
                          const std::function<void()>& parse);

// "[2,3,4]", for messages.
std::string dims_text(const std::vector<hsize_t>& dims);

// An open HDF5 file; closes on destruction. Errors from the HDF5 library are silenced and
// turned into exceptions that name the file.
class H5File {
 public:
  enum class Mode { kRead, kTruncate };
  H5File(const std::string& path, Mode mode);
  ~H5File();  // closes without checking: call close() to learn whether a written file is whole
  // Flushes and closes, checking both: throws std::runtime_error naming the file when HDF5
  // could not write everything (a full disk, a file size limit). Idempotent.
  void close();
  H5File(const H5File&) = delete;
  H5File& operator=(const H5File&) = delete;

  hid_t id() const { return id_; }
  const std::string& path() const { return path_; }

  bool exists(const std::string& object_path) const;
  // Shape of a dataset (a scalar has rank 0). Throws for a shape of more than 2^40 elements,
  // which only a damaged header claims.
  std::vector<hsize_t> dataset_shape(const std::string& dataset) const;
  // Throws when an uncompressed dataset stores fewer bytes than its shape and type need: a
  // damaged header claiming a larger shape than the file holds.
  void check_stored_size(const std::string& dataset) const;
  // Reads a numeric dataset converted to float / double / int (HDF5 converts the type).
  Tensor read_tensor(const std::string& dataset) const;
  std::vector<double> read_doubles(const std::string& dataset) const;
  std::vector<int> read_ints(const std::string& dataset) const;
  // Writes a float32 dataset, creating parent groups.
  void write_tensor(const std::string& dataset, const Tensor& t);
  // Writes a uint8 or int64 dataset of the given shape, creating parent groups.
  void write_uint8(const std::string& dataset, const std::vector<hsize_t>& dims,
                   const unsigned char* data);
  void write_int64(const std::string& dataset, const std::vector<long long>& values);
  // A string-array attribute (fixed or variable length) of a group or dataset. An empty
  // attribute of any type (Keras writes [] as an empty float array) reads as no strings.
  std::vector<std::string> read_string_attribute(const std::string& object_path,
                                                 const std::string& attr) const;
  bool has_attribute(const std::string& object_path, const std::string& attr) const;
  // Keras's split attributes: `attr` itself, or else attr0, attr1, ... concatenated (Keras
  // splits lists longer than the 64 KiB attribute limit). Throws when none exists.
  std::vector<std::string> read_string_list_attribute(const std::string& object_path,
                                                      const std::string& attr) const;
  // HDF5 type class of a dataset (H5T_FLOAT, H5T_INTEGER, ...) and its size in bytes.
  H5T_class_t dataset_type_class(const std::string& dataset) const;
  std::string dataset_type_name(const std::string& dataset) const;  // "float32", "int64", ...
  bool is_group(const std::string& object_path) const;
  // Fixed-length, NUL-padded string attributes as h5py writes numpy bytes: a 1-D array
  // (possibly empty), or a scalar.
  void write_string_list_attribute(const std::string& object_path, const std::string& attr,
                                   const std::vector<std::string>& values);
  void write_string_scalar_attribute(const std::string& object_path, const std::string& attr,
                                     const std::string& value);
  void create_group(const std::string& group_path);

 private:
  hid_t open_dataset(const std::string& dataset) const;
  std::string path_;
  hid_t id_ = -1;
};

}  // namespace parafine
