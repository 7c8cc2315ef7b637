// `parafine inspect FILE.h5`: the layout of a Keras weight file, each layer with its weight
// shapes and parameter count, the totals, and what (if anything) would stop it loading.
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "cli/cli.hpp"
#include "cli/options.hpp"
#include "parafine/io/keras_weights.hpp"

namespace po = boost::program_options;

namespace parafine {

namespace {

std::string with_commas(std::size_t n) {
  std::string s = std::to_string(n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

// Would this file load as base weights (--weights) or as a full model (--init, predict)?
void report_loadability(const H5File& h5, const KerasWeightFile& file) {
  const bool has_head = file.find("dense") && file.find("dense_1");
  NetworkConfig config;
  try {
    if (has_head) {
      config = resnet50_config_of(file, 224);
    } else if (const StoredLayer* conv1 = file.find("conv1_conv")) {
      for (const auto& w : conv1->weights)
        if (w.var == "kernel" && w.shape.size() == 4) config.width = w.shape[3];
    }
  } catch (const std::exception& e) {
    std::cout << "does not load: " << e.what() << "\n";
    return;
  }
  Model model = build_network(config);
  const WeightScope scope = has_head ? WeightScope::kFull : WeightScope::kBase;
  const WeightCheck check = check_and_load_keras_weights(model, h5, file, scope, false);
  for (const auto& n : check.notes) std::cout << "note: " << n << "\n";
  if (check.problems.empty()) {
    std::cout << "loads as "
              << (has_head ? "a full model (--init, predict, evaluate)"
                           : "base weights (--weights)")
              << ": ResNet50 width " << config.width;
    if (has_head)
      std::cout << ", head " << config.head_units << " units, " << config.classes << " classes";
    std::cout << "\n";
    return;
  }
  std::cout << "does not load as " << (has_head ? "a full model" : "ResNet50 base weights") << ", "
            << check.problems.size() << " problem(s):\n";
  for (const auto& p : check.problems) std::cout << "  " << p << "\n";
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
  CommandOptions opts("inspect", "inspect FILE.h5");
  opts.add()("file", po::value(&files), "the Keras weight file (also the first argument)");
  opts.positional("file");
  if (!opts.parse(argc, argv)) return 0;
  if (files.size() != 1) throw UsageError("usage: parafine inspect FILE.h5");
  // Run first where a crash of HDF5 on a damaged file is a message (its output discarded).
  parse_untrusted_hdf5(files[0], "Keras weight file", [&] { print_inspection(files[0]); });
  return 0;
}

}  // namespace parafine
