// `parafine train`: the two-phase fine-tuning job on an image folder or HDF5 dataset, with
// the options of DESIGN.md §3, read from the command line and from --config FILE (INI, same
// keys; the command line wins). Alone or under mpirun: each rank trains its share of every
// global batch (trainer.hpp).
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <optional>
#include <sstream>
#include <tuple>

#include "cli/callback_options.hpp"
#include "cli/cli.hpp"
#include "cli/options.hpp"
#include "parafine/cache/feature_store.hpp"  // parse_byte_size
#include "parafine/core/atomic_file.hpp"
#include "parafine/core/compute.hpp"
#include "parafine/data/folder_source.hpp"
#include "parafine/dist/comm.hpp"
#include "parafine/io/keras_config_writer.hpp"
#include "parafine/io/model_file.hpp"
#include "parafine/io/model_files.hpp"
#include "parafine/io/model_from_config.hpp"
#include "parafine/train/checkpoint.hpp"
#include "parafine/train/evaluation.hpp"
#include "parafine/train/trainer.hpp"

namespace po = boost::program_options;

namespace parafine {

namespace {

void require(bool ok, const std::string& message) {
  if (!ok) throw UsageError(message);
}

// The options as given; `config` gets the ones that go straight into the trainer's settings,
// the strings are parsed by validate_options.
struct TrainOptions {
  std::string train_path, val_path, weights, weights_dir, init, preprocess, augment, save,
      on_bad_image, unfreeze_from, shuffle, bn_mode, history_path, cache_mode, cache_mem, precision;
  NetworkConfig net;
  BackboneOptions backbone;
  CallbackOptionTexts callbacks;  // parsed into config.callbacks
  TrainConfig config;
  int threads = 0, classes = 0;
  bool unfreeze_last_given = false;  // not just its default
  bool backbone_given = false;       // --backbone or --alpha given
  bool image_size_given = false;
  // --init of a file with a Keras config or in a Keras 3 format: the model as read, built in
  // validate_options (before any data), and its Keras structure for --save.
  std::optional<LoadedModel> init_model;
};

// Whether --init names a model parafine reads with its structure (.keras, .weights.h5, a Keras
// 2 full-model .h5) rather than a parafine backbone + head in the tf.keras weights layout.
bool is_structured_model_file(const std::string& path) {
  if (path.empty()) return false;
  try {
    const ModelFormat f = model_format_of(path, "--init");
    return f != ModelFormat::kLegacyH5 || has_keras_config(path);
  } catch (const std::exception&) {
    return false;  // the load reports what is wrong with it
  }
}

void validate_init_model(TrainOptions& o);

// The allowed range of every numeric option, checked by opts.parse (options.hpp).
void bound_options(CommandOptions& opts) {
  constexpr int kInt = std::numeric_limits<int>::max();
  opts.describe_range("image-size",
                      std::string("0 (the backbone's default) or ") + kImageSizeRange);
  opts.bound("bucket-mb", kMinBucketMb, kMaxBucketMb,
             "MiB; a bucket holds at least one float, 4 bytes");
  opts.bound("checkpoint-steps", 0, kInt, "0: at epoch ends only");
  opts.bound("keep-checkpoints", 1, kInt);
  opts.bound("max-steps", 0L, std::numeric_limits<long>::max(), "0: no limit");
  opts.bound("classes", 0, kMaxHeadUnits, "0: from the training data");
  opts.bound("loader-threads", 1, kMaxThreads);
}

// Returns false after printing --help.
bool parse_options(int argc, char** argv, TrainOptions& o) {
  TrainConfig& c = o.config;
  CommandOptions opts("train", "train --train PATH [--val PATH] [options]");
  auto add = opts.add();
  add("train", po::value(&o.train_path), "training data: image folder or HDF5 dataset");
  add("val", po::value(&o.val_path), "validation data: image folder or HDF5 dataset");
  add("weights", po::value(&o.weights)->default_value("imagenet"),
      "base weights: imagenet | none | FILE.h5");
  add("weights-dir", po::value(&o.weights_dir), "directory holding the imagenet notop file");
  add("init", po::value(&o.init),
      "start from a full model (base + head), e.g. one written by --save");
  add("classes", po::value(&o.classes)->default_value(0),
      "number of classes (0: from the training data)");
  add_schedule_options(opts, c, o.net);  // the defaults of TrainConfig and NetworkConfig
  add_backbone_options(opts, o.backbone);
  add("image-size", po::value(&c.image_size)->default_value(0),
      "input height and width (0: the backbone's default, 224; 299 for inception_v3)");
  add("unfreeze-from", po::value(&o.unfreeze_from),
      "unfreeze this base layer and all after it instead");
  add("shuffle", po::value(&o.shuffle)->default_value("true"), "true | false");
  add("bn-mode", po::value(&o.bn_mode)->default_value("sync"),
      "trainable BN across ranks: sync | local | frozen");
  add("bucket-mb", po::value(&c.bucket_mb)->default_value(25.0),
      "gradient allreduce bucket size in MiB");
  add("checkpoint-dir", po::value(&c.checkpoint_dir), "write a checkpoint here after every epoch");
  add("checkpoint-steps", po::value(&c.checkpoint_steps)->default_value(0),
      "also every this many steps (0: epochs only)");
  add("keep-checkpoints", po::value(&c.keep_checkpoints)->default_value(3),
      "how many of the newest checkpoints to keep");
  add("resume", po::bool_switch(&c.resume),
      "continue from the newest valid checkpoint in --checkpoint-dir");
  add("max-steps", po::value(&c.max_steps)->default_value(0),
      "stop after this many steps, with a checkpoint (0: no limit)");
  add("seed", po::value(&c.seed)->default_value(0),
      "seed for initialisation, shuffling and augmentation");
  add_preprocess_option(opts, o.preprocess);
  add("augment", po::value(&o.augment)->default_value("none"), "none | flip");
  add("cache", po::value(&o.cache_mode)->default_value("auto"),
      "auto: compute the frozen base once per sample and train from its output "
      "(off with --augment) | off");
  add("cache-mem", po::value(&o.cache_mem)->default_value("auto"),
      "memory per rank for the feature cache, e.g. 8G "
      "(auto: half the node's available memory / its ranks)");
  add("cache-dir", po::value(&c.cache.dir),
      "where the feature cache spills beyond --cache-mem (default: the temp dir)");
  add("on-bad-image", po::value(&o.on_bad_image)->default_value("skip"), "skip | fail");
  add("save", po::value(&o.save), "write the fine-tuned model here (Keras save_weights layout)");
  add("history", po::value(&o.history_path),
      "CSV with one row per epoch "
      "(phase, epoch, loss, acc, val_loss, val_acc, seconds, img/s)");
  add_threads_option(opts, o.threads, "compute threads");
  add("loader-threads", po::value(&c.loader_threads)->default_value(2), "image decoding threads");
  add_precision_option(opts, o.precision);
  add_callback_options(opts, o.callbacks);
  bound_options(opts);
  if (!opts.parse(argc, argv)) return false;
  if (!o.init.empty() && !opts.given("weights")) o.weights = "none";  // --init brings its own base
  o.unfreeze_last_given = opts.given("unfreeze-last");
  o.image_size_given = opts.given("image-size") && o.config.image_size > 0;
  o.backbone_given = opts.given("backbone") || opts.given("alpha");
  return true;
}

// --cache-dir must be a directory this user can write (the cache spills there).
void check_cache_dir(const CacheOptions& cache) {
  if (cache.dir.empty() || cache.mode == CacheMode::kOff) return;
  std::error_code ec;
  require(std::filesystem::exists(cache.dir, ec), "--cache-dir " + cache.dir + " does not exist");
  require(std::filesystem::is_directory(cache.dir, ec),
          "--cache-dir " + cache.dir + " is not a directory");
  require(::access(cache.dir.c_str(), W_OK | X_OK) == 0,
          "--cache-dir " + cache.dir +
              " is not writable by this user (the cache spills there beyond --cache-mem)");
}

// --resume needs checkpoints in --checkpoint-dir; a new run needs it free of them.
void check_checkpoint_dir(const TrainConfig& c) {
  if (c.checkpoint_dir.empty()) return;
  const bool any = has_checkpoints(c.checkpoint_dir);
  require(!c.resume || any,
          "--resume: no checkpoint (ckpt-*.h5) in --checkpoint-dir " + c.checkpoint_dir);
  // A new run must not mix its checkpoints with an earlier run's (a later --resume would
  // pick whichever is furthest along).
  require(c.resume || !any, "--checkpoint-dir " + c.checkpoint_dir +
                                " holds checkpoints of an earlier run: add --resume to continue "
                                "it, or use an empty directory");
}

// --cache-mem SIZE in bytes: at most this node's memory (a larger budget would end in an
// allocation failure, not in spilling to --cache-dir).
long long parse_cache_mem(const std::string& text) {
  const double ram = physical_memory_bytes();
  const std::string range = "; allowed: 0.." + format_bytes(ram) + " (this node's memory) or auto";
  std::size_t bytes = 0;
  try {
    bytes = parse_byte_size(text, "--cache-mem");
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what() + range);
  }
  require(static_cast<double>(bytes) <= ram,
          "--cache-mem must be at most this node's memory, got '" + text + "'" + range);
  return static_cast<long long>(bytes);
}

// The options any run shares, whatever builds its model: augmentation, BN mode, cache,
// unfreezing, checkpointing.
void parse_run_options(TrainOptions& o) {
  TrainConfig& c = o.config;
  c.augment = parse_augment(o.augment);
  c.bn_mode = parse_bn_mode(o.bn_mode);
  c.cache.mode = parse_cache_mode(o.cache_mode);
  if (o.cache_mem != "auto") c.cache.memory_bytes = parse_cache_mem(o.cache_mem);
  check_cache_dir(c.cache);
  c.unfreeze_from = o.unfreeze_from;
  if (o.unfreeze_last_given && !o.unfreeze_from.empty())
    throw UsageError("give --unfreeze-last or --unfreeze-from, not both");
  require(!c.resume || !c.checkpoint_dir.empty(),
          "--resume needs --checkpoint-dir (where the checkpoints are)");
  require(c.checkpoint_steps >= 0, "--checkpoint-steps must be >= 0");
  require(c.keep_checkpoints >= 1, "--keep-checkpoints must be at least 1");
  require(c.max_steps >= 0, "--max-steps must be >= 0");
  parse_callback_options(o.callbacks, !o.val_path.empty(), c.callbacks);
}

// Every option that can be checked without the data is checked here, before any data or MPI
// work; the strings are parsed into `o.config`.
void validate_options(TrainOptions& o) {
  TrainConfig& c = o.config;
  require(!o.train_path.empty(), "--train is required (an image folder or an HDF5 dataset)");
  require(o.shuffle == "true" || o.shuffle == "false",
          "--shuffle must be true or false, got '" + o.shuffle + "'");
  require(o.classes >= 0, "--classes must be >= 0");
  c.shuffle = o.shuffle == "true";
  if (!o.save.empty()) {
    try {
      model_format_of(o.save, "--save");
    } catch (const std::invalid_argument& e) {
      throw UsageError(e.what());
    }
  }
  if (is_structured_model_file(o.init)) {
    validate_init_model(o);
    return;
  }
  if (!o.backbone_given)  // --init's file says which network it is
    if (const auto held = backbone_of_weights_file(o.init)) {
      o.backbone.name = backbone_info(held->backbone).name;
      o.backbone.alpha = held->alpha;
      o.net.width = held->width;
    }
  apply_backbone_options(o.backbone, o.net, c.image_size);
  c.backbone = o.net.backbone;
  c.alpha = o.net.alpha;
  c.preprocess = preprocess_option(o.preprocess, c.backbone);
  check_weights_backbone("--weights", o.weights, o.net);
  if (o.backbone_given) check_weights_backbone("--init", o.init, o.net);  // else taken from it
  parse_run_options(o);
  validate(c);
  if (!o.unfreeze_from.empty()) {  // the layer name, on a model that only has the names
    NetworkConfig names{backbone_info(c.backbone).min_size, 1, 1, 1, 3, c.backbone, c.alpha};
    Model names_only = build_network(names);
    unfreeze_base_from(names_only, o.unfreeze_from);
  }
  check_checkpoint_dir(c);
  if (Comm::is_root()) {  // rank 0 writes them
    check_output_path("--save", o.save);
    check_output_path("--save-best", o.callbacks.save_best);
    check_output_path("--history", o.history_path);
  }
}

// The rest of validate_options for --init of a model read with its structure: the model is
// built and loaded now, and decides the input size, the base and (auto) the preprocessing.
void validate_init_model(TrainOptions& o) {
  TrainConfig& c = o.config;
  require(!o.backbone_given, "--backbone/--alpha: --init " + o.init +
                                 " brings its own network (its config says what it is)");
  require(o.weights == "none", "give --weights or --init, not both");
  o.init_model = load_model_option("--init", o.init, o.image_size_given ? c.image_size : 0);
  Model& model = o.init_model->model;
  if (model.base_layers() == 0) {
    // No nested base model and no known backbone: Keras's model.layers is the base (the
    // Sequential's without its InputLayer).
    const int first = o.init_model->graph.models[0].class_name == "Sequential" ? 1 : 0;
    model.set_base_range(first, model.size() - first);
  }
  c.model_from_file = true;
  c.base_layers = model.base_layers();
  c.image_size = model.sample_input_shape()[0];
  c.preprocess = model_preprocess(o.preprocess, *o.init_model, std::cout);
  parse_run_options(o);
  if (!o.unfreeze_last_given && c.unfreeze_last > c.base_layers) c.unfreeze_last = c.base_layers;
  validate(c);
  if (!o.unfreeze_from.empty()) unfreeze_base_from(model, o.unfreeze_from);  // names it
  freeze_base(model);
  if (model.first_trainable_node() >= model.size() && c.phase1_epochs > 0) {
    std::cout << "phase 1 skipped: with the base frozen nothing in " << o.init
              << " is left to train (its base is all of model.layers)" << std::endl;
    c.phase1_epochs = 0;
  }
  if (const auto reasons = reasons_not_trainable(*o.init_model); !reasons.empty()) {
    std::string text = "--init " + o.init + ": cannot train it:";
    for (const std::string& r : reasons) text += "\n  " + r;
    throw UsageError(text);
  }
  for (const std::string& note : training_notes(o.init_model->graph))
    std::cout << "note: " << note << std::endl;
  check_checkpoint_dir(c);
  if (Comm::is_root()) {
    check_output_path("--save", o.save);
    check_output_path("--save-best", o.callbacks.save_best);
    check_output_path("--history", o.history_path);
  }
}

struct TrainData {
  std::unique_ptr<SampleSource> train, val;  // val may be null
};

// Opens --train and --val; both need labels, and the same classes.
TrainData open_data(const TrainOptions& o, std::ostream& out) {
  SourceOptions so;
  so.on_bad_image = parse_bad_image_policy(o.on_bad_image);
  so.threads = parafine::threads();
  so.log = &out;
  TrainData d;
  d.train = open_sample_source(o.train_path, "--train", so);
  if (!o.val_path.empty()) d.val = open_sample_source(o.val_path, "--val", so);
  for (const auto& [source, option, path] : {std::tuple{d.train.get(), "--train", o.train_path},
                                             std::tuple{d.val.get(), "--val", o.val_path}})
    if (source && (source->classes() == 0 || source->label(0) < 0))
      throw std::runtime_error(std::string(option) + " " + path +
                               " has no 'labels': training and validation need labels");
  if (d.val && d.val->class_names() != d.train->class_names() && !d.val->class_names().empty())
    throw std::invalid_argument(
        "--val's classes differ from --train's: the label indices would not mean the same thing");
  require(o.classes == 0 || o.classes == d.train->classes(),
          "--classes " + std::to_string(o.classes) + " but --train has " +
              std::to_string(d.train->classes()) + " classes");
  return d;
}

// The backbone and head for the training data's classes, from --init or --weights; a random base
// gets its frozen BN statistics calibrated first.
Model build_model(TrainOptions& o, const SampleSource& train, std::ostream& out) {
  if (o.init_model) {
    out << "initialised from " << o.init << " (" << model_format_name(o.init_model->format) << ", "
        << o.init_model->model.size() << " layers, base " << o.config.base_layers << " layers)"
        << std::endl;
    return std::move(o.init_model->model);
  }
  o.net.classes = train.classes();
  o.net.image_size = o.config.image_size;
  Model model = build_network(o.net);
  if (prepare_model(model, o.net, o.weights, o.weights_dir, o.init, o.config.seed, out))
    o.config.calibrate_bn_samples = 64;
  return model;
}

void report_run(const TrainOptions& o, const TrainData& d, Precision precision, std::ostream& out) {
  const TrainConfig& c = o.config;
  out << "parafine train: ";
  if (o.init_model)
    out << "the model of " << o.init;
  else
    out << backbone_info(o.net.backbone).keras_name;
  if (!o.init_model && o.net.backbone == Backbone::kMobileNetV2)
    out << " (alpha " << alpha_text(o.net.alpha) << ")";
  out << ", " << preprocess_name(c.preprocess) << " preprocessing; " << d.train->size()
      << " training images, " << (d.val ? d.val->size() : 0) << " validation images, "
      << d.train->classes() << " classes, " << c.image_size << "x" << c.image_size
      << ", global batch " << c.batch_size << ", " << Comm::size() << " rank(s) x "
      << parafine::threads() << " threads, " << precision_name(precision) << std::endl;
  if (o.init_model) return;
  if (const std::string note = backbone_note(o.net); !note.empty()) out << note << std::endl;
}

// --history: one CSV row per epoch, written by rank 0 and flushed at once so the rows survive
// a crash. A resumed run continues the file it finds.
// --history: one row per epoch (rank 0). The whole file is rewritten through AtomicFile after
// every epoch (a few hundred bytes), so a full disk or a kill never leaves a half-written
// file, and a resumed run, which repeats the epoch it stopped in (or, after a lost checkpoint,
// an earlier one), replaces those rows instead of adding a second copy.
class HistoryCsv {
 public:
  HistoryCsv(const std::string& path, bool resume, bool has_val)
      : path_(Comm::is_root() ? path : std::string()), has_val_(has_val) {
    if (path_.empty() || !resume) return;
    std::ifstream in(path_);
    std::string line;
    if (!std::getline(in, line)) return;  // no earlier history
    while (std::getline(in, line))
      if (!line.empty()) rows_.push_back(line);
  }

