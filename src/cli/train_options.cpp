// Parsing and checking the train command's options (see train_options.hpp).
#include "cli/train_options.hpp"

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
#include "parafine/core/stop_signal.hpp"
#include "parafine/data/folder_source.hpp"
#include "parafine/data/subset_source.hpp"
#include "parafine/data/validation_split.hpp"
#include "parafine/dist/comm.hpp"
#include "parafine/io/keras_config_writer.hpp"
#include "parafine/io/model_file.hpp"
#include "parafine/io/model_files.hpp"
#include "parafine/io/model_from_config.hpp"
#include "parafine/train/checkpoint.hpp"
#include "parafine/train/class_weights.hpp"
#include "parafine/train/evaluation.hpp"
#include "parafine/train/history_csv.hpp"
#include "parafine/train/trainer.hpp"

namespace po = boost::program_options;

namespace parafine {

namespace {

void require(bool ok, const std::string& message) {
  if (!ok) throw UsageError(message);
}

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

// Boost reads an implicit value only as --resume=auto (a separate word is a positional
// argument), so "--resume auto" is joined into that first.
std::vector<char*> join_resume_auto(int argc, char** argv) {
  static char joined[] = "--resume=auto";
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::string(argv[i]) == "--resume" && i + 1 < argc && std::string(argv[i + 1]) == "auto") {
      args.push_back(joined);
      ++i;
    } else {
      args.push_back(argv[i]);
    }
  }
  args.push_back(nullptr);
  return args;
}

// --resume's value: true (also yes, on, 1, and --resume alone), false (no, off, 0) or auto.
void parse_resume(TrainOptions& o) {
  const std::string& v = o.resume;
  o.resume_auto = v == "auto";
  if (v.empty() || v == "false" || v == "no" || v == "off" || v == "0" || o.resume_auto)
    o.config.resume = false;  // auto decides in check_checkpoint_dir
  else if (v == "true" || v == "yes" || v == "on" || v == "1")
    o.config.resume = true;
  else
    throw UsageError("--resume must be given alone (or true/false) or as --resume auto, got '" + v +
                     "'");
}

// Returns false after printing --help.
bool parse_options(int argc, char** argv, TrainOptions& o, const char* command) {
  TrainConfig& c = o.config;
  CommandOptions opts(command, std::string(command) + " --train PATH [--val PATH] [options]");
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
  add("resume", po::value(&o.resume)->implicit_value("true"),
      "continue from the newest valid checkpoint in --checkpoint-dir (it must hold one); "
      "--resume auto: continue when it holds one, else start a new run");
  add("max-steps", po::value(&c.max_steps)->default_value(0),
      "stop after this many steps, with a checkpoint (0: no limit)");
  add("seed", po::value(&c.seed)->default_value(0),
      "seed for initialisation, shuffling, augmentation, dropout and --validation-split");
  add_preprocess_option(opts, o.preprocess);
  add("augment", po::value(&o.augment)->default_value("none"),
      "none | comma-separated flip, rotation:F, zoom:F, translation:F, contrast:F, crop[:D] "
      "(Keras's Random* layers; crop decodes at D, default round(S*8/7), and takes S x S)");
  add("cache", po::value(&o.cache_mode)->default_value("auto"),
      "auto: compute the frozen base once per sample and train from its output "
      "(off with --augment) | off");
  add("cache-mem", po::value(&o.cache_mem)->default_value("auto"),
      "memory per rank for the feature cache, e.g. 8G "
      "(auto: half the node's available memory / its ranks)");
  add("cache-dir", po::value(&c.cache.dir),
      "where the feature cache spills beyond --cache-mem (default: the temp dir)");
  add("cache-keep", po::bool_switch(&c.cache.keep),
      "keep the feature cache in --cache-dir under a key of the model, weights, data and "
      "options, and reuse it in later runs with the same key (parafine cache ls|rm DIR)");
  add("on-bad-image", po::value(&o.on_bad_image)->default_value("skip"), "skip | fail");
  add("save", po::value(&o.save),
      "write the fine-tuned model here, in the format its suffix names (as Keras): .keras "
      "(Keras 3 archive: config + weights, for load_model) | .weights.h5 (Keras 3 "
      "save_weights layout) | .h5 or .hdf5 (tf.keras save_weights layout; a model --init "
      "read with its Keras config: the full model, as Keras's model.save(\"m.h5\"))");
  add("dropout", po::value(&c.dropout)->default_value(0.0f),
      "rate of a Dropout layer in the head before the classifier Dense, in [0, 1) (0: none)");
  add("class-weight", po::value(&o.class_weight),
      "weight each training sample's loss by its class, as Keras's class_weight: balanced "
      "(n / (classes * count), sklearn's) | CLASS:W,CLASS:W,... (CLASS a class name, else an "
      "index; classes not listed: 1)");
  add("history", po::value(&o.history_path),
      "CSV with one row per epoch, Keras CSVLogger's columns: epoch (0-based in each phase), "
      "accuracy, learning_rate, loss, val_accuracy, val_loss (without --val: val_ columns NA, "
      "as CSVLogger), then phase, seconds, img_per_s");
  add_threads_option(opts, o.threads, "compute threads");
  add("loader-threads", po::value(&c.loader_threads)->default_value(2), "image decoding threads");
  add_precision_option(opts, o.precision);
  // Keras's validation split of --train (issue 15).
  add("validation-split", po::value(&c.validation_split),
      "hold out a fraction in (0, 1) of --train for validation: the files Keras's "
      "image_dataset_from_directory puts in each subset with validation_split and "
      "subset=\"both\" (needs --seed; not with --val)");
  add("split-file", po::value(&o.split_file),
      "write the --validation-split subsets here: train|val<TAB>label<TAB>path lines");
  add_callback_options(opts, o.callbacks);
  bound_options(opts);
  std::vector<char*> args = join_resume_auto(argc, argv);
  if (!opts.parse(static_cast<int>(args.size()) - 1, args.data())) return false;
  parse_resume(o);
  if (!o.init.empty() && !opts.given("weights")) o.weights = "none";  // --init brings its own base
  o.unfreeze_last_given = opts.given("unfreeze-last");
  o.image_size_given = opts.given("image-size") && o.config.image_size > 0;
  o.backbone_given = opts.given("backbone") || opts.given("alpha");
  o.validation_split_given = opts.given("validation-split");
  o.seed_given = opts.given("seed");
  return true;
}

