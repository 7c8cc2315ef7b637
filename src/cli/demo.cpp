// `parafine demo`: the single-process two-phase fine-tuning run on a built-in synthetic
// dataset (a narrow 32x32 ResNet50 by default, so it runs in seconds).
#include <boost/program_options.hpp>
#include <iostream>
#include <string>

#include "cli/cli.hpp"
#include "parafine/core/compute.hpp"
#include "parafine/model/initializers.hpp"
#include "parafine/io/keras_weights.hpp"
#include "parafine/io/weights_source.hpp"
#include "parafine/io/model_file.hpp"
#include "parafine/model/resnet50.hpp"
#include "parafine/train/trainer.hpp"

namespace po = boost::program_options;

namespace parafine {

int run_demo(int argc, char** argv) {
  ResNet50Config net;
  TrainConfig train;
  int train_samples = 0, val_samples = 0, threads = 0;
  std::uint64_t seed = 0;
  std::string save, weights, weights_dir, init;
  po::options_description opts("parafine demo options");
  opts.add_options()("help,h", "show this help")
      ("image-size", po::value(&net.image_size)->default_value(32), "input height and width (at least 32)")
      ("width", po::value(&net.width)->default_value(16), "ResNet50 conv1 filters (64 = the real network)")
      ("classes", po::value(&net.classes)->default_value(3), "number of classes")
      ("head-units", po::value(&net.head_units)->default_value(64), "units of the dense head layer")
      ("train-samples", po::value(&train_samples)->default_value(300), "synthetic training images")
      ("val-samples", po::value(&val_samples)->default_value(150), "synthetic validation images")
      ("batch-size", po::value(&train.batch_size)->default_value(32), "batch size")
      ("phase1-epochs", po::value(&train.phase1_epochs)->default_value(8), "epochs with the base frozen")
      ("phase1-lr", po::value(&train.phase1_lr)->default_value(1e-3), "phase 1 Adam learning rate")
      ("phase2-epochs", po::value(&train.phase2_epochs)->default_value(3), "epochs with the last layers unfrozen")
      ("phase2-lr", po::value(&train.phase2_lr)->default_value(1e-4), "phase 2 Adam learning rate")
      ("unfreeze-last", po::value(&train.unfreeze_last)->default_value(10), "base layers unfrozen in phase 2")
      ("seed", po::value(&seed)->default_value(0), "seed for weights, data and shuffling")
      ("threads", po::value(&threads)->default_value(0), "threads (0 = all cores)")
      ("weights", po::value(&weights)->default_value("none"), "base weights: none (random), imagenet or FILE.h5")
      ("weights-dir", po::value(&weights_dir), "directory holding the imagenet notop file")
      ("init", po::value(&init), "start from this full model (base + head), e.g. one written by --save")
      ("save", po::value(&save), "write the trained model here (Keras save_weights layout)");
  po::variables_map vm;
  po::store(po::parse_command_line(argc, argv, opts), vm);
  if (vm.count("help")) {
    std::cout << "usage: parafine demo [options]\n" << opts;
    return 0;
  }
  po::notify(vm);
  if (threads > 0) set_threads(threads);
  train.seed = seed;
  Model model = build_resnet50(net);
  if (prepare_model(model, weights, weights_dir, init, seed, std::cout))
    train.calibrate_bn_samples = 64;  // a random base needs sane BN statistics
  const InMemorySource train_set = make_synthetic_source(train_samples, net.image_size, net.classes, seed + 1);
  const InMemorySource val_set = make_synthetic_source(val_samples, net.image_size, net.classes, seed + 2);
  train.image_size = net.image_size;
  std::cout << "parafine demo: ResNet50 (width " << net.width << ", " << net.image_size << "x"
            << net.image_size << ", " << model.size() << " layers, " << model.params().size()
            << " weights) on " << train_samples << " synthetic training / " << val_samples
            << " validation images, " << net.classes << " classes, " << parafine::threads() << " threads" << std::endl;
  const auto history = run_two_phase(model, train_set, &val_set, train, std::cout);
  if (!history.empty())
    std::cout << "final validation accuracy " << history.back().val_accuracy << " (chance "
              << 1.0 / net.classes << ")" << std::endl;
  if (!save.empty()) {
    save_keras_model(model, save, train_set.class_names());
    std::cout << "model saved to " << save << std::endl;
  }
  return 0;
}

}  // namespace parafine
