// Weights of a KerasGraph-described model in Keras's HDF5 layouts (see graph_weights.hpp).
#include "parafine/io/graph_weights.hpp"

#include <algorithm>
#include <functional>
#include <map>
#include <ostream>
#include <stdexcept>

#include "parafine/io/keras_config_writer.hpp"
#include "parafine/layers/normalization.hpp"

namespace parafine {

namespace {

// Every saveable of the graph in saving_lib._save_state's order, with its Keras 3 path and the
// name Keras puts in its vars group: the root model (""), then each model's `layers` (a nested
// model before its own layers). node is -1 for a model.
struct SaveablePath {
  std::string path, name;
  int node = -1;
};

std::vector<SaveablePath> saveable_paths(const KerasGraph& graph) {
  std::vector<SaveablePath> out{{"", graph.models[0].name, -1}};
  std::function<void(int, const std::string&)> walk = [&](int m, const std::string& prefix) {
    Keras3UniqueNames names;
    for (const KerasLayerEntry& e : graph.models[static_cast<std::size_t>(m)].layers) {
      const KerasModel* sub =
          e.model >= 0 ? &graph.models[static_cast<std::size_t>(e.model)] : nullptr;
      const KerasNode* node =
          e.node >= 0 ? &graph.nodes[static_cast<std::size_t>(e.node)] : nullptr;
      const std::string path =
          prefix + "layers/" +
          names.next(keras3_container_name(sub ? sub->class_name : node->class_name));
      out.push_back({path, sub ? sub->name : node->name, e.node});
      if (sub) walk(e.model, path + "/");
    }
  };
  walk(0, "");
  return out;
}

// An adapted Normalization's third variable, Keras's int64 `count` (never read by its call):
// parafine has no slot for it, so it is skipped rather than reported as unexpected.
void drop_normalization_counts(KerasWeightFile& file, const Model& model) {
  for (StoredLayer& l : file.layers) {
    const int i = model.index_of(l.name);
    if (i < 0 || std::string(model.layer(i).type()) != "Normalization") continue;
    auto& w = l.weights;
    w.erase(std::remove_if(w.begin(), w.end(),
                           [](const StoredWeight& s) {
                             return s.var == "count" || s.stored_name == "2" ||
                                    s.stored_name.find("count") != std::string::npos;
                           }),
            w.end());
  }
}

}  // namespace

std::vector<std::pair<std::string, int>> keras3_weight_paths(const KerasGraph& graph) {
  std::vector<std::pair<std::string, int>> out;
  for (const SaveablePath& s : saveable_paths(graph))
    if (s.node >= 0) out.emplace_back(s.path, s.node);
  return out;
}

KerasWeightFile keras3_as_weight_file(const Keras3WeightsFile& file, const KerasGraph& graph,
                                      const Model& model) {
  std::map<std::string, int> node_of_path;
  for (const auto& [path, node] : keras3_weight_paths(graph)) node_of_path[path] = node;
  bool named = true;  // Keras >= 3.6: every group with variables carries its layer's name
  for (const Keras3VarsGroup& g : file.groups) named = named && (g.vars.empty() || !g.name.empty());

  KerasWeightFile out;
  out.path = file.path;
  out.layout = KerasLayout::kTfKeras;
  out.root = "/";
  for (Keras3VarsGroup g : file.groups) {
    if (g.vars.empty()) continue;
    // Keras's load walks the model, not the file: the optimizer's state ("optimizer/vars"),
    // metrics and the like are not the model's layers. Keras 2.13 wrote "layers" as
    // "_layer_checkpoint_dependencies" (H5IOStore.get).
    const std::string old_name = "_layer_checkpoint_dependencies";
    for (std::size_t at; (at = g.path.find(old_name)) != std::string::npos;)
      g.path.replace(at, old_name.size(), "layers");
    if (g.path.rfind("layers/", 0) != 0) continue;
    int node = -1;
    const auto by_path = node_of_path.find(g.path);
    if (named) {
      // The name decides; the path only tells apart equal names in different nested models.
      std::vector<int> same;
      for (std::size_t i = 0; i < graph.nodes.size(); ++i)
        if (graph.nodes[i].name == g.name) same.push_back(static_cast<int>(i));
      if (same.size() == 1)
        node = same[0];
      else if (same.size() > 1 && by_path != node_of_path.end() &&
               graph.nodes[static_cast<std::size_t>(by_path->second)].name == g.name)
        node = by_path->second;
    }
    // No layer of that name (names of another session, "conv2d_7"): Keras's own rule, the path.
    if (node < 0 && by_path != node_of_path.end() &&
        (!named || std::none_of(graph.nodes.begin(), graph.nodes.end(),
                                [&](const KerasNode& n) { return n.name == g.name; }))) {
      node = by_path->second;
    }
    StoredLayer layer;
    layer.stored_name = g.path + (g.name.empty() ? "" : " ('" + g.name + "')");
    layer.name = node >= 0 ? graph.nodes[static_cast<std::size_t>(node)].flat_name
                           : (g.name.empty() ? g.path : g.name);
    const int model_node = node >= 0 ? model.index_of(layer.name) : -1;
    const std::vector<ParamSpec> specs =
        model_node >= 0 ? model.layer(model_node).param_specs() : std::vector<ParamSpec>{};
    for (std::size_t i = 0; i < g.vars.size(); ++i) {
      StoredWeight w = g.vars[i];
      w.var = i < specs.size() ? specs[i].name : "";
      layer.weights.push_back(std::move(w));
    }
    out.layers.push_back(std::move(layer));
  }
  return out;
}

void rename_to_flat_names(KerasWeightFile& file, const KerasGraph& graph) {
  for (StoredLayer& l : file.layers) {
    for (const KerasNode& n : graph.nodes) {
      if (n.name != l.name) continue;
      // The innermost model of the node must be the nested model the file put it in (or the
      // outermost one for a top-level layer).
      const std::string& in_model = graph.models[static_cast<std::size_t>(n.model)].name;
      if (l.model.empty() ? n.model == 0 : in_model == l.model) {
        l.name = n.flat_name;
        break;
      }
    }
  }
}

void load_graph_weights(Model& model, const KerasGraph& graph, const std::string& h5_path,
                        const std::string& shown, WeightScope scope, std::ostream* log) {
  WeightCheck check;
  parse_untrusted_hdf5(h5_path, "Keras weight file", [&] {
    H5File h5(h5_path, H5File::Mode::kRead);
    std::string layout;
    KerasWeightFile file;
    // Keras 3's layout has a `vars` group at the root or `layers` groups; anything else is read
    // as a tf.keras / Keras-1 file (whose reader says what is wrong with a file that is neither).
    const bool keras3 = !h5.has_attribute("/", "layer_names") &&
                        !h5.has_attribute("/", "model_config") &&
                        (h5.is_group("/vars") || h5.is_group("/layers"));
    if (!keras3) {
      file = read_keras_weight_file(h5);
      rename_to_flat_names(file, graph);
      layout = layout_name(file.layout);
    } else {
      file = keras3_as_weight_file(read_keras3_weights_file(h5), graph, model);
      layout = "Keras 3 weights";
    }
    drop_normalization_counts(file, model);
    check = check_and_load_keras_weights(model, h5, file, scope, true);
    if (check.problems.empty()) return;
    std::string msg = shown + " (" + layout + "): cannot load weights, " +
                      std::to_string(check.problems.size()) + " problem(s):";
    for (const auto& p : check.problems) msg += "\n  " + p;
    throw std::runtime_error(msg);
  });
  if (log)
    for (const auto& n : check.notes) *log << shown << ": " << n << "\n";
}

void save_keras3_weights(const Model& model, const KerasGraph& graph, const std::string& path) {
  std::vector<Keras3VarsToWrite> groups;
  for (const SaveablePath& s : saveable_paths(graph)) {
    Keras3VarsToWrite g;
    g.path = s.path;
    g.name = s.name;
    if (s.node >= 0) {
      const std::string& flat = graph.nodes[static_cast<std::size_t>(s.node)].flat_name;
      const int i = model.index_of(flat);
      if (i < 0) throw std::logic_error("save_keras3_weights: no model layer " + flat);
      if (const auto* n = dynamic_cast<const Normalization*>(&model.layer(i)); n && n->adapted())
        throw std::invalid_argument(path + ": layer '" + flat +
                                    "' is an adapted Normalization, whose int64 'count' variable "
                                    "parafine does not write; save the model as .h5");
      for (const ParamSpec& spec : model.layer(i).param_specs()) {
        const ParamRef& r = model.find_param(flat, spec.name);
        g.vars.push_back({model.data(r), std::vector<int>(r.shape.begin(), r.shape.end())});
      }
    }
    groups.push_back(std::move(g));
  }
  write_keras3_weights_file(path, groups);
}

}  // namespace parafine
