// keras.applications.mobilenet_v2.MobileNetV2(include_top=False, alpha=A, pooling=None): the
// layers in Keras's order with Keras's names (see backbone_builders.hpp). tf.keras 2.x
// (keras/applications/mobilenet_v2.py) and Keras 3 (keras/src/applications/mobilenet_v2.py)
// build the same graph: Conv1 is a 'same' stride-2 conv with no padding layer before it (154
// layers); only the stride-2 depthwise convolutions get a ZeroPadding2D (imagenet_utils.
// correct_pad) and 'valid' padding. Every conv has use_bias=False, every BN epsilon 1e-3 and
// momentum 0.999, every activation is ReLU(6.).
#include <algorithm>
#include <cstdlib>
#include <string>

#include "backbone_builders.hpp"
#include "parafine/layers/batch_norm.hpp"
#include "parafine/layers/conv2d.hpp"
#include "parafine/layers/depthwise_conv2d.hpp"
#include "parafine/layers/simple_layers.hpp"

namespace parafine {

namespace {

constexpr float kBnEpsilon = 1e-3f;
constexpr float kBnMomentum = 0.999f;

struct MobileNetV2Builder {
  Model& m;
  double alpha;  // as Python's float, so int(filters * alpha) truncates as Keras's does

  int conv(const std::string& name, int from, int filters, int k, int stride) {
    return m.add(std::make_unique<Conv2D>(name, filters, k, stride, Padding::kSame, false), {from});
  }
  int bn(const std::string& name, int from) {
    return m.add(std::make_unique<BatchNormalization>(name, kBnEpsilon, kBnMomentum), {from});
  }
  int relu6(const std::string& name, int from) {
    return m.add(std::make_unique<ReLU>(name, 6.0f), {from});
  }
  // mobilenet_v2._inverted_res_block; x has in_channels channels and spatial size h x w.
  int block(int x, int in_channels, int h, int w, int filters, int stride, int expansion,
            int block_id, int& out_channels) {
    const int pointwise_filters = make_divisible(static_cast<int>(filters * alpha), 8);
    std::string prefix = "block_" + std::to_string(block_id) + "_";
    int y = x;
    if (block_id) {
      y = conv(prefix + "expand", y, expansion * in_channels, 1, 1);
      y = bn(prefix + "expand_BN", y);
      y = relu6(prefix + "expand_relu", y);
    } else {
      prefix = "expanded_conv_";
    }
    if (stride == 2) {
      // imagenet_utils.correct_pad(x, 3): ((1 - adjust_h, 1), (1 - adjust_w, 1)) with
      // adjust = 1 - size % 2: an even side pads only after, an odd one on both sides.
      y = m.add(std::make_unique<ZeroPadding2D>(prefix + "pad", h % 2, 1, w % 2, 1), {y});
    }
    y = m.add(
        std::make_unique<DepthwiseConv2D>(prefix + "depthwise", 3, stride,
                                          stride == 1 ? Padding::kSame : Padding::kValid, false),
        {y});
    y = bn(prefix + "depthwise_BN", y);
    y = relu6(prefix + "depthwise_relu", y);
    y = conv(prefix + "project", y, pointwise_filters, 1, 1);
    y = bn(prefix + "project_BN", y);
    out_channels = pointwise_filters;
    if (in_channels == pointwise_filters && stride == 1)
      return m.add(std::make_unique<Add>(prefix + "add"), {x, y});
    return y;
  }
};

}  // namespace

int add_mobilenet_v2_base(Model& m, const NetworkConfig& c) {
  // The alpha Keras is given is a Python float such as 0.35; c.alpha is its nearest float32.
  const double alpha = std::strtod(alpha_text(c.alpha).c_str(), nullptr);
  MobileNetV2Builder b{m, alpha};
  int x =
      m.add(std::make_unique<InputLayer>("input_1", Shape{c.image_size, c.image_size, c.channels}));
  const int first_block_filters = make_divisible(32 * alpha, 8);
  x = b.conv("Conv1", x, first_block_filters, 3, 2);
  x = b.bn("bn_Conv1", x);
  x = b.relu6("Conv1_relu", x);
  // 'same' stride 2: ceil(size / 2).
  int size = (c.image_size + 1) / 2, ch = first_block_filters;
  struct Spec {
    int filters, stride, expansion;
  };
  static constexpr Spec kBlocks[17] = {
      {16, 1, 1}, {24, 2, 6},  {24, 1, 6},  {32, 2, 6},  {32, 1, 6}, {32, 1, 6},
      {64, 2, 6}, {64, 1, 6},  {64, 1, 6},  {64, 1, 6},  {96, 1, 6}, {96, 1, 6},
      {96, 1, 6}, {160, 2, 6}, {160, 1, 6}, {160, 1, 6}, {320, 1, 6}};
  for (int id = 0; id < 17; ++id) {
    const Spec& s = kBlocks[id];
    int out_ch = 0;
    x = b.block(x, ch, size, size, s.filters, s.stride, s.expansion, id, out_ch);
    ch = out_ch;
    // Padded to size + size % 2 + 1, then 'valid' 3x3 stride 2: (size + size % 2) / 2.
    if (s.stride == 2) size = (size + size % 2) / 2;
  }
  // No alpha on the last conv unless alpha > 1 (the paper's rule).
  const int last_block_filters = alpha > 1.0 ? make_divisible(1280 * alpha, 8) : 1280;
  x = m.add(std::make_unique<Conv2D>("Conv_1", last_block_filters, 1, 1, Padding::kValid, false),
            {x});
  x = b.bn("Conv_1_bn", x);
  return b.relu6("out_relu", x);
}

}  // namespace parafine
