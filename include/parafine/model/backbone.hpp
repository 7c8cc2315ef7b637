// The pretrained networks parafine fine-tunes, each built exactly as keras.applications builds
// it with include_top=False (layer classes, names, order of base.layers, padding, BN settings),
// followed by the seed's head: global_average_pooling2d -> dense (head_units, relu) ->
// dense_1 (classes, softmax). The first Model::base_layers() nodes are Keras's base.layers
// (input layer included), so base.layers[-N:] means what it means in Keras.
#pragma once

#include <string>
#include <vector>

#include "parafine/model/model.hpp"

namespace parafine {

enum class Backbone {
  kResNet50,
  kResNet101,
  kResNet152,
  kVGG16,
  kVGG19,
  kInceptionV3,
  kMobileNetV2
};

struct BackboneInfo {
  Backbone id;
  const char* name;        // the --backbone value, e.g. "inception_v3"
  const char* keras_name;  // the keras.applications function, e.g. "InceptionV3"
  int base_layers;         // len(base.layers) with include_top=False, the InputLayer included
  int default_size;        // Keras's default input size
  int min_size;            // Keras's minimum input size (below it the network has no output)
  // The mode of the model's keras.applications preprocess_input ("caffe" or "tf"; the data
  // layer's parse_preprocess reads it).
  const char* preprocess;
};

// ResNet50, ResNet101 or ResNet152 (the backbones NetworkConfig::width applies to).
bool is_resnet(Backbone b);

// keras.applications.mobilenet_v2: the alphas it has ImageNet weights for, and the input sizes
// its weight files come in (mobilenet_v2_weight_rows: the file Keras loads for an input size).
constexpr float kMobileNetV2Alphas[] = {0.35f, 0.5f, 0.75f, 1.0f, 1.3f, 1.4f};
constexpr int kMobileNetV2WeightSizes[] = {96, 128, 160, 192, 224};
int mobilenet_v2_weight_rows(int image_size);  // the size itself when listed, else 224
// mobilenet_v2._make_divisible(v, divisor): v rounded to the nearest multiple of divisor (at
// least divisor), rounded up once more if that lost over 10%.
int make_divisible(double v, int divisor);

// Every backbone, in the order of the Backbone enum.
const std::vector<BackboneInfo>& backbones();
const BackboneInfo& backbone_info(Backbone b);
// "resnet50" | ... | "mobilenet_v2", else throws std::invalid_argument listing the known ones.
Backbone parse_backbone(const std::string& name);

constexpr int kResNet50BaseLayers = 175;

// The largest image size: 4096x4096 is 85x the pixels of ResNet50's 224x224, and its conv1
// output alone is 1 GiB per image; beyond that an allocation fails.
constexpr int kMaxImageSize = 4096;
// The widest range over all backbones, for option help; check_image_size has the backbone's.
constexpr const char* kImageSizeRange = "32..4096";

struct NetworkConfig {
  int image_size = 224;  // square input, at least the backbone's min_size
  int classes = 2;       // >= 1 (Keras accepts 1: a constant softmax)
  int head_units = 1024;
  // ResNet only: conv1's filters; the stacks use width, 2w, 4w, 8w with 4x expansion. 64 is
  // the real network; smaller widths make the narrow networks of tests and the demo.
  int width = 64;
  int channels = 3;
  Backbone backbone = Backbone::kResNet50;
  float alpha = 1.0f;  // MobileNetV2's width multiplier: 0.35, 0.5, 0.75, 1.0, 1.3 or 1.4
  // --dropout: a Dropout of this rate in the head before the classifier Dense, as Keras names
  // it ("dropout"); 0 = no such layer (the head of older files).
  float dropout = 0.0f;
};

// The one check of the input size: throws std::invalid_argument "--image-size must be at least
// M for NAME (...), got N" below the backbone's minimum, or above kMaxImageSize.
void check_image_size(int image_size, Backbone backbone = Backbone::kResNet50);
// The listed alpha `alpha` stands for (within 1e-6: 0.350 is 0.35), for MobileNetV2; throws
// std::invalid_argument naming --alpha and the values Keras accepts otherwise. For any other
// backbone only 1.0 is accepted ("--alpha is MobileNetV2's").
float check_alpha(float alpha, Backbone backbone);
// The text of an alpha as Keras writes it into file names: "0.35", "1.0", "1.3" (up to 7
// significant digits, so a value that is not listed prints as given: "0.5000001").
std::string alpha_text(float alpha);

// MobileNetV2 is built as keras.applications builds it with input_shape=(S,S,3): correct_pad's
// padding before each stride-2 depthwise conv depends on whether that input is even. Keras
// with input_shape=None pads as for even sizes, so the two graphs differ when some stride-2
// input is odd (S not a multiple of 32). Returns a one-line note saying so for such a config,
// else "".
std::string backbone_note(const NetworkConfig& config);

// The backbone with the head. Throws std::invalid_argument naming the option for an image size
// or alpha the backbone does not accept, zero classes, or a non-positive width / head size.
Model build_network(const NetworkConfig& config);

// Keras `for l in base.layers: l.trainable = False` plus a trainable head.
void freeze_base(Model& model);
// Keras `for l in base.layers[-n:]: l.trainable = True` (base stays otherwise frozen).
// Throws when n is negative or above the base's layer count.
void unfreeze_last_base_layers(Model& model, int n);
// Unfreezes the named base layer and every base layer after it; throws for a name that is not
// a base layer.
void unfreeze_base_from(Model& model, const std::string& layer_name);

}  // namespace parafine
