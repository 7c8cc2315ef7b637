// The weights of a model described by a KerasGraph (keras_config.hpp), in any of Keras's HDF5
// layouts: the Keras 3 `vars` layout (.weights.h5, and model.weights.h5 in a .keras) and the
// tf.keras / Keras 2 layouts (save_weights, and /model_weights of a full-model .h5, with nested
// models' weights inside their model's group). Each layout's variables are mapped to the
// Model's layers (by flat name) and checked and loaded by keras_weights.hpp: all or nothing,
// every shape and dtype checked, every problem listed.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "parafine/io/keras3_weights_file.hpp"
#include "parafine/io/keras_config.hpp"
#include "parafine/io/keras_weights.hpp"
#include "parafine/model/model.hpp"

namespace parafine {

// Where a Keras 3 weights file (.weights.h5, or model.weights.h5 in a .keras) keeps each
// layer's variables: {"layers/conv2d", node}, {"layers/functional/layers/conv2d_1", node}, ...
// for every layer node listed in a model's `layers` (saving_lib._save_container_state names
// them by class, numbered per list: conv2d, conv2d_1, ...).
std::vector<std::pair<std::string, int>> keras3_weight_paths(const KerasGraph& graph);

// A Keras 3 weights file seen as a KerasWeightFile of `model`'s layers: each vars group with
// variables is matched to a layer by its "name" attribute when the file has them (Keras >=
// 3.6), else by Keras's path ("layers/conv2d_1", keras3_weight_paths); its variables "0",
// "1", ... get the layer's variable names in Keras's order. A group that matches no layer
// keeps its path as its name (and is reported as not a layer of the model).
KerasWeightFile keras3_as_weight_file(const Keras3WeightsFile& file, const KerasGraph& graph,
                                      const Model& model);

// A tf.keras / Keras 2 file's layers renamed to the model's flat names (a nested model's
// inner layers, keras_file.hpp's StoredLayer::model, to the flat name of that layer there).
void rename_to_flat_names(KerasWeightFile& file, const KerasGraph& graph);

// Opens `h5_path` (an untrusted HDF5 file: read in a checking child), reads whichever layout
// it has and loads it into `model`; `shown` names the file in messages (e.g. "m.keras:
// model.weights.h5"). Throws std::runtime_error with every problem; notes go to `log`.
void load_graph_weights(Model& model, const KerasGraph& graph, const std::string& h5_path,
                        const std::string& shown, WeightScope scope, std::ostream* log = nullptr);

// Writes the Keras 3 weights file of `model` laid out as `graph` says (every layer's vars
// group with its name attribute, the root's vars group), atomically.
void save_keras3_weights(const Model& model, const KerasGraph& graph, const std::string& path);

}  // namespace parafine
