// evaluate --report DIR: the report's files (see evaluate_report.hpp).
#include "cli/evaluate_report.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/cli.hpp"
#include "cli/csv_field.hpp"
#include "cli/plot_script.hpp"
#include "parafine/core/atomic_file.hpp"
#include "parafine/data/folder_source.hpp"

namespace parafine {

namespace {

namespace fs = std::filesystem;

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

// `content` as DIR/name, published whole (AtomicFile).
void write_file(const std::string& dir, const std::string& name, const std::string& content) {
  const std::string path = (fs::path(dir) / name).string();
  AtomicFile file(path, "report file");
  file.write([&](const std::string& temp) {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out << content;
    out.close();
    if (!out) throw std::runtime_error("writing failed (disk full, or a file size limit?)");
  });
}

// The first column of most_wrong.csv: "file" for an image folder, "index" for an HDF5 dataset
// (as predict's CSV).
bool names_are_files(const SampleSource& data) {
  return dynamic_cast<const FolderSource*>(&data) != nullptr;
}

std::string confusion_csv(const ClassificationReport& r, const std::vector<std::string>& names) {
  std::ostringstream out;
  out << csv_field("true\\predicted");
  for (const auto& n : names) out << "," << csv_field(n);
  out << "\n";
  for (int t = 0; t < r.classes; ++t) {
    out << csv_field(names[t]);
    for (int p = 0; p < r.classes; ++p) out << "," << r.confusion[t * r.classes + p];
    out << "\n";
  }
  return out.str();
}

std::string per_class_csv(const ClassificationReport& r, const std::vector<std::string>& names) {
  std::ostringstream out;
  out << "class,precision,recall,f1,support\n";
  for (int c = 0; c < r.classes; ++c)
    out << csv_field(names[c]) << "," << number(r.precision[c]) << "," << number(r.recall[c]) << ","
        << number(r.f1[c]) << "," << r.support[c] << "\n";
  return out.str();
}

std::string top_k_csv(const ClassificationReport& r) {
  std::ostringstream out;
  out << "k,accuracy\n";
  for (std::size_t k = 0; k < r.top_k_accuracy.size(); ++k)
    out << k + 1 << "," << number(r.top_k_accuracy[k]) << "\n";
  return out.str();
}

std::string calibration_csv(const ClassificationReport& r) {
  std::ostringstream out;
  out << "bin,lower,upper,count,mean_confidence,accuracy\n";
  for (std::size_t b = 0; b < r.bins.size(); ++b) {
    const CalibrationBin& bin = r.bins[b];
    out << b << "," << number(bin.lower) << "," << number(bin.upper) << "," << bin.count << ","
        << number(bin.mean_confidence) << "," << number(bin.accuracy) << "\n";
  }
  return out.str();
}

// The probability the model gave sample `m`'s true class.
double true_probability(const EvaluationReportInput& in, const ConfidentMistake& m) {
  return in.probabilities[static_cast<std::size_t>(m.sample) * in.class_names.size() + m.label];
}

std::string most_wrong_csv(const ClassificationReport& r, const EvaluationReportInput& in,
                           const SampleSource& data) {
  std::ostringstream out;
  out << "rank," << (names_are_files(data) ? "file" : "index")
      << ",true,predicted,probability,true_probability\n";
  for (std::size_t i = 0; i < r.most_confidently_wrong.size(); ++i) {
    const ConfidentMistake& m = r.most_confidently_wrong[i];
    out << i + 1 << "," << csv_field(data.sample_name(m.sample)) << ","
        << csv_field(in.class_names[m.label]) << "," << csv_field(in.class_names[m.predicted])
        << "," << number(m.confidence) << "," << number(true_probability(in, m)) << "\n";
  }
  return out.str();
}

nlohmann::ordered_json per_class_json(const ClassificationReport& r,
                                      const std::vector<std::string>& names) {
  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  for (int c = 0; c < r.classes; ++c)
    rows.push_back({{"class", names[c]},
                    {"precision", r.precision[c]},
                    {"recall", r.recall[c]},
                    {"f1", r.f1[c]},
                    {"support", r.support[c]}});
  return rows;
}

nlohmann::ordered_json report_json(const ClassificationReport& r, const EvaluationReportInput& in,
                                   const SampleSource& data) {
  nlohmann::ordered_json j;
  j["model"] = in.model_path;
  j["data"] = in.data_path;
  j["samples"] = r.samples;
  j["classes"] = in.class_names;
  j["loss"] = in.loss;
  j["accuracy"] = r.accuracy;
  j["macro_avg"] = {
      {"precision", r.macro_precision}, {"recall", r.macro_recall}, {"f1", r.macro_f1}};
  j["weighted_avg"] = {
      {"precision", r.weighted_precision}, {"recall", r.weighted_recall}, {"f1", r.weighted_f1}};
  j["per_class"] = per_class_json(r, in.class_names);
  nlohmann::ordered_json confusion = nlohmann::ordered_json::array();
  for (int t = 0; t < r.classes; ++t)
    confusion.push_back(std::vector<long>(r.confusion.begin() + t * r.classes,
                                          r.confusion.begin() + (t + 1) * r.classes));
  j["confusion_matrix"] = confusion;       // [true][predicted]
  j["top_k_accuracy"] = r.top_k_accuracy;  // [k - 1]
  nlohmann::ordered_json bins = nlohmann::ordered_json::array();
  for (const CalibrationBin& b : r.bins)
    bins.push_back({{"lower", b.lower},
                    {"upper", b.upper},
                    {"count", b.count},
                    {"mean_confidence", b.mean_confidence},
                    {"accuracy", b.accuracy}});
  j["calibration"] = {{"bins", bins}, {"expected_calibration_error", r.expected_calibration_error}};
  nlohmann::ordered_json wrong = nlohmann::ordered_json::array();
  for (const ConfidentMistake& m : r.most_confidently_wrong)
    wrong.push_back({{"sample", m.sample},
                     {"name", data.sample_name(m.sample)},
                     {"true", in.class_names[m.label]},
                     {"predicted", in.class_names[m.predicted]},
                     {"probability", m.confidence},
                     {"true_probability", true_probability(in, m)}});
  j["most_wrong"] = wrong;
  return j;
}

// The mistakes' images as a .npy array uint8 [W, S, S, 3] (S: the model's input size, at most
// 256), read from the data set as the model saw them before preprocessing.
void write_pixels_npy(const std::string& path, const ClassificationReport& r,
                      const SampleSource& data, int image_size) {
  const int s = std::clamp(image_size, 1, 256);
  const std::size_t w = r.most_confidently_wrong.size(), per = static_cast<std::size_t>(s) * s * 3;
  std::string header = "{'descr': '|u1', 'fortran_order': False, 'shape': (" + std::to_string(w) +
                       ", " + std::to_string(s) + ", " + std::to_string(s) + ", 3), }";
  header.append(64 - (10 + header.size() + 1) % 64, ' ');
  header += '\n';
  std::string bytes = std::string("\x93NUMPY\x01\x00", 8);
  bytes += static_cast<char>(header.size() & 0xff);
  bytes += static_cast<char>(header.size() >> 8);
  bytes += header;
  std::vector<float> rgb(per);
  for (const ConfidentMistake& m : r.most_confidently_wrong) {
    data.load(m.sample, s, rgb.data());
    for (float v : rgb) bytes += static_cast<char>(std::lround(std::clamp(v, 0.0f, 255.0f)));
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  if (!out.flush()) throw std::runtime_error("cannot write " + path);
}

// Draws the pictures; returns the outcome of the worst one and names the undrawn in `missing`.
PlotOutcome draw_pictures(const ClassificationReport& r, const EvaluationReportInput& in,
                          const SampleSource& data, std::vector<std::string>& missing) {
  const fs::path dir(in.dir);
  std::vector<std::pair<std::string, std::vector<std::string>>> jobs = {
      {"confusion_matrix.png",
       {"confusion", (dir / "confusion_matrix.csv").string(),
        (dir / "confusion_matrix.png").string()}},
      {"reliability.png",
       {"reliability", (dir / "calibration.csv").string(), number(r.expected_calibration_error),
        (dir / "reliability.png").string()}}};
  const std::string pixels = (dir / "most_wrong_pixels.npy").string();
  std::error_code ignored;
  if (in.options.wrong == 0) fs::remove(dir / "most_wrong.png", ignored);  // none asked for
  if (in.options.wrong > 0) {
    write_pixels_npy(pixels, r, data, in.image_size);
    jobs.push_back({"most_wrong.png",
                    {"contact-sheet", (dir / "most_wrong.csv").string(), pixels,
                     (dir / "most_wrong.png").string()}});
  }
  PlotOutcome worst = PlotOutcome::kDrawn;
  for (const auto& [name, args] : jobs) {
    const PlotOutcome outcome = (worst == PlotOutcome::kMissingLibraries)
                                    ? PlotOutcome::kMissingLibraries  // said once is enough
                                    : run_plot_script(args, (dir / name).string());
    if (outcome == PlotOutcome::kDrawn) continue;
    fs::remove(dir / name, ignored);  // no stale picture from an earlier report
    missing.push_back(name);
    if (worst != PlotOutcome::kMissingLibraries) worst = outcome;
  }
  fs::remove(pixels, ignored);
  return worst;
}

}  // namespace

void prepare_report_dir(const std::string& dir) {
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec))
    throw UsageError("--report " + dir + ": exists and is not a directory");
  fs::create_directories(dir, ec);
  if (ec) throw UsageError("--report " + dir + ": cannot create it: " + ec.message());
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    throw UsageError("--report " + dir + ": the directory is not writable");
}

