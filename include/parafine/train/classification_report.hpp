// The numbers behind `parafine evaluate --report` (issue 16), from each sample's predicted class
// probabilities and its true label:
// - the confusion matrix (row = true class, column = predicted class, the argmax with the
//   lowest index winning a tie, as np.argmax);
// - per class precision, recall, F1 and support as sklearn's classification_report defines
//   them (0 where a ratio is 0/0, sklearn's zero_division=0), their macro and support-weighted
//   means, and the accuracy;
// - top-k accuracy for k = 1..K: the label counts when fewer than k classes rank above it, a
//   class ranking above another when its probability is higher, or equal with a lower index
//   (the same tie rule as the argmax, so top-1 is the accuracy);
// - calibration: B equal-width confidence bins (i/B, (i+1)/B] (bin 0 also holds 0), each with
//   its count, mean confidence and accuracy, and the expected calibration error
//   ECE = sum over bins of count/N * |accuracy - mean confidence| (Guo et al. 2017), the
//   confidence being the top probability;
// - the W most confidently wrong samples, most confident first (ties: lower sample index).
#pragma once

#include <vector>

namespace parafine {

struct CalibrationBin {
  double lower = 0, upper = 0;  // (lower, upper]
  long count = 0;
  double mean_confidence = 0, accuracy = 0;  // 0 for an empty bin
};

struct ConfidentMistake {
  int sample = 0;  // index into the rows given
  int label = 0, predicted = 0;
  double confidence = 0;  // the predicted class's probability
};

struct ClassificationReport {
  int classes = 0;
  long samples = 0;
  std::vector<long> confusion;                // [C*C]: confusion[true * C + predicted]
  std::vector<double> precision, recall, f1;  // [C]
  std::vector<long> support;                  // [C] samples of each true class
  double accuracy = 0, macro_precision = 0, macro_recall = 0, macro_f1 = 0;
  double weighted_precision = 0, weighted_recall = 0, weighted_f1 = 0;
  std::vector<double> top_k_accuracy;  // [K]: top_k_accuracy[k - 1]
  std::vector<CalibrationBin> bins;    // [B]
  double expected_calibration_error = 0;
  std::vector<ConfidentMistake> most_confidently_wrong;  // at most W
};

struct ReportOptions {
  int top_k = 5;   // K >= 1 (capped at the class count)
  int bins = 15;   // B >= 1
  int wrong = 16;  // W >= 0
};

// probabilities [N, classes] row-major; labels [N] in [0, classes). Throws
// std::invalid_argument for sizes that do not match, a label out of range, a probability that
// is not finite, classes < 1, or bad options.
ClassificationReport classification_report(const std::vector<float>& probabilities,
                                           const std::vector<int>& labels, int classes,
                                           const ReportOptions& options = {});

}  // namespace parafine
