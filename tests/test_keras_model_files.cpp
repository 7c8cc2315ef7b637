// Keras model files (issue 14) against references written without Keras: the fixtures come
// from tests/reference/keras_model_writer.py (the files, from Keras's saving rules) and the
// float64 PyTorch references make_small_cnn_reference.py / make_nested_model_fixtures.py, run
// by CTest (keras_model_fixtures) into PARAFINE_KERAS_MODEL_FIXTURES.
//
//  - SmallCnn: a Sequential CNN (Conv2D relu, BatchNormalization, MaxPooling2D, Conv2D "same",
//    MaxPooling2D, Flatten, Dropout 0.5, Dense 1 sigmoid). The .keras predictions against the
//    float64 reference; the same predictions from the Keras 2 full-model .h5 and from both
//    weight-only files loaded into the .keras structure (io/graph_weights.hpp); one training step
//    (BN batch statistics and moving averages, parafine's Dropout mask with keys 0..N-1, sigmoid
//    cross-entropy of the logits, Adam) against the reference's loss, weights and moving
//    statistics.
//  - Nested: the transfer-learning guide's model (a frozen Functional base called with
//    training=False) in .keras and Keras 2 .h5 predicts what its flat twin and the reference
//    do; a Teachable-Machine-like Sequential nesting likewise; their weight-only files
//    (.weights.h5, tf.keras save_weights) restore the .keras structure's weights.
//  - Configs: the Keras 2 and Keras 3 config JSON of each model parse into the same graph.
//
// Tolerances: predictions within 10x the distance between the reference network run in
// float32 and in float64 (printed); weights after the step within 0.1% of the learning rate
// (Adam's first step moves every weight by about lr).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <iterator>
#include <numeric>
#include <string>
#include <vector>

#include "parafine/core/adam.hpp"
#include "parafine/core/loss.hpp"
#include "parafine/io/graph_weights.hpp"
#include "parafine/io/h5_tensors.hpp"
#include "parafine/io/keras_config.hpp"
#include "parafine/io/keras_file.hpp"
#include "parafine/io/keras_weights.hpp"
#include "parafine/io/model_files.hpp"
#include "test_util.hpp"

