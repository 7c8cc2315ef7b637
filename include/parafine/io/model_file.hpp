// Saving a model in the layout of tf.keras `model.save_weights('m.h5')`, so Keras can load it:
// root attributes layer_names (every layer, in order), backend, keras_version; one group per
// layer with attribute weight_names (empty for layers without weights); datasets at
// /<layer>/<layer>/<var>:0 in Keras's variable order. The file is written under a temporary
// name and renamed, so a crash never leaves a truncated model behind.
#pragma once

#include <string>
#include <vector>

#include "parafine/model/model.hpp"
#include "parafine/model/backbone.hpp"

namespace parafine {

// class_names, when given, are stored as the root attribute class_names, and the input size
// as parafine_image_size (Keras ignores both; predict and evaluate use them).
void save_keras_model(const Model& model, const std::string& path,
                      const std::vector<std::string>& class_names = {});

// Builds the backbone + head that a full model file describes (backbone_of_file.hpp: the
// backbone from its layer names; width or alpha, head units and classes from its weight
// shapes), for inputs of image_size (0: the size the file was saved at, its
// parafine_image_size attribute, else the backbone's default), and loads every weight.
// class_names gets the file's class_names attribute, or is left empty; config, the
// configuration it was built with.
Model load_full_model(const std::string& path, int image_size,
                      std::vector<std::string>* class_names = nullptr,
                      NetworkConfig* config = nullptr);

}  // namespace parafine
