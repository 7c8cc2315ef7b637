// Which keras.applications network a Keras weight file holds, from its layer names and weight
// shapes (a Keras file does not say): for building the model a full-model file describes
// (predict, evaluate, train --init, inspect) and for telling a user who loads weights of one
// backbone into another which one the file is.
#pragma once

#include <optional>
#include <string>

#include "parafine/io/keras_file.hpp"
#include "parafine/model/backbone.hpp"

namespace parafine {

struct FileBackbone {
  Backbone backbone;
  float alpha = 1.0f;  // MobileNetV2's, from its layer widths
  int width = 64;      // ResNet's conv1 filters
  int channels = 3;    // input channels, from the first convolution's kernel
};

// The backbone whose base layers the file holds (by name, in either naming generation: Keras-1
// ResNet names are translated on reading; InceptionV3's conv2d_1 ... conv2d_94 count as
// InceptionV3), or nothing when the file matches none.
std::optional<FileBackbone> backbone_of_file(const KerasWeightFile& file);

// The configuration of a full-model file (base + the seed's head, as --save writes it):
// backbone, width / alpha, head units from `dense`, classes from `dense_1`, for inputs of
// image_size (0: the backbone's default size). Throws std::runtime_error naming the file when
// it holds no known base or no head, or when a shape is outside what parafine builds.
NetworkConfig network_config_of(const KerasWeightFile& file, int image_size);

}  // namespace parafine
