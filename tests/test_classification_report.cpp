// The evaluation report's numbers (train/classification_report.hpp) against an independent
// numpy reference written from the definitions (tests/reference/classification_report.py) on
// random probabilities with ties, an empty class and a class never predicted; plus a case
// small enough to check by hand and the refusals of bad input.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "parafine/train/classification_report.hpp"
#include "test_util.hpp"

namespace parafine {
namespace {

// The reference's output (stdout and stderr: a warning would show up as a parse failure).
std::string run(const std::string& cmd) {
  const test_util::CommandResult r = test_util::run_command(cmd);
  EXPECT_EQ(r.exit_code, 0) << cmd << "\n" << r.output;
  return r.output;
}

TEST(ClassificationReport, HandCheckedCase) {
  // 4 samples, 2 classes: (label, p1) = (0, 0.1) right, (0, 0.8) wrong, (1, 0.6) right,
  // (1, 0.3) wrong.
  const std::vector<float> p = {0.9f, 0.1f, 0.2f, 0.8f, 0.4f, 0.6f, 0.7f, 0.3f};
  const ClassificationReport r = classification_report(p, {0, 0, 1, 1}, 2, {2, 2, 1});
  EXPECT_EQ(r.confusion, (std::vector<long>{1, 1, 1, 1}));
  EXPECT_DOUBLE_EQ(r.accuracy, 0.5);
  EXPECT_DOUBLE_EQ(r.precision[0], 0.5);
  EXPECT_DOUBLE_EQ(r.recall[1], 0.5);
  EXPECT_DOUBLE_EQ(r.top_k_accuracy[1], 1.0);  // two classes: always in the top 2
  // Confidences 0.9, 0.8, 0.6, 0.7 all fall in bin (0.5, 1]: accuracy 0.5, mean 0.75.
  EXPECT_EQ(r.bins[1].count, 4);
  EXPECT_NEAR(r.expected_calibration_error, 0.25, 1e-7);
  ASSERT_EQ(r.most_confidently_wrong.size(), 1u);
  EXPECT_EQ(r.most_confidently_wrong[0].sample, 1);  // 0.8 beats 0.7
}

TEST(ClassificationReport, MatchesTheNumpyReference) {
  const int n = 400, classes = 5;
  std::mt19937 gen(7);
  std::normal_distribution<double> logit(0, 1.5);
  std::uniform_int_distribution<int> label_of(0, classes - 2);  // class 4 never a label
  std::vector<float> p(static_cast<std::size_t>(n) * classes);
  std::vector<int> labels(n);
  for (int i = 0; i < n; ++i) {
    labels[i] = label_of(gen);
    double z[classes], sum = 0;
    for (double& v : z) sum += v = std::exp(logit(gen));
    for (int k = 0; k < classes; ++k)
      p[i * classes + k] = i % 17 == 0 ? 0.2f : static_cast<float>(z[k] / sum);  // ties
    if (i % 23 == 0) p[i * classes + 1] = p[i * classes + 3];  // a tie between two classes
  }
  const std::string csv = "/tmp/parafine_report_" + std::to_string(::getpid()) + ".csv";
  {
    std::ofstream out(csv);
    char cell[32];
    for (int i = 0; i < n; ++i) {
      out << labels[i];
      for (int k = 0; k < classes; ++k) {
        std::snprintf(cell, sizeof cell, ",%.9g", static_cast<double>(p[i * classes + k]));
        out << cell;
      }
      out << "\n";
    }
  }
  const ReportOptions o{3, 10, 12};
  const auto ref = nlohmann::json::parse(run(std::string(PARAFINE_REFERENCE_PYTHON) + " " +
                                             PARAFINE_REPORT_REFERENCE + " " + csv + " 5 3 10 12"));
  std::remove(csv.c_str());
  const ClassificationReport r = classification_report(p, labels, classes, o);
  EXPECT_EQ(r.confusion, ref["confusion"].get<std::vector<long>>());
  EXPECT_EQ(r.support, ref["support"].get<std::vector<long>>());
  double worst = 0;
  const auto near = [&](double a, double b) { worst = std::max(worst, std::fabs(a - b)); };
  for (int c = 0; c < classes; ++c) {
    near(r.precision[c], ref["precision"][c]);
    near(r.recall[c], ref["recall"][c]);
    near(r.f1[c], ref["f1"][c]);
  }
  near(r.accuracy, ref["accuracy"]);
  near(r.macro_f1, ref["macro_f1"]);
  near(r.weighted_f1, ref["weighted_f1"]);
  near(r.weighted_precision, ref["weighted_precision"]);
  ASSERT_EQ(r.top_k_accuracy.size(), ref["top_k"].size());
  for (std::size_t k = 0; k < r.top_k_accuracy.size(); ++k)
    near(r.top_k_accuracy[k], ref["top_k"][k]);
  for (int b = 0; b < o.bins; ++b) {
    EXPECT_EQ(r.bins[b].count, ref["bins"][b][0].get<long>()) << "bin " << b;
    near(r.bins[b].mean_confidence, ref["bins"][b][1]);
    near(r.bins[b].accuracy, ref["bins"][b][2]);
  }
  near(r.expected_calibration_error, ref["ece"]);
  ASSERT_EQ(r.most_confidently_wrong.size(), ref["wrong"].size());
  for (std::size_t i = 0; i < r.most_confidently_wrong.size(); ++i) {
    EXPECT_EQ(r.most_confidently_wrong[i].sample, ref["wrong"][i][0].get<int>());
    EXPECT_EQ(r.most_confidently_wrong[i].predicted, ref["wrong"][i][2].get<int>());
    near(r.most_confidently_wrong[i].confidence, ref["wrong"][i][3]);
  }
  std::printf("accuracy %.6f, top-3 %.6f, ECE %.6f, macro F1 %.6f; max |C++ - numpy| %.3g\n",
              r.accuracy, r.top_k_accuracy.back(), r.expected_calibration_error, r.macro_f1, worst);
  EXPECT_LT(worst, 1e-12);
  EXPECT_EQ(r.support[4], 0);  // the empty class: recall 0 by zero_division
  EXPECT_EQ(r.recall[4], 0.0);
}

TEST(ClassificationReport, RefusesBadInput) {
  EXPECT_THROW(classification_report({0.5f, 0.5f}, {2}, 2), std::invalid_argument);
  EXPECT_THROW(classification_report({0.5f}, {0}, 2), std::invalid_argument);
  EXPECT_THROW(classification_report({NAN, 1.0f}, {0}, 2), std::invalid_argument);
  EXPECT_THROW(classification_report({0.5f, 0.5f}, {0}, 2, {0, 10, 1}), std::invalid_argument);
}

}  // namespace
}  // namespace parafine
