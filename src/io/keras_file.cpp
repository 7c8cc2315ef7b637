// Reading the structure of Keras HDF5 weight files (see keras_file.hpp).
#include "parafine/io/keras_file.hpp"

#include <limits>
#include <regex>
#include <stdexcept>

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
    StoredLayer layer;
    layer.stored_name = stored;
    layer.name = stored;
    if (keras1) {
      const std::string t = keras1_to_tf_keras(stored);
      if (!t.empty()) layer.name = t;
    }
    for (const auto& wn : weight_names) {
      StoredWeight w;
      w.stored_name = wn;
      w.dataset = group + "/" + wn;
      w.var = keras1 ? keras1_var(stored, wn) : tf_keras_var(wn);
      if (!f.exists(w.dataset))
        throw std::runtime_error(f.path() + ": layer '" + stored + "' lists weight '" + wn +
                                 "' but " + w.dataset +
                                 " does not exist (truncated or damaged file?)");
      for (hsize_t d : f.dataset_shape(w.dataset)) {
        if (d > static_cast<hsize_t>(std::numeric_limits<int>::max()))
          throw std::runtime_error(f.path() + ": " + w.dataset + " has a dimension of " +
                                   std::to_string(d) + " (damaged file?)");
        w.shape.push_back(static_cast<int>(d));
      }
      f.check_stored_size(w.dataset);
      w.dtype = f.dataset_type_name(w.dataset);
      w.is_float = f.dataset_type_class(w.dataset) == H5T_FLOAT;
      layer.weights.push_back(std::move(w));
    }
    out.layers.push_back(std::move(layer));
  }
  return out;
}

}  // namespace parafine
