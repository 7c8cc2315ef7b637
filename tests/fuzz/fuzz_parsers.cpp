// The fuzz target's parser entries (see fuzz_parsers.hpp): each runs one reader of untrusted
// input through the public API, as the commands do.
#include "fuzz_parsers.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>

#include "child_process.hpp"
#include "parafine/core/adam.hpp"
#include "parafine/data/h5_dataset.hpp"
#include "parafine/data/image_decode.hpp"
#include "parafine/data/sample_source.hpp"
#include "parafine/io/backbone_of_file.hpp"
#include "parafine/io/keras_config_writer.hpp"
#include "parafine/io/keras_weights.hpp"
#include "parafine/io/model_files.hpp"
#include "parafine/io/model_from_config.hpp"
#include "parafine/model/backbone.hpp"
#include "parafine/train/checkpoint.hpp"

namespace fs = std::filesystem;

namespace parafine {
namespace fuzz {

namespace {

constexpr int kSampleImageSize = 16;  // samples are resized to this (the corpus stores 8x10)
constexpr int kMaxSamplesReadInFull = 256;

// The position the checkpoint seed is saved at: mid-epoch, with partial sums, so every field
// of the file is filled.
TrainPosition seed_position() {
  TrainPosition p;
  p.phase = 2;
  p.epoch = 3;
  p.step = 5;
  p.partial.loss_sum = 7.25;
  p.seed = 12345;
  p.batch_size = 4;
  p.samples = 40;
  return p;
}

Bytes read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open");
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void run_image(const std::string& path) {
  const Bytes bytes = read_bytes(path);
  const RgbImage image = decode_image_memory(bytes.data(), bytes.size(), path);
  if (image.pixels.size() != static_cast<std::size_t>(image.height) * image.width * 3)
    throw WrongResult("decoded image has " + std::to_string(image.pixels.size()) + " bytes for " +
                      std::to_string(image.height) + "x" + std::to_string(image.width) +
                      " RGB");  // a silently wrong result
}

// Validates the dataset, then reads samples through H5Source as training does: every sample
// when there are at most kMaxSamplesReadInFull (a mutated N can reach INT_MAX over fill values
// of unallocated chunks), else the first and last half of that many.
void run_h5_dataset(const std::string& path) {
  const H5Source source(path);  // as train, predict and evaluate open a dataset
  const H5ImageDataset& dataset = source.dataset();
  std::vector<float> pixels(static_cast<std::size_t>(kSampleImageSize) * kSampleImageSize * 3);
  const int n = source.size();
  const int half = kMaxSamplesReadInFull / 2;
  for (int i = 0; i < n; ++i) {
    if (n > kMaxSamplesReadInFull && i == half) i = n - half;
    source.load(i, kSampleImageSize, pixels.data());
    const int label = source.label(i);
    if (dataset.has_labels() && (label < 0 || label >= source.classes()))
      throw WrongResult("label " + std::to_string(label) + " outside [0, " +
                        std::to_string(source.classes()) + ")");
  }
}

// The structure reader and the checks `parafine inspect` runs (which report, not throw, a shape
// mismatch), behind the same checking child as inspect, then the all-or-nothing load of
// --weights / --init.
void run_keras(const std::string& path, Model& model) {
  WeightScope scope = WeightScope::kBase;
  parse_untrusted_hdf5(path, "Keras weight file", [&] {
    const H5File h5(path, H5File::Mode::kRead);
    const KerasWeightFile file = read_keras_weight_file(h5);
    if (file.find("dense") && file.find("dense_1")) {
      scope = WeightScope::kFull;
      network_config_of(file, 32);
    }
    check_and_load_keras_weights(model, h5, file, scope, false);
  });
  std::ostringstream log;
  load_keras_weights(model, path, scope, &log);
}

void run_checkpoint(const std::string& path, const Model& model) {
  std::ostringstream log;
  Checkpoint checkpoint;
  try {
    checkpoint = load_latest_checkpoint(fs::path(path).parent_path(), model, log);
  } catch (const std::runtime_error& e) {  // the reason a file was skipped is in the log
    throw std::runtime_error(std::string(e.what()) + " | log: " + log.str());
  }
  if (checkpoint.params.size() != model.params().size() ||
      checkpoint.state.size() != model.state().size())
    throw WrongResult("checkpoint accepted with blocks of another size than the model's");
}

}  // namespace

const std::vector<ParserSpec>& parser_specs() {
  static const std::vector<ParserSpec> specs = {
      {"image", "image", false},      {"h5_dataset", "h5_dataset", true},
      {"keras_tf", "keras_tf", true}, {"keras1", "keras1", true},
      {"checkpoint", "", true},       {"keras_model", "", false},
      {"keras_config", "", false},
  };
  return specs;
}

const ParserSpec* find_parser(const std::string& name) {
  for (const ParserSpec& spec : parser_specs())
    if (spec.name == name) return &spec;
  return nullptr;
}

Model build_fuzz_model() {
  NetworkConfig config;
  config.image_size = 32;
  config.classes = 2;
  config.head_units = 4;
  config.width = 2;
  return build_network(config);
}

std::string write_checkpoint_seed(const std::string& dir, const Model& model) {
  fs::create_directories(dir);
  Model frozen = build_fuzz_model();
  frozen.set_weights(model.params(), model.state());
  freeze_base(frozen);  // phase 1: Adam over the head only keeps the file small
  Adam adam(frozen.trainable_size(), 1e-3);
  for (std::size_t i = 0; i < adam.m().size(); ++i) adam.m()[i] = 1e-3f * static_cast<float>(i);
  save_checkpoint(dir, frozen, &adam, seed_position(), 1, "image_size=32 seed=12345");
  return (fs::path(dir) / checkpoint_name(seed_position())).string();
}

std::string write_keras_model_seed(const std::string& dir, const Model& model) {
  fs::create_directories(dir);
  const std::string path = (fs::path(dir) / "seed.keras").string();
  save_model_file(model, graph_of_model(model), path, {"cat", "dog"});
  return path;
}

// The config.json parafine writes for the fuzz model, alone: mutants of it reach the JSON
// reader and the model builder (inside a .keras, the zip's CRC stops nearly all of them).
std::string write_keras_config_seed(const std::string& dir, const Model& model) {
  fs::create_directories(dir);
  const std::string path = (fs::path(dir) / "config.json").string();
  std::ofstream(path) << keras3_model_config(graph_of_model(model), model);
  return path;
}

std::string write_generated_seed(const ParserSpec& spec, const std::string& dir,
                                 const Model& model) {
  if (spec.name == "keras_model") return write_keras_model_seed(dir, model);
  if (spec.name == "keras_config") return write_keras_config_seed(dir, model);
  return write_checkpoint_seed(dir, model);
}

std::string mutant_path(const ParserSpec& spec, const std::string& work_dir,
                        const std::string& extension) {
  if (spec.name == "checkpoint")
    return (fs::path(work_dir) / "checkpoint_dir" / checkpoint_name(seed_position())).string();
  return (fs::path(work_dir) / ("mutant" + extension)).string();
}

void run_parser(const ParserSpec& spec, const std::string& path, Model& model) {
  if (spec.name == "image") return run_image(path);
  if (spec.name == "h5_dataset") return run_h5_dataset(path);
  if (spec.name == "keras_tf" || spec.name == "keras1") return run_keras(path, model);
  if (spec.name == "checkpoint") return run_checkpoint(path, model);
  if (spec.name == "keras_config") {  // the text of a config.json, parsed and built
    std::ifstream in(path, std::ios::binary);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const KerasGraph graph = parse_keras_config(text, path);
    const Model built = model_from_graph(graph, 0, path);
    if (built.size() != static_cast<int>(graph.nodes.size()))
      throw WrongResult("a model of another size than its config's layer count");
    return;
  }
  if (spec.name == "keras_model") {  // a .keras: zip, config.json, weights, the model built
    const LoadedModel loaded = load_model_file(path);
    if (loaded.model.size() == 0) throw WrongResult("a .keras accepted as a model without layers");
    return;
  }
  throw std::invalid_argument("unknown parser " + spec.name);
}

}  // namespace fuzz
}  // namespace parafine
