// The classifier heads a model read from a Keras config may end in (train/evaluation.hpp): the
// loss chosen for each (categorical for a softmax, binary for one sigmoid unit, logits for a
// linear Dense), the refusals, and that a linear Dense followed by Activation('sigmoid') trains
// exactly like Dense(activation='sigmoid') -- its gradients checked against the fused head and
// against central differences of the loss.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>

#include "parafine/core/loss.hpp"
#include "parafine/io/keras_config.hpp"
#include "parafine/io/model_from_config.hpp"
#include "parafine/model/initializers.hpp"
#include "parafine/train/evaluation.hpp"

namespace parafine {
namespace {

using json = nlohmann::json;

json layer(const std::string& cls, const std::string& name, json config, const std::string& input) {
  config["name"] = name;
  return {
      {"class_name", cls},
      {"config", config},
      {"name", name},
      {"inbound_nodes",
       input.empty() ? json::array()
                     : json::array({json::array({json::array({input, 0, 0, json::object()})})})}};
}

// Input [4,4,2] -> Flatten -> Dense(units, activation) [-> Activation(trailing)].
Model head_model(int units, const std::string& activation, const std::string& trailing = "") {
  json layers =
      json::array({layer("InputLayer", "in", {{"batch_input_shape", {nullptr, 4, 4, 2}}}, ""),
                   layer("Flatten", "flat", json::object(), "in"),
                   layer("Dense", "out", {{"units", units}, {"activation", activation}}, "flat")});
  std::string last = "out";
  if (!trailing.empty()) {
    layers.push_back(layer("Activation", "act", {{"activation", trailing}}, "out"));
    last = "act";
  }
  const json config = {{"class_name", "Functional"},
                       {"config",
                        {{"name", "m"},
                         {"layers", layers},
                         {"input_layers", json::array({json::array({"in", 0, 0})})},
                         {"output_layers", json::array({json::array({last, 0, 0})})}}}};
  Model m = model_from_graph(parse_keras_config(config.dump(), "head"), 0, "head");
  keras_initialize(m, 7);
  return m;
}

Tensor inputs(int n) {
  Tensor x(Shape{n, 4, 4, 2});
  for (std::size_t i = 0; i < x.numel(); ++i) x[i] = static_cast<float>(std::sin(0.37 * i));
  return x;
}

TEST(OutputHeads, LossFollowsTheHead) {
  EXPECT_EQ(output_loss(head_model(3, "softmax")), OutputLoss::kCategorical);
  EXPECT_EQ(output_classes(head_model(3, "softmax")), 3);
  EXPECT_EQ(output_loss(head_model(1, "sigmoid")), OutputLoss::kBinary);
  EXPECT_EQ(output_classes(head_model(1, "sigmoid")), 2);
  EXPECT_EQ(output_loss(head_model(4, "linear")), OutputLoss::kCategorical);  // logits
  EXPECT_EQ(output_loss(head_model(1, "linear")), OutputLoss::kBinary);
  EXPECT_EQ(output_loss(head_model(4, "linear", "softmax")), OutputLoss::kCategorical);
  EXPECT_EQ(output_classes(head_model(1, "linear", "sigmoid")), 2);
  for (const auto& [units, activation, says] :
       {std::tuple{1, "softmax", "a softmax over one unit is always 1"},
        std::tuple{3, "relu", "needs softmax"}, std::tuple{1, "tanh", "needs sigmoid"}}) {
    try {
      output_loss(head_model(units, activation));
      ADD_FAILURE() << activation << " accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(output_loss(head_model(3, "relu", "tanh")), std::invalid_argument);
}

// The weight gradients of one training step of `m` on (x, labels), and its loss.
std::vector<float> step_gradients(Model& m, const Tensor& x, const std::vector<int>& labels,
                                  double* loss) {
  for (int i = 0; i < m.size(); ++i) m.layer(i).trainable = true;
  m.forward(x, true);
  Tensor dlogits;
  *loss = model_loss(m, labels, static_cast<double>(labels.size()), &dlogits).loss_sum /
          static_cast<double>(labels.size());
  m.backward(dlogits);
  return std::vector<float>(m.grads().begin(),
                            m.grads().begin() + static_cast<long>(m.trainable_size()));
}

TEST(OutputHeads, TrailingSigmoidActivationTrainsAsTheSigmoidDense) {
  Model fused = head_model(1, "sigmoid");
  Model split = head_model(1, "linear", "sigmoid");
  split.set_weights(fused.params(), fused.state());
  const Tensor x = inputs(6);
  const std::vector<int> labels = {0, 1, 1, 0, 1, 0};
  double loss_fused = 0, loss_split = 0;
  const std::vector<float> g_fused = step_gradients(fused, x, labels, &loss_fused);
  const std::vector<float> g_split = step_gradients(split, x, labels, &loss_split);
  ASSERT_EQ(g_fused.size(), g_split.size());
  double worst = 0;
  for (std::size_t i = 0; i < g_fused.size(); ++i)
    worst = std::max(worst, static_cast<double>(std::fabs(g_fused[i] - g_split[i])));
  std::printf("loss %.9g vs %.9g; largest gradient difference %.3g\n", loss_fused, loss_split,
              worst);
  EXPECT_NEAR(loss_fused, loss_split, 1e-7);
  EXPECT_LE(worst, 1e-7);
  // A linear Dense alone: its outputs are the logits (from_logits=True), the same step again.
  Model logits = head_model(1, "linear");
  logits.set_weights(fused.params(), fused.state());
  double loss_logits = 0;
  const std::vector<float> g_logits = step_gradients(logits, x, labels, &loss_logits);
  double worst_logits = 0;
  for (std::size_t i = 0; i < g_fused.size(); ++i)
    worst_logits = std::max(worst_logits, static_cast<double>(std::fabs(g_fused[i] - g_logits[i])));
  std::printf("linear head: loss %.9g; largest gradient difference %.3g\n", loss_logits,
              worst_logits);
  EXPECT_NEAR(loss_fused, loss_logits, 1e-7);
  EXPECT_LE(worst_logits, 1e-7);

  // Central differences of the mean loss for a few kernel entries of the split head.
  const ParamRef& kernel = split.find_param("out", "kernel");
  for (std::size_t k : {std::size_t{0}, std::size_t{5}, std::size_t{31}}) {
    const double h = 1e-3;
    double plus = 0, minus = 0;
    const float w = split.data(kernel)[k];
    split.data(kernel)[k] = static_cast<float>(w + h);
    split.forward(x, false);
    plus = model_loss(split, labels, 1.0, nullptr).loss_sum / 6.0;
    split.data(kernel)[k] = static_cast<float>(w - h);
    split.forward(x, false);
    minus = model_loss(split, labels, 1.0, nullptr).loss_sum / 6.0;
    split.data(kernel)[k] = w;
    const double numeric = (plus - minus) / (2 * h);
    // Weights are laid out last layer first: the kernel's gradient is at its offset.
    const double analytic = g_split[kernel.offset + k];
    std::printf("kernel[%zu]: analytic %.6g, central difference %.6g\n", k, analytic, numeric);
    EXPECT_NEAR(analytic, numeric, 2e-4 + 1e-2 * std::fabs(numeric));
  }
}

// A softmax Dense inside the network differentiates its softmax (only the output's is fused
// with the loss): Input -> Flatten -> Dense(4, softmax) -> Dense(1, sigmoid), its first
// kernel's gradients against central differences of the loss.
TEST(OutputHeads, SoftmaxDenseInsideTheNetworkHasItsJacobian) {
  json layers =
      json::array({layer("InputLayer", "in", {{"batch_input_shape", {nullptr, 4, 4, 2}}}, ""),
                   layer("Flatten", "flat", json::object(), "in"),
                   layer("Dense", "mid", {{"units", 4}, {"activation", "softmax"}}, "flat"),
                   layer("Dense", "out", {{"units", 1}, {"activation", "sigmoid"}}, "mid")});
  const json config = {{"class_name", "Functional"},
                       {"config",
                        {{"name", "m"},
                         {"layers", layers},
                         {"input_layers", json::array({json::array({"in", 0, 0})})},
                         {"output_layers", json::array({json::array({"out", 0, 0})})}}}};
  Model m = model_from_graph(parse_keras_config(config.dump(), "mid"), 0, "mid");
  keras_initialize(m, 11);
  const Tensor x = inputs(5);
  const std::vector<int> labels = {1, 0, 1, 1, 0};
  double loss = 0;
  const std::vector<float> g = step_gradients(m, x, labels, &loss);
  const ParamRef& kernel = m.find_param("mid", "kernel");
  for (std::size_t k : {std::size_t{0}, std::size_t{9}, std::size_t{77}}) {
    const double h = 1e-2;
    const float w = m.data(kernel)[k];
    m.data(kernel)[k] = static_cast<float>(w + h);
    m.forward(x, false);
    const double plus = model_loss(m, labels, 1.0, nullptr).loss_sum / 5.0;
    m.data(kernel)[k] = static_cast<float>(w - h);
    m.forward(x, false);
    const double minus = model_loss(m, labels, 1.0, nullptr).loss_sum / 5.0;
    m.data(kernel)[k] = w;
    const double numeric = (plus - minus) / (2 * h), analytic = g[kernel.offset + k];
    std::printf("mid kernel[%zu]: analytic %.6g, central difference %.6g\n", k, analytic, numeric);
    EXPECT_NEAR(analytic, numeric, 1e-5 + 2e-2 * std::fabs(numeric));
  }
}

TEST(OutputHeads, TrailingSoftmaxPredictsProbabilities) {
  Model split = head_model(3, "linear", "softmax");
  Model fused = head_model(3, "softmax");
  fused.set_weights(split.params(), split.state());
  const Tensor& a = split.forward(inputs(2), false);
  const Tensor b = fused.forward(inputs(2), false);
  for (std::size_t i = 0; i < a.numel(); ++i) EXPECT_NEAR(a[i], b[i], 1e-6) << i;
  double sum = 0;
  for (int c = 0; c < 3; ++c) sum += a[static_cast<std::size_t>(c)];
  EXPECT_NEAR(sum, 1.0, 1e-6);
}

}  // namespace
}  // namespace parafine
