// HDF5 helpers (see h5_tensors.hpp).
#include "parafine/io/h5_tensors.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <stdexcept>

#include "parafine/core/isolated_call.hpp"

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

std::mutex& hdf5_mutex() {
  static std::mutex m;
  return m;
}

namespace {
double check_timeout_seconds(const std::string& path) {
  if (const char* env = std::getenv("PARAFINE_HDF5_CHECK_TIMEOUT")) {
    char* end = nullptr;
    const double v = std::strtod(env, &end);
    if (end != env && *end == '\0' && v > 0) return v;
  }
  struct stat st {};
  const double megabytes =
      ::stat(path.c_str(), &st) == 0 ? static_cast<double>(st.st_size) / 1e6 : 0;
  return 60 + megabytes / 20;
}
}  // namespace

void check_untrusted_hdf5(const std::string& path, const std::string& what,
                          const std::function<void()>& check) {
  const double timeout = check_timeout_seconds(path);
  IsolatedOutcome outcome;
  {
    // No other thread is inside HDF5 while the child is forked: its copy of the library's
    // state must be consistent.
    std::lock_guard<std::mutex> lock(hdf5_mutex());
    outcome = run_isolated(check, timeout);
  }
  using Kind = IsolatedOutcome::Kind;
  switch (outcome.kind) {
    case Kind::kSucceeded:
    case Kind::kNotRun:  // fork failed: the caller reads the file unprotected
      return;
    case Kind::kThrew:
      throw std::runtime_error(outcome.message);
    case Kind::kCrashed:
      throw std::runtime_error(path + ": damaged, or not a " + what +
                               ": reading it crashed the HDF5 library (" +
                               signal_description(outcome.signal) +
                               ", in a separate checking process); parafine did not use it");
    case Kind::kTimedOut:
      throw std::runtime_error(path + ": damaged, or not a " + what +
                               ": the HDF5 library was still reading it after " +
                               std::to_string(static_cast<long>(timeout)) +
                               " s (a damaged file can make it loop; on a very slow filesystem set "
                               "PARAFINE_HDF5_CHECK_TIMEOUT=SECONDS)");
  }
}

void parse_untrusted_hdf5(const std::string& path, const std::string& what,
                          const std::function<void()>& parse) {
  check_untrusted_hdf5(path, what, parse);
  std::lock_guard<std::mutex> lock(hdf5_mutex());
  parse();
}

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
    throw std::runtime_error(path_ +
                             ": HDF5 could not write the whole file (disk full, or a file "
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
  if (rank < 0 || rank > H5S_MAX_RANK)
    throw std::runtime_error(path_ + ": " + dataset + " has no readable shape (damaged file?)");
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  if (rank > 0 && H5Sget_simple_extent_dims(s.id, dims.data(), nullptr) < 0)
    throw std::runtime_error(path_ + ": " + dataset + " has no readable shape (damaged file?)");
  // A damaged header can claim any size; no dataset parafine reads has 2^40 elements.
  hsize_t elements = 1;
  for (hsize_t d : dims) {
    if (d != 0 && elements > (hsize_t{1} << 40) / d)
      throw std::runtime_error(path_ + ": " + dataset + " claims a shape of " + dims_text(dims) +
                               ", over 2^40 elements (damaged file?)");
    elements *= d;
  }
  return dims;
}

void H5File::check_stored_size(const std::string& dataset) const {
  const auto dims = dataset_shape(dataset);
  Handle d{open_dataset(dataset), H5Dclose};
  Handle type{H5Dget_type(d.id), H5Tclose};
  Handle create{H5Dget_create_plist(d.id), H5Pclose};
  if (type.id < 0 || create.id < 0)
    throw std::runtime_error(path_ + ": " + dataset + " has no readable type (damaged file?)");
  if (H5Pget_nfilters(create.id) != 0) return;  // compressed: any size is possible
  long double needed = static_cast<long double>(H5Tget_size(type.id));  // no overflow
  for (hsize_t x : dims) needed *= static_cast<long double>(x);
  const hsize_t stored = H5Dget_storage_size(d.id);
  if (needed > 0 && static_cast<long double>(stored) < needed)
    throw std::runtime_error(
        path_ + ": " + dataset + " has shape " + dims_text(dims) + ", which needs " +
        std::to_string(static_cast<unsigned long long>(std::min(needed, 1.8e19L))) +
        " bytes, but the file stores " + std::to_string(stored) + " (damaged or truncated file?)");
}

std::string dims_text(const std::vector<hsize_t>& dims) {
  std::string s = "[";
  for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? "," : "") + std::to_string(dims[i]);
  return s + "]";
}

namespace {
// Most values one read_* call returns: 2^31 (8 GiB of floats), far above any weight tensor.
constexpr std::size_t kMaxReadValues = std::size_t{1} << 31;

template <typename T>
std::vector<T> read_all(const H5File& f, hid_t dset, hid_t mem_type, const std::string& name,
                        std::size_t n) {
  if (n > kMaxReadValues)
    throw std::runtime_error(f.path() + ": " + name + " claims " + std::to_string(n) +
                             " values, more than parafine reads from one dataset (damaged file?)");
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
  for (hsize_t x : dims) {
    if (x > static_cast<hsize_t>(std::numeric_limits<int>::max()))
      throw std::runtime_error(path_ + ": " + dataset + " has a dimension of " + std::to_string(x) +
                               " (damaged file?)");
    sd.push_back(static_cast<int>(x));
  }
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

namespace {
// Bounds on a string-array attribute: Keras splits lists at HDF5's 64 KiB attribute limit, so
// real files stay far below these; a damaged header can claim anything.
constexpr hssize_t kMaxAttributeStrings = 1 << 20;
constexpr std::size_t kMaxAttributeBytes = std::size_t{64} << 20;
}  // namespace

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
  const hssize_t points = H5Sget_simple_extent_npoints(space.id);
  if (points < 0 || points > kMaxAttributeStrings)
    throw std::runtime_error(path_ + ": attribute " + object_path + "@" + attr + " claims " +
                             std::to_string(points) + " strings (damaged file?)");
  const std::size_t n = static_cast<std::size_t>(points);
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
    if (len == 0 || len > kMaxAttributeBytes / std::max<std::size_t>(n, 1))
      throw std::runtime_error(path_ + ": attribute " + object_path + "@" + attr + " claims " +
                               std::to_string(n) + " strings of " + std::to_string(len) +
                               " bytes (damaged file?)");
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
