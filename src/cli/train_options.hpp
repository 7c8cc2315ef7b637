// The options of `parafine train` (and of `parafine sweep`, which shares them): parsing from
// the command line and --config FILE, and every check that needs no data (exit 2 on failure).
#pragma once

#include <optional>
#include <string>

#include "cli/callback_options.hpp"
#include "cli/options.hpp"
#include "parafine/io/model_files.hpp"
#include "parafine/train/class_weights.hpp"
#include "parafine/train/train_config.hpp"

namespace parafine {

// The options as given; `config` gets the ones that go straight into the trainer's settings,
// the strings are parsed by validate_options.
struct TrainOptions {
  std::string train_path, val_path, weights, weights_dir, init, preprocess, augment, save,
      on_bad_image, unfreeze_from, shuffle, bn_mode, history_path, cache_mode, cache_mem, precision,
      class_weight,
      resume;                // "" (off), "true" (--resume alone) or a word parse_resume reads
  bool resume_auto = false;  // --resume auto: resume when --checkpoint-dir has a checkpoint
  ClassWeightSpec class_weight_spec;  // --class-weight parsed; resolved once the data is open
  NetworkConfig net;
  BackboneOptions backbone;
  CallbackOptionTexts callbacks;  // parsed into config.callbacks
  TrainConfig config;
  int threads = 0, classes = 0;
  bool unfreeze_last_given = false;  // not just its default
  bool backbone_given = false;       // --backbone or --alpha given
  bool image_size_given = false;
  // Keras's validation split of --train (--validation-split, --split-file).
  std::string split_file;
  bool validation_split_given = false, seed_given = false;
  // --init of a file with a Keras config or in a Keras 3 format: the model as read, built in
  // validate_options (before any data), and its Keras structure for --save.
  std::optional<LoadedModel> init_model;
};

// Reads argv (argv[0] is the command name) into `o`. Returns false after printing --help.
// `command` names the command in --help and messages ("train", "sweep").
bool parse_train_options(int argc, char** argv, TrainOptions& o, const char* command = "train");

// Every option that can be checked without the data is checked here, before any data or MPI
// work; the strings are parsed into `o.config`. Throws UsageError naming the option.
void validate_train_options(TrainOptions& o);

}  // namespace parafine
