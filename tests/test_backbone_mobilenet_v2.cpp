// MobileNetV2's structure against keras.applications.mobilenet_v2 (include_top=False): the 154
// base.layers with Keras's names and classes, the parameter totals per alpha, the asymmetric
// pads of imagenet_utils.correct_pad and the output shapes. The numbers of the network itself
// are checked against a float64 PyTorch reference in test_resnet50_reference (mnv2_* cases).
//
// The parameter totals (model.count_params() of the base: kernels, gamma, beta and the BN
// moving statistics) are those of the graph tests/reference/make_mobilenet_v2_reference.py
// builds from the Keras source's formulas (_make_divisible, first_block_filters,
// last_block_filters), printed by its --print-param-counts. alpha 1.0's 2,257,984 is also
// Keras's published 3,538,984 with the 1000-class top minus the top's 1280*1000 + 1000.
#include <gtest/gtest.h>

#include <iostream>
#include <string>

#include "parafine/layers/conv2d.hpp"
#include "parafine/layers/simple_layers.hpp"
#include "parafine/model/backbone.hpp"

namespace parafine {
namespace {

NetworkConfig mobilenet(float alpha, int size = 224) {
  NetworkConfig c;
  c.backbone = Backbone::kMobileNetV2;
  c.alpha = alpha;
  c.image_size = size;
  c.head_units = 8;
  return c;
}

// Keras's count_params() of the base: every variable of the first base_layers() nodes.
std::size_t base_parameters(const Model& m) {
  std::size_t n = 0;
  for (const ParamRef& r : m.param_refs())
    if (r.node < m.base_layers()) n += r.shape.numel();
  return n;
}

TEST(MobileNetV2, ParameterTotalsPerAlpha) {
  const struct {
    float alpha;
    std::size_t params;
    int channels;  // out_relu: 1280 unless alpha > 1
  } cases[] = {{0.35f, 410208, 1280}, {0.5f, 706224, 1280},  {0.75f, 1382064, 1280},
               {1.0f, 2257984, 1280}, {1.3f, 3766048, 1664}, {1.4f, 4363712, 1792}};
  for (const auto& c : cases) {
    const Model m = build_network(mobilenet(c.alpha, 32));
    const std::size_t got = base_parameters(m);
    std::cout << "alpha " << alpha_text(c.alpha) << ": " << m.base_layers() << " base layers, "
              << got << " parameters (Keras " << c.params << ")\n";
    EXPECT_EQ(m.base_layers(), 154);
    EXPECT_EQ(got, c.params) << "alpha " << c.alpha;
    EXPECT_EQ(m.output_shape(153, 1), (Shape{1, 1, 1, c.channels})) << "alpha " << c.alpha;
  }
}

TEST(MobileNetV2, NamesAndClassesInKerasOrder) {
  const Model m = build_network(mobilenet(1.0f));
  ASSERT_EQ(m.base_layers(), 154);
  const struct {
    int index;
    const char* name;
    const char* type;
  } expected[] = {
      {0, "input_1", "InputLayer"},
      {1, "Conv1", "Conv2D"},
      {2, "bn_Conv1", "BatchNormalization"},
      {3, "Conv1_relu", "ReLU"},
      {4, "expanded_conv_depthwise", "DepthwiseConv2D"},
      {5, "expanded_conv_depthwise_BN", "BatchNormalization"},
      {6, "expanded_conv_depthwise_relu", "ReLU"},
      {7, "expanded_conv_project", "Conv2D"},
      {8, "expanded_conv_project_BN", "BatchNormalization"},
      {9, "block_1_expand", "Conv2D"},
      {10, "block_1_expand_BN", "BatchNormalization"},
      {11, "block_1_expand_relu", "ReLU"},
      {12, "block_1_pad", "ZeroPadding2D"},
      {13, "block_1_depthwise", "DepthwiseConv2D"},
      {17, "block_1_project_BN", "BatchNormalization"},
      {26, "block_2_add", "Add"},
      {142, "block_15_add", "Add"},
      {150, "block_16_project_BN", "BatchNormalization"},
      {151, "Conv_1", "Conv2D"},
      {152, "Conv_1_bn", "BatchNormalization"},
      {153, "out_relu", "ReLU"},
      {154, "global_average_pooling2d", "GlobalAveragePooling2D"},
  };
  for (const auto& e : expected) {
    EXPECT_EQ(m.layer(e.index).name(), e.name) << "layer " << e.index;
    EXPECT_EQ(std::string(m.layer(e.index).type()), e.type) << e.name;
  }
  // Every ReLU is ReLU(6.), every conv has no bias, the pads precede the stride-2 depthwise
  // convs of blocks 1, 3, 6 and 13, and 10 blocks end in an Add.
  int relus = 0, pads = 0, adds = 0, depthwise = 0, convs = 0;
  for (int i = 0; i < m.base_layers(); ++i) {
    const Layer& l = m.layer(i);
    if (const auto* r = dynamic_cast<const ReLU*>(&l)) {
      ++relus;
      EXPECT_TRUE(r->max_value() && *r->max_value() == 6.0f) << l.name();
    }
    if (const auto* c = dynamic_cast<const Conv2D*>(&l)) {
      ++convs;
      EXPECT_FALSE(c->use_bias()) << l.name();
    }
    if (dynamic_cast<const ZeroPadding2D*>(&l)) {
      ++pads;
      EXPECT_EQ(std::string(m.layer(i + 1).type()), "DepthwiseConv2D") << l.name();
    }
    adds += dynamic_cast<const Add*>(&l) != nullptr;
    depthwise += std::string(l.type()) == "DepthwiseConv2D";
  }
  EXPECT_EQ(relus, 35);
  EXPECT_EQ(convs, 35);
  EXPECT_EQ(depthwise, 17);
  EXPECT_EQ(pads, 4);
  EXPECT_EQ(adds, 10);
  for (const char* name : {"block_1_pad", "block_3_pad", "block_6_pad", "block_13_pad"})
    EXPECT_GE(m.index_of(name), 0) << name;
}

// correct_pad(x, 3) = ((1 - adjust, 1), (1 - adjust, 1)), adjust = 1 - size % 2: at 224 every
// padded size is even (112, 56, 28, 14): ((0, 1), (0, 1)); at 33 the sizes 17, 9, 5, 3 are odd:
// ((1, 1), (1, 1)).
TEST(MobileNetV2, AsymmetricPadsOfCorrectPad) {
  for (const int size : {224, 33}) {
    const Model m = build_network(mobilenet(1.0f, size));
    const int before = size == 224 ? 0 : 1;
    for (const char* name : {"block_1_pad", "block_3_pad", "block_6_pad", "block_13_pad"}) {
      const auto& pad = static_cast<const ZeroPadding2D&>(m.layer(m.index_of(name)));
      const Shape in = m.output_shape(m.index_of(name) - 1, 1);
      std::cout << size << ": " << name << " on " << in.str() << " pads ((" << pad.top() << ", "
                << pad.bottom() << "), (" << pad.left() << ", " << pad.right() << "))\n";
      EXPECT_EQ(in[1] % 2, size == 224 ? 0 : 1) << name;
      EXPECT_EQ(pad.top(), before) << name;
      EXPECT_EQ(pad.left(), before) << name;
      EXPECT_EQ(pad.bottom(), 1) << name;
      EXPECT_EQ(pad.right(), 1) << name;
    }
  }
}

TEST(MobileNetV2, OutputShapes) {
  const struct {
    int size;
    Shape out;
  } cases[] = {{224, Shape{2, 7, 7, 1280}},
               {32, Shape{2, 1, 1, 1280}},
               {33, Shape{2, 2, 2, 1280}},
               {96, Shape{2, 3, 3, 1280}}};
  for (const auto& c : cases) {
    const Model m = build_network(mobilenet(1.0f, c.size));
    EXPECT_EQ(m.output_shape(m.base_layers() - 1, 2), c.out) << "image size " << c.size;
  }
  // A forward at 32 runs and gives the shape the layers inferred.
  Model m = build_network(mobilenet(0.35f, 32));
  Tensor x(Shape{2, 32, 32, 3});
  for (std::size_t i = 0; i < x.numel(); ++i) x[i] = static_cast<float>(i % 7) / 7.0f;
  const Tensor& y = m.forward(x, false);
  EXPECT_EQ(y.shape(), (Shape{2, 2}));
}

TEST(MobileNetV2, RejectsAlphasKerasHasNoWeightsFor) {
  EXPECT_THROW(build_network(mobilenet(0.6f)), std::invalid_argument);
}

}  // namespace
}  // namespace parafine
