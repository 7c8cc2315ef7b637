// The Keras 3 description of a parafine Model: its structure as a KerasGraph (for a model built
// here, one flat Functional; for one read from a config, the graph it was read from), the
// config.json that keras.saving.load_model rebuilds it from (Keras 3's serialisation:
// keras/src/models/functional.py get_config, serialization_lib.serialize_keras_object), and
// the path of every layer's variables in a Keras 3 weights file (saving_lib._save_state).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "parafine/io/keras_config.hpp"
#include "parafine/model/model.hpp"

namespace parafine {

// A flat Functional model named `name`: one node per Model node, configs from the layers.
KerasGraph graph_of_model(const Model& model, const std::string& name = "functional");

// One layer's Keras 3 "config" (what its get_config returns, the settings parafine knows; a
// constructor fills the rest with its defaults), for the Keras class `keras_class` ("" =
// layer.type(); a parafine ReLU stands for Keras's ReLU and for Activation('relu')). Throws
// std::logic_error for a layer class without a Keras counterpart.
nlohmann::json keras3_layer_config(const Layer& layer, const std::string& keras_class = "");

// config.json for `graph` (nesting, names, calls) with each layer's settings taken from the
// Model node of the same flat name. Pretty-printed JSON text.
std::string keras3_model_config(const KerasGraph& graph, const Model& model);

// Where a Keras 3 weights file (.weights.h5, or model.weights.h5 in a .keras) keeps each
// layer's variables: {"layers/conv2d", node}, {"layers/functional/layers/conv2d_1", node}, ...
// for every layer node listed in a model's `layers` (saving_lib._save_container_state names
// them by class, numbered per list: conv2d, conv2d_1, ...).
std::vector<std::pair<std::string, int>> keras3_weight_paths(const KerasGraph& graph);

}  // namespace parafine
