// Whole-model files in every form Keras users hold, read and written by their suffix, as
// Keras's saving_api decides (keras/src/saving/saving_api.py):
//   .keras        Keras 3 archive: config.json + metadata.json + model.weights.h5
//   .weights.h5   Keras 3 weights (no config: a parafine backbone + head, found by the layer
//                 names Keras >= 3.6 stores)
//   .h5 / .hdf5   Keras 2: a full model (root attribute model_config, weights under
//                 /model_weights), or tf.keras save_weights of a parafine backbone + head
// A model read from a config keeps the config's structure (nested models, their names, the
// training=False calls) and is written back with it.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "parafine/io/keras_config.hpp"
#include "parafine/model/backbone.hpp"
#include "parafine/model/model.hpp"

namespace parafine {

enum class ModelFormat { kKerasArchive, kKeras3Weights, kLegacyH5 };

// The format for `path` by its suffix; anything else throws std::invalid_argument naming
// `option` and the suffixes Keras reads.
ModelFormat model_format_of(const std::string& path, const std::string& option);
const char* model_format_name(ModelFormat format);

struct LoadedModel {
  Model model;       // built, every weight loaded
  KerasGraph graph;  // its Keras structure (one flat Functional for a parafine backbone + head)
  std::vector<std::string> class_names;  // as saved by parafine, else empty
  // Set when the model is a parafine backbone + head (the base detected by its layer names):
  // what build_network builds it from.
  std::optional<NetworkConfig> network;
  bool from_config = false;  // built from a Keras config (.keras, Keras 2 full model)
  ModelFormat format = ModelFormat::kLegacyH5;
};

// Reads any of the formats above. image_size > 0 overrides the input size the file fixes (a
// network whose layers fit any size); 0 keeps it. fallback_size is the size when the file
// fixes none (0: the backbone's default, or the size parafine saved it at); for a parafine
// backbone + head it wins over the saved size, as the inference commands resize to it.
// Throws std::runtime_error / std::invalid_argument naming the file and every problem.
LoadedModel load_model_file(const std::string& path, int image_size = 0, int fallback_size = 0);

// Whether the file carries a Keras model config (a .keras, or a Keras 2 full-model .h5).
bool has_keras_config(const std::string& path);

// The structure of a model file without building it (for `inspect` of a model that cannot be
// built): its config's graph, when it has one.
struct ModelFileStructure {
  KerasGraph graph;
  ModelFormat format = ModelFormat::kLegacyH5;
  bool has_config = false;
};
ModelFileStructure read_model_structure(const std::string& path);

// Writes `model` to `path` in the format its suffix names; graph: its Keras structure
// (graph_of_model for a model built here). Atomic: a failure leaves no partial file and an
// existing one untouched.
void save_model_file(const Model& model, const KerasGraph& graph, const std::string& path,
                     const std::vector<std::string>& class_names = {});

}  // namespace parafine
