// HDF5 helpers (see h5_tensors.hpp).
#include "parafine/io/h5_tensors.hpp"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

namespace parafine {

namespace {
struct Handle {  // closes an HDF5 object with the right function
  hid_t id;
  herr_t (*close)(hid_t);
  ~Handle() {
    if (id >= 0) close(id);
  }
  // Closes now and reports whether HDF5 managed to (for written objects, whose buffered data
  // reaches the file only then).
  bool close_checked() {
    const hid_t h = id;
    id = -1;
    return h < 0 || close(h) >= 0;
  }
};
}  // namespace

H5File::H5File(const std::string& path, Mode mode) : path_(path) {
  // HDF5 1.10 keeps a file whose close failed (a full disk) in its tables and crashes in its
  // exit handler trying to close it again; parafine reports the failure itself, so the
  // library's exit-time cleanup is switched off (before HDF5's first use: every path into
  // HDF5 starts with an H5File).
  static const bool no_atexit = (H5dont_atexit(), true);
  (void)no_atexit;
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  if (mode == Mode::kRead) {
    if (FILE* probe = std::fopen(path.c_str(), "rb")) {
      std::fclose(probe);
    } else {
      throw std::runtime_error(path + ": no such file, or it cannot be read");
    }
    if (H5Fis_hdf5(path.c_str()) <= 0)
      throw std::runtime_error(path +
                               ": not an HDF5 file (no HDF5 signature; another format, or empty)");
    id_ = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  } else {
    id_ = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  }
  if (id_ < 0 && mode == Mode::kRead)
    throw std::runtime_error(
        path +
        ": an HDF5 file that cannot be opened: truncated or damaged (an interrupted "
        "download or copy?)");
  if (id_ < 0)
    throw std::runtime_error(path + ": cannot create HDF5 file (is the directory writable?)");
}

H5File::~H5File() {
  if (id_ >= 0) H5Fclose(id_);
}

void H5File::close() {
  if (id_ < 0) return;
  const bool flushed = H5Fflush(id_, H5F_SCOPE_LOCAL) >= 0;
  const bool closed = H5Fclose(id_) >= 0;
  id_ = -1;
  if (!flushed || !closed)
    throw std::runtime_error(path_ + ": HDF5 could not write the whole file (disk full, or a file "
                             "size limit?)");
}

bool H5File::exists(const std::string& object_path) const {
  // Check each prefix so a missing parent group is not an error.
  std::size_t pos = 0;
  while (true) {
    pos = object_path.find('/', pos + 1);
    const std::string prefix = object_path.substr(0, pos);
    if (!prefix.empty() && prefix != "/" && H5Lexists(id_, prefix.c_str(), H5P_DEFAULT) <= 0)
      return false;
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

namespace {
void write_dataset(hid_t file, const std::string& path, const std::string& dataset,
                   const std::vector<hsize_t>& dims, hid_t file_type, hid_t mem_type,
                   const void* data) {
  Handle lcpl{H5Pcreate(H5P_LINK_CREATE), H5Pclose};
  H5Pset_create_intermediate_group(lcpl.id, 1);
  Handle space{H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose};
  Handle d{
      H5Dcreate2(file, dataset.c_str(), file_type, space.id, lcpl.id, H5P_DEFAULT, H5P_DEFAULT),
      H5Dclose};
  if (d.id < 0 || H5Dwrite(d.id, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0 ||
      !d.close_checked())
    throw std::runtime_error(path + ": cannot write dataset " + dataset +
                             " (disk full, or a file size limit?)");
}
}  // namespace

void H5File::write_tensor(const std::string& dataset, const Tensor& t) {
  const std::vector<hsize_t> dims(t.shape().begin(), t.shape().end());
  write_dataset(id_, path_, dataset, dims, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, t.data());
}

void H5File::write_uint8(const std::string& dataset, const std::vector<hsize_t>& dims,
                         const unsigned char* data) {
  write_dataset(id_, path_, dataset, dims, H5T_STD_U8LE, H5T_NATIVE_UCHAR, data);
}

void H5File::write_int64(const std::string& dataset, const std::vector<long long>& values) {
  write_dataset(id_, path_, dataset, {values.size()}, H5T_STD_I64LE, H5T_NATIVE_LLONG,
                values.data());
}

std::vector<std::string> H5File::read_string_attribute(const std::string& object_path,
                                                       const std::string& attr) const {
  if (H5Aexists_by_name(id_, object_path.c_str(), attr.c_str(), H5P_DEFAULT) <= 0)
    throw std::runtime_error(path_ + ": " + object_path + " has no attribute '" + attr + "'");
  Handle a{H5Aopen_by_name(id_, object_path.c_str(), attr.c_str(), H5P_DEFAULT, H5P_DEFAULT),
           H5Aclose};
  Handle type{H5Aget_type(a.id), H5Tclose};
  Handle space{H5Aget_space(a.id), H5Sclose};
  if (H5Sget_simple_extent_npoints(space.id) == 0) return {};
  if (H5Tget_class(type.id) != H5T_STRING)
    throw std::runtime_error(path_ + ": attribute " + object_path + "@" + attr +
                             " is not a string array");
  const std::size_t n = static_cast<std::size_t>(H5Sget_simple_extent_npoints(space.id));
  std::vector<std::string> out;
  if (H5Tis_variable_str(type.id) > 0) {
    Handle mem{H5Tcopy(H5T_C_S1), H5Tclose};
    H5Tset_size(mem.id, H5T_VARIABLE);
    H5Tset_cset(mem.id, H5Tget_cset(type.id));  // h5py writes Python str as UTF-8
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

bool H5File::has_attribute(const std::string& object_path, const std::string& attr) const {
  return exists(object_path) &&
         H5Aexists_by_name(id_, object_path.c_str(), attr.c_str(), H5P_DEFAULT) > 0;
}

std::vector<std::string> H5File::read_string_list_attribute(const std::string& object_path,
                                                            const std::string& attr) const {
  if (has_attribute(object_path, attr)) return read_string_attribute(object_path, attr);
  std::vector<std::string> all;
  int chunk = 0;
  for (; has_attribute(object_path, attr + std::to_string(chunk)); ++chunk) {
    auto part = read_string_attribute(object_path, attr + std::to_string(chunk));
    all.insert(all.end(), part.begin(), part.end());
  }
  if (chunk == 0)
    throw std::runtime_error(path_ + ": " + object_path + " has no attribute '" + attr + "'");
  return all;
}

H5T_class_t H5File::dataset_type_class(const std::string& dataset) const {
  Handle d{open_dataset(dataset), H5Dclose};
  Handle t{H5Dget_type(d.id), H5Tclose};
  return H5Tget_class(t.id);
}

std::string H5File::dataset_type_name(const std::string& dataset) const {
  Handle d{open_dataset(dataset), H5Dclose};
  Handle t{H5Dget_type(d.id), H5Tclose};
  const std::string bits = std::to_string(8 * H5Tget_size(t.id));
  switch (H5Tget_class(t.id)) {
    case H5T_FLOAT:
      return "float" + bits;
    case H5T_INTEGER:
      return (H5Tget_sign(t.id) == H5T_SGN_NONE ? "uint" : "int") + bits;
    case H5T_STRING:
      return "string";
    default:
      return "non-numeric type";
  }
}

bool H5File::is_group(const std::string& object_path) const {
  if (object_path == "/") return true;
  if (!exists(object_path)) return false;
  const hid_t g = H5Gopen2(id_, object_path.c_str(), H5P_DEFAULT);
  if (g < 0) return false;
  H5Gclose(g);
  return true;
}

namespace {
hid_t fixed_string_type(std::size_t len) {
  const hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, std::max<std::size_t>(len, 1));
  H5Tset_strpad(t, H5T_STR_NULLPAD);
  return t;
}
}  // namespace

void H5File::write_string_list_attribute(const std::string& object_path, const std::string& attr,
                                         const std::vector<std::string>& values) {
  std::size_t len = 1;
  for (const auto& v : values) len = std::max(len, v.size());
  std::vector<char> buf(values.size() * len, '\0');
  for (std::size_t i = 0; i < values.size(); ++i)
    std::copy(values[i].begin(), values[i].end(), buf.begin() + i * len);
  Handle type{fixed_string_type(len), H5Tclose};
  const hsize_t n = values.size();
  Handle space{H5Screate_simple(1, &n, nullptr), H5Sclose};
  Handle a{H5Acreate_by_name(id_, object_path.c_str(), attr.c_str(), type.id, space.id, H5P_DEFAULT,
                             H5P_DEFAULT, H5P_DEFAULT),
           H5Aclose};
  if (a.id < 0 || (n && H5Awrite(a.id, type.id, buf.data()) < 0) || !a.close_checked())
    throw std::runtime_error(path_ + ": cannot write attribute " + object_path + "@" + attr);
}

void H5File::write_string_scalar_attribute(const std::string& object_path, const std::string& attr,
                                           const std::string& value) {
  Handle type{fixed_string_type(value.size()), H5Tclose};
  Handle space{H5Screate(H5S_SCALAR), H5Sclose};
  Handle a{H5Acreate_by_name(id_, object_path.c_str(), attr.c_str(), type.id, space.id, H5P_DEFAULT,
                             H5P_DEFAULT, H5P_DEFAULT),
           H5Aclose};
  std::string padded = value.empty() ? std::string(1, '\0') : value;
  if (a.id < 0 || H5Awrite(a.id, type.id, padded.data()) < 0 || !a.close_checked())
    throw std::runtime_error(path_ + ": cannot write attribute " + object_path + "@" + attr);
}

void H5File::create_group(const std::string& group_path) {
  Handle lcpl{H5Pcreate(H5P_LINK_CREATE), H5Pclose};
  H5Pset_create_intermediate_group(lcpl.id, 1);
  Handle g{H5Gcreate2(id_, group_path.c_str(), lcpl.id, H5P_DEFAULT, H5P_DEFAULT), H5Gclose};
  if (g.id < 0) throw std::runtime_error(path_ + ": cannot create group " + group_path);
}

}  // namespace parafine
