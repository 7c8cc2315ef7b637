// InceptionV3's base built as tf.keras 2.x builds
// keras.applications.InceptionV3(include_top=False): 311 layers in base.layers order with a fresh
// session's auto names, the wiring at a few places, 21,802,784 weights, the output shapes at 299
// and at Keras's minimum 75, the refusal of 74, and the whole base.layers order against the one the
// float64 reference derives from keras/applications/inception_v3.py and
// functional._map_graph_network (tests/reference/make_inception_v3_reference.py; its weight file
// lists the layers in order).
#include <gtest/gtest.h>

#include <iostream>
#include <string>
#include <vector>

#include "parafine/io/h5_tensors.hpp"
#include "parafine/model/backbone.hpp"
#include "test_util.hpp"

namespace parafine {

// gtest prints a Shape as "[1,7,128,128]" (found by argument-dependent lookup).
void PrintTo(const Shape& s, std::ostream* os) {
  *os << s.str();
}

namespace {

constexpr int kBaseLayers = 311;
constexpr std::size_t kBaseWeights = 21802784;  // Keras count_params(), moving statistics included

NetworkConfig inception(int image_size) {
  NetworkConfig c;
  c.image_size = image_size;
  c.classes = 3;
  c.head_units = 16;
  c.backbone = Backbone::kInceptionV3;
  return c;
}

std::vector<std::string> input_names(const Model& m, int node) {
  std::vector<std::string> names;
  for (int i : m.inputs_of(node)) names.push_back(m.layer(i).name());
  return names;
}

// The layer at base.layers[i]: its name, Keras class and inbound layers.
void expect_layer(const Model& m, int i, const std::string& name, const std::string& type,
                  const std::vector<std::string>& inputs) {
  ASSERT_LT(i, m.size());
  EXPECT_EQ(m.layer(i).name(), name) << "base.layers[" << i << "]";
  EXPECT_EQ(m.layer(i).type(), type) << name;
  EXPECT_EQ(input_names(m, i), inputs) << name;
}

class InceptionV3At299 : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { model_ = new Model(build_network(inception(299))); }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
  }
  static Model* model_;
};
Model* InceptionV3At299::model_ = nullptr;

TEST_F(InceptionV3At299, LayerCountAndWeights) {
  const Model& m = *model_;
  EXPECT_EQ(m.base_layers(), kBaseLayers);
  EXPECT_EQ(m.size(), kBaseLayers + 3);
  std::size_t base = 0, state = 0;
  for (const ParamRef& r : m.param_refs())
    if (r.node < kBaseLayers) {
      base += r.shape.numel();
      if (!r.optimised) state += r.shape.numel();
    }
  std::cout << "InceptionV3 base: " << m.base_layers() << " layers, " << base << " weights ("
            << state << " BN moving statistics)\n";
  EXPECT_EQ(base, kBaseWeights);
  // 94 BatchNormalizations of scale=False: beta optimised, two statistics per channel.
  EXPECT_EQ(state, 2 * 17216u);  // 17,216 BN channels in all
  EXPECT_EQ(m.output_shape(kBaseLayers - 1, 1), (Shape{1, 8, 8, 2048}));
}

TEST_F(InceptionV3At299, NamesClassesAndInbound) {
  const Model& m = *model_;
  expect_layer(m, 0, "input_1", "InputLayer", {});
  expect_layer(m, 1, "conv2d", "Conv2D", {"input_1"});
  expect_layer(m, 2, "batch_normalization", "BatchNormalization", {"conv2d"});
  expect_layer(m, 3, "activation", "Activation", {"batch_normalization"});
  expect_layer(m, 10, "max_pooling2d", "MaxPooling2D", {"activation_2"});
  expect_layer(m, 17, "max_pooling2d_1", "MaxPooling2D", {"activation_4"});
  // In mixed0 the deepest branch (1x1 -> 3x3 -> 3x3) comes first.
  expect_layer(m, 18, "conv2d_8", "Conv2D", {"max_pooling2d_1"});
  expect_layer(m, 27, "average_pooling2d", "AveragePooling2D", {"max_pooling2d_1"});
  expect_layer(m, 40, "mixed0", "Concatenate",
               {"activation_5", "activation_7", "activation_10", "activation_11"});
  expect_layer(m, 100, "mixed3", "Concatenate",
               {"activation_26", "activation_29", "max_pooling2d_2"});
  expect_layer(m, 113, "conv2d_32", "Conv2D", {"activation_31"});
  expect_layer(m, 248, "mixed8", "Concatenate",
               {"activation_71", "activation_75", "max_pooling2d_3"});
  expect_layer(m, 276, "mixed9_0", "Concatenate", {"activation_78", "activation_79"});
  expect_layer(m, 277, "concatenate", "Concatenate", {"activation_82", "activation_83"});
  expect_layer(m, 279, "mixed9", "Concatenate",
               {"activation_76", "mixed9_0", "concatenate", "activation_84"});
  expect_layer(m, 293, "average_pooling2d_8", "AveragePooling2D", {"mixed9"});
  expect_layer(m, 308, "concatenate_1", "Concatenate", {"activation_91", "activation_92"});
  expect_layer(m, 310, "mixed10", "Concatenate",
               {"activation_85", "mixed9_1", "concatenate_1", "activation_93"});
  expect_layer(m, 311, "global_average_pooling2d", "GlobalAveragePooling2D", {"mixed10"});
  // Keras's fine-tuning guide freezes "the first 249 layers" to train the top two blocks:
  // base.layers[249:] starts right after mixed8.
  EXPECT_EQ(m.index_of("mixed8"), 248);
  // Non-square kernels, HWIO, and BN without gamma (scale=False).
  EXPECT_EQ(m.find_param("conv2d", "kernel").shape, (Shape{3, 3, 3, 32}));
  EXPECT_EQ(m.find_param("conv2d_32", "kernel").shape, (Shape{1, 7, 128, 128}));
  EXPECT_EQ(m.find_param("conv2d_33", "kernel").shape, (Shape{7, 1, 128, 192}));
  EXPECT_EQ(m.find_param("conv2d_93", "kernel").shape, (Shape{1, 1, 2048, 192}));
  EXPECT_EQ(m.find_param("batch_normalization_93", "beta").shape, (Shape{192}));
  EXPECT_THROW(m.find_param("batch_normalization_93", "gamma"), std::exception);
  EXPECT_THROW(m.find_param("conv2d_93", "bias"), std::exception);
}

