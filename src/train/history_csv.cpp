// train --history: Keras CSVLogger's columns plus parafine's (see history_csv.hpp).
#include "parafine/train/history_csv.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

#include "parafine/core/atomic_file.hpp"
#include "parafine/dist/comm.hpp"

namespace parafine {

std::vector<std::string> split_csv_line(std::string line) {
  if (!line.empty() && line.back() == '\r') line.pop_back();
  std::vector<std::string> cells;
  std::istringstream in(line);
  for (std::string cell; std::getline(in, cell, ',');) cells.push_back(cell);
  if (!line.empty() && line.back() == ',') cells.emplace_back();
  return cells;
}

namespace {

std::string join(const std::vector<std::string>& cells) {
  std::string out;
  for (std::size_t i = 0; i < cells.size(); ++i) out += (i ? "," : "") + cells[i];
  return out;
}

}  // namespace

std::string python_float_text(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  const std::string sci(buf, r.ptr);  // shortest round-trip: "-1.2345e-05"
  const auto e = sci.find('e');
  std::string mantissa = sci.substr(0, e);
  const int exponent = std::stoi(sci.substr(e + 1));
  const bool negative = mantissa[0] == '-';
  if (negative) mantissa.erase(0, 1);
  std::string digits;
  for (char ch : mantissa)
    if (ch != '.') digits += ch;
  std::string out;
  if (exponent < -4 || exponent >= 16) {  // Python's repr: float_repr_style 'short', mode 'r'
    out = digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char ex[16];
    std::snprintf(ex, sizeof ex, "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
    out += ex;
  } else if (exponent < 0) {
    out = "0." + std::string(static_cast<std::size_t>(-exponent - 1), '0') + digits;
  } else {
    const auto point = static_cast<std::size_t>(exponent) + 1;
    if (digits.size() <= point)
      out = digits + std::string(point - digits.size(), '0') + ".0";
    else
      out = digits.substr(0, point) + "." + digits.substr(point);
  }
  return (negative ? "-" : "") + out;
}

HistoryCsv::HistoryCsv(const std::string& path, bool resume, bool has_val)
    : path_(Comm::is_root() ? path : std::string()), has_val_(has_val) {
  columns_ = {"epoch", "accuracy", "learning_rate", "loss"};
  if (has_val_)
    columns_.insert(columns_.end(), {"val_accuracy", "val_loss"});
  else  // CSVLogger adds val_ + every key when the logs have none (cells "NA")
    columns_.insert(columns_.end(), {"val_accuracy", "val_learning_rate", "val_loss"});
  columns_.insert(columns_.end(), {"phase", "seconds", "img_per_s"});
  header_ = join(columns_);
  if (!path_.empty() && resume) read_existing();
}

// The rows of the file a resumed run continues, matched to this run's columns by name (a cell
// this run has no column for is dropped, a column the file lacks is left empty).
void HistoryCsv::read_existing() {
  std::ifstream in(path_);
  std::string line;
  if (!std::getline(in, line)) return;  // no earlier history
  std::vector<std::string> names = split_csv_line(line);
  // The layout before issue 15: phase,epoch (1-based),loss,acc,val_loss,val_acc,seconds,img_per_s.
  const bool old_layout = std::find(names.begin(), names.end(), "acc") != names.end();
  for (auto& name : names)
    if (name == "acc" || name == "val_acc") name = name == "acc" ? "accuracy" : "val_accuracy";
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const std::vector<std::string> cells = split_csv_line(line);
    std::map<std::string, std::string> by_name;
    for (std::size_t i = 0; i < names.size() && i < cells.size(); ++i) by_name[names[i]] = cells[i];
    Row row;
    try {
      row.phase = std::stoi(by_name.at("phase"));
      row.epoch = std::stoi(by_name.at("epoch")) - (old_layout ? 1 : 0);
    } catch (const std::exception&) {
      continue;  // not a row of ours
    }
    by_name["epoch"] = std::to_string(row.epoch);
    std::vector<std::string> out;
    for (const auto& column : columns_) {
      const auto it = by_name.find(column);
      out.push_back(it != by_name.end()                         ? it->second
                    : column.rfind("val_", 0) == 0 && !has_val_ ? "NA"
                                                                : "");
    }
    row.text = join(out);
    rows_.push_back(row);
  }
}

void HistoryCsv::write(const EpochStats& s) {
  if (path_.empty()) return;
  const int epoch = s.epoch - 1;  // fit's epoch index, 0-based within the phase
  rows_.erase(std::remove_if(rows_.begin(), rows_.end(),
                             [&](const Row& r) {
                               return std::make_pair(r.phase, r.epoch) >=
                                      std::make_pair(s.phase, epoch);
                             }),
              rows_.end());
  const std::string na = "NA";
  // Keras's logs hold its float32 metric results as Python floats (what the callbacks compare,
  // too): the Keras columns are the float32 values; parafine's timings stay double.
  const auto logged = [](double v) { return python_float_text(static_cast<float>(v)); };
  std::vector<std::string> cells = {std::to_string(epoch), logged(s.accuracy),
                                    logged(s.learning_rate), logged(s.loss)};
  if (has_val_)
    cells.insert(cells.end(), {logged(s.val_accuracy), logged(s.val_loss)});
  else
    cells.insert(cells.end(), {na, na, na});
  cells.insert(cells.end(), {std::to_string(s.phase), python_float_text(s.seconds),
                             python_float_text(s.images_per_second)});
  rows_.push_back(Row{s.phase, epoch, join(cells)});
  AtomicFile out(path_, "--history file");
  out.write([&](const std::string& temp_path) {
    std::ofstream file(temp_path, std::ios::trunc);
    // "\n": Keras's csv.excel dialect ends rows with "\r\n"; csv readers take either, and
    // line tools (grep, cut, awk) read "\n" cleanly.
    file << header_ << "\n";
    for (const Row& r : rows_) file << r.text << "\n";
    file.close();
    if (!file) throw std::runtime_error("writing failed (disk full, or a file size limit?)");
  });
}

}  // namespace parafine
