// Reading and writing the Keras 3 `vars` weights layout (see keras3_weights_file.hpp).
#include "parafine/io/keras3_weights_file.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <regex>
#include <set>
#include <stdexcept>

#include "parafine/core/atomic_file.hpp"

namespace parafine {

const Keras3VarsGroup* Keras3WeightsFile::find(const std::string& group_path) const {
  for (const auto& g : groups)
    if (g.path == group_path) return &g;
  return nullptr;
}

namespace {

struct Handle {  // closes an HDF5 object with the right function
  hid_t id;
  herr_t (*close)(hid_t);
  ~Handle() {
    if (id >= 0) close(id);
  }
};

// A file may nest groups deeply only through damage or hostility (Keras nests a few levels per
// nested model); the walk stops there, and at this many objects, rather than loop or exhaust.
constexpr int kMaxDepth = 64;
constexpr std::size_t kMaxObjects = 1000000;

struct Link {
  std::string name;
  H5L_type_t type;
};

herr_t collect_link(hid_t, const char* name, const H5L_info_t* info, void* out) {
  static_cast<std::vector<Link>*>(out)->push_back({name, info->type});
  return 0;
}

// The links of a group, in name order (as h5py lists them).
std::vector<Link> links_of(const H5File& f, const std::string& group) {
  Handle g{H5Gopen2(f.id(), group.c_str(), H5P_DEFAULT), H5Gclose};
  if (g.id < 0) throw std::runtime_error(f.path() + ": cannot open group " + group);
  std::vector<Link> links;
  if (H5Literate(g.id, H5_INDEX_NAME, H5_ITER_INC, nullptr, collect_link, &links) < 0)
    throw std::runtime_error(f.path() + ": cannot list group " + group + " (damaged file?)");
  return links;
}

H5I_type_t object_type(const H5File& f, const std::string& path) {
  Handle o{H5Oopen(f.id(), path.c_str(), H5P_DEFAULT), H5Oclose};
  if (o.id < 0) throw std::runtime_error(f.path() + ": cannot open " + path + " (damaged file?)");
  return H5Iget_type(o.id);
}

void refuse_link(const H5File& f, const std::string& path, const Link& l) {
  if (l.type != H5L_TYPE_HARD)
    throw std::runtime_error(f.path() + ": " + path + " is a " +
                             (l.type == H5L_TYPE_SOFT ? "soft" : "external") +
                             " link; Keras refuses such weight files (not allowed) and so does "
                             "parafine");
}

// "0", "17": a canonical decimal index, else -1.
long index_of(const std::string& key) {
  if (key.empty() || key.size() > 9 || (key.size() > 1 && key[0] == '0')) return -1;
  for (char c : key)
    if (c < '0' || c > '9') return -1;
  return std::stol(key);
}

bool is_bfloat16_tagged(const H5File& f, const std::string& dataset) {
  if (!f.has_attribute(dataset, "dtype")) return false;
  try {
    const auto v = f.read_string_attribute(dataset, "dtype");
    return v.size() == 1 && v[0] == "bfloat16";
  } catch (const std::runtime_error&) {
    return false;  // a non-string dtype attribute is no bfloat16 tag
  }
}

std::size_t dataset_type_size(const H5File& f, const std::string& dataset) {
  Handle d{H5Dopen2(f.id(), dataset.c_str(), H5P_DEFAULT), H5Dclose};
  Handle t{H5Dget_type(d.id), H5Tclose};
  return t.id < 0 ? 0 : H5Tget_size(t.id);
}

Keras3VarsGroup read_vars_group(const H5File& f, const std::string& parent) {
  Keras3VarsGroup g;
  g.path = parent;
  const std::string vars = (parent.empty() ? "" : "/" + parent) + "/vars";
  if (f.has_attribute(vars, "name")) {
    const auto v = f.read_string_attribute(vars, "name");
    g.name = v.empty() ? "" : v[0];
  }
  std::vector<std::pair<long, std::string>> keys;
  for (const Link& l : links_of(f, vars)) {
    const std::string full = vars + "/" + l.name;
    refuse_link(f, full, l);
    const long i = index_of(l.name);
    if (i < 0)
      throw std::runtime_error(f.path() + ": " + vars + " holds '" + l.name +
                               "'; Keras 3 names a layer's variables 0, 1, 2, ... only");
    if (object_type(f, full) != H5I_DATASET)
      throw std::runtime_error(f.path() + ": " + full + " is not a dataset");
    keys.emplace_back(i, l.name);
  }
  std::sort(keys.begin(), keys.end());
  for (std::size_t i = 0; i < keys.size(); ++i)
    if (keys[i].first != static_cast<long>(i))
      throw std::runtime_error(f.path() + ": " + vars + " has variables " +
                               [&] {
                                 std::string s;
                                 for (const auto& k : keys) s += (s.empty() ? "" : ",") + k.second;
                                 return s;
                               }() +
                               ": variable " + std::to_string(i) +
                               " is missing (Keras stores 0..n-1; damaged file?)");
  for (const auto& k : keys) {
    StoredWeight w;
    w.stored_name = k.second;
    w.dataset = vars + "/" + k.second;
    for (hsize_t d : f.dataset_shape(w.dataset)) {
      if (d > static_cast<hsize_t>(std::numeric_limits<int>::max()))
        throw std::runtime_error(f.path() + ": " + w.dataset + " has a dimension of " +
                                 std::to_string(d) + " (damaged file?)");
      w.shape.push_back(static_cast<int>(d));
    }
    f.check_stored_size(w.dataset);
    const H5T_class_t cls = f.dataset_type_class(w.dataset);
    if (is_bfloat16_tagged(f, w.dataset)) {
      if (dataset_type_size(f, w.dataset) != 2 ||
          !(cls == H5T_OPAQUE || cls == H5T_INTEGER || cls == H5T_FLOAT))
        throw std::runtime_error(f.path() + ": " + w.dataset +
                                 " is tagged dtype=bfloat16 but does not hold 2-byte values");
      w.dtype = "bfloat16";
      w.is_float = true;
    } else if (cls == H5T_FLOAT || cls == H5T_INTEGER) {
      // Integer variables exist (an optimizer's iterations): recorded, not readable as weights.
      w.dtype = f.dataset_type_name(w.dataset);
      w.is_float = cls == H5T_FLOAT;
    } else {
      throw std::runtime_error(f.path() + ": " + w.dataset + " holds " +
                               f.dataset_type_name(w.dataset) + " values, not numbers");
    }
    g.vars.push_back(std::move(w));
  }
  return g;
}

void walk(const H5File& f, const std::string& path, int depth, std::size_t& objects,
          std::vector<Keras3VarsGroup>& out) {
  if (depth > kMaxDepth)
    throw std::runtime_error(f.path() + ": groups nested deeper than " + std::to_string(kMaxDepth) +
                             " levels at /" + path + " (damaged file?)");
  for (const Link& l : links_of(f, path.empty() ? "/" : "/" + path)) {
    if (++objects > kMaxObjects)
      throw std::runtime_error(f.path() + ": more than " + std::to_string(kMaxObjects) +
                               " objects (damaged file?)");
    const std::string child = path.empty() ? l.name : path + "/" + l.name;
    refuse_link(f, "/" + child, l);
    if (object_type(f, "/" + child) != H5I_GROUP) continue;
    if (l.name == "vars") {
      out.push_back(read_vars_group(f, path));
    } else {
      walk(f, child, depth + 1, objects, out);
    }
  }
}

}  // namespace

Keras3WeightsFile read_keras3_weights_file(const H5File& f) {
  Keras3WeightsFile out;
  out.path = f.path();
  for (const char* root : {"/", "/model_weights"})
    if ((std::string(root) == "/" || f.is_group(root)) &&
        (f.has_attribute(root, "layer_names") || f.has_attribute(root, "layer_names0")))
      throw std::runtime_error(
          f.path() + ": a tf.keras / Keras 2 HDF5 file (layer_names attribute at " + root +
          "), not the Keras 3 .weights.h5 layout; it is read as a Keras 2 weight file");
  std::size_t objects = 0;
  walk(f, "", 0, objects, out.groups);
  std::sort(out.groups.begin(), out.groups.end(),
            [](const Keras3VarsGroup& a, const Keras3VarsGroup& b) { return a.path < b.path; });
  if (out.groups.empty())
    throw std::runtime_error(f.path() +
                             ": no 'vars' group anywhere, so not a Keras 3 weights file "
                             "(written by model.save / model.save_weights(\"x.weights.h5\"))");
  return out;
}

Tensor read_keras3_var(const H5File& f, const StoredWeight& var) {
  if (!var.is_float)
    throw std::runtime_error(f.path() + ": " + var.dataset + " holds " + var.dtype +
                             " values, not float weights");
  Shape shape = var.shape.empty() ? Shape{1} : Shape(var.shape);  // a scalar reads as [1]
  Tensor t(shape);
  Handle d{H5Dopen2(f.id(), var.dataset.c_str(), H5P_DEFAULT), H5Dclose};
  if (d.id < 0) throw std::runtime_error(f.path() + ": cannot open " + var.dataset);
  herr_t status;
  if (var.dtype == "bfloat16") {
    std::vector<std::uint16_t> bits(shape.numel());
    Handle type{H5Dget_type(d.id), H5Tclose};
    // Opaque data is the bytes numpy wrote (little-endian here); integer data HDF5 converts.
    const hid_t mem = H5Tget_class(type.id) == H5T_INTEGER ? H5T_NATIVE_UINT16 : type.id;
    status = H5Dread(d.id, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, bits.data());
    for (std::size_t i = 0; i < bits.size(); ++i) {
      const std::uint32_t u = static_cast<std::uint32_t>(bits[i]) << 16;  // bfloat16 = top half
      std::memcpy(t.data() + i, &u, sizeof u);
    }
  } else {
    status = H5Dread(d.id, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data());
  }
  if (status < 0) throw std::runtime_error(f.path() + ": cannot read " + var.dataset);
  return t;
}

namespace {

void check(herr_t status_or_id, const std::string& what) {
  if (status_or_id < 0) throw std::runtime_error("cannot write " + what);
}

// A str attribute as h5py writes it: scalar, variable-length, UTF-8.
void write_utf8_attribute(hid_t obj, const std::string& attr, const std::string& value,
                          const std::string& where) {
  Handle type{H5Tcopy(H5T_C_S1), H5Tclose};
  H5Tset_size(type.id, H5T_VARIABLE);
  H5Tset_cset(type.id, H5T_CSET_UTF8);
  Handle space{H5Screate(H5S_SCALAR), H5Sclose};
  Handle a{H5Acreate2(obj, attr.c_str(), type.id, space.id, H5P_DEFAULT, H5P_DEFAULT), H5Aclose};
  check(a.id, where + "@" + attr);
  const char* p = value.c_str();
  check(H5Awrite(a.id, type.id, &p), where + "@" + attr);
}

void write_vars_group(hid_t file, const Keras3VarsToWrite& g) {
  const std::string vars = (g.path.empty() ? "" : "/" + g.path) + "/vars";
  Handle lcpl{H5Pcreate(H5P_LINK_CREATE), H5Pclose};
  H5Pset_create_intermediate_group(lcpl.id, 1);
  Handle group{H5Gcreate2(file, vars.c_str(), lcpl.id, H5P_DEFAULT, H5P_DEFAULT), H5Gclose};
  check(group.id, vars);
  write_utf8_attribute(group.id, "name", g.name, vars);
  for (std::size_t i = 0; i < g.vars.size(); ++i) {
    const auto& v = g.vars[i];
    const std::string ds = vars + "/" + std::to_string(i);
    std::vector<hsize_t> dims(v.shape.begin(), v.shape.end());
    Handle space{dims.empty()
                     ? H5Screate(H5S_SCALAR)
                     : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                 H5Sclose};
    Handle d{H5Dcreate2(group.id, std::to_string(i).c_str(), H5T_IEEE_F32LE, space.id, H5P_DEFAULT,
                        H5P_DEFAULT, H5P_DEFAULT),
             H5Dclose};
    check(d.id, ds);
    hsize_t n = 1;
    for (hsize_t x : dims) n *= x;
    if (n > 0) check(H5Dwrite(d.id, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data), ds);
  }
}

}  // namespace

void write_keras3_weights_file(const std::string& path,
                               const std::vector<Keras3VarsToWrite>& groups) {
  std::set<std::string> seen;
  std::uint64_t bytes = 0;
  for (const auto& g : groups) {
    if (!seen.insert(g.path).second)
      throw std::runtime_error(path + ": two entries for the Keras path '" + g.path + "'");
    if (g.path == "vars" || (g.path.size() > 5 && g.path.rfind("/vars") == g.path.size() - 5))
      throw std::runtime_error(path + ": '" + g.path + "' is not a container path");
    for (const auto& v : g.vars) {
      std::uint64_t n = 1;
      for (int x : v.shape) n *= static_cast<std::uint64_t>(x);
      bytes += 4 * n;
    }
  }
  AtomicFile out(path, "Keras weights file", bytes);
  out.write([&](const std::string& temp_path) {
    H5File f(temp_path, H5File::Mode::kTruncate);
    for (const auto& g : groups) write_vars_group(f.id(), g);
    f.close();  // checked: everything reached the file before it is published
  });
}

std::string keras3_container_name(const std::string& class_name) {
  // keras/src/utils/naming.py to_snake_case, regex for regex.
  static const std::regex non_word(R"(\W+)");
  static const std::regex upper_word("(.)([A-Z][a-z]+)");
  static const std::regex lower_upper("([a-z])([A-Z])");
  std::string s = std::regex_replace(class_name, non_word, "");
  s = std::regex_replace(s, upper_word, "$1_$2");
  s = std::regex_replace(s, lower_upper, "$1_$2");
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : static_cast<char>(c);
  });
  return s;
}

std::string Keras3UniqueNames::next(const std::string& name) {
  auto it = used_.find(name);
  if (it == used_.end()) {
    used_[name] = 0;
    return name;
  }
  return name + "_" + std::to_string(++it->second);
}

}  // namespace parafine
