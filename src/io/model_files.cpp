// Reading and writing whole-model files by suffix (see model_files.hpp).
#include "parafine/io/model_files.hpp"

#include <chrono>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include <unistd.h>

#include "parafine/core/atomic_file.hpp"
#include "parafine/io/backbone_of_file.hpp"
#include "parafine/io/graph_weights.hpp"
#include "parafine/io/h5_tensors.hpp"
#include "parafine/io/keras_archive.hpp"
#include "parafine/io/keras_config_writer.hpp"
#include "parafine/io/keras_file.hpp"
#include "parafine/io/model_file.hpp"
#include "parafine/io/model_from_config.hpp"

namespace parafine {

using json = nlohmann::json;

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// What a Keras 2 full-model .h5 or a tf.keras weights file holds at its root.
struct LegacyH5 {
  std::string model_config;  // "" for save_weights files
};

LegacyH5 read_legacy_root(const std::string& path) {
  LegacyH5 out;
  parse_untrusted_hdf5(path, "Keras model file", [&] {
    H5File h5(path, H5File::Mode::kRead);
    out.model_config = read_keras_weight_file(h5).model_config;
  });
  return out;
}

// A config model whose layers are a parafine backbone + head (flat, e.g. written by --save
// m.keras): its base is the backbone's base.layers.
std::optional<NetworkConfig> detect_backbone_model(Model& model, const KerasGraph& graph,
                                                   int image_size) {
  if (graph.models.size() != 1) return std::nullopt;
  const KerasWeightFile described = describe_weights(model);
  const std::optional<FileBackbone> held = backbone_of_file(described);
  if (!held) return std::nullopt;
  const int base = backbone_info(held->backbone).base_layers;
  if (model.size() <= base) return std::nullopt;
  model.set_base_layers(base);
  try {
    return network_config_of(described,
                             image_size > 0 ? image_size : model.sample_input_shape()[0]);
  } catch (const std::exception&) {
    return std::nullopt;  // another head: trained as the config says, base as the backbone's
  }
}

// The class names parafine stores in a .keras's metadata.json ("parafine": {"class_names"}).
std::vector<std::string> archive_class_names(const std::string& metadata) {
  std::vector<std::string> names;
  try {
    const json m = json::parse(metadata);
    if (m.contains("parafine") && m["parafine"].contains("class_names"))
      for (const json& n : m["parafine"]["class_names"]) names.push_back(n.get<std::string>());
  } catch (const json::exception&) {
    // metadata.json is informational for Keras; a damaged one costs only the class names
  }
  return names;
}

// The model a config describes, with its weights. image_size > 0 overrides the config's input
// size; fallback_size is used when the config leaves it open.
LoadedModel from_config(const std::string& config_json, const std::string& where,
                        const std::string& weights_h5, const std::string& weights_shown,
                        int image_size, int fallback_size) {
  LoadedModel out;
  out.graph = parse_keras_config(config_json, where);
  if (image_size <= 0 && config_image_size(out.graph) <= 0) image_size = fallback_size;
  out.model = model_from_graph(out.graph, image_size, where);
  out.from_config = true;
  if (out.graph.base_model() < 0)
    out.network = detect_backbone_model(out.model, out.graph, image_size);
  load_graph_weights(out.model, out.graph, weights_h5, weights_shown, WeightScope::kFull);
  return out;
}

// A .weights.h5 of a parafine backbone + head: the backbone from the names Keras >= 3.6 keeps
// in each vars group.
LoadedModel from_keras3_weights(const std::string& path, int image_size) {
  Keras3WeightsFile file;
  parse_untrusted_hdf5(path, "Keras 3 weights file", [&] {
    H5File h5(path, H5File::Mode::kRead);
    file = read_keras3_weights_file(h5);
  });
  KerasWeightFile named;  // names and kernel shapes, enough to tell the backbone and head
  for (const Keras3VarsGroup& g : file.groups) {
    if (g.vars.empty()) continue;
    if (g.name.empty())
      throw std::runtime_error(
          path +
          ": its vars groups carry no layer names (written by Keras before 3.6), and a "
          ".weights.h5 has no config: parafine cannot tell which model it holds. Load it "
          "in Keras and save the model as .keras");
    StoredLayer l;
    l.name = l.stored_name = g.name;
    l.weights = g.vars;
    if (!l.weights.empty()) l.weights[0].var = "kernel";  // index 0 of Conv2D / Dense
    named.layers.push_back(std::move(l));
  }
  named.path = path;
  LoadedModel out;
  NetworkConfig net;
  try {
    net = network_config_of(named, image_size);
  } catch (const std::exception& e) {
    throw std::runtime_error(
        path +
        ": a .weights.h5 holds no config, so parafine reads one only as a parafine "
        "backbone + head, and its layer names are not one (" +
        e.what() + "); for another model give the .keras (or Keras 2 .h5) that holds its config");
  }
  out.model = build_network(net);
  out.network = net;
  out.graph = graph_of_model(out.model);
  load_graph_weights(out.model, out.graph, path, path, WeightScope::kFull);
  return out;
}

// The weights of one model.layers entry in the order Keras 2's _legacy_weights lists them:
// a layer's own variables in order; a nested model's inner layers' trainable variables (layer
// and every enclosing model trainable, and trained by the optimizer) in layer order, then the
// others, each named "<inner layer>/<var>:0".
TfKerasEntryToWrite legacy_entry(const Model& model, const KerasGraph& graph,
                                 const KerasLayerEntry& e) {
  TfKerasEntryToWrite entry;
  std::vector<TfKerasWeightToWrite> trainable, frozen;
  const auto add_node = [&](int node) {
    const KerasNode& n = graph.nodes[static_cast<std::size_t>(node)];
    const int i = model.index_of(n.flat_name);
    bool enclosing_trainable = true;  // as the config written beside it says
    for (int m = n.model; m > 0; m = graph.models[static_cast<std::size_t>(m)].parent)
      enclosing_trainable = enclosing_trainable && model_trainable(graph, model, m);
    for (const ParamSpec& spec : model.layer(i).param_specs()) {
      const ParamRef& r = model.find_param(n.flat_name, spec.name);
      TfKerasWeightToWrite w{n.name + "/" + spec.name + ":0", model.data(r),
                             std::vector<int>(r.shape.begin(), r.shape.end())};
      const bool trains = spec.optimised && model.layer(i).trainable && enclosing_trainable;
      (e.model >= 0 && !trains ? frozen : trainable).push_back(std::move(w));
    }
  };
  if (e.node >= 0) {
    entry.name = graph.nodes[static_cast<std::size_t>(e.node)].name;
    add_node(e.node);
  } else {
    entry.name = graph.models[static_cast<std::size_t>(e.model)].name;
    for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
      int m = graph.nodes[i].model;
      while (m > e.model) m = graph.models[static_cast<std::size_t>(m)].parent;
      if (m == e.model) add_node(static_cast<int>(i));
    }
  }
  entry.weights = std::move(trainable);
  entry.weights.insert(entry.weights.end(), frozen.begin(), frozen.end());
  return entry;
}

