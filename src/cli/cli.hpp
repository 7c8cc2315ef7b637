// The parafine subcommands. Each takes argv after the command name (argv[0] is the command)
// and returns the process exit code: 0 success, 1 runtime failure, 2 bad usage. Usage errors
// are thrown as UsageError and mapped to exit code 2 by main.
#pragma once

#include <stdexcept>
#include <string>

namespace parafine {

struct UsageError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// Installs the handler that reports a crash (which rank, which signal, a backtrace) and then
// dies of the same signal; call before MPI_Init (see crash_report.cpp).
void install_crash_report();

int run_demo(int argc, char** argv);
int run_inspect(int argc, char** argv);
int run_predict(int argc, char** argv);
int run_evaluate(int argc, char** argv);
int run_convert(int argc, char** argv);
int run_train(int argc, char** argv);
int run_sweep(int argc, char** argv);
int run_plot_history(int argc, char** argv);
int run_cache(int argc, char** argv);  // cache_command.cpp

// `inspect` of a model file with a Keras config (.keras, Keras 2 full-model .h5) or a Keras 3
// .weights.h5: prints its summary and what parafine can do with it. Returns the exit code (0:
// parafine can run it, 2: it cannot, every reason printed), or -1 for a file that is none of
// these (a tf.keras weights file: the weight-file inspection).
int inspect_model_file(const std::string& path);

}  // namespace parafine

#include <cstdint>
#include <iosfwd>
#include <optional>

#include "parafine/data/preprocess.hpp"
#include "parafine/io/backbone_of_file.hpp"
#include "parafine/io/model_files.hpp"
#include "parafine/model/backbone.hpp"
#include "parafine/model/model.hpp"

namespace parafine {

// The starting model of a training run: `init` (a full model) when given, else the base from
// `weights` (imagenet: net's notop file | none | FILE) with a Keras-initialised head. Returns
// true when the base is random, so its frozen BN statistics need calibrating.
bool prepare_model(Model& model, const NetworkConfig& net, const std::string& weights,
                   const std::string& weights_dir, const std::string& init, std::uint64_t seed,
                   std::ostream& log);

// --model / --init FILE read as any model file (io/model_files.hpp); a file that cannot be
// read or built (not a model, a layer parafine does not run, weights that do not fit the
// config) is a UsageError naming `option`, the file and every problem (exit 2).
LoadedModel load_model_option(const std::string& option, const std::string& path, int image_size,
                              int fallback_size = 0);

// Every reason `train --init` cannot train the model as Keras's fit would (empty: it can):
// an output that is no classifier's, regularizers, constraints, renorm.
std::vector<std::string> reasons_not_trainable(const LoadedModel& loaded);

// --preprocess for a model read from a file: auto is none when the model scales its own inputs
// (a Rescaling or Normalization right after its input, augmentation layers aside), else the
// backbone's preprocess_input when its layers are a known backbone's, else none (with a note
// on `log`: the file does not say how its inputs were scaled).
Preprocess model_preprocess(const std::string& text, const LoadedModel& loaded, std::ostream& log);

// The backbone a weight file holds (io/backbone_of_file.hpp), or nothing for imagenet, none,
// an unreadable file (its load reports why) or a file of no known backbone.
std::optional<FileBackbone> backbone_of_weights_file(const std::string& path);

// --weights FILE and --init FILE must hold the chosen backbone (and alpha): checked from the
// file's layer names before any data is read; a UsageError names the file, the backbone it
// holds and the one chosen. imagenet, none and empty pass.
void check_weights_backbone(const std::string& option, const std::string& path,
                            const NetworkConfig& net);

}  // namespace parafine