  void write(const EpochStats& s) {
    if (path_.empty()) return;
    rows_.erase(std::remove_if(rows_.begin(), rows_.end(),
                               [&](const std::string& row) {
                                 int phase = 0, epoch = 0;
                                 std::sscanf(row.c_str(), "%d,%d", &phase, &epoch);
                                 return std::make_pair(phase, epoch) >=
                                        std::make_pair(s.phase, s.epoch);
                               }),
                rows_.end());
    std::ostringstream row;
    row << s.phase << "," << s.epoch << "," << s.loss << "," << s.accuracy << ","
        << (has_val_ ? std::to_string(s.val_loss) : "") << ","
        << (has_val_ ? std::to_string(s.val_accuracy) : "") << "," << s.seconds << ","
        << s.images_per_second;
    rows_.push_back(row.str());
    AtomicFile out(path_, "--history file");
    out.write([&](const std::string& temp_path) {
      std::ofstream file(temp_path, std::ios::trunc);
      file << kHeader << "\n";
      for (const std::string& r : rows_) file << r << "\n";
      file.close();
      if (!file) throw std::runtime_error("writing failed (disk full, or a file size limit?)");
    });
  }

 private:
  static constexpr const char* kHeader = "phase,epoch,loss,acc,val_loss,val_acc,seconds,img_per_s";
  std::string path_;  // "" on ranks other than 0 and without --history
  bool has_val_;
  std::vector<std::string> rows_;  // without the header, in epoch order
};

// Peak resident memory of rank 0 and the largest of any rank (collective).
void report_peak_memory(std::ostream& out) {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::vector<int> peak_mib{static_cast<int>(usage.ru_maxrss / 1024)};
  const int mine = peak_mib[0];
  Comm::allreduce_max(peak_mib);
  out << "peak memory: " << mine << " MiB on rank 0, at most " << peak_mib[0] << " MiB per rank"
      << std::endl;
}

void save_model(const Model& model, const KerasGraph& graph, const TrainOptions& o,
                const SampleSource& train, std::ostream& out) {
  if (o.save.empty() || !Comm::is_root()) return;
  save_model_file(model, graph, o.save, train.class_names());
  out << "model saved to " << o.save << std::endl;
}

}  // namespace

