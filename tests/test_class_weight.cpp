// --class-weight (issue 15): the weighted loss, gradient and accuracy sums against an
// independent float64 computation from Keras's formulas and finite differences; sklearn's
// balanced weights; parsing and resolution errors. Also the --history CSV text (Keras
// CSVLogger's columns, Python's float text, one row per (phase, epoch) after a resume).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <unistd.h>

#include "parafine/core/loss.hpp"
#include "parafine/train/class_weights.hpp"
#include "parafine/train/history_csv.hpp"

namespace parafine {
namespace {

// Keras: per-sample crossentropy l_i, sample weight w_i = class_weight[y_i], reduction
// "sum_over_batch_size": sum(w l) / batch size.
double reference_softmax_loss(const std::vector<double>& z, int n, int c, const std::vector<int>& y,
                              const std::vector<double>& w) {
  double total = 0;
  for (int i = 0; i < n; ++i) {
    double m = z[i * c];
    for (int k = 1; k < c; ++k) m = std::max(m, z[i * c + k]);
    double s = 0;
    for (int k = 0; k < c; ++k) s += std::exp(z[i * c + k] - m);
    total += w[y[i]] * (std::log(s) + m - z[i * c + y[i]]);
  }
  return total / n;
}

Tensor logits_of(const std::vector<double>& z, int n, int c) {
  Tensor t(Shape{n, c});
  for (int i = 0; i < n * c; ++i) t[static_cast<std::size_t>(i)] = static_cast<float>(z[i]);
  return t;
}

TEST(ClassWeight, SoftmaxLossGradientAndAccuracyAreKerasWeighted) {
  const int n = 5, c = 3;
  std::mt19937 rng(3);
  std::normal_distribution<double> normal(0.0, 1.5);
  std::vector<double> z(n * c);
  for (double& v : z) v = static_cast<float>(normal(rng));  // exactly what the Tensor holds
  const std::vector<int> y = {0, 2, 1, 2, 0};
  const ClassWeights w = {0.5, 2.0, 1.25};
  Tensor dlogits;
  const LossResult r = softmax_cross_entropy(logits_of(z, n, c), y, n, &dlogits, w);
  const double ref = reference_softmax_loss(z, n, c, y, w);
  std::printf("weighted loss %.12g, reference %.12g\n", r.loss_sum / n, ref);
  EXPECT_NEAR(r.loss_sum / n, ref, 1e-12);
  EXPECT_EQ(r.count, n);
  // Finite differences of the weighted batch loss: the gradient of sum(w l) / n.
  double worst = 0;
  for (int j = 0; j < n * c; ++j) {
    const double h = 1e-4;
    std::vector<double> up = z, down = z;
    up[j] += h;
    down[j] -= h;
    const double fd =
        (reference_softmax_loss(up, n, c, y, w) - reference_softmax_loss(down, n, c, y, w)) /
        (2 * h);
    worst = std::max(worst, std::abs(fd - dlogits[static_cast<std::size_t>(j)]));
  }
  std::printf("gradient vs finite differences: max |diff| %.3g\n", worst);
  EXPECT_LT(worst, 1e-6);
  // Accuracy: the compiled metric is unweighted (correct / n); weighted_metrics' figure is
  // sum(w * correct) / sum(w).
  double right = 0, weights = 0;
  int correct = 0;
  for (int i = 0; i < n; ++i) {
    int arg = 0;
    for (int k = 1; k < c; ++k)
      if (z[i * c + k] > z[i * c + arg]) arg = k;
    right += arg == y[i] ? w[y[i]] : 0;
    correct += arg == y[i];
    weights += w[y[i]];
  }
  std::printf("accuracy %.6f (reference %.6f), weighted %.6f (reference %.6f)\n", r.accuracy(),
              static_cast<double>(correct) / n, r.weighted_accuracy(), right / weights);
  EXPECT_NEAR(r.accuracy(), static_cast<double>(correct) / n, 1e-15);
  EXPECT_NEAR(r.weighted_accuracy(), right / weights, 1e-15);
  EXPECT_EQ(r.correct, correct);
  EXPECT_DOUBLE_EQ(r.weight_sum, weights);
}

TEST(ClassWeight, UnitWeightsAreTheUnweightedLoss) {
  const std::vector<double> z = {0.3, -1.0, 2.0, 0.1, 0.5, -0.2};
  Tensor a, b;
  const LossResult plain = softmax_cross_entropy(logits_of(z, 2, 3), {2, 1}, 4.0, &a);
  const LossResult ones = softmax_cross_entropy(logits_of(z, 2, 3), {2, 1}, 4.0, &b, {1, 1, 1});
  EXPECT_EQ(plain.loss_sum, ones.loss_sum);
  EXPECT_EQ(plain.accuracy(), ones.accuracy());
  EXPECT_EQ(plain.weight_sum, 2.0);
  for (std::size_t i = 0; i < a.numel(); ++i) EXPECT_EQ(a[i], b[i]);
  // A different weight changes the loss (the test can fail).
  const LossResult other = softmax_cross_entropy(logits_of(z, 2, 3), {2, 1}, 4.0, &b, {1, 1, 3});
  // Sample 0 has label 2: its loss counts 3 times instead of once.
  const LossResult first =
      softmax_cross_entropy(logits_of({0.3, -1.0, 2.0}, 1, 3), {2}, 1.0, nullptr);
  EXPECT_NEAR(other.loss_sum - plain.loss_sum, 2 * first.loss_sum, 1e-12);
  EXPECT_THROW(softmax_cross_entropy(logits_of(z, 2, 3), {2, 1}, 4.0, &b, {1, 1}),
               std::invalid_argument);
}

TEST(ClassWeight, BinaryCrossEntropyWeighted) {
  const std::vector<double> z = {1.5, -0.25, 0.75, -2.0};
  const std::vector<int> y = {1, 0, 0, 1};
  const ClassWeights w = {3.0, 0.5};
  const auto loss = [&](const std::vector<double>& v) {
    double s = 0;
    for (int i = 0; i < 4; ++i) {
      const double p = 1 / (1 + std::exp(-v[i]));
      s += w[y[i]] * -(y[i] * std::log(p) + (1 - y[i]) * std::log(1 - p));
    }
    return s / 4;
  };
  Tensor dlogits;
  const LossResult r = sigmoid_binary_cross_entropy(logits_of(z, 4, 1), y, 4, &dlogits, w);
  std::printf("binary weighted loss %.12g, reference %.12g\n", r.loss_sum / 4, loss(z));
  EXPECT_NEAR(r.loss_sum / 4, loss(z), 1e-12);
  for (int j = 0; j < 4; ++j) {
    std::vector<double> up = z, down = z;
    up[j] += 1e-5;
    down[j] -= 1e-5;
    EXPECT_NEAR(dlogits[static_cast<std::size_t>(j)], (loss(up) - loss(down)) / 2e-5, 1e-6);
  }
  // Correct: sample 0 (z > 0, y = 1, weight 0.5) and 1 (z < 0, y = 0, weight 3) of weights
  // 0.5 + 3 + 3 + 0.5.
  EXPECT_NEAR(r.weighted_accuracy(), (0.5 + 3.0) / 7.0, 1e-15);
  EXPECT_NEAR(r.accuracy(), 2.0 / 4.0, 1e-15);
}

TEST(ClassWeight, BalancedIsSklearns) {
  const std::vector<long> counts = {6, 3, 1};
  const std::vector<double> w = balanced_class_weights(counts);
  // sklearn compute_class_weight("balanced"): n_samples / (n_classes * bincount(y)).
  EXPECT_DOUBLE_EQ(w[0], 10.0 / 18.0);
  EXPECT_DOUBLE_EQ(w[1], 10.0 / 9.0);
  EXPECT_DOUBLE_EQ(w[2], 10.0 / 3.0);
  ClassWeightSpec spec = parse_class_weight("balanced");
  EXPECT_TRUE(spec.balanced);
  const ClassWeights resolved = resolve_class_weights(spec, {"a", "b", "c"}, counts);
  EXPECT_EQ(resolved[2], static_cast<double>(static_cast<float>(10.0 / 3.0)));  // Keras floatx
  try {
    resolve_class_weights(spec, {"a", "b", "c"}, {4, 0, 2});
    ADD_FAILURE() << "a class without samples was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("--class-weight"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'b'"), std::string::npos) << e.what();
  }
}

