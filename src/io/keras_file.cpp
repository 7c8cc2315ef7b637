// Reading the structure of Keras HDF5 weight files (see keras_file.hpp).
#include "parafine/io/keras_file.hpp"

#include "parafine/core/atomic_file.hpp"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <regex>
#include <set>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace parafine {

const char* layout_name(KerasLayout layout) {
  switch (layout) {
    case KerasLayout::kTfKeras:
      return "tf.keras save_weights";
    case KerasLayout::kKeras1:
      return "Keras-1 (keras-applications release)";
    case KerasLayout::kParafineCheckpoint:
      return "parafine checkpoint";
  }
  return "?";
}

const StoredLayer* KerasWeightFile::find(const std::string& name) const {
  for (const auto& l : layers)
    if (l.name == name) return &l;
  return nullptr;
}

std::string keras1_to_tf_keras(const std::string& n) {
  if (n == "conv1") return "conv1_conv";
  if (n == "bn_conv1") return "conv1_bn";
  static const std::regex re("(res|bn)([2-5])([a-f])_branch(1|2a|2b|2c)");
  std::smatch m;
  if (!std::regex_match(n, m, re)) return "";
  const int block = m[3].str()[0] - 'a' + 1;
  const std::string branch = m[4].str();
  const char* idx = branch == "1" ? "0" : branch == "2a" ? "1" : branch == "2b" ? "2" : "3";
  return "conv" + m[2].str() + "_block" + std::to_string(block) + "_" + idx +
         (m[1] == "res" ? "_conv" : "_bn");
}

bool is_top_classifier(const std::string& name) {
  // ResNet's Keras-1 fc1000; predictions of every keras.applications top; VGG's fc1 and fc2.
  return name == "fc1000" || name == "predictions" || name == "fc1" || name == "fc2";
}