int run_train(int argc, char** argv) {
  TrainOptions o;
  if (!parse_options(argc, argv, o)) return 0;  // --help
  validate_options(o);
  set_threads(threads_per_rank(o.threads));
  std::ostringstream quiet;  // only rank 0 speaks; the others report errors only
  std::ostream& out = Comm::is_root() ? std::cout : quiet;
  const Precision precision = resolve_precision(o.precision, out);
  const TrainData data = open_data(o, out);
  Model model = build_model(o, *data.train, out);
  // The Keras structure --save writes: the file's, or one flat Functional.
  const KerasGraph graph = o.init_model ? o.init_model->graph : graph_of_model(model);
  model.set_precision(precision);
  report_run(o, data, model.precision(), out);
  HistoryCsv history_csv(o.history_path, o.config.resume, data.val != nullptr);
  const auto save_best = [&](const EpochStats& s) {  // --save-best: ModelCheckpoint
    if (!Comm::is_root()) return;
    save_model_file(model, graph, o.callbacks.save_best, data.train->class_names());
    out << "phase " << s.phase << " epoch " << s.epoch << ": "
        << monitor_name(o.config.callbacks.monitor) << " improved, model saved to "
        << o.callbacks.save_best << std::endl;
  };
  const auto history = run_two_phase(
      model, *data.train, data.val.get(), o.config, out,
      [&](const EpochStats& s) { history_csv.write(s); }, save_best);
  report_peak_memory(out);
  save_model(model, graph, o, *data.train, out);
  if (!history.empty() && data.val)
    out << "final validation accuracy " << history.back().val_accuracy << std::endl;
  return 0;
}

}  // namespace parafine