TEST(ClassWeight, NamesIndicesAndDefaults) {
  const std::vector<long> counts = {1, 1, 1};
  // Classes not listed get 1 (Keras: class_weight.get(label, 1.0)).
  ClassWeights w =
      resolve_class_weights(parse_class_weight("dogs:2.5"), {"cats", "dogs", "x"}, counts);
  EXPECT_EQ(w, (ClassWeights{1.0, 2.5, 1.0}));
  w = resolve_class_weights(parse_class_weight(" 2 : 4 , cats:0"), {"cats", "dogs", "x"}, counts);
  EXPECT_EQ(w, (ClassWeights{0.0, 1.0, 4.0}));
  // A name wins over an index: folders "1", "2", "3" are classes 0, 1, 2.
  w = resolve_class_weights(parse_class_weight("1:3"), {"1", "2", "3"}, counts);
  EXPECT_EQ(w, (ClassWeights{3.0, 1.0, 1.0}));
  w = resolve_class_weights(parse_class_weight("0:3"), {"1", "2", "3"}, counts);  // no such name
  EXPECT_EQ(w, (ClassWeights{3.0, 1.0, 1.0}));
  w = resolve_class_weights(parse_class_weight("0:0.1"), {}, counts);
  EXPECT_EQ(w[0], static_cast<double>(0.1f));
  EXPECT_TRUE(resolve_class_weights(parse_class_weight(""), {"a"}, {1}).empty());
  EXPECT_EQ(class_weights_option({0.5, 2}), "--class-weight 0:0.5,1:2");
}