// A model read from a config, saved as Keras's model.save("m.h5") saves one: the config in the
// root attribute model_config (Keras 3's serialisation, which Keras 3's legacy loader reads),
// the weights under /model_weights, a nested model's in its own group.
void save_full_model_h5(const Model& model, const KerasGraph& graph, const std::string& path) {
  std::vector<TfKerasEntryToWrite> entries;
  for (const KerasLayerEntry& e : graph.models[0].layers)
    entries.push_back(legacy_entry(model, graph, e));
  TfKerasRootAttrs attrs;
  attrs.model_config = keras3_model_config(graph, model);
  attrs.keras_version = "3.6.0";
  write_tf_keras_weights(path, entries, attrs);
}

}  // namespace

ModelFormat model_format_of(const std::string& path, const std::string& option) {
  if (ends_with(path, ".keras")) return ModelFormat::kKerasArchive;
  if (ends_with(path, ".weights.h5")) return ModelFormat::kKeras3Weights;
  if (ends_with(path, ".h5") || ends_with(path, ".hdf5")) return ModelFormat::kLegacyH5;
  throw std::invalid_argument(option + " " + path +
                              ": the suffix decides the format, as in Keras: .keras (Keras 3 "
                              "model), .weights.h5 (Keras 3 weights) or .h5 / .hdf5 (tf.keras)");
}

