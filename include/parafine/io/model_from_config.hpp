// Building a parafine Model from a KerasGraph (keras_config.hpp): one Model node per Keras
// layer, named by its flat name, in the graph's order, with each layer's settings from its
// config. A class parafine does not implement (Lambda, a custom layer, ...) or a setting it
// does not (dilation, channels_first, ...) is a problem naming the layer; every problem is
// collected, so `inspect` can list them all and the commands refuse with all of them.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "parafine/io/keras_config.hpp"
#include "parafine/layers/layer.hpp"
#include "parafine/model/model.hpp"

namespace parafine {

// Keras layers that are the identity in inference (RandomFlip, RandomRotation, ...,
// GaussianNoise): parafine runs them as such. RandomCrop is not one (it centre-crops then).
bool is_augmentation_layer(const std::string& keras_class);

// The layer for one node, or nullptr with `problem` set. `image_size` fills an input shape
// whose height and width the config leaves open (None).
std::unique_ptr<Layer> layer_from_config(const KerasNode& node, int image_size,
                                         std::string& problem);

// What would make training the graph differ from Keras's fit (model inference is unaffected):
// a regularizer or constraint (its loss term or projection), BatchNormalization renorm. One
// line per layer and setting.
std::vector<std::string> training_problems(const KerasGraph& graph);

// Layers that are the identity here but change the data in Keras's fit (RandomFlip,
// GaussianNoise, ...): one note per layer.
std::vector<std::string> training_notes(const KerasGraph& graph);

// Builds (Model::build) the model. Throws std::invalid_argument naming `where` and listing
// every problem. The Model's base range is the graph's base model (KerasGraph::base_model) when
// there is one.
Model model_from_graph(const KerasGraph& graph, int image_size, const std::string& where);

// The input height/width the config fixes (its outermost InputLayer's shape), or 0 when open.
int config_image_size(const KerasGraph& graph);

}  // namespace parafine
