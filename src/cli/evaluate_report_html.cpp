// evaluate --report's index.html: the pictures and the tables of the report on one plain,
// self-contained page (no scripts, no external resources; links relative to DIR; every name
// from the data or the model HTML-escaped).
#include <cstdio>
#include <sstream>

#include "cli/evaluate_report.hpp"
#include "cli/plot_script.hpp"

namespace parafine {

namespace {

std::string escape(const std::string& text) {
  std::string out;
  for (char ch : text) switch (ch) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += ch;
    }
  return out;
}

std::string fixed(double v, int digits = 4) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

const char* kStyle =
    "body{font-family:sans-serif;margin:2em;max-width:1200px}"
    "table{border-collapse:collapse;margin:0.5em 0 1.5em}"
    "td,th{border:1px solid #999;padding:3px 8px;text-align:right}"
    "th{background:#eee}td.name{text-align:left}img{max-width:100%;border:1px solid #ccc}";

std::string row(const std::vector<std::string>& cells, bool header = false) {
  std::string out = "<tr>";
  for (std::size_t i = 0; i < cells.size(); ++i)
    out += header ? "<th>" + cells[i] + "</th>"
                  : (i == 0 ? "<td class=\"name\">" : "<td>") + cells[i] + "</td>";
  return out + "</tr>\n";
}

void summary(std::ostream& h, const ClassificationReport& r, const EvaluationReportInput& in) {
  h << "<h2>Summary</h2>\n<table>\n"
    << row({"model", escape(in.model_path)}) << row({"data", escape(in.data_path)})
    << row({"samples", std::to_string(r.samples)}) << row({"loss", fixed(in.loss)})
    << row({"accuracy", fixed(r.accuracy)})
    << row({"macro avg precision / recall / F1",
            fixed(r.macro_precision) + " / " + fixed(r.macro_recall) + " / " + fixed(r.macro_f1)})
    << row({"weighted avg precision / recall / F1", fixed(r.weighted_precision) + " / " +
                                                        fixed(r.weighted_recall) + " / " +
                                                        fixed(r.weighted_f1)})
    << row({"expected calibration error", fixed(r.expected_calibration_error)}) << "</table>\n";
}

void per_class(std::ostream& h, const ClassificationReport& r, const EvaluationReportInput& in) {
  h << "<h2>Per class</h2>\n<p><a href=\"per_class.csv\">per_class.csv</a></p>\n<table>\n"
    << row({"class", "precision", "recall", "F1", "support"}, true);
  for (int c = 0; c < r.classes; ++c)
    h << row({escape(in.class_names[c]), fixed(r.precision[c]), fixed(r.recall[c]), fixed(r.f1[c]),
              std::to_string(r.support[c])});
  h << "</table>\n<h2>Top-k accuracy</h2>\n<p><a href=\"top_k.csv\">top_k.csv</a></p>\n<table>\n"
    << row({"k", "accuracy"}, true);
  for (std::size_t k = 0; k < r.top_k_accuracy.size(); ++k)
    h << row({std::to_string(k + 1), fixed(r.top_k_accuracy[k])});
  h << "</table>\n";
}

void confusion(std::ostream& h, const ClassificationReport& r, const EvaluationReportInput& in) {
  h << "<p><a href=\"confusion_matrix.csv\">confusion_matrix.csv</a> (rows: true class, "
       "columns: predicted class)</p>\n<table>\n";
  std::vector<std::string> head = {"true \\ predicted"};
  for (const auto& n : in.class_names) head.push_back(escape(n));
  h << row(head, true);
  for (int t = 0; t < r.classes; ++t) {
    std::vector<std::string> cells = {escape(in.class_names[t])};
    for (int p = 0; p < r.classes; ++p)
      cells.push_back(std::to_string(r.confusion[t * r.classes + p]));
    h << row(cells);
  }
  h << "</table>\n";
}

void calibration(std::ostream& h, const ClassificationReport& r) {
  h << "<p><a href=\"calibration.csv\">calibration.csv</a></p>\n<table>\n"
    << row({"confidence bin", "samples", "mean confidence", "accuracy"}, true);
  for (const CalibrationBin& b : r.bins)
    h << row({"(" + fixed(b.lower, 2) + ", " + fixed(b.upper, 2) + "]", std::to_string(b.count),
              fixed(b.mean_confidence), fixed(b.accuracy)});
  h << "</table>\n";
}

void most_wrong(std::ostream& h, const ClassificationReport& r, const EvaluationReportInput& in,
                const std::vector<std::string>& names, bool file_names) {
  const std::size_t c = in.class_names.size();
  h << "<p><a href=\"most_wrong.csv\">most_wrong.csv</a></p>\n<table>\n"
    << row({"rank", file_names ? "file" : "index", "true class", "predicted", "probability",
            "probability of the true class"},
           true);
  for (std::size_t i = 0; i < r.most_confidently_wrong.size(); ++i) {
    const ConfidentMistake& m = r.most_confidently_wrong[i];
    const double p_true = in.probabilities[static_cast<std::size_t>(m.sample) * c + m.label];
    h << row({std::to_string(i + 1), escape(names[i]), escape(in.class_names[m.label]),
              escape(in.class_names[m.predicted]), fixed(m.confidence), fixed(p_true)});
  }
  h << "</table>\n";
}

void picture(std::ostream& h, const std::string& file, const std::string& alt,
             const std::vector<std::string>& missing) {
  for (const auto& m : missing)
    if (m == file) {
      h << "<p><em>" << file
        << " was not drawn (see parafine's messages; python3 with matplotlib and PIL is needed: "
        << escape(kPlotInstallHint) << ").</em></p>\n";
      return;
    }
  h << "<p><img src=\"" << file << "\" alt=\"" << alt << "\"></p>\n";
}

}  // namespace

std::string report_html(const ClassificationReport& r, const EvaluationReportInput& in,
                        const std::vector<std::string>& missing,
                        const std::vector<std::string>& wrong_names, bool file_names) {
  std::ostringstream h;
  h << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    << "<title>parafine evaluation report</title>\n<style>" << kStyle << "</style>\n</head>\n"
    << "<body>\n<h1>Evaluation report</h1>\n<p><a href=\"report.json\">report.json</a> holds "
       "every number below.</p>\n";
  summary(h, r, in);
  per_class(h, r, in);
  h << "<h2>Confusion matrix</h2>\n";
  picture(h, "confusion_matrix.png", "confusion matrix", missing);
  confusion(h, r, in);
  h << "<h2>Calibration</h2>\n";
  picture(h, "reliability.png", "reliability diagram", missing);
  calibration(h, r);
  if (in.options.wrong > 0) {
    h << "<h2>Most confidently wrong</h2>\n";
    picture(h, "most_wrong.png", "the most confidently wrong images", missing);
    most_wrong(h, r, in, wrong_names, file_names);
  }
  h << "</body>\n</html>\n";
  return h.str();
}

}  // namespace parafine
