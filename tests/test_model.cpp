// The ResNet50 model's structure and trainability contract: Keras layer names and order,
// layers[-N:] semantics, weight layout, a released frozen prefix, zero conv-bias gradients
// before training-mode BN, frozen weights untouched by training, and clear errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <iostream>
#include <utility>

#include "parafine/core/adam.hpp"
#include "parafine/core/loss.hpp"
#include "parafine/core/rng.hpp"
#include "parafine/layers/batch_norm.hpp"
#include "parafine/layers/conv2d.hpp"
#include "parafine/layers/dense.hpp"
#include "parafine/layers/simple_layers.hpp"
#include "parafine/model/initializers.hpp"
#include "parafine/model/backbone.hpp"
#include "parafine/train/trainer.hpp"
#include "test_util.hpp"

namespace parafine {
namespace {

NetworkConfig tiny() {
  return NetworkConfig{32, 3, 8, 4, 3};
}

// The names of the first 175 layers (the Keras base), in order.
std::vector<std::string> base_layer_names(const Model& model) {
  std::vector<std::string> names;
  for (int i = 0; i < kResNet50BaseLayers && i < model.size(); ++i)
    names.push_back(model.layer(i).name());
  return names;
}

TEST(ResNet50, KerasLayerNamesAndOrder) {
  Model m = build_network(tiny());
  ASSERT_EQ(m.size(), 178);
  const auto base = base_layer_names(m);
  ASSERT_EQ(base.size(), 175u);
  const std::vector<std::string> head = {"input_1",
                                         "conv1_pad",
                                         "conv1_conv",
                                         "conv1_bn",
                                         "conv1_relu",
                                         "pool1_pad",
                                         "pool1_pool",
                                         "conv2_block1_1_conv",
                                         "conv2_block1_1_bn",
                                         "conv2_block1_1_relu",
                                         "conv2_block1_2_conv",
                                         "conv2_block1_2_bn",
                                         "conv2_block1_2_relu",
                                         "conv2_block1_0_conv",
                                         "conv2_block1_3_conv",
                                         "conv2_block1_0_bn",
                                         "conv2_block1_3_bn",
                                         "conv2_block1_add",
                                         "conv2_block1_out",
                                         "conv2_block2_1_conv"};
  for (size_t i = 0; i < head.size(); ++i) EXPECT_EQ(base[i], head[i]) << "layer " << i;
  const std::vector<std::string> last10 = {
      "conv5_block3_1_conv", "conv5_block3_1_bn",   "conv5_block3_1_relu", "conv5_block3_2_conv",
      "conv5_block3_2_bn",   "conv5_block3_2_relu", "conv5_block3_3_conv", "conv5_block3_3_bn",
      "conv5_block3_add",    "conv5_block3_out"};
  for (size_t i = 0; i < 10; ++i) EXPECT_EQ(base[165 + i], last10[i]);
  EXPECT_EQ(m.layer(175).name(), "global_average_pooling2d");
  EXPECT_EQ(m.layer(176).name(), "dense");
  EXPECT_EQ(m.layer(177).name(), "dense_1");
  int convs = 0, bns = 0;
  for (int i = 0; i < m.size(); ++i) {
    convs += m.layer(i).type() == std::string("Conv2D");
    bns += m.layer(i).type() == std::string("BatchNormalization");
  }
  EXPECT_EQ(convs, 53);
  EXPECT_EQ(bns, 53);
  // The add of a first block takes [shortcut (_0_bn), main (_3_bn)], as Keras.
  const auto& add_in = m.inputs_of(m.index_of("conv3_block1_add"));
  EXPECT_EQ(m.layer(add_in[0]).name(), "conv3_block1_0_bn");
  EXPECT_EQ(m.layer(add_in[1]).name(), "conv3_block1_3_bn");
}

TEST(ResNet50, FullSizeShapesAndParameterCount) {
  Model m = build_network(NetworkConfig{224, 2, 1024, 64, 3});
  EXPECT_EQ(m.output_shape(174, 1), (Shape{1, 7, 7, 2048}));
  // Keras: ResNet50(include_top=False) has 23,587,712 weights (53,120 of them BN moving stats);
  // the head adds 2048*1024+1024 + 1024*2+2.
  const std::size_t head = 2048 * 1024 + 1024 + 1024 * 2 + 2;
  EXPECT_EQ(m.params().size() + m.state().size(), 23587712u + head);
  EXPECT_EQ(m.state().size(), 53120u);
  EXPECT_EQ(m.find_param("conv2_block1_0_conv", "kernel").shape, (Shape{1, 1, 64, 256}));
  EXPECT_EQ(m.find_param("conv1_conv", "kernel").shape, (Shape{7, 7, 3, 64}));
}

TEST(ResNet50, UnfreezeLastMeansKerasLayersSlice) {
  Model m = build_network(tiny());
  freeze_base(m);
  EXPECT_EQ(m.layer(m.first_trainable_node()).name(), "dense");
  unfreeze_last_base_layers(m, 10);
  EXPECT_EQ(m.layer(m.first_trainable_node()).name(), "conv5_block3_1_conv");
  for (int i = 0; i < 165; ++i) EXPECT_FALSE(m.layer(i).trainable) << m.layer(i).name();
  // layers[-9:] starts at a BN: the earliest trainable layer with weights is that BN.
  freeze_base(m);
  unfreeze_last_base_layers(m, 9);
  EXPECT_EQ(m.layer(m.first_trainable_node()).name(), "conv5_block3_1_bn");
  freeze_base(m);
  unfreeze_base_from(m, "conv4_block6_1_conv");
  EXPECT_EQ(m.layer(m.first_trainable_node()).name(), "conv4_block6_1_conv");
  EXPECT_TRUE(m.layer(174).trainable);
}

TEST(ResNet50, TrainableWeightsAreALeadingContiguousRange) {
  Model m = build_network(tiny());
  freeze_base(m);
  unfreeze_last_base_layers(m, 10);
  const std::size_t n = m.trainable_size();
  for (const ParamRef& r : m.param_refs()) {
    if (!r.optimised) continue;
    const bool inside = r.offset < n;
    EXPECT_EQ(inside, r.node >= m.index_of("conv5_block3_1_conv")) << m.layer(r.node).name();
  }
}

// Conv biases followed by a batch-statistics BN get exactly zero gradients; frozen layers'
// weights and BN statistics stay bit-identical through training; activations of the frozen
// prefix are released.
TEST(ResNet50, TrainingTouchesOnlyTheTrainableSuffix) {
  Model m = test_util::keras_initialized_resnet50(tiny(), 7);
  const test_util::SyntheticBatch data = test_util::synthetic_batch(12, 32, 3, 1);
  m.calibrate_batch_norm(data.images);
  freeze_base(m);
  unfreeze_last_base_layers(m, 10);
  const std::vector<float> params0 = m.params(), state0 = m.state();

  Adam adam(m.trainable_size(), 1e-2);
  Tensor dlogits;
  for (int step = 0; step < 3; ++step) {
    m.forward(data.images, true);
    const auto& head = static_cast<const Dense&>(m.layer(m.size() - 1));
    softmax_cross_entropy(head.logits(), data.labels, data.size(), &dlogits);
    m.backward(dlogits);
    for (const char* conv : {"conv5_block3_1_conv", "conv5_block3_2_conv", "conv5_block3_3_conv"}) {
      const ParamRef& b = m.find_param(conv, "bias");
      for (int i = 0; i < b.shape[0]; ++i) ASSERT_EQ(m.grads()[b.offset + i], 0.0f) << conv;
    }
    adam.step(m.params().data(), m.grads().data());
  }

  const int first = m.first_trainable_node();
  int frozen_checked = 0, trainable_changed = 0;
  for (const ParamRef& r : m.param_refs()) {
    const float* now = m.data(r);
    const float* before = (r.optimised ? params0.data() : state0.data()) + r.offset;
    const bool same = test_util::bit_diffs(now, before, r.shape.numel()) == 0;
    if (r.node < first) {
      EXPECT_TRUE(same) << m.layer(r.node).name() << "/" << r.name << " changed while frozen";
      ++frozen_checked;
    } else if (r.name != "bias" || m.layer(r.node).type() != std::string("Conv2D")) {
      trainable_changed += !same;
    } else {
      EXPECT_TRUE(same) << m.layer(r.node).name() << "/bias moved with a zero gradient";
    }
  }
  std::cout << frozen_checked << " frozen weight tensors bit-identical; " << trainable_changed
            << " trainable tensors changed\n";
  EXPECT_EQ(frozen_checked, 300);    // 53 convs x 2 + 53 BN x 4 + 4 head, minus the suffix's 22
  EXPECT_EQ(trainable_changed, 19);  // 3 kernels, 3 BN x 4 (moving stats too), 4 head tensors
}

// The frozen prefix keeps its BN-folded kernels between forwards; every way weights change
// (a frozen weight written through data() or state(), set_weights, an optimizer step on a
// trainable model followed by an inference forward) must show in the next forward. The truth
// is a fresh model given the same weights, which has folded nothing yet.
TEST(ResNet50, FoldedFrozenKernelsFollowWeightChanges) {
  Model m = test_util::keras_initialized_resnet50(tiny(), 5);
  const test_util::SyntheticBatch data = test_util::synthetic_batch(6, 32, 3, 2);
  m.calibrate_batch_norm(data.images);
  freeze_base(m);
  auto fresh_forward = [&](const Model& like) {
    Model fresh = test_util::keras_initialized_resnet50(tiny(), 99);
    fresh.set_weights(like.params(), like.state());
    freeze_base(fresh);
    return fresh.forward(data.images, false);
  };
  auto expect_matches_fresh = [&](const std::string& what) {
    const Tensor y = m.forward(data.images, false);
    const Tensor truth = fresh_forward(m);
    const std::size_t diffs = test_util::bit_diffs(y.data(), truth.data(), y.numel());
    std::cout << what << ": " << diffs << " of " << y.numel() << " outputs differ bitwise\n";
    EXPECT_EQ(diffs, 0u) << what;
    return y;
  };
  const Tensor y0 = expect_matches_fresh("first forward");
  // A frozen kernel and a frozen BN's moving variance changed in place.
  float* kernel = m.data(m.find_param("conv2_block1_1_conv", "kernel"));
  kernel[0] += 0.5f;
  kernel[7] -= 0.5f;
  m.state()[m.find_param("conv3_block2_2_bn", "moving_variance").offset] *= 4.0f;
  const Tensor y1 = expect_matches_fresh("after data() and state() writes");
  EXPECT_GT(test_util::bit_diffs(y0.data(), y1.data(), y0.numel()), 0u) << "the change shows";
  // set_weights back to the start.
  Model start = test_util::keras_initialized_resnet50(tiny(), 5);
  start.calibrate_batch_norm(data.images);
  m.set_weights(start.params(), start.state());
  const Tensor y2 = expect_matches_fresh("after set_weights");
  EXPECT_EQ(test_util::bit_diffs(y0.data(), y2.data(), y0.numel()), 0u);
  // Everything trainable: training steps through trainable_params() change the kernels and
  // the BN statistics an inference forward folds.
  for (int i = 0; i < m.size(); ++i) m.layer(i).trainable = true;
  Adam adam(m.trainable_size(), 1e-2);
  Tensor dlogits;
  for (int step = 0; step < 2; ++step) {
    m.forward(data.images, true);
    const auto& head = static_cast<const Dense&>(m.layer(m.size() - 1));
    softmax_cross_entropy(head.logits(), data.labels, data.size(), &dlogits);
    m.backward(dlogits);
    adam.step(m.trainable_params(), m.grads().data());
    m.forward(data.images, false);  // an evaluation between steps
  }
  const Tensor y3 = m.forward(data.images, false);
  Model fresh = test_util::keras_initialized_resnet50(tiny(), 99);
  fresh.set_weights(std::as_const(m).params(), std::as_const(m).state());  // const: no generation bump
  const Tensor truth = fresh.forward(data.images, false);
  const std::size_t diffs = test_util::bit_diffs(y3.data(), truth.data(), y3.numel());
  std::cout << "after training steps: " << diffs << " outputs differ bitwise from a fresh model\n";
  EXPECT_EQ(diffs, 0u);
  EXPECT_GT(test_util::bit_diffs(y0.data(), y3.data(), y0.numel()), 0u);
  // One more training step, then frozen again (a new phase) with no inference forward between:
  // the folds made while every conv was trainable (at y3) are stale and must not be reused.
  m.forward(data.images, true);
  softmax_cross_entropy(static_cast<const Dense&>(m.layer(m.size() - 1)).logits(), data.labels,
                        data.size(), &dlogits);
  m.backward(dlogits);
  adam.step(m.trainable_params(), m.grads().data());
  freeze_base(m);
  const Tensor y4 = expect_matches_fresh("a training step, then frozen again");
  EXPECT_GT(test_util::bit_diffs(y3.data(), y4.data(), y3.numel()), 0u);
}

// A residual block whose shortcut is the conv's own input, y = relu(x + BN(conv(x))): the
// conv cannot add into its input's buffer while reading it, so that Add runs on its own; the
// result equals the same model with the BN output kept (which stops the fusion at the BN).
TEST(Model, ResidualBlockOverTheConvsOwnInput) {
  auto build = [] {
    Model m;
    const int in = m.add(std::make_unique<InputLayer>("input_1", Shape{6, 6, 4}));
    const int conv = m.add(std::make_unique<Conv2D>("conv", 4, 3, 1, Padding::kSame), {in});
    const int bn = m.add(std::make_unique<BatchNormalization>("bn"), {conv});
    const int add = m.add(std::make_unique<Add>("add"), {in, bn});
    m.add(std::make_unique<ReLU>("relu"), {add});
    m.build();
    SplitMix64 rng(3);
    for (float& v : m.params()) v = static_cast<float>(rng.uniform() - 0.5);
    for (const ParamRef& r : m.param_refs())
      if (r.name == "moving_variance")
        for (std::size_t k = 0; k < r.shape.numel(); ++k) m.data(r)[k] = 1.5f;
    for (int i = 0; i < m.size(); ++i) m.layer(i).trainable = false;
    return m;
  };
  Tensor x(Shape{2, 6, 6, 4});
  SplitMix64 rng(5);
  for (std::size_t i = 0; i < x.numel(); ++i) x[i] = static_cast<float>(2 * rng.uniform() - 1);
  Model fused = build(), kept = build();
  kept.keep_output(kept.index_of("bn"));
  const Tensor a = fused.forward(x, false), b = kept.forward(x, false);
  ASSERT_EQ(a.shape(), b.shape());
  const double diff = test_util::max_abs_diff(std::vector<float>(a.data(), a.data() + a.numel()),
                                              std::vector<float>(b.data(), b.data() + b.numel()));
  std::cout << "residual over the conv's own input: max |difference| " << diff << " (tol 1e-6)\n";
  EXPECT_LE(diff, 1e-6);
}

TEST(ResNet50, FrozenPrefixActivationsAreReleased) {
  Model m = test_util::keras_initialized_resnet50(tiny(), 1);
  const test_util::SyntheticBatch data = test_util::synthetic_batch(4, 32, 3, 1);
  freeze_base(m);
  unfreeze_last_base_layers(m, 10);
  m.forward(data.images, true);
  EXPECT_THROW(m.output(m.index_of("conv2_block1_out")), std::logic_error);
  EXPECT_THROW(m.output(m.index_of("conv5_block3_1_relu") - 4),
               std::logic_error);                                // inside conv5_block2
  EXPECT_NO_THROW(m.output(m.index_of("conv5_block2_out")));     // input of the trainable block
  EXPECT_NO_THROW(m.output(m.index_of("conv5_block3_1_conv")));  // BN's backward reads it
  // Outputs no backward reads are dropped too (issue 12, memory): a BN's output (its backward
  // reads x and its statistics; the ReLU after it reads its own output) and the residual Add's.
  EXPECT_THROW(m.output(m.index_of("conv5_block3_1_bn")), std::logic_error);
  EXPECT_THROW(m.output(m.index_of("conv5_block3_add")), std::logic_error);
  int kept = 0;
  for (int i = 0; i < m.size(); ++i) {
    try {
      m.output(i);
      ++kept;
    } catch (const std::logic_error&) {
    }
  }
  std::cout << "training forward with the last 10 layers trainable keeps " << kept << " of "
            << m.size() << " layer outputs\n";
  // conv5_block2_out, the 10 trainable layers but their 3 BNs and the Add, the head
  EXPECT_EQ(kept, 1 + 10 - 4 + 3);
  // Backward hands each trainable layer's output back to the pool once it served its own and
  // its consumers' backward: only the logits and conv5_block2_out (frozen) remain.
  Tensor dlogits(m.output(m.size() - 1).shape());
  dlogits.fill(0.1f);
  m.backward(dlogits);
  int after_backward = 0;
  for (int i = 0; i < m.size(); ++i) {
    try {
      m.output(i);
      ++after_backward;
    } catch (const std::logic_error&) {
    }
  }
  std::cout << "after backward " << after_backward << " layer outputs are held\n";
  EXPECT_EQ(after_backward, 2);
  EXPECT_NO_THROW(m.output(m.size() - 1));
}

// Issue 12, memory: an all-trainable step's buffers stay close to what the step needs at once.
// Bound from the layer shapes: Model::step_bytes (forward's releases and drops simulated, then
// backward's widest gradient): 0.93x now. Best fit over all capacities held 1.16x on this model
// (a buffer for a small gradient taken from the large ones a later gradient then lacked).
TEST(ResNet50, AllTrainableStepHoldsAboutWhatItNeeds) {
  Model m = test_util::keras_initialized_resnet50(NetworkConfig{64, 3, 32, 16, 3}, 3);
  const int batch = 8;
  const test_util::SyntheticBatch data = test_util::synthetic_batch(batch, 64, 3, 1);
  m.calibrate_batch_norm(data.images);
  for (int i = 0; i < m.size(); ++i) m.layer(i).trainable = true;
  Tensor dlogits;
  std::size_t held[3] = {};
  for (std::size_t& h : held) {
    m.forward(data.images, true);
    // MaxPooling2D reads no values in backward: the padded input it pooled is dropped.
    EXPECT_THROW(m.output(m.index_of("pool1_pad")), std::logic_error);
    EXPECT_NO_THROW(m.output(m.index_of("pool1_pool")));  // the next conv's backward reads it
    const auto& head = static_cast<const Dense&>(m.layer(m.size() - 1));
    softmax_cross_entropy(head.logits(), data.labels, data.size(), &dlogits);
    m.backward(dlogits);
    h = m.activation_floats();  // the pool keeps every buffer it made: the step's peak
  }
  const double bound = m.step_bytes(batch, true);
  const double ratio = held[2] * sizeof(float) / bound;
  std::cout << "all-trainable step: buffers " << held[0] * sizeof(float) / 1048576.0 << ", "
            << held[1] * sizeof(float) / 1048576.0 << ", " << held[2] * sizeof(float) / 1048576.0
            << " MiB after steps 1-3; step_bytes " << bound / 1048576.0 << " MiB; ratio " << ratio
            << " (limit 1.1)\n";
  EXPECT_EQ(held[1], held[0]);  // repeated steps make no new buffer
  EXPECT_EQ(held[2], held[0]);
  EXPECT_LE(ratio, 1.1);
}

TEST(ResNet50, BadConfigurationsNameTheOption) {
  auto message = [](const NetworkConfig& c) {
    return test_util::error_message<std::invalid_argument>([&] { build_network(c); });
  };
  EXPECT_NE(message({31, 2, 8, 4, 3}).find("--image-size"), std::string::npos);
  EXPECT_NE(message({32, 0, 8, 4, 3}).find("--classes"), std::string::npos);
  EXPECT_NE(message({32, 2, 0, 4, 3}).find("--head-units"), std::string::npos);
  Model m = build_network(tiny());
  try {
    unfreeze_last_base_layers(m, 176);
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("--unfreeze-last"), std::string::npos) << e.what();
  }
  EXPECT_THROW(unfreeze_base_from(m, "conv9_block1_1_conv"), std::invalid_argument);
  // A wrong input shape names the input layer and the expected shape.
  Tensor wrong(Shape{2, 40, 40, 3});
  try {
    m.forward(wrong, false);
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("input_1"), std::string::npos) << e.what();
    std::cout << "wrong input: " << e.what() << "\n";
  }
}

