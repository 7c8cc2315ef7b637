// `parafine plot-history HISTORY.csv OUT.png`: loss and accuracy per epoch, training and
// validation, from the CSV `train --history` writes (train/history_csv.hpp). The file is
// checked here (a CSV that is not such a history is a usage error naming the file and what is
// wrong); launch/parafine_plot.py draws it.
#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/cli.hpp"
#include "cli/options.hpp"
#include "cli/plot_script.hpp"
#include "parafine/dist/comm.hpp"
#include "parafine/train/history_csv.hpp"

namespace po = boost::program_options;

namespace parafine {

namespace {

bool is_number(const std::string& text) {
  if (text.empty()) return false;
  char* end = nullptr;
  std::strtod(text.c_str(), &end);
  return end == text.c_str() + text.size();
}

// Checks one data row (line `line_no`) against the header's columns.
void check_row(const std::string& where, const std::vector<std::string>& header,
               const std::vector<std::string>& cells) {
  if (cells.size() != header.size())
    throw UsageError(where + " has " + std::to_string(cells.size()) + " cells, the header " +
                     std::to_string(header.size()));
  for (std::size_t c = 0; c < header.size(); ++c) {
    const std::string& name = header[c];
    const std::string& v = cells[c];
    const bool optional = name.rfind("val_", 0) == 0;  // NA without --val
    if (optional && (v == "NA" || v.empty())) continue;
    if (name == "phase" && v != "1" && v != "2")
      throw UsageError(where + ": phase '" + v + "' is not 1 or 2");
    if (name == "epoch" && (v.empty() || v.find_first_not_of("0123456789") != std::string::npos))
      throw UsageError(where + ": epoch '" + v + "' is not a whole number >= 0");
    if ((optional || name == "accuracy" || name == "loss") && !is_number(v))
      throw UsageError(where + ": column " + name + " holds '" + v + "', not a number");
  }
}

// Throws UsageError naming `path` unless it is a train --history CSV with at least one epoch.
void check_history_csv(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw UsageError(path + ": cannot be read");
  const std::string not_ours = " (not a parafine train --history file)";
  std::string line;
  if (!std::getline(in, line) || line.empty() || line == "\r")
    throw UsageError(path + ": empty" + not_ours);
  const std::vector<std::string> header = split_csv_line(line);
  std::string missing;
  for (const char* need : {"epoch", "accuracy", "loss", "phase"})
    if (std::find(header.begin(), header.end(), need) == header.end())
      missing += (missing.empty() ? "" : ", ") + std::string(need);
  if (!missing.empty()) throw UsageError(path + ": no column " + missing + not_ours);
  int rows = 0;
  for (int line_no = 2; std::getline(in, line); ++line_no) {
    if (line.empty() || line == "\r") continue;
    check_row(path + " line " + std::to_string(line_no), header, split_csv_line(line));
    ++rows;
  }
  if (rows == 0) throw UsageError(path + ": a header but no epoch rows" + not_ours);
}

}  // namespace

int run_plot_history(int argc, char** argv) {
  std::vector<std::string> files;
  CommandOptions opts("plot-history", "plot-history HISTORY.csv OUT.png");
  opts.add()("file", po::value(&files), "the train --history CSV, then the PNG to write");
  opts.positional("file");
  if (!opts.parse(argc, argv)) return 0;
  if (files.size() != 2) throw UsageError("usage: parafine plot-history HISTORY.csv OUT.png");
  check_history_csv(files[0]);
  check_output_path("OUT.png", files[1]);
  if (!Comm::is_root()) return 0;  // under mpirun one rank draws
  switch (run_plot_script({"history", files[0], files[1]}, files[1])) {
    case PlotOutcome::kDrawn:
      std::cerr << "wrote " << files[1] << "\n";
      return 0;
    case PlotOutcome::kMissingLibraries:
      return 2;
    case PlotOutcome::kFailed:
      break;
  }
  return 1;
}

}  // namespace parafine
