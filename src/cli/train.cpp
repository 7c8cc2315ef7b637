// `parafine train`: the two-phase fine-tuning job on an image folder or HDF5 dataset, with
// the options of DESIGN.md §3, read from the command line and from --config FILE (INI, same
// keys; the command line wins). Alone or under mpirun: each rank trains its share of every
// global batch (trainer.hpp).
#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <tuple>

#include "cli/cli.hpp"
#include "cli/options.hpp"
#include "parafine/train/checkpoint.hpp"
#include "parafine/dist/comm.hpp"
#include "parafine/core/compute.hpp"
#include "parafine/cache/feature_store.hpp"  // parse_byte_size
#include "parafine/data/folder_source.hpp"
#include "parafine/io/model_file.hpp"
#include "parafine/train/trainer.hpp"

namespace po = boost::program_options;

namespace parafine {

namespace {

void require(bool ok, const std::string& message) {
  if (!ok) throw UsageError(message);
}

}  // namespace

int run_train(int argc, char** argv) {
  std::string train_path, val_path, weights, weights_dir, init, preprocess, augment, save, on_bad_image,
      unfreeze_from, shuffle, bn_mode, history_path, cache_mode, cache_mem;
  ResNet50Config net;
  TrainConfig c;
  int threads = 0, classes = 0;
  CommandOptions opts("train", "train --train PATH [--val PATH] [options]");
  opts.add()("train", po::value(&train_path), "training data: image folder or HDF5 dataset")
      ("val", po::value(&val_path), "validation data: image folder or HDF5 dataset")
      ("weights", po::value(&weights)->default_value("imagenet"), "base weights: imagenet | none | FILE.h5")
      ("weights-dir", po::value(&weights_dir), "directory holding the imagenet notop file")
      ("init", po::value(&init), "start from a full model (base + head), e.g. one written by --save")
      ("classes", po::value(&classes)->default_value(0), "number of classes (0: from the training data)")
      ("head-units", po::value(&net.head_units)->default_value(1024), "units of the dense head layer")
      ("image-size", po::value(&c.image_size)->default_value(224), "input height and width")
      ("batch-size", po::value(&c.batch_size)->default_value(32), "global batch size")
      ("phase1-epochs", po::value(&c.phase1_epochs)->default_value(10), "epochs with the base frozen")
      ("phase1-lr", po::value(&c.phase1_lr)->default_value(1e-3), "phase 1 Adam learning rate")
      ("phase2-epochs", po::value(&c.phase2_epochs)->default_value(10), "epochs with the last layers unfrozen")
      ("phase2-lr", po::value(&c.phase2_lr)->default_value(1e-5), "phase 2 Adam learning rate")
      ("unfreeze-last", po::value(&c.unfreeze_last)->default_value(10), "base layers (Keras layers[-N:]) unfrozen")
      ("unfreeze-from", po::value(&unfreeze_from), "unfreeze this base layer and all after it instead")
      ("shuffle", po::value(&shuffle)->default_value("true"), "true | false")
      ("bn-mode", po::value(&bn_mode)->default_value("sync"), "trainable BN across ranks: sync | local | frozen")
      ("bucket-mb", po::value(&c.bucket_mb)->default_value(25.0), "gradient allreduce bucket size in MiB")
      ("checkpoint-dir", po::value(&c.checkpoint_dir), "write a checkpoint here after every epoch")
      ("checkpoint-steps", po::value(&c.checkpoint_steps)->default_value(0), "also every this many steps (0: epochs only)")
      ("keep-checkpoints", po::value(&c.keep_checkpoints)->default_value(3), "how many of the newest checkpoints to keep")
      ("resume", po::bool_switch(&c.resume), "continue from the newest valid checkpoint in --checkpoint-dir")
      ("max-steps", po::value(&c.max_steps)->default_value(0), "stop after this many steps, with a checkpoint (0: no limit)")
      ("seed", po::value(&c.seed)->default_value(0), "seed for initialisation, shuffling and augmentation")
      ("preprocess", po::value(&preprocess)->default_value("caffe"), "caffe | none")
      ("augment", po::value(&augment)->default_value("none"), "none | flip")
      ("cache", po::value(&cache_mode)->default_value("auto"),
       "auto: compute the frozen base once per sample and train from its output (off with --augment) | off")
      ("cache-mem", po::value(&cache_mem)->default_value("auto"),
       "memory per rank for the feature cache, e.g. 8G (auto: half the node's available memory / its ranks)")
      ("cache-dir", po::value(&c.cache.dir), "where the feature cache spills beyond --cache-mem (default: the temp dir)")
      ("on-bad-image", po::value(&on_bad_image)->default_value("skip"), "skip | fail")
      ("save", po::value(&save), "write the fine-tuned model here (Keras save_weights layout)")
      ("history", po::value(&history_path), "CSV with one row per epoch (phase, epoch, loss, acc, val_loss, val_acc, seconds, img/s)")
      ("threads", po::value(&threads)->default_value(0), "compute threads per rank (0 = the node's cores / its ranks)")
      ("loader-threads", po::value(&c.loader_threads)->default_value(2), "image decoding threads");
  if (!opts.parse(argc, argv)) return 0;
  require(!train_path.empty(), "--train is required (an image folder or an HDF5 dataset)");
  if (!init.empty() && !opts.given("weights")) weights = "none";  // --init brings its own base
  require(shuffle == "true" || shuffle == "false", "--shuffle must be true or false, got '" + shuffle + "'");
  require(classes >= 0, "--classes must be >= 0");
  c.shuffle = shuffle == "true";
  c.preprocess = parse_preprocess(preprocess);
  c.augment = parse_augment(augment);
  c.bn_mode = parse_bn_mode(bn_mode);
  c.cache.mode = parse_cache_mode(cache_mode);
  if (cache_mem != "auto") c.cache.memory_bytes = static_cast<long long>(parse_byte_size(cache_mem, "--cache-mem"));
  if (!c.cache.dir.empty() && c.cache.mode != CacheMode::kOff) {
    std::error_code ec;
    require(std::filesystem::exists(c.cache.dir, ec), "--cache-dir " + c.cache.dir + " does not exist");
    require(std::filesystem::is_directory(c.cache.dir, ec), "--cache-dir " + c.cache.dir + " is not a directory");
    require(::access(c.cache.dir.c_str(), W_OK | X_OK) == 0,
            "--cache-dir " + c.cache.dir + " is not writable by this user (the cache spills there beyond --cache-mem)");
  }
  c.unfreeze_from = unfreeze_from;
  if (opts.given("unfreeze-last") && !unfreeze_from.empty())
    throw UsageError("give --unfreeze-last or --unfreeze-from, not both");
  require(!c.resume || !c.checkpoint_dir.empty(), "--resume needs --checkpoint-dir (where the checkpoints are)");
  require(c.checkpoint_steps >= 0, "--checkpoint-steps must be >= 0");
  require(c.keep_checkpoints >= 1, "--keep-checkpoints must be at least 1");
  require(c.max_steps >= 0, "--max-steps must be >= 0");
  check_image_size(c.image_size);  // before validate(c): the one wording of the minimum
  validate(c);
  if (!unfreeze_from.empty()) {  // checked before any data or MPI work
    Model names_only = build_resnet50(ResNet50Config{32, 1, 1, 1, 3});
    unfreeze_base_from(names_only, unfreeze_from);
  }
  if (!c.checkpoint_dir.empty()) {
    const bool any = has_checkpoints(c.checkpoint_dir);
    require(!c.resume || any, "--resume: no checkpoint (ckpt-*.h5) in --checkpoint-dir " + c.checkpoint_dir);
    // A new run must not mix its checkpoints with an earlier run's (a later --resume would
    // pick whichever is furthest along).
    require(c.resume || !any, "--checkpoint-dir " + c.checkpoint_dir +
                                  " holds checkpoints of an earlier run: add --resume to continue it, or use an "
                                  "empty directory");
  }
  set_threads(threads_per_rank(threads));
  std::ostringstream quiet;  // only rank 0 speaks; the others report errors only
  std::ostream& out = Comm::is_root() ? std::cout : quiet;

  SourceOptions so;
  so.on_bad_image = parse_bad_image_policy(on_bad_image);
  so.threads = parafine::threads();
  so.log = &out;
  const auto train = open_sample_source(train_path, "--train", so);
  const auto val = val_path.empty() ? nullptr : open_sample_source(val_path, "--val", so);
  for (const auto& [source, option, path] : {std::tuple{train.get(), "--train", train_path}, std::tuple{val.get(), "--val", val_path}})
    if (source && (source->classes() == 0 || source->label(0) < 0))
      throw std::runtime_error(std::string(option) + " " + path + " has no 'labels': training and validation need labels");
  if (val && val->class_names() != train->class_names() && !val->class_names().empty())
    throw std::invalid_argument("--val's classes differ from --train's: the label indices would not mean the same thing");
  require(classes == 0 || classes == train->classes(),
          "--classes " + std::to_string(classes) + " but --train has " + std::to_string(train->classes()) + " classes");
  net.classes = train->classes();
  net.image_size = c.image_size;
  Model model = build_resnet50(net);
  if (prepare_model(model, weights, weights_dir, init, c.seed, out)) c.calibrate_bn_samples = 64;
  out << "parafine train: " << train->size() << " training images, " << (val ? val->size() : 0)
      << " validation images, " << net.classes << " classes, " << c.image_size << "x" << c.image_size
      << ", global batch " << c.batch_size << ", " << Comm::size() << " rank(s) x " << parafine::threads()
      << " threads" << std::endl;
  std::ofstream history_csv;
  if (!history_path.empty() && Comm::is_root()) {
    const bool append = c.resume && std::ifstream(history_path).good();  // a resumed run continues the file
    history_csv.open(history_path, append ? std::ios::app : std::ios::trunc);
    if (!history_csv) throw std::runtime_error("--history: cannot write " + history_path);
    if (!append) history_csv << "phase,epoch,loss,acc,val_loss,val_acc,seconds,img_per_s\n" << std::flush;
  }
  const auto history = run_two_phase(model, *train, val.get(), c, out, [&](const EpochStats& s) {
    if (!history_csv.is_open()) return;
    history_csv << s.phase << "," << s.epoch << "," << s.loss << "," << s.accuracy << ","
                << (val ? std::to_string(s.val_loss) : "") << "," << (val ? std::to_string(s.val_accuracy) : "") << ","
                << s.seconds << "," << s.images_per_second << "\n"
                << std::flush;  // a row per epoch survives a crash
  });
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::vector<int> peak_mib{static_cast<int>(usage.ru_maxrss / 1024)};
  const int mine = peak_mib[0];
  Comm::allreduce_max(peak_mib);
  out << "peak memory: " << mine << " MiB on rank 0, at most " << peak_mib[0] << " MiB per rank" << std::endl;
  if (!save.empty() && Comm::is_root()) {
    save_keras_model(model, save, train->class_names());
    out << "model saved to " << save << std::endl;
  }
  if (!history.empty() && val) out << "final validation accuracy " << history.back().val_accuracy << std::endl;
  return 0;
}

}  // namespace parafine