// --cache-dir must be a directory this user can write (the cache spills there).
void check_cache_dir(const CacheOptions& cache) {
  require(!cache.keep || !cache.dir.empty(),
          "--cache-keep needs --cache-dir (the directory the cache is kept in)");
  require(!cache.keep || cache.mode != CacheMode::kOff,
          "--cache-keep: nothing to keep with --cache off");
  if (cache.dir.empty() || cache.mode == CacheMode::kOff) return;
  std::error_code ec;
  require(std::filesystem::exists(cache.dir, ec), "--cache-dir " + cache.dir + " does not exist");
  require(std::filesystem::is_directory(cache.dir, ec),
          "--cache-dir " + cache.dir + " is not a directory");
  require(::access(cache.dir.c_str(), W_OK | X_OK) == 0,
          "--cache-dir " + cache.dir +
              " is not writable by this user (the cache spills there beyond --cache-mem" +
              (cache.keep ? std::string(", and --cache-keep keeps it there)") : ")"));
}

// --resume needs checkpoints in --checkpoint-dir; a new run needs it free of them; --resume
// auto is either, as the directory says (rank 0 logs which).
void check_checkpoint_dir(TrainConfig& c, bool resume_auto) {
  if (c.checkpoint_dir.empty()) return;
  bool any = has_checkpoints(c.checkpoint_dir);
  if (resume_auto) {
    // Rank 0's listing decides for every rank: a rank that saw otherwise (a node-local
    // directory, a stale NFS cache after a requeue) would skip the checkpoint's collectives.
    int rank0_any = any ? 1 : 0;
    Comm::broadcast_bytes(&rank0_any, sizeof rank0_any);
    any = rank0_any != 0;
    c.resume = any;
    if (Comm::is_root())
      std::cout << "--resume auto: "
                << (any ? "continuing from the newest checkpoint in "
                        : "no checkpoint yet, starting a new run in ")
                << c.checkpoint_dir << std::endl;
  }
  require(!c.resume || any,
          "--resume: no checkpoint (ckpt-*.h5) in --checkpoint-dir " + c.checkpoint_dir);
  // A new run must not mix its checkpoints with an earlier run's (a later --resume would
  // pick whichever is furthest along).
  require(c.resume || !any,
          "--checkpoint-dir " + c.checkpoint_dir +
              " holds checkpoints of an earlier run: add --resume (or --resume auto) to continue "
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
  require((!c.resume && !o.resume_auto) || !c.checkpoint_dir.empty(),
          "--resume needs --checkpoint-dir (where the checkpoints are)");
  require(c.checkpoint_steps >= 0, "--checkpoint-steps must be >= 0");
  require(c.keep_checkpoints >= 1, "--keep-checkpoints must be at least 1");
  require(c.max_steps >= 0, "--max-steps must be >= 0");
  parse_callback_options(o.callbacks, !o.val_path.empty() || o.validation_split_given, c.callbacks);
}

// --validation-split, its --seed and --split-file, before any data is read.
void validate_split_options(const TrainOptions& o) {
  const TrainConfig& c = o.config;
  if (!o.validation_split_given) {
    require(o.split_file.empty(), "--split-file needs --validation-split (it records that split)");
    return;
  }
  std::ostringstream f;
  f << c.validation_split;
  require(c.validation_split > 0 && c.validation_split < 1,
          "--validation-split must be a fraction in (0, 1), got " + f.str());
  require(o.val_path.empty(),
          "give --validation-split or --val, not both (the split makes the validation data)");
  require(o.seed_given,
          "--validation-split needs --seed: Keras requires a seed with validation_split (so the "
          "two subsets never overlap across runs)");
  require(c.seed <= 0xffffffffULL,
          "--seed must be in 0..4294967295 (2**32 - 1, what numpy's RandomState takes) with "
          "--validation-split, got " +
              std::to_string(c.seed));
  if (Comm::is_root()) check_output_path("--split-file", o.split_file);
}

// The files a run writes: each writable (rank 0 writes them), and no two the same file (the
// final --save would silently replace the --save-best model, for one).
void check_output_paths(const TrainOptions& o) {
  const std::vector<std::pair<const char*, std::string>> outputs = {
      {"--save", o.save},
      {"--save-best", o.callbacks.save_best},
      {"--history", o.history_path},
      {"--split-file", o.split_file}};
  for (std::size_t i = 0; i < outputs.size(); ++i)
    for (std::size_t j = i + 1; j < outputs.size(); ++j) {
      const auto& [a, path_a] = outputs[i];
      const auto& [b, path_b] = outputs[j];
      const auto resolved = [](const std::string& p) {  // symlinks and "./" resolved
        std::error_code ec;
        return std::filesystem::weakly_canonical(std::filesystem::absolute(p, ec), ec);
      };
      if (!path_a.empty() && !path_b.empty() && resolved(path_a) == resolved(path_b))
        throw UsageError(std::string(a) + " and " + b + " name the same file " + path_a +
                         ": one would overwrite the other; give each its own path");
    }
  if (!Comm::is_root()) return;
  check_output_path("--save", o.save);
  check_output_path("--save-best", o.callbacks.save_best);
  check_output_path("--history", o.history_path);
}

// Every option that can be checked without the data is checked here, before any data or MPI
// work; the strings are parsed into `o.config`.
void validate_options(TrainOptions& o) {
  TrainConfig& c = o.config;
  validate_split_options(o);
  require(!o.train_path.empty(), "--train is required (an image folder or an HDF5 dataset)");
  require(o.shuffle == "true" || o.shuffle == "false",
          "--shuffle must be true or false, got '" + o.shuffle + "'");
  require(o.classes >= 0, "--classes must be >= 0");
  c.shuffle = o.shuffle == "true";
  o.class_weight_spec = parse_class_weight(o.class_weight);
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
  o.net.dropout = c.dropout;
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
  check_checkpoint_dir(c, o.resume_auto);
  check_output_paths(o);
}

// The rest of validate_options for --init of a model read with its structure: the model is
// built and loaded now, and decides the input size, the base and (auto) the preprocessing.
void validate_init_model(TrainOptions& o) {
  TrainConfig& c = o.config;
  require(!o.backbone_given, "--backbone/--alpha: --init " + o.init +
                                 " brings its own network (its config says what it is)");
  require(o.weights == "none", "give --weights or --init, not both");
  require(c.dropout == 0, "--dropout: --init " + o.init +
                              " brings its own head (its config lists its layers, Dropout "
                              "included)");
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
  check_checkpoint_dir(c, o.resume_auto);
  check_output_paths(o);
}

}  // namespace

bool parse_train_options(int argc, char** argv, TrainOptions& o, const char* command) {
  return parse_options(argc, argv, o, command);
}

void validate_train_options(TrainOptions& o) {
  validate_options(o);
}

}  // namespace parafine
