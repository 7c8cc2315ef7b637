// Weight files of every backbone (issue 13): a full model saved by parafine is recognised as
// its backbone (predict, evaluate, --init build the right network); InceptionV3's two naming
// generations (tf.keras conv2d ... conv2d_93; the released notop file's conv2d_1 ... conv2d_94,
// written here from a saved file with h5py by tests/reference/rewrite_keras_weights.py) load to
// the same tensors, by Keras's layer order; a file of another backbone, or a missing or
// misshapen tensor, fails with a message that names it.
#include <gtest/gtest.h>

#include <iostream>
#include <string>

#include "parafine/io/backbone_of_file.hpp"
#include "parafine/io/keras_weights.hpp"
#include "parafine/io/model_file.hpp"
#include "parafine/model/initializers.hpp"
#include "run_binary.hpp"
#include "test_util.hpp"

namespace parafine {
namespace {

using test_util::TempDir;

NetworkConfig net_of(Backbone b, int size, float alpha = 1.0f, int width = 64) {
  NetworkConfig c;
  c.backbone = b;
  c.image_size = size;
  c.alpha = alpha;
  c.width = width;
  c.classes = 3;
  c.head_units = 8;
  return c;
}

Model random_model(const NetworkConfig& c, std::uint64_t seed) {
  Model m = build_network(c);
  keras_initialize(m, seed);
  // Distinct moving statistics, so a BN loaded into the wrong layer shows.
  std::vector<float>& state = m.state();
  for (std::size_t i = 0; i < state.size(); ++i) state[i] = 0.5f + 0.001f * (i % 997);
  return m;
}

void rewrite(const std::string& in, const std::string& out, const std::string& flags) {
  const std::string cmd = test_util::env_or("PARAFINE_REFERENCE_PYTHON", "/usr/bin/python3") + " " +
                          PARAFINE_REWRITER + " '" + in + "' '" + out + "' " + flags;
  const auto r = test_util::run_command(cmd);
  ASSERT_EQ(r.exit_code, 0) << cmd << "\n" << r.output;
}

std::string load_error(Model& m, const std::string& path, WeightScope scope) {
  return test_util::error_message<std::runtime_error>(
      [&] { load_keras_weights(m, path, scope, &std::cout); });
}

struct Recognised {
  NetworkConfig net;
};

class EachBackbone : public ::testing::TestWithParam<NetworkConfig> {};

// Saved with the head, read back: the same backbone, alpha / width, head and classes, and the
// same weights bit for bit.
TEST_P(EachBackbone, FullModelFileIsRecognisedAndRoundTrips) {
  const NetworkConfig c = GetParam();
  TempDir t("parafine_bw");
  const std::string path = (t.path / "full.h5").string();
  const Model saved = random_model(c, 7);
  save_keras_model(saved, path);
  NetworkConfig read;
  Model loaded = load_full_model(path, c.image_size, nullptr, &read);
  std::cout << backbone_info(c.backbone).name << " alpha " << c.alpha << ": recognised as "
            << backbone_info(read.backbone).name << " alpha " << read.alpha << "\n";
  EXPECT_EQ(read.backbone, c.backbone);
  EXPECT_EQ(read.alpha, c.alpha);
  EXPECT_EQ(read.head_units, c.head_units);
  EXPECT_EQ(read.classes, c.classes);
  EXPECT_EQ(test_util::bit_diffs(loaded.params(), saved.params()), 0u);
  EXPECT_EQ(test_util::bit_diffs(loaded.state(), saved.state()), 0u);
}

// The base of one backbone loaded into another: one message naming the backbone the file holds.
TEST_P(EachBackbone, AnotherBackbonesFileIsNamed) {
  const NetworkConfig c = GetParam();
  const NetworkConfig other = c.backbone == Backbone::kResNet50
                                  ? net_of(Backbone::kMobileNetV2, 32)
                                  : net_of(Backbone::kResNet50, c.image_size, 1.0f, 8);
  TempDir t("parafine_bw");
  const std::string path = (t.path / "other.h5").string();
  save_keras_model(random_model(other, 3), path);
  Model m = build_network(c);
  const std::string msg = load_error(m, path, WeightScope::kBase);
  std::cout << msg << "\n";
  EXPECT_NE(msg.find(std::string("holds ") + backbone_info(other.backbone).keras_name + " weights"),
            std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(
    Backbones, EachBackbone,
    ::testing::Values(net_of(Backbone::kResNet50, 32, 1.0f, 8),
                      net_of(Backbone::kResNet101, 32, 1.0f, 4), net_of(Backbone::kVGG16, 32),
                      net_of(Backbone::kVGG19, 32), net_of(Backbone::kInceptionV3, 75),
                      net_of(Backbone::kMobileNetV2, 32), net_of(Backbone::kMobileNetV2, 32, 0.35f),
                      net_of(Backbone::kMobileNetV2, 32, 1.3f)),
    [](const ::testing::TestParamInfo<NetworkConfig>& p) {
      std::string alpha = alpha_text(p.param.alpha);
      for (char& ch : alpha)
        if (ch == '.') ch = '_';
      return std::string(backbone_info(p.param.backbone).name) + "_alpha_" + alpha;
    });

class InceptionGenerations : public ::testing::Test {
 protected:
  void SetUp() override {
    saved_ = random_model(net_of(Backbone::kInceptionV3, 75), 11);
    tf_keras_ = (t_.path / "tf_keras.h5").string();
    save_keras_model(saved_, tf_keras_);
    notop_ = (t_.path / "tf_keras_notop.h5").string();
    rewrite(tf_keras_, notop_, "--drop-head");
  }
  TempDir t_{"parafine_bw"};
  Model saved_;
  std::string tf_keras_, notop_;
};

// The released file's naming (conv2d_1 ... conv2d_94) loads, by order, to exactly the tensors
// of the tf.keras naming (conv2d ... conv2d_93), which loads by name.
TEST_F(InceptionGenerations, BothNamingsLoadTheSameTensors) {
  const std::string released = (t_.path / "released_notop.h5").string();
  rewrite(notop_, released, "--one-based");
  Model by_name = build_network(net_of(Backbone::kInceptionV3, 75));
  Model by_order = build_network(net_of(Backbone::kInceptionV3, 75));
  load_keras_weights(by_name, notop_, WeightScope::kBase, &std::cout);
  load_keras_weights(by_order, released, WeightScope::kBase, &std::cout);
  const std::size_t base_params = saved_.params().size() - (2048 * 8 + 8 + 8 * 3 + 3);
  // Weights are laid out last layer first: the base is the tail of params().
  const std::size_t head = saved_.params().size() - base_params;
  EXPECT_EQ(test_util::bit_diffs(by_order.params().data() + head, saved_.params().data() + head,
                                 base_params),
            0u);
  EXPECT_EQ(test_util::bit_diffs(by_order.state(), saved_.state()), 0u);
  EXPECT_EQ(test_util::bit_diffs(by_order.state(), by_name.state()), 0u);
  EXPECT_EQ(test_util::bit_diffs(by_order.params().data() + head, by_name.params().data() + head,
                                 base_params),
            0u);
  // A whole model saved by that generation (its head dense_1, dense_2) loads its base by order.
  const std::string released_full = (t_.path / "released_full.h5").string();
  rewrite(tf_keras_, released_full, "--one-based");
  Model base_of_full = build_network(net_of(Backbone::kInceptionV3, 75));
  load_keras_weights(base_of_full, released_full, WeightScope::kBase, &std::cout);
  EXPECT_EQ(test_util::bit_diffs(base_of_full.state(), saved_.state()), 0u);
  EXPECT_EQ(test_util::bit_diffs(base_of_full.params().data() + head, saved_.params().data() + head,
                                 base_params),
            0u);
}

// A misshapen or a missing tensor in the released naming: all or nothing, one message naming it.
TEST_F(InceptionGenerations, MisshapenOrMissingTensorIsNamed) {
  const std::string misshapen = (t_.path / "misshapen.h5").string();
  rewrite(notop_, misshapen, "--one-based --transpose conv2d_50");
  Model m = build_network(net_of(Backbone::kInceptionV3, 75));
  const std::vector<float> before = m.params();
  std::string msg = load_error(m, misshapen, WeightScope::kBase);
  std::cout << msg << "\n";
  EXPECT_NE(msg.find("conv2d_49 (file layer conv2d_50)/kernel: shape"), std::string::npos);
  EXPECT_NE(msg.find("1 problem(s)"), std::string::npos);
  EXPECT_EQ(test_util::bit_diffs(m.params(), before), 0u);

  const std::string missing = (t_.path / "missing.h5").string();
  rewrite(notop_, missing, "--one-based --remove batch_normalization_7");
  msg = load_error(m, missing, WeightScope::kBase);
  std::cout << msg << "\n";
  EXPECT_NE(msg.find("has 93 batch_normalization layer(s) with weights and the model 94: a layer "
                     "is missing or extra"),
            std::string::npos);
  EXPECT_NE(msg.find("1 problem(s)"), std::string::npos);
  EXPECT_EQ(test_util::bit_diffs(m.params(), before), 0u);
}

// The CLI refuses --weights of another backbone before reading any data (exit 2).
TEST(BackboneWeightsCli, TrainRefusesAnotherBackbonesWeightsBeforeTheData) {
  TempDir t("parafine_bw");
  const std::string path = (t.path / "vgg16.h5").string();
  save_keras_model(random_model(net_of(Backbone::kVGG16, 32), 5), path);
  const auto r = run_parafine("train --train /nonexistent/data --weights " + path +
                              " --backbone resnet50 --image-size 32");
  std::cout << r.output;
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("holds VGG16 weights, but --backbone is resnet50"), std::string::npos);
  EXPECT_EQ(r.output.find("/nonexistent/data"), std::string::npos);  // the data was not opened
}

}  // namespace
}  // namespace parafine
