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
  add("save", po::value(&o.save), "write the fine-tuned model here (Keras save_weights layout)");
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

struct TrainData {
  std::unique_ptr<SampleSource> train, val;  // val may be null
  std::string split_text;                    // --validation-split: the --split-file lines
};

// --validation-split of an image folder: Keras's listing and split of it, each subset a
// FolderSource over the folder's classes; bad images are dropped after the split, as parafine
// decides them, so the split itself stays Keras's.
TrainData open_split_folder(const TrainOptions& o, const SourceOptions& so, std::ostream& out) {
  const TrainConfig& c = o.config;
  const KerasFolderIndex index = keras_index_directory(o.train_path);
  ValidationSplit split;
  try {
    split = keras_validation_split(index.files, index.labels, c.validation_split,
                                   static_cast<std::int64_t>(c.seed));
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string(e.what()) + " (--train " + o.train_path + ")");
  }
  out << "--validation-split " << c.validation_split << " --seed " << c.seed
      << ": Keras's split (image_dataset_from_directory, subset=\"both\") of the "
      << index.files.size() << " files of " << o.train_path << " in " << index.class_names.size()
      << " classes: " << split.training.size() << " training, " << split.validation.size()
      << " validation" << std::endl;
  const std::string prefix = o.train_path.back() == '/' ? o.train_path : o.train_path + "/";
  std::ostringstream lines;
  const auto subset = [&](const std::vector<LabeledFile>& files, const char* tag,
                          const char* name) {
    std::vector<std::string> paths;
    std::vector<int> labels;
    for (const LabeledFile& f : files) {
      paths.push_back(prefix + f.path);
      labels.push_back(f.label);
      lines << tag << '\t' << f.label << '\t' << f.path << '\n';
    }
    return std::make_unique<FolderSource>("--train " + o.train_path + " (" + name + " subset)",
                                          paths, labels, index.class_names, so.on_bad_image,
                                          so.threads, so.log);
  };
  TrainData d;
  d.train = subset(split.training, "train", "training");
  d.val = subset(split.validation, "val", "validation");
  d.split_text = lines.str();
  return d;
}

// --validation-split of an HDF5 dataset: the same algorithm on its sample indices.
TrainData open_split_samples(const TrainOptions& o, const SourceOptions& so, std::ostream& out) {
  const TrainConfig& c = o.config;
  std::shared_ptr<const SampleSource> whole = open_sample_source(o.train_path, "--train", so);
  IndexSplit split;
  try {
    split = keras_index_split(whole->size(), c.validation_split, static_cast<std::int64_t>(c.seed));
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string(e.what()) + " (--train " + o.train_path + ")");
  }
  out << "--validation-split " << c.validation_split << " --seed " << c.seed
      << ": Keras's split (its image_dataset_from_directory algorithm on the sample indices) of "
         "the "
      << whole->size() << " samples of " << o.train_path << ": " << split.training.size()
      << " training, " << split.validation.size() << " validation" << std::endl;
  std::ostringstream lines;
  for (const auto& [tag, indices] :
       {std::pair{"train", &split.training}, std::pair{"val", &split.validation}})
    for (const int i : *indices) lines << tag << '\t' << whole->label(i) << '\t' << i << '\n';
  TrainData d;
  d.train = std::make_unique<SubsetSource>(whole, std::move(split.training));
  d.val = std::make_unique<SubsetSource>(whole, std::move(split.validation));
  d.split_text = lines.str();
  return d;
}

// --split-file: rank 0 writes the split, whole or not at all.
void write_split_file(const std::string& path, const std::string& text, std::ostream& out) {
  if (path.empty() || !Comm::is_root()) return;
  AtomicFile file(path, "--split-file", text.size());
  file.write([&](const std::string& temp_path) {
    std::ofstream f(temp_path, std::ios::trunc | std::ios::binary);
    f << text;
    f.close();
    if (!f) throw std::runtime_error("writing failed (disk full, or a file size limit?)");
  });
  out << "split written to " << path << std::endl;
}

// Opens --train and --val (or the two subsets of --validation-split); both need labels, and
// the same classes.
TrainData open_data(const TrainOptions& o, std::ostream& out) {
  SourceOptions so;
  so.on_bad_image = parse_bad_image_policy(o.on_bad_image);
  so.threads = parafine::threads();
  so.log = &out;
  TrainData d;
  if (o.validation_split_given) {
    std::error_code ec;
    d = std::filesystem::is_directory(o.train_path, ec) ? open_split_folder(o, so, out)
                                                        : open_split_samples(o, so, out);
  } else {
    d.train = open_sample_source(o.train_path, "--train", so);
    if (!o.val_path.empty()) d.val = open_sample_source(o.val_path, "--val", so);
  }
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
  write_split_file(o.split_file, d.split_text, out);
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

// --class-weight against the training classes (before any image is decoded), logged.
// --class-weight's classes against an image folder's class names (its sub-folders, listed as
// Keras lists them), before open_data decodes every image: a misspelt class fails at once. An
// HDF5 dataset's class names are read without decoding; they are checked when it is opened.
void check_class_weight_classes(const TrainOptions& o) {
  if (o.class_weight_spec.empty() || o.class_weight_spec.balanced) return;
  std::error_code ec;
  if (!std::filesystem::is_directory(o.train_path, ec)) return;
  const std::vector<std::string> names = keras_index_directory(o.train_path).class_names;
  resolve_class_weights(o.class_weight_spec, names, std::vector<long>(names.size(), 1));
}

void resolve_class_weights(TrainOptions& o, const SampleSource& train, std::ostream& out) {
  if (o.class_weight_spec.empty()) return;
  o.config.class_weights =
      resolve_class_weights(o.class_weight_spec, train.class_names(), class_counts(train));
  out << class_weights_text(o.config.class_weights, train.class_names(),
                            o.class_weight_spec.balanced)
      << std::endl;
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
  // From here a SIGTERM, SIGINT or SIGUSR1 stops the run at the next step boundary, with a
  // checkpoint (exit code 75); a second SIGINT ends it at once.
  install_stop_handlers();
  set_threads(threads_per_rank(o.threads, Comm::is_root() ? &std::cout : nullptr));
  std::ostringstream quiet;  // only rank 0 speaks; the others report errors only
  std::ostream& out = Comm::is_root() ? std::cout : quiet;
  const Precision precision = resolve_precision(o.precision, out);
  check_class_weight_classes(o);
  const TrainData data = open_data(o, out);
  resolve_class_weights(o, *data.train, out);
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
    out << "final validation accuracy " << history.back().val_accuracy
        << (o.config.callbacks.restore_best
                ? " (of the last epoch; --restore-best may have restored an earlier epoch's "
                  "weights, see above)"
                : "")
        << std::endl;
  return 0;
}

}  // namespace parafine
