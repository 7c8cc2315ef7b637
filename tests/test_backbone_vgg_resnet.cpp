// VGG16, VGG19, ResNet101 and ResNet152 built as keras.applications builds them with
// include_top=False: base.layers count (InputLayer included), the parameter totals Keras reports
// for the base (BN moving statistics counted, as model.count_params() does), Keras's layer
// names and classes at several positions, the base output shape at 224 and at 32. And the
// Model's frozen conv -> BN fold leaving a conv with its own ReLU (VGG's kind) unfused.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "gradient_checker.hpp"
#include "parafine/layers/batch_norm.hpp"
#include "parafine/layers/conv2d.hpp"
#include "parafine/layers/simple_layers.hpp"
#include "parafine/model/backbone.hpp"

namespace parafine {
namespace {

struct BackboneCase {
  Backbone backbone;
  int base_layers;
  long long keras_params;  // Keras VGG16(include_top=False).count_params(), etc.
  int output_channels;
  // (base.layers index, name, class) as Keras lists them.
  std::vector<std::tuple<int, std::string, std::string>> layers;
  std::vector<std::string> absent;  // names Keras's model does not have
};

void PrintTo(const BackboneCase& c, std::ostream* os) {
  *os << backbone_info(c.backbone).name;
}

std::vector<BackboneCase> cases() {
  return {
      {Backbone::kVGG16,
       19,
       14714688,
       512,
       {{0, "input_1", "InputLayer"},
        {1, "block1_conv1", "Conv2D"},
        {3, "block1_pool", "MaxPooling2D"},
        {9, "block3_conv3", "Conv2D"},
        {10, "block3_pool", "MaxPooling2D"},
        {17, "block5_conv3", "Conv2D"},
        {18, "block5_pool", "MaxPooling2D"}},
       {"block3_conv4", "block5_conv4", "flatten", "fc1"}},
      {Backbone::kVGG19,
       22,
       20024384,
       512,
       {{0, "input_1", "InputLayer"},
        {2, "block1_conv2", "Conv2D"},
        {10, "block3_conv4", "Conv2D"},
        {11, "block3_pool", "MaxPooling2D"},
        {15, "block4_conv4", "Conv2D"},
        {20, "block5_conv4", "Conv2D"},
        {21, "block5_pool", "MaxPooling2D"}},
       {"block5_conv5", "fc2"}},
      {Backbone::kResNet101,
       345,
       42658176,
       2048,
       {{0, "input_1", "InputLayer"},
        {1, "conv1_pad", "ZeroPadding2D"},
        {2, "conv1_conv", "Conv2D"},
        {6, "pool1_pool", "MaxPooling2D"},
        {7, "conv2_block1_1_conv", "Conv2D"},
        {335, "conv5_block3_1_conv", "Conv2D"},
        {342, "conv5_block3_3_bn", "BatchNormalization"},
        {343, "conv5_block3_add", "Add"},
        {344, "conv5_block3_out", "Activation"}},
       {"conv3_block5_out", "conv4_block24_out"}},
      {Backbone::kResNet152,
       515,
       58370944,
       2048,
       {{0, "input_1", "InputLayer"},
        {7, "conv2_block1_1_conv", "Conv2D"},
        {505, "conv5_block3_1_conv", "Conv2D"},
        {513, "conv5_block3_add", "Add"},
        {514, "conv5_block3_out", "Activation"}},
       {"conv3_block9_out", "conv4_block37_out"}},
  };
}

NetworkConfig config(Backbone b, int image_size) {
  NetworkConfig c;
  c.backbone = b;
  c.image_size = image_size;
  c.classes = 3;
  c.head_units = 16;
  return c;
}

class BackboneStructure : public ::testing::TestWithParam<BackboneCase> {};

TEST_P(BackboneStructure, LayersParametersAndOutputShapeAsKeras) {
  const BackboneCase& p = GetParam();
  const Model m = build_network(config(p.backbone, 32));
  const char* name = backbone_info(p.backbone).keras_name;
  EXPECT_EQ(m.base_layers(), p.base_layers) << name;
  EXPECT_EQ(backbone_info(p.backbone).base_layers, p.base_layers) << name;
  ASSERT_EQ(m.size(), p.base_layers + 3) << name << ": the head is three layers";
  EXPECT_EQ(m.layer(p.base_layers).name(), "global_average_pooling2d");

  long long base_params = 0;
  for (const ParamRef& r : m.param_refs())
    if (r.node < m.base_layers()) base_params += static_cast<long long>(r.shape.numel());
  std::cout << name << ": " << m.base_layers() << " base layers, " << base_params
            << " base parameters (Keras " << p.keras_params << ")\n";
  EXPECT_EQ(base_params, p.keras_params) << name;

  for (const auto& [index, layer, type] : p.layers) {
    EXPECT_EQ(m.layer(index).name(), layer) << name << " base.layers[" << index << "]";
    EXPECT_EQ(std::string(m.layer(index).type()), type) << name << " " << layer;
  }
  for (const std::string& layer : p.absent)
    EXPECT_EQ(m.index_of(layer), -1) << name << " " << layer;

  const int out = m.base_layers() - 1;
  EXPECT_EQ(m.output_shape(out, 2), (Shape{2, 1, 1, p.output_channels})) << name << " at 32";
  const Model full = build_network(config(p.backbone, 224));
  EXPECT_EQ(full.output_shape(out, 1), (Shape{1, 7, 7, p.output_channels})) << name << " at 224";
}

INSTANTIATE_TEST_SUITE_P(Keras, BackboneStructure, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<BackboneCase>& i) {
                           return std::string(backbone_info(i.param.backbone).name);
                         });

// Every VGG convolution is Keras's Conv2D(filters, (3, 3), activation="relu", padding="same")
// with a bias; the pools halve the size.
TEST(VGG, ConvolutionsAreThreeByThreeSameReluWithBias) {
  for (const Backbone b : {Backbone::kVGG16, Backbone::kVGG19}) {
    const Model m = build_network(config(b, 64));
    int convs = 0;
    for (int i = 1; i < m.base_layers(); ++i) {
      const auto* conv = dynamic_cast<const Conv2D*>(&m.layer(i));
      if (!conv) continue;
      ++convs;
      EXPECT_EQ(conv->kernel_h(), 3) << conv->name();
      EXPECT_EQ(conv->kernel_w(), 3) << conv->name();
      EXPECT_EQ(conv->stride(), 1) << conv->name();
      EXPECT_TRUE(conv->use_bias()) << conv->name();
      EXPECT_EQ(conv->activation(), ConvActivation::kRelu) << conv->name();
      EXPECT_EQ(m.output_shape(i, 1)[1], m.output_shape(m.inputs_of(i)[0], 1)[1]) << "'same'";
    }
    EXPECT_EQ(convs, b == Backbone::kVGG16 ? 13 : 16);
    EXPECT_EQ(m.output_shape(m.index_of("block1_pool"), 1), (Shape{1, 32, 32, 64}));
    EXPECT_EQ(m.output_shape(m.index_of("block4_pool"), 1), (Shape{1, 4, 4, 512}));
  }
}

// input [2,5,6,3] -> Conv2D "conv" (4, 3x3 'same', bias, relu) -> BatchNormalization "bn".
// An inference forward folds a conv's inference BN into its kernel; not this conv's (the BN
// follows its ReLU): the output must be BN(relu(conv(x) + b)), computed here in double, also
// after a weight change (the frozen conv's kernel stamp is renewed).
TEST(ConvWithActivation, IsNotFoldedWithTheFollowingBatchNormalization) {
  Model m;
  int x = m.add(std::make_unique<InputLayer>("input_1", Shape{5, 6, 3}));
  x = m.add(std::make_unique<Conv2D>("conv", 4, 3, 1, Padding::kSame, true, ConvActivation::kRelu),
            {x});
  m.add(std::make_unique<BatchNormalization>("bn", 1e-3f), {x});
  m.build();
  for (int i = 0; i < m.size(); ++i) m.layer(i).trainable = false;
  gradcheck::Rng rng(71);
  for (const ParamRef& r : m.param_refs()) {
    const bool variance = r.name == "moving_variance" || r.name == "gamma";
    gradcheck::fill_uniform(m.data(r), r.shape.numel(), variance ? 0.5 : -1.0, variance ? 1.5 : 1.0,
                            rng);
  }
  Tensor input(Shape{2, 5, 6, 3});
  gradcheck::fill_uniform(input, -1.0, 1.0, rng);

  auto expected = [&] {  // [2,5,6,4] in double
    const float* k = m.data(m.find_param("conv", "kernel"));
    const float* b = m.data(m.find_param("conv", "bias"));
    const float* gamma = m.data(m.find_param("bn", "gamma"));
    const float* beta = m.data(m.find_param("bn", "beta"));
    const float* mean = m.data(m.find_param("bn", "moving_mean"));
    const float* var = m.data(m.find_param("bn", "moving_variance"));
    std::vector<double> y(2 * 5 * 6 * 4);
    for (int n = 0; n < 2; ++n)
      for (int r = 0; r < 5; ++r)
        for (int q = 0; q < 6; ++q)
          for (int o = 0; o < 4; ++o) {
            double acc = b[o];
            for (int a = 0; a < 3; ++a)
              for (int c = 0; c < 3; ++c) {
                const int yy = r - 1 + a, xx = q - 1 + c;
                if (yy < 0 || yy >= 5 || xx < 0 || xx >= 6) continue;
                for (int i = 0; i < 3; ++i)
                  acc += static_cast<double>(input[((n * 5 + yy) * 6 + xx) * 3 + i]) *
                         k[((a * 3 + c) * 3 + i) * 4 + o];
              }
            acc = std::max(acc, 0.0);
            y[((n * 5 + r) * 6 + q) * 4 + o] =
                (acc - mean[o]) / std::sqrt(var[o] + 1e-3) * gamma[o] + beta[o];
          }
    return y;
  };
  auto worst_error = [&] {
    const Tensor& out = m.forward(input, false);
    const std::vector<double> ref = expected();
    double worst = 0;
    for (std::size_t i = 0; i < ref.size(); ++i)
      worst = std::max(worst, std::abs(out[i] - ref[i]) / std::max(1.0, std::abs(ref[i])));
    return worst;
  };
  const double first = worst_error();
  m.data(m.find_param("conv", "bias"))[1] -= 0.75f;  // moves channel 1 across the ReLU's kink
  const double changed = worst_error();
  std::cout << "conv(relu) -> BN, inference: max error " << first << ", after a bias change "
            << changed << " (tol 1e-5)\n";
  EXPECT_LT(first, 1e-5);
  EXPECT_LT(changed, 1e-5);
}

}  // namespace
}  // namespace parafine
