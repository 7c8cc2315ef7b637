// What every command does with its options (DESIGN.md §3): `--help` prints the usage line and
// the options (exit 0); the command line is parsed; `--config FILE` reads the same keys from an
// INI file, where the command line wins; then the required options are checked and the values
// written to their variables. Boost errors become UsageError (exit 2): main prefixes the message
// with "parafine COMMAND: ", so the command is named once. Also the --threads default.
#pragma once

#include <boost/program_options.hpp>
#include <functional>
#include <map>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "parafine/core/precision.hpp"
#include "parafine/data/preprocess.hpp"
#include "parafine/model/backbone.hpp"

namespace parafine {

class CommandOptions {
 public:
  // `command` as typed ("train"); `usage` is what follows "usage: parafine " in --help, e.g.
  // "convert --input DIR --output DATA.h5 [options]". --help and --config are added here.
  CommandOptions(const std::string& command, const std::string& usage);

  // Adds options, as boost::program_options::options_description::add_options() does.
  boost::program_options::options_description_easy_init add();
  // Command-line words that are not options fill `name` (a vector-valued option), in order.
  void positional(const char* name);

  // Returns false after printing --help (the command then exits 0), true with every value
  // stored. Throws UsageError for an unknown option, a bad value or a missing required one; for
  // a problem in the --config file the message names the file and the key.
  bool parse(int argc, char** argv);

  // Whether `name` was given (on the command line or in the --config file), not defaulted.
  bool given(const char* name) const;

  // Bounds the numeric option `name` (already added, of value type T) to [min, max]: parse()
  // then refuses a value outside it, or one that is not a number of type T at all (e.g. 3e9 for
  // an int), with a UsageError naming the option, the value and the allowed range, before any
  // data or MPI work. `why`, when given, is appended to the message ("at most 1024 ...").
  template <class T>
  void bound(const char* name, T min, T max, const std::string& why = "");
  // Only the range text for a value of `name` that does not parse; the command checks the
  // value itself (--image-size: check_image_size_option).
  void describe_range(const char* name, const std::string& range) { bounds_[name].range = range; }

 private:
  void read_config_file(const std::string& path);
  void check_bounds() const;
  std::string range_text(const std::string& name) const;

  struct Bound {
    std::string range, min, max;  // "1..65536 (why)", "1", "65536"
    // -1 below min, 0 in range, 1 above max
    std::function<int(const boost::program_options::variable_value&)> compare;
    std::function<std::string(const boost::program_options::variable_value&)> show;
  };
  std::map<std::string, Bound> bounds_;

  std::string usage_;
  boost::program_options::options_description description_;
  boost::program_options::positional_options_description positional_;
  boost::program_options::variables_map values_;
};

template <class T>
void CommandOptions::bound(const char* name, T min, T max, const std::string& why) {
  const auto text = [](T v) {
    std::ostringstream s;
    s << v;
    return s.str();
  };
  Bound b;
  b.range = text(min) + ".." + text(max) + (why.empty() ? "" : " (" + why + ")");
  b.min = text(min);
  b.max = text(max);
  b.compare = [min, max](const boost::program_options::variable_value& v) {
    const T x = v.as<T>();
    return x >= min ? (x <= max ? 0 : 1) : -1;  // NaN is below
  };
  b.show = [text](const boost::program_options::variable_value& v) { return text(v.as<T>()); };
  bounds_[name] = b;
}

// The largest --threads: far beyond any node's cores, far below where the OpenMP runtime fails
// to create its threads (--threads 100000 crashed it).
constexpr int kMaxThreads = 1024;
// The largest --head-units: 64x Keras's 1024 (the head's kernel is 2048 x units floats).
constexpr int kMaxHeadUnits = 65536;

// --image-size: at least the backbone's minimum (check_image_size's wording) and at most
// kMaxImageSize, else a UsageError naming the option, the value and the range.
void check_image_size_option(int image_size, Backbone backbone = Backbone::kResNet50);

// --backbone NAME and --alpha A (MobileNetV2's width multiplier), for train, demo and inspect.
struct BackboneOptions {
  std::string name = "resnet50";
  float alpha = 1.0f;
};
void add_backbone_options(CommandOptions& opts, BackboneOptions& b);
// parse_backbone's answer, its error as a UsageError.
Backbone backbone_option(const std::string& name);
// Sets net.backbone and net.alpha; a UsageError lists the known backbones, or the alphas Keras
// accepts. image_size 0 (the option's default) becomes the backbone's default size; then the
// size is checked against the backbone's minimum.
void apply_backbone_options(const BackboneOptions& b, NetworkConfig& net, int& image_size);
// --preprocess auto|caffe|tf|none: auto is the backbone's keras.applications preprocess_input.
void add_preprocess_option(CommandOptions& opts, std::string& preprocess);
Preprocess preprocess_option(const std::string& text, Backbone backbone);

struct TrainConfig;
// The two-phase schedule that train and demo share, with its bounds: --head-units,
// --batch-size, --phase1-epochs, --phase1-lr, --phase2-epochs, --phase2-lr, --unfreeze-last.
// The defaults are the values `config` and `net` hold when it is called (demo sets its own).
void add_schedule_options(CommandOptions& opts, TrainConfig& config, NetworkConfig& net);
// --threads with its bound: threads per rank (0 = threads_per_rank's default); `use` says what
// they do in this command.
void add_threads_option(CommandOptions& opts, int& threads, const std::string& use);

// Every option naming a file to write (--save, --history, --output): refuses `path` with a
// UsageError naming `option` and the path when it cannot be created, i.e. its directory is
// missing, not a directory or not writable, or the path is a directory or a file this user
// cannot write. Checked before any data is loaded, so a run cannot lose its result at the end.
// Checks nothing for an empty path.
void check_output_path(const char* option, const std::string& path);

// Threads per rank for `--threads requested`: `requested` when above 0; for 0 the default of
// core/thread_budget.hpp: OMP_NUM_THREADS, else SLURM_CPUS_PER_TASK, else the CPUs of the
// affinity mask shared by the node's ranks bound to it (all the node's CPUs when unbound),
// capped by the cgroup CPU quota, at least 1. With `log`, one line says the count and which
// source decided. Throws UsageError for a value outside 0..kMaxThreads.
// Collective under mpirun (every rank calls it at the same point).
int threads_per_rank(int requested, std::ostream* log = nullptr);

// --precision float32|mixed_bfloat16|auto (Keras's policy names; core/precision.hpp).
void add_precision_option(CommandOptions& opts, std::string& precision);
// The precision every rank runs (collective): mixed_bfloat16 needs AVX512_BF16 or AMX-BF16 on
// every rank's CPU, else a UsageError (exit 2) saying so; auto's choice, or what the policy
// costs here, goes to `log` as one line.
Precision resolve_precision(const std::string& requested, std::ostream& log);

}  // namespace parafine
