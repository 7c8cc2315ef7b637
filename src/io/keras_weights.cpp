// Keras weight loading by name (see keras_weights.hpp).
#include "parafine/io/keras_weights.hpp"

#include <cmath>
#include <ostream>
#include <set>
#include <stdexcept>

namespace parafine {

namespace {

bool in_scope(const Model& model, int node, WeightScope scope) {
  return scope == WeightScope::kFull || node < model.base_layers();
}

std::string var_list(const StoredLayer& l) {
  std::string s;
  for (const auto& w : l.weights)
    s += (s.empty() ? "" : ", ") + (w.var.empty() ? w.stored_name : w.var);
  return s;
}

}  // namespace

WeightCheck check_and_load_keras_weights(Model& model, const H5File& h5,
                                         const KerasWeightFile& file, WeightScope scope,
                                         bool load) {
  WeightCheck check;
  std::vector<std::pair<const ParamRef*, Tensor>> staged;
  std::set<std::string> wanted;
  for (int i = 0; i < model.size(); ++i) {
    if (!in_scope(model, i, scope) || !model.layer(i).has_params()) continue;
    const std::string& name = model.layer(i).name();
    wanted.insert(name);
    const StoredLayer* stored = file.find(name);
    if (!stored) {
      check.problems.push_back(name + ": missing from the file");
      continue;
    }
    std::set<std::string> used;
    for (const ParamRef& r : model.param_refs()) {
      if (r.node != i) continue;
      const StoredWeight* w = nullptr;
      for (const auto& sw : stored->weights)
        if (sw.var == r.name) w = &sw;
      if (!w) {
        check.problems.push_back(name + ": no '" + r.name +
                                 "' weight (the file has: " + var_list(*stored) + ")");
        continue;
      }
      used.insert(w->var);
      if (!w->is_float) {
        check.problems.push_back(name + "/" + r.name + ": stored as " + w->dtype +
                                 ", expected floating point");
        continue;
      }
      if (!r.shape.matches(w->shape)) {
        check.problems.push_back(name + "/" + r.name + ": shape " + dims_str(w->shape) +
                                 " in the file, the model needs " + r.shape.str());
        continue;
      }
      Tensor t = h5.read_tensor(w->dataset);
      std::size_t bad = 0;
      for (std::size_t k = 0; k < t.numel(); ++k) bad += !std::isfinite(t[k]);
      if (bad) {
        check.problems.push_back(name + "/" + r.name + ": " + std::to_string(bad) +
                                 " NaN or Inf value(s)");
        continue;
      }
      staged.emplace_back(&r, std::move(t));
    }
    for (const auto& sw : stored->weights)
      if (!used.count(sw.var))
        check.problems.push_back(name + ": unexpected weight '" + sw.stored_name + "'");
  }
  for (const StoredLayer& l : file.layers) {
    if (wanted.count(l.name)) continue;
    const int node = model.index_of(l.name);
    if (is_top_classifier(l.name) && scope == WeightScope::kBase)
      check.notes.push_back("ignoring the top classifier '" + l.stored_name +
                            "' (include_top weights)");
    else if (node >= 0 && !in_scope(model, node, scope))
      check.notes.push_back("ignoring '" + l.name +
                            "': only the base is loaded from a --weights file");
    else
      check.problems.push_back(l.stored_name + ": in the file but not a layer of the model" +
                               (l.name != l.stored_name ? " (as " + l.name + ")" : std::string()));
  }
  if (load && check.problems.empty())
    for (auto& [ref, t] : staged) std::copy(t.data(), t.data() + t.numel(), model.data(*ref));
  return check;
}

void load_keras_weights(Model& model, const std::string& path, WeightScope scope,
                        std::ostream* log) {
  WeightCheck check;
  parse_untrusted_hdf5(path, "Keras weight file", [&] {
    H5File h5(path, H5File::Mode::kRead);
    const KerasWeightFile file = read_keras_weight_file(h5);
    check = check_and_load_keras_weights(model, h5, file, scope, true);
    if (check.problems.empty()) return;
    std::string msg = path + " (" + layout_name(file.layout) + "): cannot load weights, " +
                      std::to_string(check.problems.size()) + " problem(s):";
    for (const auto& p : check.problems) msg += "\n  " + p;
    throw std::runtime_error(msg);
  });
  if (log)
    for (const auto& n : check.notes) *log << path << ": " << n << "\n";
}

NetworkConfig resnet50_config_of(const KerasWeightFile& file, int image_size) {
  auto kernel_dim = [&](const std::string& layer, int dim) {
    const StoredLayer* l = file.find(layer);
    if (l)
      for (const auto& w : l->weights)
        if (w.var == "kernel" && static_cast<int>(w.shape.size()) > dim)
          return w.shape[static_cast<size_t>(dim)];
    throw std::runtime_error(
        file.path + ": no '" + layer +
        "' kernel, so this is not a full model file (base + head) written by --save or Keras");
  };
  NetworkConfig c;
  c.image_size = image_size;
  c.width = kernel_dim("conv1_conv", 3);
  c.channels = kernel_dim("conv1_conv", 2);
  c.head_units = kernel_dim("dense", 1);
  c.classes = kernel_dim("dense_1", 1);
  // Shapes a damaged file might claim but no model parafine builds has: the limits of train's
  // --head-units and of a dataset's classes, and 16x ResNet50's width.
  auto check = [&](const char* what, int value, int most) {
    if (value < 1 || value > most)
      throw std::runtime_error(file.path + ": the weights give " + what + " = " +
                               std::to_string(value) + ", outside 1.." + std::to_string(most) +
                               " (damaged file, or not a ResNet50 model?)");
  };
  check("the conv1 width", c.width, 1024);
  check("the input channels", c.channels, 4);
  check("the dense head units", c.head_units, 65536);
  check("the classes", c.classes, 100000);
  return c;
}

}  // namespace parafine