namespace {

// "conv1_conv/kernel:0" -> "kernel"
std::string tf_keras_var(const std::string& weight_name) {
  std::string v = weight_name.substr(weight_name.rfind('/') + 1);
  const auto colon = v.find(':');
  return colon == std::string::npos ? v : v.substr(0, colon);
}

// "res2a_branch2a_W_1:0" (layer res2a_branch2a) -> "kernel"; "bn_conv1_running_std_1:0" ->
// "moving_variance" (Keras-1 stored the moving variance under this name).
std::string keras1_var(const std::string& layer, const std::string& weight_name) {
  static const std::regex re("(.*)_(W|b|gamma|beta|running_mean|running_std)(_[0-9]+)?(:[0-9]+)?");
  std::smatch m;
  const std::string leaf = weight_name.substr(weight_name.rfind('/') + 1);
  if (!std::regex_match(leaf, m, re) || m[1] != layer) return "";
  const std::string v = m[2];
  if (v == "W") return "kernel";
  if (v == "b") return "bias";
  if (v == "running_mean") return "moving_mean";
  if (v == "running_std") return "moving_variance";
  return v;
}

// The names of the top-level layers that model_config says are models themselves; nullopt-like
// `parsed` false when there is no usable model_config (then weight names decide).
struct NestedModels {
  bool parsed = false;
  std::set<std::string> names;
};

NestedModels nested_models_of(const std::string& model_config) {
  NestedModels out;
  if (model_config.empty()) return out;
  const auto j = nlohmann::json::parse(model_config, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("config")) return out;
  const auto& config = j["config"];
  // Functional / Model: {"layers": [...]}; Sequential: {"layers": [...]} or, in old Keras 2,
  // the list itself.
  const nlohmann::json* layers = config.is_array() ? &config : nullptr;
  if (config.is_object() && config.contains("layers") && config["layers"].is_array())
    layers = &config["layers"];
  if (!layers) return out;
  out.parsed = true;
  for (const auto& l : *layers) {
    if (!l.is_object() || !l.contains("class_name") || !l["class_name"].is_string()) continue;
    const std::string cls = l["class_name"];
    if (cls != "Functional" && cls != "Model" && cls != "Sequential") continue;
    if (l.contains("name") && l["name"].is_string()) out.names.insert(l["name"].get<std::string>());
    if (l.contains("config") && l["config"].is_object() && l["config"].contains("name") &&
        l["config"]["name"].is_string())
      out.names.insert(l["config"]["name"].get<std::string>());
  }
  return out;
}

// "conv1/kernel:0" -> "conv1"; "seq/dense/kernel:0" -> "dense"; "kernel:0" -> "".
std::string inner_layer_of(const std::string& weight_name) {
  const auto last = weight_name.rfind('/');
  if (last == std::string::npos || last == 0) return "";
  const auto before = weight_name.rfind('/', last - 1);
  return weight_name.substr(before == std::string::npos ? 0 : before + 1,
                            before == std::string::npos ? last : last - before - 1);
}

bool is_nested_model(const NestedModels& nested, const std::string& layer,
                     const std::vector<std::string>& weight_names, bool keras1) {
  if (keras1) return false;
  if (nested.parsed) return nested.names.count(layer) > 0;
  std::set<std::string> inner;
  for (const auto& wn : weight_names) {
    const std::string i = inner_layer_of(wn);
    if (!i.empty() && i != layer) inner.insert(i);
  }
  if (inner.size() != 1) return inner.size() > 1;
  // One other name: a nested model with one layer of weights, unless it is the layer's own
  // name made unique by TensorFlow's graph ("conv1_1/kernel:0" in group conv1, written by a
  // session that had built the model before).
  static const std::regex uniquified("_[0-9]+");
  const std::string& i = *inner.begin();
  return !(i.size() > layer.size() && i.compare(0, layer.size(), layer) == 0 &&
           std::regex_match(i.substr(layer.size()), uniquified));
}

StoredWeight stored_weight(const H5File& f, const std::string& group, const std::string& layer,
                           const std::string& wn, bool keras1) {
  StoredWeight w;
  w.stored_name = wn;
  w.dataset = group + "/" + wn;
  w.var = keras1 ? keras1_var(layer, wn) : tf_keras_var(wn);
  if (!f.exists(w.dataset))
    throw std::runtime_error(f.path() + ": layer '" + layer + "' lists weight '" + wn + "' but " +
                             w.dataset + " does not exist (truncated or damaged file?)");
  for (hsize_t d : f.dataset_shape(w.dataset)) {
    if (d > static_cast<hsize_t>(std::numeric_limits<int>::max()))
      throw std::runtime_error(f.path() + ": " + w.dataset + " has a dimension of " +
                               std::to_string(d) + " (damaged file?)");
    w.shape.push_back(static_cast<int>(d));
  }
  f.check_stored_size(w.dataset);
  w.dtype = f.dataset_type_name(w.dataset);
  w.is_float = f.dataset_type_class(w.dataset) == H5T_FLOAT;
  return w;
}

// A nested model's group: one StoredLayer per inner layer, in order of first appearance.
void expand_nested(const H5File& f, const std::string& group, const std::string& model,
                   const std::vector<std::string>& weight_names, std::vector<StoredLayer>& out) {
  const std::size_t first = out.size();
  for (const auto& wn : weight_names) {
    std::string inner = inner_layer_of(wn);
    if (inner.empty()) inner = model;  // a variable of the nested model itself
    StoredLayer* layer = nullptr;
    for (std::size_t i = first; i < out.size(); ++i)
      if (out[i].stored_name == inner) layer = &out[i];
    if (!layer) {
      out.push_back(StoredLayer{inner, inner, model, {}});
      layer = &out.back();
    }
    layer->weights.push_back(stored_weight(f, group, model, wn, false));
  }
}

}  // namespace

