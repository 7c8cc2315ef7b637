// `parafine evaluate --report DIR`: the classification report (train/classification_report.hpp)
// of a model on a labelled data set written as report.json, CSV tables, PNG pictures (drawn by
// launch/parafine_plot.py) and an index.html showing them together. Rank 0 writes it.
#pragma once

#include <string>
#include <vector>

#include "parafine/data/sample_source.hpp"
#include "parafine/train/classification_report.hpp"

namespace parafine {

struct EvaluationReportInput {
  std::string dir, model_path, data_path;
  std::vector<std::string> class_names;  // [C]
  std::vector<float> probabilities;      // [N, C] row-major, sample order
  std::vector<int> labels;               // [N]
  double loss = 0;                       // the mean loss evaluate prints
  int image_size = 0;                    // the model's input size (the contact sheet's pixels)
  ReportOptions options;
};

// Writes DIR's files (DIR exists). The CSV, JSON and HTML files are always written; a PNG the
// script could not draw is named on stderr and in index.html. Returns 0 when everything was
// written, 2 when matplotlib/PIL (or python3) is missing, 1 when a picture failed otherwise.
int write_evaluation_report(const EvaluationReportInput& in, const SampleSource& data);

// index.html (evaluate_report_html.cpp): the pictures (but the `missing` ones, named instead)
// and the tables; `wrong_names` [W] the sample names of r.most_confidently_wrong, shown in a
// "file" column when `file_names`, else "index".
std::string report_html(const ClassificationReport& r, const EvaluationReportInput& in,
                        const std::vector<std::string>& missing,
                        const std::vector<std::string>& wrong_names, bool file_names);

// --report DIR: created (with its parents) when missing; a UsageError when it is a file or
// cannot be written.
void prepare_report_dir(const std::string& dir);

}  // namespace parafine