namespace parafine {
namespace {

std::string fixture(const std::string& name) {
  return test_util::env_or("PARAFINE_KERAS_MODEL_FIXTURES", ".") + "/" + name;
}

std::string text_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

double scalar(const H5File& f, const std::string& dataset) {
  return f.read_doubles(dataset).at(0);
}

// max |a - r| over the elements.
double max_abs_diff(const float* a, const std::vector<double>& r) {
  double d = 0;
  for (std::size_t i = 0; i < r.size(); ++i) d = std::max(d, std::abs(a[i] - r[i]));
  return d;
}

// The writer's tf.keras layouts as the existing reader sees them (runs before the loader
// exists): the Keras 2 full model's /model_weights and the save_weights file list the small
// CNN's four layers with weights and their variables in Keras order, with Keras's shapes.
TEST(KerasModelFiles, TfKerasWeightLayoutsOfTheSmallCnn) {
  struct Var {
    const char* layer;
    const char* var;
    std::vector<int> shape;
  };
  const std::vector<Var> expected = {{"conv2d", "kernel", {3, 3, 3, 8}},
                                     {"conv2d", "bias", {8}},
                                     {"batch_normalization", "gamma", {8}},
                                     {"batch_normalization", "beta", {8}},
                                     {"batch_normalization", "moving_mean", {8}},
                                     {"batch_normalization", "moving_variance", {8}},
                                     {"conv2d_1", "kernel", {3, 3, 8, 16}},
                                     {"conv2d_1", "bias", {16}},
                                     {"dense", "kernel", {784, 1}},
                                     {"dense", "bias", {1}}};
  for (const char* file : {"small_cnn_k2_weights.h5", "small_cnn_k2.h5"}) {
    H5File h5(fixture(file), H5File::Mode::kRead);
    const KerasWeightFile kf = read_keras_weight_file(h5);
    EXPECT_EQ(kf.layout, KerasLayout::kTfKeras) << file;
    EXPECT_EQ(kf.root, std::string(file) == "small_cnn_k2.h5" ? "/model_weights" : "/") << file;
    std::vector<std::string> got, want;
    for (const StoredLayer& l : kf.layers)
      for (const StoredWeight& w : l.weights)
        got.push_back(l.name + "/" + w.var + dims_str(w.shape) + " " + w.dtype);
    for (const Var& v : expected)
      want.push_back(std::string(v.layer) + "/" + v.var + dims_str(v.shape) + " float32");
    EXPECT_EQ(got, want) << file;
    std::cout << file << ": " << kf.layers.size() << " layers with weights, " << got.size()
              << " variables\n";
  }
}

// Keras 2 and Keras 3 configs of one model: the same flat graph (names, classes, inputs,
// inference-only marks) and the same models (names, classes, layer lists, trainable).
void expect_same_graph(const std::string& prefix) {
  const KerasGraph k2 = parse_keras_config(text_of(fixture(prefix + "_k2.json")), prefix + "_k2");
  const KerasGraph k3 = parse_keras_config(text_of(fixture(prefix + "_k3.json")), prefix + "_k3");
  EXPECT_EQ(k2.keras_major, 2);
  EXPECT_EQ(k3.keras_major, 3);
  ASSERT_EQ(k2.nodes.size(), k3.nodes.size()) << prefix;
  for (std::size_t i = 0; i < k2.nodes.size(); ++i) {
    const KerasNode &a = k2.nodes[i], &b = k3.nodes[i];
    EXPECT_EQ(a.class_name, b.class_name) << prefix << " node " << i;
    EXPECT_EQ(a.name, b.name) << prefix << " node " << i;
    EXPECT_EQ(a.flat_name, b.flat_name) << prefix << " node " << i;
    EXPECT_EQ(a.inputs, b.inputs) << prefix << " node " << i << " " << a.name;
    EXPECT_EQ(a.model, b.model) << prefix << " node " << i << " " << a.name;
    EXPECT_EQ(a.inference_only, b.inference_only) << prefix << " node " << i << " " << a.name;
  }
  EXPECT_EQ(k2.output, k3.output) << prefix;
  ASSERT_EQ(k2.models.size(), k3.models.size()) << prefix;
  for (std::size_t i = 0; i < k2.models.size(); ++i) {
    EXPECT_EQ(k2.models[i].name, k3.models[i].name) << prefix;
    EXPECT_EQ(k2.models[i].class_name, k3.models[i].class_name) << prefix;
    EXPECT_EQ(k2.models[i].parent, k3.models[i].parent) << prefix;
    EXPECT_EQ(k2.models[i].trainable, k3.models[i].trainable) << prefix;
    ASSERT_EQ(k2.models[i].layers.size(), k3.models[i].layers.size()) << prefix;
    for (std::size_t j = 0; j < k2.models[i].layers.size(); ++j) {
      EXPECT_EQ(k2.models[i].layers[j].node, k3.models[i].layers[j].node) << prefix;
      EXPECT_EQ(k2.models[i].layers[j].model, k3.models[i].layers[j].model) << prefix;
    }
  }
  std::cout << prefix << ": Keras 2 and Keras 3 configs -> " << k3.nodes.size() << " nodes, "
            << k3.models.size() << " model(s)\n";
}

TEST(KerasModelConfigs, Keras2AndKeras3ConfigsGiveTheSameGraph) {
  for (const char* prefix : {"small_cnn", "nested", "flat", "tm"}) expect_same_graph(prefix);
}

TEST(KerasModelConfigs, NestedModelKeepsItsStructure) {
  const KerasGraph g = parse_keras_config(text_of(fixture("nested_k3.json")), "nested_k3");
  // functional: input_layer_1, rescaling, mini_resnet (11 layers inlined), gap, dropout, dense
  ASSERT_EQ(g.models.size(), 2u);
  const int base = g.base_model();
  ASSERT_EQ(base, 1);
  EXPECT_EQ(g.models[1].name, "mini_resnet");
  EXPECT_FALSE(g.models[1].trainable);  // base.trainable = False before saving
  EXPECT_EQ(g.models[1].layers.size(), 11u);
  EXPECT_EQ(g.models[0].layers.size(), 6u);  // Functional.layers keeps its InputLayer
  const int bn = g.find("conv1_bn");
  ASSERT_GE(bn, 0);
  EXPECT_TRUE(g.nodes[static_cast<std::size_t>(bn)].inference_only);  // base(x, training=False)
  const int add = g.find("block1_add");
  ASSERT_GE(add, 0);
  const std::vector<int> add_inputs{g.find("conv1_relu"), g.find("block1_2_bn")};
  EXPECT_EQ(g.nodes[static_cast<std::size_t>(add)].inputs, add_inputs);
  const int gap = g.find("global_average_pooling2d");
  ASSERT_GE(gap, 0);
  EXPECT_EQ(g.nodes[static_cast<std::size_t>(gap)].inputs, std::vector<int>{g.find("block1_out")});
  EXPECT_FALSE(g.nodes[static_cast<std::size_t>(g.find("dropout"))].inference_only);
}

std::vector<float> predict(Model& m, const Tensor& x) {
  const Tensor& y = m.forward(x, false);
  return std::vector<float>(y.data(), y.data() + y.shape().numel());
}

// Predictions of one file against the float64 reference.
void expect_predictions(const std::string& file, const Tensor& x, const std::vector<double>& ref,
                        double float32_distance) {
  LoadedModel lm = load_model_file(fixture(file));
  const std::vector<float> p = predict(lm.model, x);
  ASSERT_EQ(p.size(), ref.size()) << file;
  const double err = max_abs_diff(p.data(), ref);
  const double tol = std::max(10 * float32_distance, 1e-6);
  std::cout << file << ": max |p - p_ref| " << err << " (float32's own distance "
            << float32_distance << ", tolerance " << tol << ")\n";
  EXPECT_LE(err, tol) << file;
}

// A weight-only file carries no structure: loaded into the structure file's model after its
// weights are wiped, it must bring every value back (the same predictions).
void expect_weights_restore(const std::string& structure, const std::string& weights,
                            const Tensor& x) {
  LoadedModel m = load_model_file(fixture(structure));
  const std::vector<float> before = predict(m.model, x);
  std::fill(m.model.params().begin(), m.model.params().end(), 0.0f);
  std::fill(m.model.state().begin(), m.model.state().end(), 1.0f);
  load_graph_weights(m.model, m.graph, fixture(weights), weights, WeightScope::kFull);
  const std::vector<float> p = predict(m.model, x);
  const std::vector<double> ref(before.begin(), before.end());
  const double err = max_abs_diff(p.data(), ref);
  std::cout << weights << " into " << structure << ": max |p - p(" << structure << ")| " << err
            << "\n";
  EXPECT_LE(err, 1e-6) << weights;
}

TEST(SmallCnn, KerasArchivePredictsTheReference) {
  H5File ref(fixture("small_cnn_ref.h5"), H5File::Mode::kRead);
  expect_predictions("small_cnn.keras", ref.read_tensor("input"), ref.read_doubles("probs"),
                     scalar(ref, "float32_distance"));
}

TEST(SmallCnn, FourFormatsPredictTheSame) {
  H5File ref(fixture("small_cnn_ref.h5"), H5File::Mode::kRead);
  const Tensor x = ref.read_tensor("input");
  LoadedModel keras3 = load_model_file(fixture("small_cnn.keras"));
  const std::vector<float> p3 = predict(keras3.model, x);
  LoadedModel keras2 = load_model_file(fixture("small_cnn_k2.h5"));
  const std::vector<float> p2 = predict(keras2.model, x);
  ASSERT_EQ(p2.size(), p3.size());
  const std::vector<double> p3d(p3.begin(), p3.end());
  EXPECT_LE(max_abs_diff(p2.data(), p3d), 1e-6) << "Keras 2 .h5 against .keras";
  for (const char* weights : {"small_cnn.weights.h5", "small_cnn_k2_weights.h5"})
    expect_weights_restore("small_cnn.keras", weights, x);
}

// The logits [N,1] of the last forward, from the Dense's input (the Dropout output) and its
// weights: independent of how the sigmoid Dense keeps its pre-activation.
Tensor dense_logits(const Model& m) {
  const int dense = m.index_of("dense");
  const Tensor& in = m.output(m.inputs_of(dense).at(0));
  const int n = in.shape()[0], f = in.shape()[1];
  const float* w = m.data(m.find_param("dense", "kernel"));
  const float b = m.data(m.find_param("dense", "bias"))[0];
  Tensor z(Shape{n, 1});
  for (int i = 0; i < n; ++i) {
    double s = b;
    for (int j = 0; j < f; ++j) s += static_cast<double>(in.data()[i * f + j]) * w[j];
    z.data()[i] = static_cast<float>(s);
  }
  return z;
}

TEST(SmallCnn, OneTrainingStepMatchesTheReference) {
  H5File ref(fixture("small_cnn_ref.h5"), H5File::Mode::kRead);
  const Tensor x = ref.read_tensor("input");
  const std::vector<int> labels = ref.read_ints("labels");
  const int n = static_cast<int>(labels.size());
  const double lr = scalar(ref, "train/lr");
  LoadedModel lm = load_model_file(fixture("small_cnn.keras"));
  Model& m = lm.model;
  std::vector<std::uint64_t> keys(static_cast<std::size_t>(n));
  std::iota(keys.begin(), keys.end(), std::uint64_t{0});
  m.set_sample_keys(keys);
  m.forward(x, true);
  const Tensor logits = dense_logits(m);
  const std::vector<double> ref_logits = ref.read_doubles("train/logits");
  const double logit_err = max_abs_diff(logits.data(), ref_logits);
  std::cout << "training forward: max |logit - ref| " << logit_err << "\n";
  EXPECT_LE(logit_err, 1e-4) << "training-mode logits (BN batch statistics, Dropout mask)";

  Tensor dlogits;
  const auto loss = sigmoid_binary_cross_entropy(logits, labels, n, &dlogits);
  const double mean_loss = loss.loss_sum / n;
  const double ref_loss = scalar(ref, "train/loss");
  std::cout << "loss " << mean_loss << " reference " << ref_loss << "\n";
  EXPECT_NEAR(mean_loss, ref_loss, 1e-5 * std::max(1.0, ref_loss));

  m.backward(dlogits);
  Adam adam(m.trainable_size(), lr);
  adam.step(m.trainable_params(), m.grads().data());

  // Every weight after the step, within 1% of the step size lr.
  const std::vector<std::pair<std::string, std::string>> vars = {{"conv2d", "kernel"},
                                                                 {"conv2d", "bias"},
                                                                 {"batch_normalization", "gamma"},
                                                                 {"batch_normalization", "beta"},
                                                                 {"conv2d_1", "kernel"},
                                                                 {"conv2d_1", "bias"},
                                                                 {"dense", "kernel"},
                                                                 {"dense", "bias"}};
  for (const auto& [layer, var] : vars) {
    const std::vector<double> r = ref.read_doubles("train/weights/" + layer + "/" + var);
    const ParamRef& p = m.find_param(layer, var);
    ASSERT_EQ(p.shape.numel(), r.size()) << layer << "/" << var;
    const double err = max_abs_diff(m.data(p), r) / lr;
    std::cout << layer << "/" << var << ": max |w - w_ref| / lr " << err << "\n";
    EXPECT_LE(err, 1e-3) << layer << "/" << var;
  }
  // BN moving statistics: momentum 0.99, the variance Bessel-corrected (DESIGN.md section 1).
  for (const char* var : {"moving_mean", "moving_variance"}) {
    const std::vector<double> r =
        ref.read_doubles(std::string("train/moving/batch_normalization/") + var);
    const float* got = m.data(m.find_param("batch_normalization", var));
    double err = 0;
    for (std::size_t i = 0; i < r.size(); ++i)
      err = std::max(err, std::abs(got[i] - r[i]) / std::max(std::abs(r[i]), 1e-3));
    std::cout << "batch_normalization/" << var << ": max relative error " << err << "\n";
    EXPECT_LE(err, 1e-4) << var;
  }
}

TEST(NestedModel, GuideModelPredictsWhatItsFlatTwinDoes) {
  H5File ref(fixture("nested_ref.h5"), H5File::Mode::kRead);
  const Tensor x = ref.read_tensor("input");
  const std::vector<double> probs = ref.read_doubles("probs_nested");
  const double dist = scalar(ref, "float32_distance_nested");
  for (const char* file : {"nested.keras", "nested_k2.h5", "flat.keras", "flat_k2.h5"})
    expect_predictions(file, x, probs, dist);
  LoadedModel nested = load_model_file(fixture("nested.keras"));
  LoadedModel flat = load_model_file(fixture("flat.keras"));
  const std::vector<float> pn = predict(nested.model, x), pf = predict(flat.model, x);
  const std::vector<double> pfd(pf.begin(), pf.end());
  EXPECT_LE(max_abs_diff(pn.data(), pfd), 1e-6) << "nested against flat";
  for (const char* weights : {"nested.weights.h5", "nested_k2_weights.h5"})
    expect_weights_restore("nested.keras", weights, x);
}

TEST(NestedModel, TeachableMachineNestingPredictsTheReference) {
  H5File ref(fixture("nested_ref.h5"), H5File::Mode::kRead);
  const Tensor x = ref.read_tensor("input_tm");
  const std::vector<double> probs = ref.read_doubles("probs_tm");
  const double dist = scalar(ref, "float32_distance_tm");
  for (const char* file : {"tm.keras", "tm_k2.h5"}) expect_predictions(file, x, probs, dist);
  for (const char* weights : {"tm.weights.h5", "tm_k2_weights.h5"})
    expect_weights_restore("tm.keras", weights, x);
}

}  // namespace
}  // namespace parafine
