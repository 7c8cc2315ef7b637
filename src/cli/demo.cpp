// `parafine demo`: the single-process two-phase fine-tuning run on a built-in synthetic
// dataset (a narrow 32x32 ResNet50 by default, so it runs in seconds; --backbone for the others,
// at their smallest input size).
#include <iostream>
#include <string>

#include "cli/cli.hpp"
#include "cli/options.hpp"
#include "parafine/core/compute.hpp"
#include "parafine/data/synthetic_data.hpp"
#include "parafine/dist/comm.hpp"
#include "parafine/io/keras_config_writer.hpp"
#include "parafine/io/keras_weights.hpp"
#include "parafine/io/model_file.hpp"
#include "parafine/io/model_files.hpp"
#include "parafine/io/weights_source.hpp"
#include "parafine/model/backbone.hpp"
#include "parafine/model/initializers.hpp"
#include "parafine/train/trainer.hpp"

namespace po = boost::program_options;

namespace parafine {

namespace {

struct DemoOptions {
  NetworkConfig net;
  BackboneOptions backbone;
  TrainConfig train;
  int train_samples = 0, val_samples = 0, threads = 0;
  std::uint64_t seed = 0;
  std::string save, weights, weights_dir, init;
};

// The allowed range of every numeric option, checked by opts.parse (options.hpp).
void bound_demo_options(CommandOptions& opts) {
  opts.describe_range("image-size",
                      std::string("0 (the backbone's minimum) or ") + kImageSizeRange);
  opts.bound("width", 1, 1024, "64 = the real network");
  opts.bound("classes", 1, kMaxHeadUnits);
  opts.bound("train-samples", 1, 1000000);
  opts.bound("val-samples", 1, 1000000);
}

// Returns false after printing --help.
bool parse_demo_options(int argc, char** argv, DemoOptions& o) {
  NetworkConfig& net = o.net;
  TrainConfig& train = o.train;
  CommandOptions opts("demo", "demo [options]");
  auto add = opts.add();
  add_backbone_options(opts, o.backbone);
  add("image-size", po::value(&net.image_size)->default_value(0),
      "input height and width (0: the backbone's minimum, 32; 75 for inception_v3)");
  add("width", po::value(&net.width)->default_value(16),
      "ResNet conv1 filters (64 = the real network; resnet backbones only)");
  add("classes", po::value(&net.classes)->default_value(3), "number of classes");
  add("train-samples", po::value(&o.train_samples)->default_value(300),
      "synthetic training images");
  add("val-samples", po::value(&o.val_samples)->default_value(150), "synthetic validation images");
  // The demo's schedule: a narrow network, fewer epochs, a larger phase-2 rate.
  net.head_units = 64;
  train.phase1_epochs = 8;
  train.phase2_epochs = 3;
  train.phase2_lr = 1e-4;
  add_schedule_options(opts, train, net);
  add("seed", po::value(&o.seed)->default_value(0), "seed for weights, data and shuffling");
  add_threads_option(opts, o.threads, "compute threads");
  add("weights", po::value(&o.weights)->default_value("none"),
      "base weights: none (random), imagenet or FILE.h5");
  add("weights-dir", po::value(&o.weights_dir), "directory holding the imagenet notop file");
  add("init", po::value(&o.init),
      "start from this full model (base + head), e.g. one written by --save");
  add("save", po::value(&o.save),
      "write the trained model here, in the format its suffix names (as train --save): .keras "
      "| .weights.h5 | .h5 or .hdf5 (tf.keras save_weights layout)");
  bound_demo_options(opts);
  if (!opts.parse(argc, argv)) return false;
  const Backbone backbone = backbone_option(o.backbone.name);
  const bool resnet = is_resnet(backbone);
  if (net.image_size == 0) net.image_size = backbone_info(backbone).min_size;
  apply_backbone_options(o.backbone, net, net.image_size);
  if (!resnet) {
    if (opts.given("width"))
      throw UsageError("--width sets a ResNet's conv1 filters; " + o.backbone.name +
                       " is built at Keras's width (use --alpha for mobilenet_v2)");
    net.width = 64;
  }
  check_weights_backbone("--weights", o.weights, net);
  check_weights_backbone("--init", o.init, net);
  if (!o.save.empty()) {
    try {
      model_format_of(o.save, "--save");
    } catch (const std::invalid_argument& e) {
      throw UsageError(e.what());
    }
  }
  check_output_path("--save", o.save);
  return true;
}

}  // namespace

int run_demo(int argc, char** argv) {
  DemoOptions o;
  if (!parse_demo_options(argc, argv, o)) return 0;
  const NetworkConfig& net = o.net;
  TrainConfig& train = o.train;
  set_threads(threads_per_rank(o.threads));
  train.seed = o.seed;
  Model model = build_network(net);
  if (prepare_model(model, net, o.weights, o.weights_dir, o.init, o.seed, std::cout))
    train.calibrate_bn_samples = 64;  // a random base needs sane BN statistics
  const InMemorySource train_set =
      make_synthetic_source(o.train_samples, net.image_size, net.classes, o.seed + 1);
  const InMemorySource val_set =
      make_synthetic_source(o.val_samples, net.image_size, net.classes, o.seed + 2);
  train.image_size = net.image_size;
  std::cout << "parafine demo: " << backbone_info(net.backbone).keras_name << " (";
  if (is_resnet(net.backbone)) std::cout << "width " << net.width << ", ";
  if (net.backbone == Backbone::kMobileNetV2)
    std::cout << "alpha " << alpha_text(net.alpha) << ", ";
  std::cout << net.image_size << "x" << net.image_size << ", " << model.size() << " layers, "
            << model.params().size() << " weights) on " << o.train_samples
            << " synthetic training / " << o.val_samples << " validation images, " << net.classes
            << " classes, " << parafine::threads() << " threads" << std::endl;
  if (const std::string note = backbone_note(net); !note.empty()) std::cout << note << std::endl;
  const auto history = run_two_phase(model, train_set, &val_set, train, std::cout);
  if (!history.empty())
    std::cout << "final validation accuracy " << history.back().val_accuracy << " (chance "
              << 1.0 / net.classes << ")" << std::endl;
  if (!o.save.empty() && Comm::is_root()) {
    save_model_file(model, graph_of_model(model), o.save, train_set.class_names());
    std::cout << "model saved to " << o.save << std::endl;
  }
  return 0;
}

}  // namespace parafine
