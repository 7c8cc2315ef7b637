// `parafine train`'s Keras callback options (--monitor, --save-best, --early-stopping,
// --min-delta, --restore-best, --reduce-lr-on-plateau, --lr-schedule, --warmup-epochs): their
// help text and their parsing into CallbackOptions (train/callbacks.hpp).
#pragma once

#include <string>

#include "cli/options.hpp"
#include "parafine/train/callbacks.hpp"

namespace parafine {

// The options as given (strings parsed by parse_callback_options).
struct CallbackOptionTexts {
  std::string monitor, save_best, reduce_lr, lr_schedule;
  int early_stopping = -1;
  double min_delta = 0;
  bool restore_best = false;
  int warmup_epochs = 0;
};

void add_callback_options(CommandOptions& opts, CallbackOptionTexts& t);

// Fills `o`; throws UsageError naming the option (exit 2), before any data is read.
// `has_validation`: whether the run has validation data (val_* monitors need it).
void parse_callback_options(const CallbackOptionTexts& t, bool has_validation, CallbackOptions& o);

}  // namespace parafine