TEST(ClassWeight, BadInputNamesTheOption) {
  for (const std::string text :
       {"cats", "cats:", ":1", "cats:-1", "cats:nan", "cats:inf", "cats:1e999", "cats:1x",
        "cats:1,cats:2", "a:1,,b:2", "a:1,", ","}) {
    try {
      parse_class_weight(text);
      ADD_FAILURE() << "'" << text << "' was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_EQ(std::string(e.what()).rfind("--class-weight", 0), 0u) << e.what();
    }
  }
  const std::vector<long> counts = {1, 1};
  for (const std::string text : {"2:1", "mice:1", "-1:1", "0:1,a:2"}) {
    try {
      resolve_class_weights(parse_class_weight(text), {"a", "b"}, counts);
      ADD_FAILURE() << "'" << text << "' was resolved";
    } catch (const std::invalid_argument& e) {
      EXPECT_EQ(std::string(e.what()).rfind("--class-weight", 0), 0u) << e.what();
      std::printf("%s -> %s\n", text.c_str(), e.what());
    }
  }
}

TEST(HistoryCsvText, PythonFloatRepr) {
  // Python 3: repr(float) for each value (checked against python3 when written).
  const std::vector<std::pair<double, std::string>> cases = {
      {0.5, "0.5"},
      {1e-05, "1e-05"},
      {3.0, "3.0"},
      {0.0001, "0.0001"},
      {1e16, "1e+16"},
      {1234567890123456.0, "1234567890123456.0"},
      {0.1 + 0.2, "0.30000000000000004"},
      {-2.5, "-2.5"},
      {0.0, "0.0"},
      {1.5e-7, "1.5e-07"},
      {123.456, "123.456"},
      {1e22, "1e+22"},
      {5e-324, "5e-324"},
      {1e15, "1000000000000000.0"},
      {0.00012, "0.00012"}};
  for (const auto& [v, text] : cases) EXPECT_EQ(python_float_text(v), text);
}

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return lines;
}

TEST(HistoryCsvText, KerasColumnsAndOneRowPerEpochAfterResume) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("parafine_history_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "h.csv").string();
  EpochStats s;
  s.loss = 0.25;
  s.accuracy = 0.75;
  s.learning_rate = 1e-3;
  s.seconds = 2;
  s.images_per_second = 10;
  {
    HistoryCsv h(path, false, true);
    for (int p = 1; p <= 2; ++p)
      for (int e = 1; e <= 2; ++e) {
        s.phase = p;
        s.epoch = e;
        h.write(s);
      }
  }
  std::vector<std::string> lines = lines_of(path);
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[0],
            "epoch,accuracy,learning_rate,loss,val_accuracy,val_loss,phase,seconds,img_per_s");
  EXPECT_EQ(lines[1], "0,0.75,0.0010000000474974513,0.25,0.0,0.0,1,2.0,10.0");
  EXPECT_EQ(lines[4], "1,0.75,0.0010000000474974513,0.25,0.0,0.0,2,2.0,10.0");
  {  // a resume that repeats phase 1 epoch 2: the rows from there on are replaced
    HistoryCsv h(path, true, true);
    s.phase = 1;
    s.epoch = 2;
    s.loss = 0.5;
    h.write(s);
  }
  lines = lines_of(path);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[2], "1,0.75,0.0010000000474974513,0.5,0.0,0.0,1,2.0,10.0");
  {  // without validation: CSVLogger's val_ columns of every key, NA
    HistoryCsv h(path, false, false);
    h.write(s);
  }
  lines = lines_of(path);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0],
            "epoch,accuracy,learning_rate,loss,val_accuracy,val_learning_rate,val_loss,phase,"
            "seconds,img_per_s");
  EXPECT_EQ(lines[1], "1,0.75,0.0010000000474974513,0.5,NA,NA,NA,1,2.0,10.0");
  {  // an older file (phase,epoch 1-based,loss,acc,...) is converted on resume
    std::ofstream old(path);
    old << "phase,epoch,loss,acc,val_loss,val_acc,seconds,img_per_s\n"
        << "1,1,0.9,0.5,0.8,0.6,3,7\n1,2,0.7,0.6,0.6,0.7,3,7\n";
  }
  {
    HistoryCsv h(path, true, true);
    s.phase = 1;
    s.epoch = 2;
    h.write(s);
  }
  lines = lines_of(path);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[1], "0,0.5,,0.9,0.6,0.8,1,3,7");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace parafine