TEST(Model, ShapeMismatchNamesTheLayer) {
  Model m;
  const int in = m.add(std::make_unique<InputLayer>("input_1", Shape{8, 8, 3}));
  const int a = m.add(std::make_unique<Conv2D>("a", 4, 3, 1, Padding::kSame), {in});
  const int b = m.add(std::make_unique<Conv2D>("b", 5, 3, 2, Padding::kSame), {in});
  m.add(std::make_unique<Add>("sum"), {a, b});
  try {
    m.build();
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    std::cout << msg << "\n";
    EXPECT_NE(msg.find("'sum'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[1,8,8,4]"), std::string::npos) << msg;
  }
}

// A ReLU with max_value (MobileNetV2's ReLU6) after conv -> BN must stay clipped: the Model
// fuses only plain ReLUs into the folded conv chain (frozen) and into BN (training). Truth: the
// same model with every output kept, which runs each layer on its own.
TEST(Model, Relu6AfterConvAndBatchNormIsNotFusedAsPlainRelu) {
  auto build = [] {
    Model m;
    const int in = m.add(std::make_unique<InputLayer>("input_1", Shape{5, 5, 3}));
    const int conv = m.add(std::make_unique<Conv2D>("Conv1", 4, 3, 1, Padding::kSame), {in});
    const int bn = m.add(std::make_unique<BatchNormalization>("bn_Conv1"), {conv});
    m.add(std::make_unique<ReLU>("Conv1_relu", 6.0f), {bn});
    m.build();
    SplitMix64 rng(4);
    for (float& v : m.params()) v = static_cast<float>(8 * rng.uniform() - 4);  // large outputs
    for (const ParamRef& r : m.param_refs())
      if (r.name == "moving_variance")
        for (std::size_t k = 0; k < r.shape.numel(); ++k) m.data(r)[k] = 0.5f;
    return m;
  };
  Tensor x(Shape{2, 5, 5, 3});
  SplitMix64 rng(6);
  for (std::size_t i = 0; i < x.numel(); ++i) x[i] = static_cast<float>(2 * rng.uniform() - 1);
  for (const bool frozen : {true, false}) {
    Model fused = build(), kept = build();
    for (Model* m : {&fused, &kept})
      for (int i = 0; i < m->size(); ++i) m->layer(i).trainable = !frozen;
    for (int i = 0; i < kept.size(); ++i) kept.keep_output(i);
    const Tensor a = fused.forward(x, !frozen), b = kept.forward(x, !frozen);
    ASSERT_EQ(a.shape(), b.shape());
    const std::vector<float> av(a.data(), a.data() + a.numel()), bv(b.data(), b.data() + b.numel());
    const double diff = test_util::max_abs_diff(av, bv);
    const auto sixes = std::count(bv.begin(), bv.end(), 6.0f);
    const float top = *std::max_element(av.begin(), av.end());
    std::cout << (frozen ? "frozen (conv chain)" : "training (BN then ReLU)")
              << ": ReLU6 max |fused - unfused| " << diff << " (tol 1e-5), max output " << top
              << ", " << sixes << " outputs clipped to 6\n";
    EXPECT_GT(sixes, 0) << "the case must exercise the clip";
    EXPECT_LE(top, 6.0f);
    EXPECT_LE(diff, 1e-5);
  }
}

}  // namespace
}  // namespace parafine
