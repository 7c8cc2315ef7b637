// What `parafine sweep` writes into --output DIR as its runs finish (rank 0): sweep.csv, one
// row per run; sweep_history.csv, every run's validation figures per epoch (what sweep.png
// draws); and each run's own history CSV (train --history's columns). Every file is rewritten
// whole after each run (AtomicFile), so a sweep that stops or fails keeps the finished runs.
//
// sweep.csv columns: backbone, unfreeze ("last 10" | "from LAYER"), trainable_params (phase
// 2's trainable weights), best_phase, best_epoch (1-based over both phases, the best epoch by
// --monitor, as ModelCheckpoint(save_best_only) picks it), best_val_loss, best_val_accuracy
// (that epoch's), final_val_loss, final_val_accuracy (the last epoch's), shared_seconds (cache
// build and phase 1, once per backbone: every run of the backbone shows the same),
// phase1_seconds, phase2_seconds (training and validation), phase1_img_per_s,
// phase2_img_per_s (mean training images/s), model (file name in DIR), status ("ok" or
// "failed: <why>"). Without validation data the val_ columns and best_* are NA.
#pragma once

#include <string>
#include <vector>

#include "cli/sweep_grid.hpp"
#include "parafine/train/callbacks.hpp"
#include "parafine/train/train_config.hpp"

namespace parafine {

struct SweepRunResult {
  std::string backbone;
  UnfreezeSetting setting;
  std::string model_file;  // file name in the output directory; "" when none was saved
  long trainable_params = 0;
  std::vector<EpochStats> epochs;  // phase 1's (shared by the backbone's runs), then phase 2's
  double shared_seconds = 0;       // the backbone's cache build and phase 1
  std::string status = "ok";       // or "failed: ..."
};

class SweepResults {
 public:
  // `dir` exists; rank 0 writes, other ranks only keep the rows.
  SweepResults(std::string dir, bool has_val, Monitor monitor);

  // Records a finished (or failed) run and rewrites sweep.csv, sweep_history.csv and the
  // run's <stem>.history.csv.
  void add(const SweepRunResult& run);

  const std::vector<SweepRunResult>& runs() const { return runs_; }
  int failed() const;
  std::string csv_path() const { return dir_ + "/sweep.csv"; }
  std::string history_path() const { return dir_ + "/sweep_history.csv"; }

 private:
  std::string row(const SweepRunResult& run) const;
  void rewrite(const std::string& path, const std::string& text) const;

  std::string dir_;
  bool has_val_;
  Monitor monitor_;
  std::vector<SweepRunResult> runs_;
};

// sweep.csv's header line (without newline).
extern const char* const kSweepCsvHeader;

}  // namespace parafine
