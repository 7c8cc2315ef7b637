// Keras-layout model saving (see model_file.hpp).
#include "parafine/io/model_file.hpp"

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <stdexcept>

#include "parafine/core/atomic_file.hpp"
#include "parafine/io/backbone_of_file.hpp"
#include "parafine/io/h5_tensors.hpp"
#include "parafine/io/keras_weights.hpp"

namespace parafine {

void save_keras_model(const Model& model, const std::string& path,
                      const std::vector<std::string>& class_names) {
  AtomicFile out(path, "saved model", model.params().size() * sizeof(float));
  out.write([&](const std::string& temp_path) {
    H5File f(temp_path, H5File::Mode::kTruncate);
    std::vector<std::string> layer_names;
    for (int i = 0; i < model.size(); ++i) layer_names.push_back(model.layer(i).name());
    f.write_string_list_attribute("/", "layer_names", layer_names);
    f.write_string_scalar_attribute("/", "backend", "tensorflow");
    f.write_string_scalar_attribute("/", "keras_version", "2.11.0");
    if (!class_names.empty()) f.write_string_list_attribute("/", "class_names", class_names);
    f.write_string_scalar_attribute("/", "parafine_image_size",
                                    std::to_string(model.sample_input_shape()[0]));
    for (int i = 0; i < model.size(); ++i) {
      const std::string& name = model.layer(i).name();
      f.create_group("/" + name);
      std::vector<std::string> weight_names;
      for (const auto& spec : model.layer(i).param_specs()) {
        const std::string var = name + "/" + spec.name + ":0";
        weight_names.push_back(var);
        const ParamRef& r = model.find_param(name, spec.name);
        Tensor t(r.shape);
        std::copy(model.data(r), model.data(r) + r.shape.numel(), t.data());
        f.write_tensor("/" + name + "/" + var, t);
      }
      f.write_string_list_attribute("/" + name, "weight_names", weight_names);
    }
    f.close();  // checked: everything reached the file before it is published
  });
}

namespace {

// The image size a model file was saved at (its parafine_image_size attribute), else 0 (the
// backbone's default size).
int saved_image_size(const H5File& h5, const KerasWeightFile& file) {
  if (!h5.has_attribute(file.root, "parafine_image_size")) return 0;
  const auto v = h5.read_string_attribute(file.root, "parafine_image_size");
  if (v.empty()) return 0;
  char* end = nullptr;
  const long size = std::strtol(v[0].c_str(), &end, 10);
  if (end == v[0].c_str() || *end != '\0' || size < 32 || size > kMaxImageSize)
    throw std::runtime_error(h5.path() + ": attribute parafine_image_size is '" +
                             v[0].substr(0, 40) + "', not an image size in " + kImageSizeRange +
                             " (damaged file?)");
  return static_cast<int>(size);
}

Model read_full_model(const std::string& path, int image_size,
                      std::vector<std::string>* class_names, NetworkConfig* config) {
  H5File h5(path, H5File::Mode::kRead);
  const KerasWeightFile file = read_keras_weight_file(h5);
  if (image_size <= 0) image_size = saved_image_size(h5, file);
  const NetworkConfig net = network_config_of(file, image_size);
  if (config) *config = net;
  Model model = build_network(net);
  const WeightCheck check = check_and_load_keras_weights(model, h5, file, WeightScope::kFull, true);
  if (!check.problems.empty()) {
    std::string msg =
        path + ": cannot load the model, " + std::to_string(check.problems.size()) + " problem(s):";
    for (const auto& p : check.problems) msg += "\n  " + p;
    throw std::runtime_error(msg);
  }
  if (class_names) {
    class_names->clear();
    if (h5.has_attribute(file.root, "class_names"))
      *class_names = h5.read_string_list_attribute(file.root, "class_names");
  }
  return model;
}

}  // namespace

Model load_full_model(const std::string& path, int image_size,
                      std::vector<std::string>* class_names, NetworkConfig* config) {
  std::optional<Model> model;
  parse_untrusted_hdf5(path, "Keras model file",
                       [&] { model.emplace(read_full_model(path, image_size, class_names, config)); });
  return std::move(*model);
}

}  // namespace parafine
