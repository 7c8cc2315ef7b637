// `parafine sweep`'s grid: the --backbone and --unfreeze-last (or --unfreeze-from) lists and
// --output DIR, taken out of the command line; every other option is train's, shared by all
// runs. Each run's options are train's options with its backbone and unfreeze setting, checked
// before any data is opened (a bad grid or option exits 2 at once).
#pragma once

#include <string>
#include <vector>

#include "cli/train_options.hpp"

namespace parafine {

// One phase-2 setting: --unfreeze-last N or --unfreeze-from LAYER.
struct UnfreezeSetting {
  int last = -1;             // >= 0 for --unfreeze-last
  std::string from;          // non-empty for --unfreeze-from
  std::string text() const;  // "unfreeze-last 10" | "unfreeze-from conv5_block1_1_conv"
};

struct SweepGrid {
  std::vector<std::string> backbones;     // as given ("resnet50", "mobilenet_v2", ...)
  std::vector<UnfreezeSetting> settings;  // in the order given
  std::string output_dir;
  std::vector<std::string> shared_args;  // the train options every run shares
};

// Splits argv (argv[0] is "sweep"). "--backbone a,b" and "--backbone=a,b" (repeatable) both
// work. Throws UsageError for an empty or repeated list entry, a setting that is not an
// integer >= 0, both --unfreeze-last and --unfreeze-from, or a missing --output.
// Returns false when --help was asked for (after printing it).
bool parse_sweep_grid(int argc, char** argv, SweepGrid& grid);

// The train options of the run (backbone, setting), parsed and validated as train does, then
// checked for what a sweep runs itself (no --save, --history, --checkpoint-dir, --resume,
// --init, ...). Throws UsageError naming the run and the option.
TrainOptions sweep_run_options(const SweepGrid& grid, const std::string& backbone,
                               const UnfreezeSetting& setting);

// "resnet50 unfreeze-last 10": a run's name in logs, sweep.csv and sweep.png.
std::string sweep_run_name(const std::string& backbone, const UnfreezeSetting& setting);
// "resnet50_unfreeze-last-10": the same as a file name stem (no spaces or slashes).
std::string sweep_run_stem(const std::string& backbone, const UnfreezeSetting& setting);

}  // namespace parafine
