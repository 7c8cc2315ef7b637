// The backbone registry, build_network and Keras's freezing (see backbone.hpp).
#include "parafine/model/backbone.hpp"

#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "backbone_builders.hpp"
#include "parafine/layers/dense.hpp"
#include "parafine/layers/dropout.hpp"
#include "parafine/layers/simple_layers.hpp"

namespace parafine {

namespace {

void check_positive(int v, const char* option, const char* what) {
  if (v < 1)
    throw std::invalid_argument(std::string(option) + " must be at least 1 (" + what + "), got " +
                                std::to_string(v));
}

int add_base(Model& m, const NetworkConfig& c) {
  switch (c.backbone) {
    case Backbone::kResNet50:
      return add_resnet_base(m, c, 50);
    case Backbone::kResNet101:
      return add_resnet_base(m, c, 101);
    case Backbone::kResNet152:
      return add_resnet_base(m, c, 152);
    case Backbone::kVGG16:
      return add_vgg_base(m, c, 16);
    case Backbone::kVGG19:
      return add_vgg_base(m, c, 19);
    case Backbone::kInceptionV3:
      return add_inception_v3_base(m, c);
    case Backbone::kMobileNetV2:
      return add_mobilenet_v2_base(m, c);
  }
  throw std::logic_error("no builder for backbone " + std::to_string(static_cast<int>(c.backbone)));
}

}  // namespace

bool is_resnet(Backbone b) {
  return b == Backbone::kResNet50 || b == Backbone::kResNet101 || b == Backbone::kResNet152;
}

int mobilenet_v2_weight_rows(int image_size) {
  for (int r : kMobileNetV2WeightSizes)
    if (image_size == r) return r;
  return 224;
}

int make_divisible(double v, int divisor) {
  int new_v = std::max(divisor, static_cast<int>(v + divisor / 2.0) / divisor * divisor);
  if (new_v < 0.9 * v) new_v += divisor;  // round down by no more than 10%
  return new_v;
}

std::string backbone_note(const NetworkConfig& c) {
  if (c.backbone != Backbone::kMobileNetV2 || c.image_size % 32 == 0) return "";
  return "note: MobileNetV2 at " + std::to_string(c.image_size) + "x" +
         std::to_string(c.image_size) + " is built as Keras builds it with input_shape=(" +
         std::to_string(c.image_size) + ", " + std::to_string(c.image_size) +
         ", 3); with input_shape=None Keras pads odd stride-2 inputs differently (sizes that "
         "are multiples of 32 give the same network either way)";
}

const std::vector<BackboneInfo>& backbones() {
  static const std::vector<BackboneInfo> all = {
      {Backbone::kResNet50, "resnet50", "ResNet50", kResNet50BaseLayers, 224, 32, "caffe"},
      {Backbone::kResNet101, "resnet101", "ResNet101", 345, 224, 32, "caffe"},
      {Backbone::kResNet152, "resnet152", "ResNet152", 515, 224, 32, "caffe"},
      {Backbone::kVGG16, "vgg16", "VGG16", 19, 224, 32, "caffe"},
      {Backbone::kVGG19, "vgg19", "VGG19", 22, 224, 32, "caffe"},
      {Backbone::kInceptionV3, "inception_v3", "InceptionV3", 311, 299, 75, "tf"},
      {Backbone::kMobileNetV2, "mobilenet_v2", "MobileNetV2", 154, 224, 32, "tf"},
  };
  return all;
}

const BackboneInfo& backbone_info(Backbone b) {
  return backbones().at(static_cast<std::size_t>(b));
}

Backbone parse_backbone(const std::string& name) {
  std::string known;
  for (const BackboneInfo& i : backbones()) {
    if (name == i.name) return i.id;
    known += (known.empty() ? "" : ", ") + std::string(i.name);
  }
  throw std::invalid_argument("--backbone '" + name + "' is not a known backbone; known: " + known);
}

void check_image_size(int image_size, Backbone backbone) {
  const BackboneInfo& b = backbone_info(backbone);
  if (image_size < b.min_size)
    throw std::invalid_argument("--image-size must be at least " + std::to_string(b.min_size) +
                                " for " + b.name + " (Keras's minimum input size for " +
                                b.keras_name + "), got " + std::to_string(image_size));
  if (image_size > kMaxImageSize)
    throw std::invalid_argument("--image-size must be at most " + std::to_string(kMaxImageSize) +
                                ", got " + std::to_string(image_size));
}

std::string alpha_text(float alpha) {
  char s[32];
  std::snprintf(s, sizeof s, "%.7g", static_cast<double>(alpha));
  std::string t = s;
  if (t.find_first_not_of("-0123456789") == std::string::npos) t += ".0";  // 1.0, as Keras
  return t;
}

float check_alpha(float alpha, Backbone backbone) {
  if (backbone != Backbone::kMobileNetV2) {
    if (alpha != 1.0f)
      throw std::invalid_argument(std::string("--alpha is MobileNetV2's width multiplier; ") +
                                  backbone_info(backbone).name + " takes none, got --alpha " +
                                  alpha_text(alpha));
    return alpha;
  }
  for (float a : kMobileNetV2Alphas)
    if (std::fabs(alpha - a) < 1e-6f) return a;
  std::string known;
  for (float a : kMobileNetV2Alphas) known += (known.empty() ? "" : ", ") + alpha_text(a);
  throw std::invalid_argument("--alpha for mobilenet_v2 must be one of " + known +
                              " (the values Keras has weights for), got " + alpha_text(alpha));
}

Model build_network(const NetworkConfig& c) {
  check_image_size(c.image_size, c.backbone);
  check_alpha(c.alpha, c.backbone);
  check_positive(c.classes, "--classes", "number of classes");
  check_positive(c.head_units, "--head-units", "units of the dense head layer");
  check_positive(c.width, "width", "conv1 filters");
  check_positive(c.channels, "channels", "input channels");

  const BackboneInfo& info = backbone_info(c.backbone);
  Model m;
  int x = add_base(m, c);
  if (m.size() != info.base_layers)
    throw std::logic_error(std::string(info.keras_name) + " base has " + std::to_string(m.size()) +
                           " layers, expected " + std::to_string(info.base_layers));
  m.set_base_layers(info.base_layers);
  x = m.add(std::make_unique<GlobalAveragePooling2D>("global_average_pooling2d"), {x});
  x = m.add(std::make_unique<Dense>("dense", c.head_units, Activation::kRelu), {x});
  if (c.dropout > 0) x = m.add(std::make_unique<Dropout>("dropout", c.dropout), {x});
  m.add(std::make_unique<Dense>("dense_1", c.classes, Activation::kSoftmax), {x});
  m.build();
  return m;
}

void freeze_base(Model& model) {
  for (int i = 0; i < model.size(); ++i)
    model.layer(i).trainable = i < model.base_begin() || i >= model.base_end();
}

void unfreeze_last_base_layers(Model& model, int n) {
  const int base = model.base_layers();
  if (n < 0 || n > base)
    throw std::invalid_argument("--unfreeze-last must be between 0 and " + std::to_string(base) +
                                " (the base's layer count), got " + std::to_string(n));
  for (int i = model.base_end() - n; i < model.base_end(); ++i) model.layer(i).trainable = true;
}

void unfreeze_base_from(Model& model, const std::string& layer_name) {
  const int i = model.index_of(layer_name);
  if (i < model.base_begin() || i >= model.base_end())
    throw std::invalid_argument("--unfreeze-from: '" + layer_name + "' is not a base layer (e.g. " +
                                model.layer(model.base_end() - 1).name() + ")");
  unfreeze_last_base_layers(model, model.base_end() - i);
}

}  // namespace parafine
