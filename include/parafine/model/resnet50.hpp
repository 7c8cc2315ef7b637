// tf.keras ResNet50(include_top=False) (keras/applications/resnet.py, v1) with the seed's head:
// global_average_pooling2d -> dense (head_units, relu) -> dense_1 (classes, softmax).
// Layers are named and ordered exactly as tf.keras base.layers, so base layers[-N:] means
// what it means in Keras (175 base layers; 178 with the head).
#pragma once

#include <string>
#include <vector>

#include "parafine/model/model.hpp"

namespace parafine {

constexpr int kResNet50BaseLayers = 175;

struct ResNet50Config {
  int image_size = 224;  // square input, >= 32
  int classes = 2;       // >= 1 (Keras accepts 1: a constant softmax)
  int head_units = 1024;
  int width = 64;  // conv1 filters; stacks use width, 2w, 4w, 8w with 4x expansion (64 = ResNet50)
  int channels = 3;
};

// The largest image size: 4096x4096 is 85x the pixels of ResNet50's 224x224, and its conv1
// output alone is 1 GiB per image; beyond that an allocation fails.
constexpr int kMaxImageSize = 4096;
constexpr const char* kImageSizeRange = "32..4096";

// The one check of the input size (ResNet50 halves it five times, so below 32 nothing is
// left): throws std::invalid_argument "--image-size must be at least 32 (ResNet50 downsamples
// 32x), got N" for image_size < 32.
void check_image_size(int image_size);

// Throws std::invalid_argument naming the option for an image size below 32 (check_image_size),
// zero classes, or a non-positive width / head size.
Model build_resnet50(const ResNet50Config& config);

// Keras `for l in base.layers: l.trainable = False` plus a trainable head.
void freeze_base(Model& model);
// Keras `for l in base.layers[-n:]: l.trainable = True` (base stays otherwise frozen).
// Throws when n is negative or above 175.
void unfreeze_last_base_layers(Model& model, int n);
// Unfreezes the named base layer and every base layer after it; throws for an unknown name.
void unfreeze_base_from(Model& model, const std::string& layer_name);

}  // namespace parafine
