// HDF5 helpers (see h5_tensors.hpp).
#include "parafine/h5_tensors.hpp"

#include <stdexcept>

namespace parafine {

namespace {
struct Handle {  // closes an HDF5 object with the right function
  hid_t id;
  herr_t (*close)(hid_t);
  ~Handle() {
    if (id >= 0) close(id);
  }
};
}  // namespace

H5File::H5File(const std::string& path, Mode mode) : path_(path) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  if (mode == Mode::kRead) {
    if (H5Fis_hdf5(path.c_str()) <= 0)
      throw std::runtime_error(path + ": not a readable HDF5 file (missing, truncated or another format)");
    id_ = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  } else {
    id_ = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  }
  if (id_ < 0) throw std::runtime_error(path + ": cannot open HDF5 file");
}

H5File::~H5File() {
  if (id_ >= 0) H5Fclose(id_);
}

bool H5File::exists(const std::string& object_path) const {
  // Check each prefix so a missing parent group is not an error.
  std::size_t pos = 0;
  while (true) {
    pos = object_path.find('/', pos + 1);
    const std::string prefix = object_path.substr(0, pos);
    if (!prefix.empty() && prefix != "/" && H5Lexists(id_, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (pos == std::string::npos) return true;
  }
}

hid_t H5File::open_dataset(const std::string& dataset) const {
  if (!exists(dataset)) throw std::runtime_error(path_ + ": no dataset " + dataset);
  const hid_t d = H5Dopen2(id_, dataset.c_str(), H5P_DEFAULT);
  if (d < 0) throw std::runtime_error(path_ + ": " + dataset + " is not a dataset");
  return d;
}

std::vector<hsize_t> H5File::dataset_shape(const std::string& dataset) const {
  Handle d{open_dataset(dataset), H5Dclose};
  Handle s{H5Dget_space(d.id), H5Sclose};
  const int rank = H5Sget_simple_extent_ndims(s.id);
  std::vector<hsize_t> dims(static_cast<size_t>(std::max(rank, 0)));
  if (rank > 0) H5Sget_simple_extent_dims(s.id, dims.data(), nullptr);
  return dims;
}

namespace {
template <typename T>
std::vector<T> read_all(const H5File& f, hid_t dset, hid_t mem_type, const std::string& name,
                        std::size_t n) {
  std::vector<T> out(n);
  if (n && H5Dread(dset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0)
    throw std::runtime_error(f.path() + ": cannot read " + name + " as a number array");
  return out;
}
std::size_t count(const std::vector<hsize_t>& dims) {
  std::size_t n = 1;
  for (hsize_t d : dims) n *= static_cast<std::size_t>(d);
  return n;
}
}  // namespace

Tensor H5File::read_tensor(const std::string& dataset) const {
  const auto dims = dataset_shape(dataset);
  Handle d{open_dataset(dataset), H5Dclose};
  std::vector<int> sd;
  for (hsize_t x : dims) sd.push_back(static_cast<int>(x));
  if (sd.empty()) sd.push_back(1);
  Tensor t{Shape(sd)};
  auto v = read_all<float>(*this, d.id, H5T_NATIVE_FLOAT, dataset, count(dims));
  std::copy(v.begin(), v.end(), t.data());
  return t;
}

std::vector<double> H5File::read_doubles(const std::string& dataset) const {
  const auto dims = dataset_shape(dataset);
  Handle d{open_dataset(dataset), H5Dclose};
  return read_all<double>(*this, d.id, H5T_NATIVE_DOUBLE, dataset, count(dims));
}

std::vector<int> H5File::read_ints(const std::string& dataset) const {
  const auto dims = dataset_shape(dataset);
  Handle d{open_dataset(dataset), H5Dclose};
  return read_all<int>(*this, d.id, H5T_NATIVE_INT, dataset, count(dims));
}

void H5File::write_tensor(const std::string& dataset, const Tensor& t) {
  Handle lcpl{H5Pcreate(H5P_LINK_CREATE), H5Pclose};
  H5Pset_create_intermediate_group(lcpl.id, 1);
  std::vector<hsize_t> dims(t.shape().dims.begin(), t.shape().dims.end());
  Handle space{H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose};
  Handle d{H5Dcreate2(id_, dataset.c_str(), H5T_IEEE_F32LE, space.id, lcpl.id, H5P_DEFAULT, H5P_DEFAULT),
           H5Dclose};
  if (d.id < 0 || H5Dwrite(d.id, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data()) < 0)
    throw std::runtime_error(path_ + ": cannot write dataset " + dataset);
}

std::vector<std::string> H5File::read_string_attribute(const std::string& object_path,
                                                       const std::string& attr) const {
  if (H5Aexists_by_name(id_, object_path.c_str(), attr.c_str(), H5P_DEFAULT) <= 0)
    throw std::runtime_error(path_ + ": " + object_path + " has no attribute '" + attr + "'");
  Handle a{H5Aopen_by_name(id_, object_path.c_str(), attr.c_str(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose};
  Handle type{H5Aget_type(a.id), H5Tclose};
  Handle space{H5Aget_space(a.id), H5Sclose};
  if (H5Tget_class(type.id) != H5T_STRING)
    throw std::runtime_error(path_ + ": attribute " + object_path + "@" + attr + " is not a string array");
  const std::size_t n = static_cast<std::size_t>(H5Sget_simple_extent_npoints(space.id));
  std::vector<std::string> out;
  if (H5Tis_variable_str(type.id) > 0) {
    Handle mem{H5Tcopy(H5T_C_S1), H5Tclose};
    H5Tset_size(mem.id, H5T_VARIABLE);
    std::vector<char*> ptrs(n, nullptr);
    if (n && H5Aread(a.id, mem.id, ptrs.data()) < 0)
      throw std::runtime_error(path_ + ": cannot read attribute " + attr);
    for (char* p : ptrs) out.emplace_back(p ? p : "");
    H5Dvlen_reclaim(mem.id, space.id, H5P_DEFAULT, ptrs.data());
  } else {
    const std::size_t len = H5Tget_size(type.id);
    std::vector<char> buf(n * len);
    if (n && H5Aread(a.id, type.id, buf.data()) < 0)
      throw std::runtime_error(path_ + ": cannot read attribute " + attr);
    for (std::size_t i = 0; i < n; ++i) {
      std::string s(buf.data() + i * len, len);
      s.resize(s.find('\0') == std::string::npos ? len : s.find('\0'));
      out.push_back(s);
    }
  }
  return out;
}

}  // namespace parafine