// Every auto-named layer exists exactly once, and each conv2d_k feeds batch_normalization_k,
// which feeds activation_k.
TEST_F(InceptionV3At299, AutoNamesFollowCreationOrder) {
  const Model& m = *model_;
  for (int k = 0; k < 94; ++k) {
    const std::string s = k == 0 ? "" : "_" + std::to_string(k);
    const int conv = m.index_of("conv2d" + s), bn = m.index_of("batch_normalization" + s),
              act = m.index_of("activation" + s);
    ASSERT_GE(conv, 0) << "conv2d" << s;
    ASSERT_GE(bn, 0) << "batch_normalization" << s;
    ASSERT_GE(act, 0) << "activation" << s;
    EXPECT_EQ(m.inputs_of(bn), std::vector<int>{conv});
    EXPECT_EQ(m.inputs_of(act), std::vector<int>{bn});
  }
  EXPECT_LT(m.index_of("conv2d_94"), 0);
  EXPECT_GE(m.index_of("max_pooling2d_3"), 0);
  EXPECT_LT(m.index_of("max_pooling2d_4"), 0);
  EXPECT_GE(m.index_of("average_pooling2d_8"), 0);
  EXPECT_LT(m.index_of("average_pooling2d_9"), 0);
  EXPECT_LT(m.index_of("concatenate_2"), 0);
  for (int k = 0; k <= 10; ++k) EXPECT_GE(m.index_of("mixed" + std::to_string(k)), 0) << k;
}

TEST_F(InceptionV3At299, UnfreezeLastTakesKerasSlice) {
  Model& m = *model_;
  freeze_base(m);
  unfreeze_last_base_layers(m, 40);  // base.layers[-40:] starts inside mixed9's block
  EXPECT_EQ(m.layer(kBaseLayers - 40).name(), "activation_79");
  EXPECT_FALSE(m.layer(kBaseLayers - 41).trainable);
  EXPECT_TRUE(m.layer(kBaseLayers - 40).trainable);
  freeze_base(m);
}

// The whole base.layers order against the reference's (its weight file's layer_names).
TEST(InceptionV3, OrderMatchesReference) {
  const std::string path =
      test_util::env_or("PARAFINE_REFERENCE_DIR", ".") + "/ref_inception75_weights.h5";
  H5File f(path, H5File::Mode::kRead);
  const std::vector<std::string> names = f.read_string_attribute("/", "layer_names");
  const Model m = build_network(inception(75));
  ASSERT_EQ(names.size(), static_cast<std::size_t>(m.size())) << path;
  int differ = 0;
  for (int i = 0; i < m.size(); ++i) {
    EXPECT_EQ(m.layer(i).name(), names[static_cast<std::size_t>(i)]) << "layer " << i;
    differ += m.layer(i).name() != names[static_cast<std::size_t>(i)];
  }
  std::cout << "layer order against " << path << ": " << differ << " of " << m.size()
            << " positions differ\n";
}

TEST(InceptionV3, MinimumSize) {
  const Model m = build_network(inception(75));
  EXPECT_EQ(m.output_shape(kBaseLayers - 1, 2), (Shape{2, 1, 1, 2048}));
  const std::string message =
      test_util::error_message<std::invalid_argument>([] { build_network(inception(74)); });
  std::cout << "74: " << message << "\n";
  EXPECT_NE(message.find("--image-size must be at least 75"), std::string::npos) << message;
  EXPECT_NE(message.find("inception_v3"), std::string::npos) << message;
}

}  // namespace
}  // namespace parafine
