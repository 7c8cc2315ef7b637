// The base networks, one file each (resnet.cpp, vgg.cpp, inception_v3.cpp, mobilenet_v2.cpp).
// Each adds the InputLayer "input_1" [S,S,C] and then the base's layers to an empty Model in
// Keras's base.layers order, with Keras's names, and returns the node of the base's output.
// build_network (backbone.cpp) checks the config first and adds the head after.
#pragma once

#include "parafine/model/backbone.hpp"

namespace parafine {

// keras.applications.resnet ResNet50 / ResNet101 / ResNet152 (v1): blocks per stack
// {3,4,6,3}, {3,4,23,3}, {3,8,36,3}.
int add_resnet_base(Model& m, const NetworkConfig& c, int depth);

// keras.applications.vgg16 VGG16 / vgg19 VGG19: convolutions per block {2,2,3,3,3} and
// {2,2,4,4,4}.
int add_vgg_base(Model& m, const NetworkConfig& c, int depth);

// keras.applications.mobilenet_v2 MobileNetV2 with width multiplier c.alpha (154 layers).
int add_mobilenet_v2_base(Model& m, const NetworkConfig& c);

// keras.applications.inception_v3 InceptionV3 (311 base layers, 2048 output channels).
int add_inception_v3_base(Model& m, const NetworkConfig& c);

}  // namespace parafine
