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

// Model m's `trainable` as written: whether any layer inside it is trainable in `model` (what
// Keras's base.trainable = True followed by freezing all but the last layers leaves; Keras's
// Functional(trainable=False) would freeze every layer inside again on load).
bool model_trainable(const KerasGraph& graph, const Model& model, int m);

}  // namespace parafine
