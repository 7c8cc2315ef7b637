// The evaluation report's numbers (see classification_report.hpp).
#include "parafine/train/classification_report.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace parafine {

namespace {

void check_inputs(const std::vector<float>& p, const std::vector<int>& labels, int classes,
                  const ReportOptions& o) {
  if (classes < 1) throw std::invalid_argument("classification report: no classes");
  if (p.size() != labels.size() * static_cast<std::size_t>(classes))
    throw std::invalid_argument("classification report: " + std::to_string(p.size()) +
                                " probabilities for " + std::to_string(labels.size()) +
                                " samples of " + std::to_string(classes) + " classes");
  if (o.top_k < 1 || o.bins < 1 || o.wrong < 0)
    throw std::invalid_argument("classification report: top-k and bins must be >= 1, wrong >= 0");
  for (std::size_t i = 0; i < labels.size(); ++i)
    if (labels[i] < 0 || labels[i] >= classes)
      throw std::invalid_argument("classification report: sample " + std::to_string(i) +
                                  " has label " + std::to_string(labels[i]) + ", outside 0.." +
                                  std::to_string(classes - 1));
  for (std::size_t i = 0; i < p.size(); ++i)
    if (!std::isfinite(p[i]))
      throw std::invalid_argument("classification report: sample " +
                                  std::to_string(i / static_cast<std::size_t>(classes)) +
                                  " has a probability that is not a finite number");
}

// How many classes rank above class `c` in `row` [C]: a higher probability, or an equal one
// with a lower index.
int rank_of(const float* row, int classes, int c) {
  int above = 0;
  for (int k = 0; k < classes; ++k)
    if (row[k] > row[c] || (row[k] == row[c] && k < c)) ++above;
  return above;
}

double ratio(double a, double b) {
  return b > 0 ? a / b : 0.0;
}  // zero_division=0

void per_class(ClassificationReport& r) {
  const int C = r.classes;
  r.precision.assign(C, 0);
  r.recall.assign(C, 0);
  r.f1.assign(C, 0);
  r.support.assign(C, 0);
  long correct = 0;
  for (int c = 0; c < C; ++c) {
    long predicted = 0;
    for (int t = 0; t < C; ++t) {
      r.support[c] += r.confusion[c * C + t];
      predicted += r.confusion[t * C + c];
    }
    const double tp = static_cast<double>(r.confusion[c * C + c]);
    correct += r.confusion[c * C + c];
    r.precision[c] = ratio(tp, predicted);
    r.recall[c] = ratio(tp, r.support[c]);
    r.f1[c] = ratio(2 * r.precision[c] * r.recall[c], r.precision[c] + r.recall[c]);
  }
  r.accuracy = ratio(correct, r.samples);
  for (int c = 0; c < C; ++c) {
    const double w = ratio(r.support[c], r.samples);
    r.macro_precision += r.precision[c] / C;
    r.macro_recall += r.recall[c] / C;
    r.macro_f1 += r.f1[c] / C;
    r.weighted_precision += w * r.precision[c];
    r.weighted_recall += w * r.recall[c];
    r.weighted_f1 += w * r.f1[c];
  }
}

}  // namespace

ClassificationReport classification_report(const std::vector<float>& probabilities,
                                           const std::vector<int>& labels, int classes,
                                           const ReportOptions& options) {
  check_inputs(probabilities, labels, classes, options);
  ClassificationReport r;
  r.classes = classes;
  r.samples = static_cast<long>(labels.size());
  r.confusion.assign(static_cast<std::size_t>(classes) * classes, 0);
  const int K = std::min(options.top_k, classes), B = options.bins;
  std::vector<long> top_k_hits(K, 0);
  r.bins.resize(B);
  std::vector<double> bin_confidence(B, 0), bin_correct(B, 0);
  for (long i = 0; i < r.samples; ++i) {
    const float* row = probabilities.data() + i * classes;  // [C]
    const int y = labels[i];
    const int predicted = static_cast<int>(std::max_element(row, row + classes) - row);
    ++r.confusion[static_cast<std::size_t>(y) * classes + predicted];
    const int rank = rank_of(row, classes, y);
    for (int k = rank; k < K; ++k) ++top_k_hits[k];  // in the top k for every k > rank
    const double confidence = row[predicted];
    const int b = std::clamp(static_cast<int>(std::ceil(confidence * B)) - 1, 0, B - 1);
    ++r.bins[b].count;
    bin_confidence[b] += confidence;
    bin_correct[b] += predicted == y;
    if (predicted != y)
      r.most_confidently_wrong.push_back({static_cast<int>(i), y, predicted, confidence});
  }
  per_class(r);
  for (int k = 0; k < K; ++k) r.top_k_accuracy.push_back(ratio(top_k_hits[k], r.samples));
  for (int b = 0; b < B; ++b) {
    CalibrationBin& bin = r.bins[b];
    bin.lower = static_cast<double>(b) / B;
    bin.upper = static_cast<double>(b + 1) / B;
    bin.mean_confidence = ratio(bin_confidence[b], bin.count);
    bin.accuracy = ratio(bin_correct[b], bin.count);
    r.expected_calibration_error +=
        ratio(bin.count, r.samples) * std::fabs(bin.accuracy - bin.mean_confidence);
  }
  auto& wrong = r.most_confidently_wrong;
  std::stable_sort(wrong.begin(), wrong.end(), [](const auto& a, const auto& b) {
    return a.confidence > b.confidence;  // stable: ties keep the lower sample index first
  });
  if (wrong.size() > static_cast<std::size_t>(options.wrong)) wrong.resize(options.wrong);
  return r;
}

}  // namespace parafine
