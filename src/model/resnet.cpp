// keras.applications.resnet's ResNet50 / ResNet101 / ResNet152 (v1, include_top=False): the
// layers in Keras's order with Keras's names (see backbone_builders.hpp).
#include <stdexcept>

#include "backbone_builders.hpp"
#include "parafine/layers/batch_norm.hpp"
#include "parafine/layers/conv2d.hpp"
#include "parafine/layers/simple_layers.hpp"

namespace parafine {

namespace {

constexpr float kResNetBnEpsilon = 1.001e-5f;

struct ResNetBuilder {
  Model& m;
  int conv(const std::string& name, int from, int filters, int k, int stride, Padding pad) {
    return m.add(std::make_unique<Conv2D>(name, filters, k, stride, pad), {from});
  }
  int bn(const std::string& name, int from) {
    return m.add(std::make_unique<BatchNormalization>(name, kResNetBnEpsilon), {from});
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

  // keras.applications.resnet.stack1
  int stack(const std::string& name, int x, int filters, int blocks, int stride) {
    x = block(name + "_block1", x, filters, stride, true);
    for (int b = 2; b <= blocks; ++b)
      x = block(name + "_block" + std::to_string(b), x, filters, 1, false);
    return x;
  }
};

}  // namespace

int add_resnet_base(Model& m, const NetworkConfig& c, int depth) {
  int blocks[4];
  switch (depth) {
    case 50:
      blocks[0] = 3, blocks[1] = 4, blocks[2] = 6, blocks[3] = 3;
      break;
    case 101:
      blocks[0] = 3, blocks[1] = 4, blocks[2] = 23, blocks[3] = 3;
      break;
    case 152:
      blocks[0] = 3, blocks[1] = 8, blocks[2] = 36, blocks[3] = 3;
      break;
    default:
      throw std::logic_error("no ResNet of depth " + std::to_string(depth));
  }
  ResNetBuilder b{m};
  const int w = c.width;
  int x =
      m.add(std::make_unique<InputLayer>("input_1", Shape{c.image_size, c.image_size, c.channels}));
  x = m.add(std::make_unique<ZeroPadding2D>("conv1_pad", 3), {x});
  x = b.conv("conv1_conv", x, w, 7, 2, Padding::kValid);
  x = b.bn("conv1_bn", x);
  x = b.relu("conv1_relu", x);
  x = m.add(std::make_unique<ZeroPadding2D>("pool1_pad", 1), {x});
  x = m.add(std::make_unique<MaxPooling2D>("pool1_pool", 3, 2), {x});
  x = b.stack("conv2", x, w, blocks[0], 1);
  x = b.stack("conv3", x, 2 * w, blocks[1], 2);
  x = b.stack("conv4", x, 4 * w, blocks[2], 2);
  return b.stack("conv5", x, 8 * w, blocks[3], 2);
}

}  // namespace parafine
