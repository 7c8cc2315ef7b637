// Builds the tf.keras ResNet50 topology with Keras layer names and order (see resnet50.hpp).
#include "parafine/model/resnet50.hpp"

#include <stdexcept>

#include "parafine/layers/batch_norm.hpp"
#include "parafine/layers/conv2d.hpp"
#include "parafine/layers/dense.hpp"
#include "parafine/layers/simple_layers.hpp"

namespace parafine {

namespace {

struct Builder {
  Model& m;
  int conv(const std::string& name, int from, int filters, int k, int stride, Padding pad) {
    return m.add(std::make_unique<Conv2D>(name, filters, k, stride, pad), {from});
  }
  int bn(const std::string& name, int from) {
    return m.add(std::make_unique<BatchNormalization>(name), {from});
  }
  int relu(const std::string& name, int from) {
    return m.add(std::make_unique<ReLU>(name), {from});
  }

  // keras.applications.resnet.block1; the order of add() calls is Keras's layer order.
  int block(const std::string& name, int x, int filters, int stride, bool conv_shortcut) {
    int y = conv(name + "_1_conv", x, filters, 1, stride, Padding::kValid);
    y = bn(name + "_1_bn", y);
    y = relu(name + "_1_relu", y);
    y = conv(name + "_2_conv", y, filters, 3, 1, Padding::kSame);
    y = bn(name + "_2_bn", y);
    y = relu(name + "_2_relu", y);
    int shortcut = x;
    if (conv_shortcut) {
      shortcut = conv(name + "_0_conv", x, 4 * filters, 1, stride, Padding::kValid);
      y = conv(name + "_3_conv", y, 4 * filters, 1, 1, Padding::kValid);
      shortcut = bn(name + "_0_bn", shortcut);
      y = bn(name + "_3_bn", y);
    } else {
      y = conv(name + "_3_conv", y, 4 * filters, 1, 1, Padding::kValid);
      y = bn(name + "_3_bn", y);
    }
    const int sum = m.add(std::make_unique<Add>(name + "_add"), {shortcut, y});
    return relu(name + "_out", sum);
  }

  int stack(const std::string& name, int x, int filters, int blocks, int stride) {
    x = block(name + "_block1", x, filters, stride, true);
    for (int b = 2; b <= blocks; ++b)
      x = block(name + "_block" + std::to_string(b), x, filters, 1, false);
    return x;
  }
};

void check_positive(int v, const char* option, const char* what) {
  if (v < 1)
    throw std::invalid_argument(std::string(option) + " must be at least 1 (" + what + "), got " +
                                std::to_string(v));
}

}  // namespace

void check_image_size(int image_size) {
  if (image_size < 32)
    throw std::invalid_argument(
        "--image-size must be at least 32 (ResNet50 downsamples 32x), got " +
        std::to_string(image_size));
}

Model build_resnet50(const ResNet50Config& c) {
  check_image_size(c.image_size);
  check_positive(c.classes, "--classes", "number of classes");
  check_positive(c.head_units, "--head-units", "units of the dense head layer");
  check_positive(c.width, "width", "conv1 filters");
  check_positive(c.channels, "channels", "input channels");

  Model m;
  Builder b{m};
  const int w = c.width;
  int x =
      m.add(std::make_unique<InputLayer>("input_1", Shape{c.image_size, c.image_size, c.channels}));
  x = m.add(std::make_unique<ZeroPadding2D>("conv1_pad", 3), {x});
  x = b.conv("conv1_conv", x, w, 7, 2, Padding::kValid);
  x = b.bn("conv1_bn", x);
  x = b.relu("conv1_relu", x);
  x = m.add(std::make_unique<ZeroPadding2D>("pool1_pad", 1), {x});
  x = m.add(std::make_unique<MaxPooling2D>("pool1_pool", 3, 2), {x});
  x = b.stack("conv2", x, w, 3, 1);
  x = b.stack("conv3", x, 2 * w, 4, 2);
  x = b.stack("conv4", x, 4 * w, 6, 2);
  x = b.stack("conv5", x, 8 * w, 3, 2);
  if (m.size() != kResNet50BaseLayers)
    throw std::logic_error("ResNet50 base has " + std::to_string(m.size()) +
                           " layers, expected 175");
  x = m.add(std::make_unique<GlobalAveragePooling2D>("global_average_pooling2d"), {x});
  x = m.add(std::make_unique<Dense>("dense", c.head_units, Activation::kRelu), {x});
  m.add(std::make_unique<Dense>("dense_1", c.classes, Activation::kSoftmax), {x});
  m.build();
  return m;
}

void freeze_base(Model& model) {
  for (int i = 0; i < model.size(); ++i) model.layer(i).trainable = i >= kResNet50BaseLayers;
}

void unfreeze_last_base_layers(Model& model, int n) {
  if (n < 0 || n > kResNet50BaseLayers)
    throw std::invalid_argument(
        "--unfreeze-last must be between 0 and 175 (the base's layer count), got " +
        std::to_string(n));
  for (int i = kResNet50BaseLayers - n; i < kResNet50BaseLayers; ++i)
    model.layer(i).trainable = true;
}

void unfreeze_base_from(Model& model, const std::string& layer_name) {
  const int i = model.index_of(layer_name);
  if (i < 0 || i >= kResNet50BaseLayers)
    throw std::invalid_argument("--unfreeze-from: '" + layer_name +
                                "' is not a ResNet50 base layer (e.g. conv5_block3_1_conv)");
  unfreeze_last_base_layers(model, kResNet50BaseLayers - i);
}

}  // namespace parafine
