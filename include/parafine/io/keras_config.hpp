// A Keras model config -- the config.json of a .keras archive, or the model_config attribute
// of a Keras 2 full-model .h5 -- parsed into one flat graph that parafine's Model can run.
// Both serialisations are read: Keras 2 ({"class_name", "config", "inbound_nodes":
// [[["layer", node, tensor, {kwargs}], ...]]}) and Keras 3 ({"module", "class_name",
// "config", "registered_name", "inbound_nodes": [{"args": [keras tensors], "kwargs"}]}).
// Functional and Sequential models nest: a nested model's layers are inlined where the outer
// model calls it (its InputLayer stays, as a node that passes the outer tensor on, so
// nested.layers keeps its Keras count), and KerasGraph::models keeps each model's own
// `layers` list for Keras's weight paths and --unfreeze-last.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace parafine {

// One Keras layer (never a model) of the flattened graph.
struct KerasNode {
  std::string class_name;  // "Conv2D", "InputLayer", ...
  std::string name;        // its Keras name, unique within the model that lists it
  // Unique in the whole graph: `name`, or "<model name>/<name>" when an outer layer already
  // has that name. parafine's Model node of this layer carries flat_name.
  std::string flat_name;
  int model = 0;            // the KerasModel (index into KerasGraph::models) that lists it
  nlohmann::json config;    // the layer's "config" object, as in the file
  std::vector<int> inputs;  // earlier nodes feeding it (empty for the outermost InputLayer)
  // Called inside a model that was called with training=False (the transfer-learning guide's
  // base(x, training=False)): BatchNormalization and Dropout run in inference mode always.
  bool inference_only = false;
};

// One entry of a model's `layers` list: a layer (node >= 0) or a nested model (model >= 0).
struct KerasLayerEntry {
  int node = -1;
  int model = -1;
};

// A Functional or Sequential model, the outermost one (models[0]) or a nested one.
struct KerasModel {
  std::string class_name;  // "Functional" or "Sequential" (Keras 2's "Model" reads as Functional)
  std::string name;
  int parent = -1;  // the enclosing model; -1 for models[0]
  // Keras's model.layers, in order. Sequential's excludes its InputLayer (as Keras's does; the
  // InputLayer is still a node); Functional's includes them.
  std::vector<KerasLayerEntry> layers;
  bool trainable = true;  // the config's "trainable" (a model saved frozen)
};

struct KerasGraph {
  std::vector<KerasNode> nodes;    // a topological order: Keras's layer order, nested inlined
  std::vector<KerasModel> models;  // models[0] is the outermost
  int output = -1;                 // the node whose output is the model's output
  int keras_major = 3;             // 2 or 3: which serialisation the config was in
  bool from_config = false;        // parsed from a file's config (not made for a built model)
  // The index of the one nested model directly or indirectly inside models[0] that holds
  // layers with weights (the guide's base_model), or -1 when there is none or several.
  int base_model() const;
  // Index of the node with this flat name, -1 when absent.
  int find(const std::string& flat_name) const;
};

// Parses `json_text` (what `where` names in messages: "m.keras: config.json"). Throws
// std::runtime_error naming `where` and the layer for text that is not JSON, a config that is
// not a model, a shared layer (called more than once), a layer with several outputs, or an
// input that does not exist. It does not judge layer classes: model_from_config does.
KerasGraph parse_keras_config(const std::string& json_text, const std::string& where);

}  // namespace parafine