int write_evaluation_report(const EvaluationReportInput& in, const SampleSource& data) {
  const ClassificationReport r = classification_report(
      in.probabilities, in.labels, static_cast<int>(in.class_names.size()), in.options);
  write_file(in.dir, "confusion_matrix.csv", confusion_csv(r, in.class_names));
  write_file(in.dir, "per_class.csv", per_class_csv(r, in.class_names));
  write_file(in.dir, "top_k.csv", top_k_csv(r));
  write_file(in.dir, "calibration.csv", calibration_csv(r));
  write_file(in.dir, "most_wrong.csv", most_wrong_csv(r, in, data));
  write_file(in.dir, "report.json", report_json(r, in, data).dump(2) + "\n");
  std::vector<std::string> missing;
  const PlotOutcome drawn = draw_pictures(r, in, data, missing);
  std::vector<std::string> wrong_names;  // [W] the sample names of the mistakes listed
  for (const ConfidentMistake& m : r.most_confidently_wrong)
    wrong_names.push_back(data.sample_name(m.sample));
  write_file(in.dir, "index.html", report_html(r, in, missing, wrong_names, names_are_files(data)));
  std::cout << std::fixed;
  std::cout.precision(4);
  std::cout << "top-" << r.top_k_accuracy.size() << " accuracy " << r.top_k_accuracy.back()
            << " - macro F1 " << r.macro_f1 << " - ECE " << r.expected_calibration_error << "\n";
  std::cerr << "wrote the report to " << in.dir << "/index.html";
  if (missing.empty()) {
    std::cerr << "\n";
    return 0;
  }
  std::string list;
  for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
  std::cerr << " without " << list << " (not drawn, see above)\n";
  return drawn == PlotOutcome::kMissingLibraries ? 2 : 1;
}

}  // namespace parafine