KerasWeightFile read_keras_weight_file(const H5File& f) {
  KerasWeightFile out;
  out.path = f.path();
  out.root = f.is_group("/model_weights") ? "/model_weights" : "/";
  if (f.has_attribute("/", "parafine_checkpoint")) out.layout = KerasLayout::kParafineCheckpoint;
  const std::string prefix = out.root == "/" ? "" : out.root;
  std::vector<std::string> names;
  try {
    names = f.read_string_list_attribute(out.root, "layer_names");
  } catch (const std::runtime_error&) {
    throw std::runtime_error(f.path() + ": not a Keras weight file (no layer_names attribute at " +
                             out.root +
                             "); expected a file written by Keras save_weights or parafine --save");
  }
  for (const char* a : {"keras_version", "backend"})
    if (f.has_attribute(out.root, a)) {
      auto v = f.read_string_attribute(out.root, a);
      (a[0] == 'k' ? out.keras_version : out.backend) = v.empty() ? "" : v[0];
    }
  if (f.has_attribute("/", "model_config")) {
    const auto v = f.read_string_attribute("/", "model_config");
    out.model_config = v.empty() ? "" : v[0];
  }
  const NestedModels nested = nested_models_of(out.model_config);
  bool keras1 = false;
  for (const auto& n : names) keras1 = keras1 || n == "bn_conv1" || n == "res2a_branch2a";
  if (keras1 && out.layout != KerasLayout::kParafineCheckpoint) out.layout = KerasLayout::kKeras1;

  for (const auto& stored : names) {
    const std::string group = prefix + "/" + stored;
    if (!f.is_group(group))
      throw std::runtime_error(f.path() + ": layer_names lists '" + stored +
                               "' but there is no group " + group);
    const auto weight_names =
        f.has_attribute(group, "weight_names") || f.has_attribute(group, "weight_names0")
            ? f.read_string_list_attribute(group, "weight_names")
            : std::vector<std::string>{};
    if (weight_names.empty()) continue;
    if (is_nested_model(nested, stored, weight_names, keras1)) {
      expand_nested(f, group, stored, weight_names, out.layers);
      continue;
    }
    StoredLayer layer;
    layer.stored_name = stored;
    layer.name = stored;
    if (keras1) {
      const std::string t = keras1_to_tf_keras(stored);
      if (!t.empty()) layer.name = t;
    }
    for (const auto& wn : weight_names)
      layer.weights.push_back(stored_weight(f, group, stored, wn, keras1));
    out.layers.push_back(std::move(layer));
  }
  return out;
}

namespace {

// An empty attribute as h5py writes np.asarray([]) (float64, shape [0]).
void write_empty_list_attribute(hid_t file, const std::string& object, const std::string& attr) {
  const hsize_t zero = 0;
  const hid_t space = H5Screate_simple(1, &zero, nullptr);
  const hid_t a = H5Acreate_by_name(file, object.c_str(), attr.c_str(), H5T_IEEE_F64LE, space,
                                    H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Sclose(space);
  if (a < 0) throw std::runtime_error("cannot write attribute " + object + "@" + attr);
  H5Aclose(a);
}

void write_float_dataset(hid_t file, const std::string& dataset, const TfKerasWeightToWrite& w) {
  std::vector<hsize_t> dims(w.shape.begin(), w.shape.end());
  hsize_t n = 1;
  for (hsize_t d : dims) n *= d;
  const hid_t space = dims.empty()
                          ? H5Screate(H5S_SCALAR)
                          : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
  const hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  const hid_t d =
      H5Dcreate2(file, dataset.c_str(), H5T_IEEE_F32LE, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  H5Pclose(lcpl);
  H5Sclose(space);
  const bool ok = d >= 0 && (n == 0 || H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                                w.data) >= 0);
  if (d >= 0) H5Dclose(d);
  if (!ok) throw std::runtime_error("cannot write " + dataset);
}

// Byte strings as h5py >= 3 writes Python bytes (a scalar, or a list of them): variable-length
// ASCII strings. (A model_config over 64 KiB fits only so: a fixed-length string attribute is
// limited by the object header.)
void write_bytes_attribute(hid_t file, const std::string& object, const std::string& attr,
                           const std::vector<std::string>& values, bool scalar) {
  const hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, H5T_VARIABLE);
  H5Tset_cset(type, H5T_CSET_ASCII);
  const hsize_t n = values.size();
  const hid_t space = scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, nullptr);
  const hid_t a = H5Acreate_by_name(file, object.c_str(), attr.c_str(), type, space, H5P_DEFAULT,
                                    H5P_DEFAULT, H5P_DEFAULT);
  std::vector<const char*> ptrs;
  for (const auto& v : values) ptrs.push_back(v.c_str());
  const bool ok = a >= 0 && (values.empty() || H5Awrite(a, type, ptrs.data()) >= 0);
  if (a >= 0) H5Aclose(a);
  H5Sclose(space);
  H5Tclose(type);
  if (!ok) throw std::runtime_error("cannot write attribute " + object + "@" + attr);
}

