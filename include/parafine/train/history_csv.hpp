// train --history: the per-epoch CSV, with the columns of Keras's CSVLogger
// (keras/src/callbacks/csv_logger.py) followed by parafine's own.
//
// CSVLogger writes "epoch" and then the logs' keys sorted (sorted(logs.keys())): accuracy,
// learning_rate, loss, val_accuracy, val_loss. When the first epoch's logs have no val_ key
// (fit without validation data) it still adds "val_" + every key, and those cells hold "NA"
// (logs.get(key, "NA")): without --val the columns are accuracy, learning_rate, loss,
// val_accuracy, val_learning_rate, val_loss, the val_ cells NA. "epoch" is the epoch index
// fit passes to on_epoch_end: 0-based within each fit call, and phase 2 is the second fit, so
// each phase counts from 0. Numbers are written as Python's str(float) (the shortest text that
// reads back to the same double: 0.5, 1e-05, 3.0). parafine's extras follow: phase (1 or 2),
// seconds (the epoch's wall time, validation included), img_per_s (training images/s).
//
// One row per epoch, written by rank 0. The whole file is rewritten through AtomicFile after
// every epoch (a few hundred bytes), so a full disk or a kill never leaves a half-written file,
// and a resumed run, which repeats the epoch it stopped in (or, after a lost checkpoint, an
// earlier one), replaces the rows from that (phase, epoch) on instead of adding a second copy.
#pragma once

#include <string>
#include <vector>

#include "parafine/train/train_config.hpp"

namespace parafine {

// Python's repr/str of a float: shortest round-trip digits, fixed notation for decimal
// exponents -4..15 (with ".0" when whole), else d.ddde+XX; nan, inf, -inf.
std::string python_float_text(double v);

// The cells of one line of a history CSV (no quoting: its cells are numbers and NA); a trailing
// "\r" is dropped, a trailing comma gives an empty last cell.
std::vector<std::string> split_csv_line(std::string line);

class HistoryCsv {
 public:
  // `path` "" (or a rank other than 0): writes nothing. With `resume` the rows of an existing
  // file are kept (read by their phase and epoch columns; a file in the older
  // phase,epoch,loss,acc,... layout is converted).
  HistoryCsv(const std::string& path, bool resume, bool has_val);

  // Replaces the rows from (s.phase, s.epoch) on by this epoch's row and rewrites the file.
  void write(const EpochStats& s);

  // The header line (without newline).
  const std::string& header() const { return header_; }

 private:
  struct Row {
    int phase = 0, epoch = 0;  // epoch 0-based, as in the file
    std::string text;
  };
  void read_existing();

  std::string path_;  // "" on ranks other than 0 and without --history
  bool has_val_;
  std::vector<std::string> columns_;
  std::string header_;
  std::vector<Row> rows_;  // without the header, in epoch order
};

}  // namespace parafine
