// One parafine layer from one Keras layer config (see model_from_config.hpp). The settings and
// their defaults are those of each layer's __init__ / get_config in keras/src/layers (Keras 3)
// and tf-keras (Keras 2); a setting parafine does not implement is a problem naming the layer,
// never silently ignored.
#include <cmath>
#include <map>
#include <optional>
#include <stdexcept>

#include "parafine/io/model_from_config.hpp"
#include "parafine/layers/activation_layer.hpp"
#include "parafine/layers/batch_norm.hpp"
#include "parafine/layers/concatenate.hpp"
#include "parafine/layers/conv2d.hpp"
#include "parafine/layers/dense.hpp"
#include "parafine/layers/depthwise_conv2d.hpp"
#include "parafine/layers/dropout.hpp"
#include "parafine/layers/flatten.hpp"
#include "parafine/layers/normalization.hpp"
#include "parafine/layers/pass_through.hpp"
#include "parafine/layers/pooling.hpp"
#include "parafine/layers/rescaling.hpp"
#include "parafine/layers/simple_layers.hpp"

namespace parafine {

using json = nlohmann::json;

namespace {

// A setting parafine cannot honour: the message names the setting and its value.
struct Unsupported : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void unsupported(const std::string& what) {
  throw Unsupported(what);
}

const json& get(const json& c, const char* key) {
  static const json null;
  return c.is_object() && c.contains(key) ? c[key] : null;
}

// A Keras int-or-tuple setting (kernel_size, strides, pool_size) as (h, w).
std::pair<int, int> pair_of(const json& v, const char* key) {
  if (v.is_number_integer()) return {v.get<int>(), v.get<int>()};
  if (v.is_array() && v.size() == 2 && v[0].is_number_integer() && v[1].is_number_integer())
    return {v[0].get<int>(), v[1].get<int>()};
  unsupported(std::string(key) + " " + v.dump() + " (expected an int or two ints)");
}

int square(const json& c, const char* key, int fallback) {
  const json& v = get(c, key);
  if (v.is_null()) return fallback;
  const auto [h, w] = pair_of(v, key);
  if (h != w)
    unsupported(std::string(key) + " " + v.dump() + ": parafine runs equal " + key +
                " in both directions");
  return h;
}

Padding padding_of(const json& c) {
  const std::string p =
      get(c, "padding").is_string() ? get(c, "padding").get<std::string>() : "valid";
  if (p == "valid") return Padding::kValid;
  if (p == "same") return Padding::kSame;
  unsupported("padding '" + p + "' (parafine runs 'valid' and 'same')");
}

// channels_last only; dilation 1; groups 1.
void check_conv_common(const json& c) {
  const json& df = get(c, "data_format");
  if (df.is_string() && df.get<std::string>() != "channels_last")
    unsupported("data_format '" + df.get<std::string>() + "' (parafine runs channels_last)");
  const json& d = get(c, "dilation_rate");
  if (!d.is_null() && pair_of(d, "dilation_rate") != std::make_pair(1, 1))
    unsupported("dilation_rate " + d.dump() + " (parafine runs undilated convolutions)");
  const json& g = get(c, "groups");
  if (g.is_number_integer() && g.get<int>() != 1)
    unsupported("groups " + g.dump() + " (parafine runs groups=1)");
}

// An activation as Keras serialises it: a name, or (Keras 3) {"class_name": "function",
// "config": "relu", ...}.
std::string activation_name(const json& c) {
  const json& a = get(c, "activation");
  if (a.is_null()) return "linear";
  if (a.is_string()) return a.get<std::string>();
  if (a.is_object() && a.contains("config") && a["config"].is_string())
    return a["config"].get<std::string>();
  unsupported("activation " + a.dump());
}

bool use_bias(const json& c) {
  const json& b = get(c, "use_bias");
  return b.is_boolean() ? b.get<bool>() : true;
}

ConvActivation conv_activation(const json& c) {
  const std::string a = activation_name(c);
  if (a == "linear") return ConvActivation::kNone;
  if (a == "relu") return ConvActivation::kRelu;
  unsupported("activation '" + a +
              "' inside a convolution (parafine fuses linear and relu; put another activation "
              "in an Activation layer)");
}

// The channel axis of BatchNormalization / Concatenate / Normalization: -1 or 3 for NHWC.
void check_last_axis(const json& c, int rank = 4) {
  json axis = get(c, "axis");
  if (axis.is_null()) return;
  if (axis.is_array() && axis.size() == 1) axis = axis[0];
  if (!axis.is_number_integer() || (axis.get<int>() != -1 && axis.get<int>() != rank - 1))
    unsupported("axis " + get(c, "axis").dump() +
                " (parafine normalises and joins the channel axis, -1)");
}

float number(const json& c, const char* key, float fallback) {
  const json& v = get(c, key);
  return v.is_number() ? v.get<float>() : fallback;
}

// Rescaling's scale/offset: a number or a per-channel list.
std::vector<float> numbers(const json& c, const char* key, float fallback) {
  const json& v = get(c, key);
  if (v.is_null()) return {fallback};
  if (v.is_number()) return {v.get<float>()};
  std::vector<float> out;
  if (v.is_array())
    for (const json& e : v) {
      if (!e.is_number()) unsupported(std::string(key) + " " + v.dump());
      out.push_back(e.get<float>());
    }
  if (out.empty()) unsupported(std::string(key) + " " + v.dump());
  return out;
}

Shape input_shape_of(const KerasNode& node, int image_size) {
  const json& c = node.config;
  json shape = get(c, "batch_shape");
  if (shape.is_null()) shape = get(c, "batch_input_shape");
  if (shape.is_null() && get(c, "shape").is_array()) {  // Keras 3 Input(shape=...) without batch
    shape = json::array({nullptr});
    for (const json& d : get(c, "shape")) shape.push_back(d);
  }
  if (!shape.is_array() || shape.size() != 4)
    unsupported("input shape " + shape.dump() +
                " (parafine runs images: [batch, height, width, channels])");
  int dims[3];
  for (int k = 0; k < 3; ++k) {
    const json& d = shape[static_cast<std::size_t>(k + 1)];
    if (k < 2 && image_size > 0) {
      dims[k] = image_size;  // the caller's size wins over the config's
    } else if (d.is_null()) {
      if (k == 2) unsupported("input shape " + shape.dump() + " leaves the channel count open");
      dims[k] = 0;
    } else {
      dims[k] = d.get<int>();
    }
  }
  if (dims[0] <= 0 || dims[1] <= 0)
    unsupported("input shape " + shape.dump() + " leaves the image size open: give --image-size");
  const json& df = get(c, "dtype");
  if (df.is_string() && df.get<std::string>() != "float32" && df.get<std::string>() != "uint8")
    unsupported("input dtype '" + df.get<std::string>() + "'");
  return Shape{dims[0], dims[1], dims[2]};
}

using LayerPtr = std::unique_ptr<Layer>;

LayerPtr input_layer(const KerasNode& node, int image_size) {
  if (!node.inputs.empty()) return std::make_unique<PassThrough>(node.flat_name, "InputLayer");
  return std::make_unique<InputLayer>(node.flat_name, input_shape_of(node, image_size));
}

LayerPtr conv2d(const KerasNode& node, int) {
  const json& c = node.config;
  check_conv_common(c);
  const auto [kh, kw] = pair_of(get(c, "kernel_size"), "kernel_size");
  return std::make_unique<Conv2D>(node.flat_name, get(c, "filters").get<int>(), KernelSize{kh, kw},
                                  square(c, "strides", 1), padding_of(c), use_bias(c),
                                  conv_activation(c));
}

LayerPtr depthwise_conv2d(const KerasNode& node, int) {
  const json& c = node.config;
  check_conv_common(c);
  const json& m = get(c, "depth_multiplier");
  if (conv_activation(c) != ConvActivation::kNone)
    unsupported("activation '" + activation_name(c) +
                "' inside DepthwiseConv2D (put it in an Activation layer)");
  return std::make_unique<DepthwiseConv2D>(node.flat_name, square(c, "kernel_size", 1),
                                           square(c, "strides", 1), padding_of(c), use_bias(c),
                                           m.is_number_integer() ? m.get<int>() : 1);
}

LayerPtr batch_normalization(const KerasNode& node, int) {
  const json& c = node.config;
  check_last_axis(c);
  const json& center = get(c, "center");
  if (center.is_boolean() && !center.get<bool>())
    unsupported("center=False (parafine's BatchNormalization always has beta)");
  const json& scale = get(c, "scale");
  if (!(number(c, "epsilon", 1e-3f) > 0.0f))
    unsupported("epsilon " + get(c, "epsilon").dump() +
                " (must be > 0: it keeps 1/sqrt(var + eps) finite)");
  return std::make_unique<BatchNormalization>(node.flat_name, number(c, "epsilon", 1e-3f),
                                              number(c, "momentum", 0.99f),
                                              scale.is_boolean() ? scale.get<bool>() : true);
}

LayerPtr dense(const KerasNode& node, int) {
  const json& c = node.config;
  const std::string a = activation_name(c);
  const std::pair<const char*, Activation> known[] = {{"linear", Activation::kLinear},
                                                      {"relu", Activation::kRelu},
                                                      {"softmax", Activation::kSoftmax},
                                                      {"sigmoid", Activation::kSigmoid},
                                                      {"tanh", Activation::kTanh}};
  for (const auto& [text, act] : known)
    if (a == text)
      return std::make_unique<Dense>(node.flat_name, get(c, "units").get<int>(), act, use_bias(c));
  unsupported("Dense activation '" + a +
              "' (parafine's Dense runs linear, relu, softmax, sigmoid, tanh; put another in an "
              "Activation layer)");
}

LayerPtr relu(const KerasNode& node, int) {
  const json& c = node.config;
  if (number(c, "negative_slope", 0.0f) != 0.0f || number(c, "threshold", 0.0f) != 0.0f)
    unsupported("ReLU with negative_slope or threshold (parafine runs max(x, 0) up to max_value)");
  const json& m = get(c, "max_value");
  return std::make_unique<ReLU>(
      node.flat_name, m.is_number() ? std::optional<float>(m.get<float>()) : std::nullopt);
}

LayerPtr add(const KerasNode& node, int) {
  if (node.inputs.size() != 2)
    unsupported("Add of " + std::to_string(node.inputs.size()) + " inputs (parafine adds two)");
  return std::make_unique<Add>(node.flat_name);
}

LayerPtr concatenate(const KerasNode& node, int) {
  check_last_axis(node.config);
  return std::make_unique<Concatenate>(node.flat_name, static_cast<int>(node.inputs.size()));
}

LayerPtr zero_padding2d(const KerasNode& node, int) {
  const json& p = get(node.config, "padding");
  const std::string& name = node.flat_name;
  if (p.is_number_integer()) return std::make_unique<ZeroPadding2D>(name, p.get<int>());
  // ((top, bottom), (left, right)) or (rows, cols): each axis a pair or one int.
  if (p.is_array() && p.size() == 2) {
    const auto [top, bottom] = pair_of(p[0], "padding");
    const auto [left, right] = pair_of(p[1], "padding");
    return std::make_unique<ZeroPadding2D>(name, top, bottom, left, right);
  }
  unsupported("padding " + p.dump());
}

LayerPtr pooling2d(const KerasNode& node, int) {
  const json& c = node.config;
  check_conv_common(c);
  const int pool = square(c, "pool_size", 2);
  const int stride = get(c, "strides").is_null() ? pool : square(c, "strides", pool);
  if (node.class_name == "MaxPooling2D")
    return std::make_unique<MaxPooling2D>(node.flat_name, pool, stride, padding_of(c));
  return std::make_unique<AveragePooling2D>(node.flat_name, pool, stride, padding_of(c));
}

LayerPtr global_pooling2d(const KerasNode& node, int) {
  check_conv_common(node.config);
  const json& k = get(node.config, "keepdims");
  if (k.is_boolean() && k.get<bool>()) unsupported("keepdims=True");
  if (node.class_name == "GlobalAveragePooling2D")
    return std::make_unique<GlobalAveragePooling2D>(node.flat_name);
  return std::make_unique<GlobalMaxPooling2D>(node.flat_name);
}

LayerPtr flatten(const KerasNode& node, int) {
  check_conv_common(node.config);
  return std::make_unique<Flatten>(node.flat_name);
}

LayerPtr dropout(const KerasNode& node, int) {
  const json& c = node.config;
  const json& s = get(c, "seed");
  if (!get(c, "noise_shape").is_null()) unsupported("noise_shape " + get(c, "noise_shape").dump());
  auto d = std::make_unique<Dropout>(
      node.flat_name, number(c, "rate", 0.5f),
      s.is_number_integer() ? std::optional<std::uint64_t>(s.get<std::uint64_t>()) : std::nullopt);
  if (node.inference_only) d->set_inference_only(true);
  return d;
}

LayerPtr rescaling(const KerasNode& node, int) {
  return std::make_unique<Rescaling>(node.flat_name, numbers(node.config, "scale", 1.0f),
                                     numbers(node.config, "offset", 0.0f));
}

LayerPtr normalization(const KerasNode& node, int) {
  const json& c = node.config;
  check_last_axis(c);
  const json& invert = get(c, "invert");
  if (invert.is_boolean() && invert.get<bool>()) unsupported("invert=True");
  const json& mean = get(c, "mean");
  if (mean.is_null() != get(c, "variance").is_null())
    unsupported("only one of mean and variance given");
  if (mean.is_null()) return std::make_unique<Normalization>(node.flat_name);  // adapted: weights
  return std::make_unique<Normalization>(node.flat_name, numbers(c, "mean", 0.0f),
                                         numbers(c, "variance", 1.0f));
}

LayerPtr activation(const KerasNode& node, int) {
  return make_activation(node.flat_name, activation_name(node.config));
}

LayerPtr make_layer(const KerasNode& node, int image_size) {
  using Builder = LayerPtr (*)(const KerasNode&, int);
  static const std::map<std::string, Builder> builders = {
      {"InputLayer", input_layer},
      {"Conv2D", conv2d},
      {"DepthwiseConv2D", depthwise_conv2d},
      {"BatchNormalization", batch_normalization},
      {"Dense", dense},
      {"Activation", activation},
      {"ReLU", relu},
      {"Add", add},
      {"Concatenate", concatenate},
      {"ZeroPadding2D", zero_padding2d},
      {"MaxPooling2D", pooling2d},
      {"AveragePooling2D", pooling2d},
      {"GlobalAveragePooling2D", global_pooling2d},
      {"GlobalMaxPooling2D", global_pooling2d},
      {"Flatten", flatten},
      {"Dropout", dropout},
      {"Rescaling", rescaling},
      {"Normalization", normalization}};
  const std::string& cls = node.class_name;
  if (const auto it = builders.find(cls); it != builders.end()) return it->second(node, image_size);
  // Augmentation layers are the identity in inference (train with --augment instead).
  if (is_augmentation_layer(cls)) return std::make_unique<PassThrough>(node.flat_name, cls);
  if (cls == "Lambda" || cls == "TFOpLambda" || cls == "SlicingOpLambda")
    unsupported("a " + cls +
                " layer holds Python code that parafine cannot run (rebuild the model without "
                "it, or with a Keras layer that does the same)");
  unsupported("class '" + cls + "' is not one parafine implements");
}

}  // namespace

bool is_augmentation_layer(const std::string& cls) {
  for (const char* a :
       {"RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomContrast",
        "RandomBrightness", "RandomHeight", "RandomWidth", "GaussianNoise", "GaussianDropout"})
    if (cls == a) return true;
  return false;
}

std::unique_ptr<Layer> layer_from_config(const KerasNode& node, int image_size,
                                         std::string& problem) {
  try {
    return make_layer(node, image_size);
  } catch (const Unsupported& e) {
    problem = "layer '" + node.flat_name + "' (" + node.class_name + "): " + e.what();
  } catch (const json::exception& e) {
    problem = "layer '" + node.flat_name + "' (" + node.class_name +
              "): a config value of the wrong type (" + e.what() + ")";
  } catch (const std::invalid_argument& e) {  // a layer constructor refused its settings
    problem = "layer '" + node.flat_name + "' (" + node.class_name + "): " + e.what();
  }
  return nullptr;
}

}  // namespace parafine