// save_attributes_to_hdf5_group: a list whose array exceeds HDF5_OBJECT_HEADER_LIMIT (64512
// bytes) is split as np.array_split into name0, name1, ... (the first n % k chunks one longer).
void write_name_list(H5File& f, const std::string& object, const std::string& attr,
                     const std::vector<std::string>& values) {
  constexpr std::size_t kLimit = 64512;
  std::size_t itemsize = 1;
  for (const auto& v : values) itemsize = std::max(itemsize, v.size());
  std::size_t chunks = 1;
  while ((values.size() / chunks + (values.size() % chunks ? 1 : 0)) * itemsize > kLimit) ++chunks;
  // One piece: the list itself (h5py: variable-length); pieces: np.array_split of
  // np.asarray(data), fixed-length byte strings.
  if (chunks == 1) return write_bytes_attribute(f.id(), object, attr, values, false);
  std::size_t at = 0;
  for (std::size_t c = 0; c < chunks; ++c) {
    const std::size_t n = values.size() / chunks + (c < values.size() % chunks ? 1 : 0);
    f.write_string_list_attribute(
        object, attr + std::to_string(c),
        std::vector<std::string>(values.begin() + at, values.begin() + at + n));
    at += n;
  }
}

void write_entry(H5File& f, const std::string& prefix, const TfKerasEntryToWrite& e) {
  const std::string group = prefix + "/" + e.name;
  f.create_group(group);
  std::vector<std::string> names;
  for (const auto& w : e.weights) names.push_back(w.name);
  if (names.empty()) {
    write_empty_list_attribute(f.id(), group, "weight_names");
  } else {
    write_name_list(f, group, "weight_names", names);
  }
  for (const auto& w : e.weights) write_float_dataset(f.id(), group + "/" + w.name, w);
}

}  // namespace

void write_tf_keras_weights(const std::string& path,
                            const std::vector<TfKerasEntryToWrite>& entries,
                            const TfKerasRootAttrs& root_attrs) {
  std::set<std::string> names;
  std::uint64_t bytes = 0;
  for (const auto& e : entries) {
    if (e.name.empty() || e.name.find('/') != std::string::npos ||
        e.name == "top_level_model_weights")
      throw std::runtime_error(path + ": '" + e.name + "' cannot be a Keras layer group name");
    if (!names.insert(e.name).second)
      throw std::runtime_error(path + ": two layers named '" + e.name + "'");
    std::set<std::string> weights;
    for (const auto& w : e.weights) {
      if (!weights.insert(w.name).second)
        throw std::runtime_error(path + ": layer '" + e.name + "' has two weights named '" +
                                 w.name + "'");
      std::uint64_t n = 1;
      for (int d : w.shape) n *= static_cast<std::uint64_t>(d);
      bytes += 4 * n;
    }
  }
  AtomicFile out(path, "Keras weights file", bytes);
  out.write([&](const std::string& temp_path) {
    H5File f(temp_path, H5File::Mode::kTruncate);
    const bool whole_model = !root_attrs.model_config.empty();
    const std::string root = whole_model ? "/model_weights" : "/";
    const std::string prefix = whole_model ? root : "";
    if (whole_model) {
      // save_model_to_hdf5: model_metadata (keras_version, backend, model_config[,
      // training_config]) as root attributes, then save_weights_to_hdf5_group(/model_weights).
      write_bytes_attribute(f.id(), "/", "keras_version", {root_attrs.keras_version}, true);
      write_bytes_attribute(f.id(), "/", "backend", {root_attrs.backend}, true);
      write_bytes_attribute(f.id(), "/", "model_config", {root_attrs.model_config}, true);
      if (!root_attrs.training_config.empty())
        write_bytes_attribute(f.id(), "/", "training_config", {root_attrs.training_config}, true);
      f.create_group(root);
    }
    std::vector<std::string> layer_names;
    for (const auto& e : entries) layer_names.push_back(e.name);
    write_name_list(f, root, "layer_names", layer_names);
    write_bytes_attribute(f.id(), root, "backend", {root_attrs.backend}, true);
    write_bytes_attribute(f.id(), root, "keras_version", {root_attrs.keras_version}, true);
    // Groups in name order, as save_weights_to_hdf5_group creates them.
    std::vector<const TfKerasEntryToWrite*> sorted;
    for (const auto& e : entries) sorted.push_back(&e);
    std::sort(sorted.begin(), sorted.end(),
              [](const auto* a, const auto* b) { return a->name < b->name; });
    for (const auto* e : sorted) write_entry(f, prefix, *e);
    write_entry(f, prefix, TfKerasEntryToWrite{"top_level_model_weights", {}});
    f.close();  // checked: everything reached the file before it is published
  });
}

}  // namespace parafine