const char* model_format_name(ModelFormat format) {
  switch (format) {
    case ModelFormat::kKerasArchive:
      return "Keras 3 .keras archive";
    case ModelFormat::kKeras3Weights:
      return "Keras 3 .weights.h5";
    case ModelFormat::kLegacyH5:
      break;
  }
  return "tf.keras HDF5";
}

bool has_keras_config(const std::string& path) {
  const ModelFormat format = model_format_of(path, "model file");
  if (format == ModelFormat::kKerasArchive) return true;
  return format == ModelFormat::kLegacyH5 && !read_legacy_root(path).model_config.empty();
}

LoadedModel load_model_file(const std::string& path, int image_size, int fallback_size) {
  const ModelFormat format = model_format_of(path, "model file");
  LoadedModel out;
  if (format == ModelFormat::kKerasArchive) {
    const KerasArchive archive = read_keras_archive(path);
    const std::string where = path + ": config.json";
    out = from_config(archive.config_json, where, archive.weights_h5_path(),
                      path + ": model.weights.h5", image_size, fallback_size);
    out.class_names = archive_class_names(archive.metadata_json);
  } else if (format == ModelFormat::kKeras3Weights) {
    out = from_keras3_weights(path, image_size > 0 ? image_size : fallback_size);
  } else {
    const LegacyH5 root = read_legacy_root(path);
    if (!root.model_config.empty()) {
      const std::string where = path + ": model_config";
      out = from_config(root.model_config, where, path, path, image_size, fallback_size);
    } else {
      NetworkConfig net;
      out.model = load_full_model(path, image_size > 0 ? image_size : fallback_size,
                                  &out.class_names, &net);
      out.network = net;
      out.graph = graph_of_model(out.model);
    }
  }
  out.format = format;
  return out;
}

ModelFileStructure read_model_structure(const std::string& path) {
  ModelFileStructure s;
  s.format = model_format_of(path, "inspect");
  std::string config, where;
  if (s.format == ModelFormat::kKerasArchive) {
    const KerasArchive archive = read_keras_archive(path);
    config = archive.config_json;
    where = path + ": config.json";
  } else if (s.format == ModelFormat::kLegacyH5) {
    config = read_legacy_root(path).model_config;
    where = path + ": model_config";
  }
  if (config.empty()) return s;
  s.has_config = true;
  s.graph = parse_keras_config(config, where);
  return s;
}

void save_model_file(const Model& model, const KerasGraph& graph, const std::string& path,
                     const std::vector<std::string>& class_names) {
  const ModelFormat format = model_format_of(path, "--save");
  if (format == ModelFormat::kLegacyH5) {
    if (graph.from_config)
      save_full_model_h5(model, graph, path);  // keeps the structure the config gave it
    else
      save_keras_model(model, path, class_names);  // a parafine backbone + head
    return;
  }
  if (format == ModelFormat::kKeras3Weights) {
    save_keras3_weights(model, graph, path);
    return;
  }
  // .keras: the weights go to a temporary file next to the archive, then into it.
  const std::string config = keras3_model_config(graph, model);
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%d@%H:%M:%S", std::localtime(&now));
  json metadata = {{"keras_version", "3.6.0"}, {"date_saved", date}};
  if (!class_names.empty()) metadata["parafine"] = {{"class_names", class_names}};
  const std::string weights = path + ".weights-" + std::to_string(::getpid()) + ".h5";
  struct Remove {
    std::string p;
    ~Remove() { std::filesystem::remove(p); }
  } remove{weights};
  save_keras3_weights(model, graph, weights);
  write_keras_archive(path, config, metadata.dump(), weights);
}

}  // namespace parafine
