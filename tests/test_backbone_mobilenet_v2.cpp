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

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "parafine/layers/batch_norm.hpp"
#include "parafine/layers/conv2d.hpp"
#include "parafine/layers/simple_layers.hpp"
#include "parafine/model/backbone.hpp"
#include "parafine/model/initializers.hpp"

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

// Random weights (keras_initialize, and depthwise kernels U(-0.5, 0.5): keras_initialize leaves
// them zero), gamma U(0.5, 2.5) and beta U(-0.5, 0.5), then BN statistics calibrated on x
// (Model::calibrate_batch_norm) with the variances scaled by U(0.8, 1.2): a well-conditioned
// network where ~1% of the values pass 6 and every ReLU6 clamps. The same in every model
// built from one seed.
void randomize(Model& m, unsigned seed, const Tensor& x) {
  keras_initialize(m, seed);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  for (const ParamRef& r : m.param_refs()) {
    float* v = m.data(r);
    for (std::size_t i = 0; i < r.shape.numel(); ++i) {
      if (r.name == "depthwise_kernel") v[i] = u(rng) - 0.5f;
      if (r.name == "gamma") v[i] = 0.5f + 2.0f * u(rng);
      if (r.name == "beta") v[i] = u(rng) - 0.5f;
    }
  }
  m.calibrate_batch_norm(x);
  for (const ParamRef& r : m.param_refs())
    if (r.name == "moving_variance")
      for (std::size_t i = 0; i < r.shape.numel(); ++i) m.data(r)[i] *= 0.8f + 0.4f * u(rng);
}

// max |a - b| / max |b|.
double scaled_difference(const Tensor& a, const Tensor& b) {
  double diff = 0, scale = 1e-6;
  for (std::size_t i = 0; i < a.numel(); ++i) {
    diff = std::max(diff, static_cast<double>(std::abs(a[i] - b[i])));
    scale = std::max(scale, static_cast<double>(std::abs(b[i])));
  }
  return diff / scale;
}

// Every layer trainable, its BNs in inference mode (--bn-mode frozen): a training forward of
// this model computes the frozen network's values with nothing folded or fused into a conv.
void unfuse(Model& m) {
  for (int i = 0; i < m.size(); ++i) {
    m.layer(i).trainable = true;
    if (auto* bn = dynamic_cast<BatchNormalization*>(&m.layer(i))) bn->set_inference_only(true);
  }
}

// The frozen prefix's fusions (conv or depthwise conv with its inference BN folded in, the
// ReLU6 after it clamped in the same computation) against the same network unfused, at the end
// of every depthwise chain and at out_relu (a conv chain's end). Equal within float32 rounding:
// the folded kernel rounds W * scale once where the unfused BN rounds its affine on the conv's
// output. This random network amplifies rounding from block to block (1e-6 at block 1, ~1e-4
// at block 16), so the measure of "within rounding" is the difference between two unfused
// float32 runs on the two conv engines (oneDNN, im2col + sgemm): the fused run must be within
// 4x of it (or 1e-5), where a missing clamp or a misplaced fold is off by far more (measured:
// out_relu off by 3 without the depthwise clamp).
TEST(MobileNetV2, FrozenFusionMatchesUnfusedForward) {
  for (const float alpha : {1.0f, 0.35f}) {
    Model fused = build_network(mobilenet(alpha, 64));
    Model plain = build_network(mobilenet(alpha, 64));
    Model other = build_network(mobilenet(alpha, 64));
    Tensor x(Shape{2, 64, 64, 3});
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (std::size_t i = 0; i < x.numel(); ++i) x[i] = u(rng);
    for (Model* m : {&fused, &plain, &other}) randomize(*m, 7, x);
    freeze_base(fused);
    unfuse(plain);
    unfuse(other);
    for (int i = 0; i < other.size(); ++i)
      if (auto* conv = dynamic_cast<Conv2D*>(&other.layer(i)))
        conv->set_engine(conv->engine() == ConvEngine::kOneDnn ? ConvEngine::kIm2col
                                                               : ConvEngine::kOneDnn);
    std::vector<int> ends;
    for (int i = 0; i < fused.base_layers(); ++i)
      if (fused.layer(i).name().find("depthwise_relu") != std::string::npos ||
          i == fused.base_layers() - 1)
        ends.push_back(i);
    for (Model* m : {&fused, &plain, &other}) {
      for (int i : ends) m->keep_output(i);
      m->forward(x, true);
    }
    double worst = 0, worst_engines = 0;
    int clamped_depthwise = 0, clamped_out = 0;
    for (int node : ends) {
      const Tensor& b = plain.output(node);
      const double err = scaled_difference(fused.output(node), b);
      const double engines = scaled_difference(other.output(node), b);
      worst = std::max(worst, err);
      worst_engines = std::max(worst_engines, engines);
      EXPECT_LT(err, std::max(1e-5, 4 * engines))
          << fused.layer(node).name() << " (engines differ by " << engines << ")";
      int at_six = 0;
      for (std::size_t i = 0; i < b.numel(); ++i) at_six += b[i] == 6.0f;
      (node == ends.back() ? clamped_out : clamped_depthwise) += at_six;
    }
    std::cout << "alpha " << alpha_text(alpha) << ": fused frozen vs unfused forward at "
              << ends.size() << " chain ends, worst max |diff| / max " << worst
              << " (unfused oneDNN vs im2col: " << worst_engines << "; " << clamped_depthwise
              << " depthwise outputs and " << clamped_out << " out_relu outputs clamped at 6)\n";
    // Else the test would miss a missing clamp.
    EXPECT_GT(clamped_depthwise, 0);
    EXPECT_GT(clamped_out, 0);
  }
}

TEST(MobileNetV2, RejectsAlphasKerasHasNoWeightsFor) {
  EXPECT_THROW(build_network(mobilenet(0.6f)), std::invalid_argument);
}

}  // namespace
}  // namespace parafine
