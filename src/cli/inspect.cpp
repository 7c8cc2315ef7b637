// `parafine inspect FILE.h5`: the layout of a Keras weight file, each layer with its weight
// shapes and parameter count, the totals, which backbone it holds and what (if anything) would
// stop it loading. `parafine inspect --backbone NAME`: the network parafine builds, printed as
// Keras's model.summary() prints it.
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "cli/cli.hpp"
#include "cli/options.hpp"
#include "parafine/io/backbone_of_file.hpp"
#include "parafine/io/keras_weights.hpp"
#include "parafine/model/model_summary.hpp"

namespace po = boost::program_options;

namespace parafine {

namespace {

// Would this file load as base weights (--weights) or as a full model (--init, predict)?
void report_loadability(const H5File& h5, const KerasWeightFile& file) {
  const std::optional<FileBackbone> held = backbone_of_file(file);
  if (!held) {
    std::cout << "does not load: its layers are not those of a backbone parafine builds\n";
    return;
  }
  const bool has_head = file.find("dense") && file.find("dense_1");
  NetworkConfig config;
  try {
    if (has_head) {
      config = network_config_of(file, 0);
    } else {
      config.backbone = held->backbone;
      config.alpha = held->alpha;
      config.width = held->width;
      config.channels = held->channels;
      config.image_size = backbone_info(held->backbone).default_size;
    }
  } catch (const std::exception& e) {
    std::cout << "does not load: " << e.what() << "\n";
    return;
  }
  const BackboneInfo& info = backbone_info(config.backbone);
  std::string what = std::string(info.keras_name) + " (--backbone " + info.name;
  if (config.backbone == Backbone::kMobileNetV2) what += " --alpha " + alpha_text(config.alpha);
  what += ")";
  if (is_resnet(config.backbone) && config.width != 64)
    what += ", width " + std::to_string(config.width);
  Model model = build_network(config);
  const WeightScope scope = has_head ? WeightScope::kFull : WeightScope::kBase;
  const WeightCheck check = check_and_load_keras_weights(model, h5, file, scope, false);
  for (const auto& n : check.notes) std::cout << "note: " << n << "\n";
  if (check.problems.empty()) {
    std::cout << "loads as "
              << (has_head ? "a full model (--init, predict, evaluate)"
                           : "base weights (--weights)")
              << ": " << what;
    if (has_head)
      std::cout << ", head " << config.head_units << " units, " << config.classes << " classes";
    std::cout << "\n";
    return;
  }
  std::cout << "does not load as " << (has_head ? "a full model" : "base weights") << " of " << what
            << ", " << check.problems.size() << " problem(s):\n";
  for (const auto& p : check.problems) std::cout << "  " << p << "\n";
}

// Keras's name for the base model: ResNet50's "resnet50", MobileNetV2's "mobilenetv2_1.00_224".
std::string keras_model_name(const NetworkConfig& c) {
  if (c.backbone != Backbone::kMobileNetV2) return backbone_info(c.backbone).name;
  char alpha[16];
  std::snprintf(alpha, sizeof alpha, "%0.2f", static_cast<double>(c.alpha));
  const int rows = mobilenet_v2_weight_rows(c.image_size);
  return std::string("mobilenetv2_") + alpha + "_" + std::to_string(rows);
}

void print_inspection(const std::string& path) {
  H5File h5(path, H5File::Mode::kRead);
  const KerasWeightFile file = read_keras_weight_file(h5);
  std::cout << "file: " << file.path << "\nlayout: " << layout_name(file.layout);
  if (!file.keras_version.empty()) std::cout << " (keras_version " << file.keras_version << ")";
  if (file.root != "/") std::cout << ", weights under " << file.root;
  std::cout << "\n";
  std::size_t total = 0;
  for (const StoredLayer& l : file.layers) {
    std::ostringstream shapes;
    std::size_t count = 0;
    for (const StoredWeight& w : l.weights) {
      std::size_t n = 1;
      for (int d : w.shape) n *= static_cast<std::size_t>(d);
      count += n;
      shapes << " " << (w.var.empty() ? w.stored_name : w.var) << dims_str(w.shape);
      if (!w.is_float) shapes << "(" << w.dtype << ")";
    }
    total += count;
    std::string name = l.name == l.stored_name ? l.name : l.stored_name + " (" + l.name + ")";
    std::cout << "  " << std::left << std::setw(44) << name << std::right << std::setw(12)
              << with_commas(count) << " " << shapes.str() << "\n";
  }
  std::cout << "total: " << file.layers.size() << " layers with weights, " << with_commas(total)
            << " parameters\n";
  report_loadability(h5, file);
}

}  // namespace

int run_inspect(int argc, char** argv) {
  std::vector<std::string> files;
  BackboneOptions backbone;
  NetworkConfig net;
  int image_size = 0, unfreeze_last = -1;
  CommandOptions opts("inspect", "inspect FILE.h5 | inspect --backbone NAME [options]");
  auto add = opts.add();
  add("file", po::value(&files), "the Keras weight file (also the first argument)");
  add_backbone_options(opts, backbone);
  add("image-size", po::value(&image_size)->default_value(0),
      "with --backbone: input size (0: the backbone's default)");
  add("classes", po::value(&net.classes)->default_value(net.classes), "with --backbone: classes");
  add("head-units", po::value(&net.head_units)->default_value(net.head_units),
      "with --backbone: units of the dense head layer");
  add("unfreeze-last", po::value(&unfreeze_last)->default_value(-1),
      "with --backbone: count trainable parameters as phase 2 does (-1: everything trainable)");
  opts.positional("file");
  opts.bound("classes", 1, kMaxHeadUnits);
  opts.bound("head-units", 1, kMaxHeadUnits);
  if (!opts.parse(argc, argv)) return 0;
  if (!files.empty() && opts.given("backbone"))
    throw UsageError(
        "give FILE.h5 or --backbone NAME, not both (a file says which backbone it holds)");
  if (files.empty() && opts.given("backbone")) {
    apply_backbone_options(backbone, net, image_size);
    Model model = build_network(net);
    if (unfreeze_last >= 0) {
      freeze_base(model);
      try {
        unfreeze_last_base_layers(model, unfreeze_last);
      } catch (const std::invalid_argument& e) {
        throw UsageError(e.what());
      }
    }
    print_model_summary(model, keras_model_name(net) + " + head", std::cout);
    return 0;
  }
  if (files.size() != 1)
    throw UsageError("usage: parafine inspect FILE.h5, or parafine inspect --backbone NAME");
  if (const int code = inspect_model_file(files[0]); code >= 0) return code;
  // Run first where a crash of HDF5 on a damaged file is a message (its output discarded).
  parse_untrusted_hdf5(files[0], "Keras weight file", [&] { print_inspection(files[0]); });
  return 0;
}

}  // namespace parafine
