// The options steps every command shares, and the --threads default (see options.hpp).
#include "cli/options.hpp"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "cli/cli.hpp"
#include "parafine/core/thread_budget.hpp"
#include "parafine/dist/comm.hpp"
#include "parafine/model/backbone.hpp"
#include "parafine/train/train_config.hpp"

namespace po = boost::program_options;

namespace parafine {

CommandOptions::CommandOptions(const std::string& command, const std::string& usage)
    : usage_(usage), description_("parafine " + command + " options") {
  auto add = description_.add_options();
  add("help,h", "show this help");
  add("config", po::value<std::string>(), "INI file with any of these options");
}

po::options_description_easy_init CommandOptions::add() {
  return description_.add_options();
}

void CommandOptions::positional(const char* name) {
  positional_.add(name, -1);
}

namespace {

// "--head-units" or "head-units" (a --config key) as the bounds_ key.
std::string bare_name(const po::error& e) {
  const auto* named = dynamic_cast<const po::error_with_option_name*>(&e);
  if (!named) return "";
  std::string name = named->get_option_name();
  name.erase(0, name.find_first_not_of('-'));
  return name;
}

}  // namespace

// For a bounded option whose value did not parse (e.g. 3e9 or 1e-9 for an int), the range.
std::string CommandOptions::range_text(const std::string& name) const {
  const auto b = bounds_.find(name);
  return b == bounds_.end() ? "" : "; allowed: " + b->second.range;
}

bool CommandOptions::parse(int argc, char** argv) {
  try {
    auto parser = po::command_line_parser(argc, argv).options(description_).positional(positional_);
    po::store(parser.run(), values_);
    if (values_.count("help")) {
      std::cout << "usage: parafine " << usage_ << "\n" << description_;
      return false;
    }
    if (values_.count("config")) read_config_file(values_["config"].as<std::string>());
    po::notify(values_);
  } catch (const po::error& e) {
    throw UsageError(e.what() + range_text(bare_name(e)));
  }
  check_bounds();
  return true;
}

void CommandOptions::check_bounds() const {
  for (const auto& [name, b] : bounds_) {
    if (!b.compare || !values_.count(name)) continue;
    const int where = b.compare(values_[name]);
    if (where == 0) continue;
    throw UsageError("--" + name + " must be " +
                     (where < 0 ? "at least " + b.min : "at most " + b.max) + ", got " +
                     b.show(values_[name]) + "; allowed: " + b.range);
  }
}

// po::store keeps a value already stored, so what the command line gave wins over the file.
void CommandOptions::read_config_file(const std::string& path) {
  std::ifstream file(path);
  if (!file) throw UsageError("--config: cannot read " + path);
  try {
    po::store(po::parse_config_file(file, description_), values_);
  } catch (const po::error& e) {
    throw UsageError("--config " + path + ": " + e.what() + range_text(bare_name(e)));
  }
}

bool CommandOptions::given(const char* name) const {
  return values_.count(name) && !values_[name].defaulted();
}

void check_image_size_option(int image_size, Backbone backbone) {
  if (image_size > kMaxImageSize)
    throw UsageError("--image-size must be at most " + std::to_string(kMaxImageSize) + ", got " +
                     std::to_string(image_size) +
                     "; allowed: " + std::to_string(backbone_info(backbone).min_size) + ".." +
                     std::to_string(kMaxImageSize) + " (a larger image does not fit in memory)");
  try {
    check_image_size(image_size, backbone);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
}

void add_backbone_options(CommandOptions& opts, BackboneOptions& b) {
  std::string names;
  for (const BackboneInfo& i : backbones())
    names += (names.empty() ? "" : " | ") + std::string(i.name);
  auto add = opts.add();
  add("backbone", po::value(&b.name)->default_value(b.name), names.c_str());
  add("alpha", po::value(&b.alpha)->default_value(b.alpha, "1.0"),
      "mobilenet_v2 width multiplier: 0.35 | 0.5 | 0.75 | 1.0 | 1.3 | 1.4");
}

Backbone backbone_option(const std::string& name) {
  try {
    return parse_backbone(name);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
}

void apply_backbone_options(const BackboneOptions& b, NetworkConfig& net, int& image_size) {
  net.backbone = backbone_option(b.name);
  try {
    net.alpha = check_alpha(b.alpha, net.backbone);  // the listed value: 0.350 is 0.35
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  if (image_size == 0) image_size = backbone_info(net.backbone).default_size;
  check_image_size_option(image_size, net.backbone);
  net.image_size = image_size;
}

void add_preprocess_option(CommandOptions& opts, std::string& preprocess) {
  opts.add()("preprocess", po::value(&preprocess)->default_value("auto"),
             "auto (the backbone's preprocess_input: caffe for resnet and vgg, tf for "
             "inception_v3 and mobilenet_v2; none for a model file with its own Rescaling or "
             "Normalization input stage) | caffe | tf | torch | none | rescale:F (x * F, e.g. "
             "rescale:1/255 as ImageDataGenerator(rescale=1/255))");
}

Preprocess preprocess_option(const std::string& text, Backbone backbone) {
  if (text == "auto") return parse_preprocess(backbone_info(backbone).preprocess);
  try {
    return parse_preprocess(text);
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string(e.what()) + " (or auto)");
  }
}

void check_output_path(const char* option, const std::string& path) {
  if (path.empty()) return;
  namespace fs = std::filesystem;
  const std::string what = std::string(option) + " " + path + ": ";
  fs::path dir = fs::path(path).parent_path();
  if (dir.empty()) dir = ".";
  std::error_code ec;
  if (!fs::exists(dir, ec))
    throw UsageError(what + "directory " + dir.string() +
                     " does not exist; create it or choose another path");
  if (!fs::is_directory(dir, ec)) throw UsageError(what + dir.string() + " is not a directory");
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    throw UsageError(what + "directory " + dir.string() +
                     " is not writable by this user; choose another path");
  if (fs::is_directory(path, ec)) throw UsageError(what + "is a directory; give a file name");
  if (fs::exists(path, ec) && ::access(path.c_str(), W_OK) != 0)
    throw UsageError(what + "the existing file is not writable by this user");
}

void add_schedule_options(CommandOptions& opts, TrainConfig& c, NetworkConfig& net) {
  auto add = opts.add();
  add("head-units", po::value(&net.head_units)->default_value(net.head_units),
      "units of the dense head layer");
  add("batch-size", po::value(&c.batch_size)->default_value(c.batch_size), "global batch size");
  add("phase1-epochs", po::value(&c.phase1_epochs)->default_value(c.phase1_epochs),
      "epochs with the base frozen");
  add("phase1-lr", po::value(&c.phase1_lr)->default_value(c.phase1_lr),
      "phase 1 Adam learning rate");
  add("phase2-epochs", po::value(&c.phase2_epochs)->default_value(c.phase2_epochs),
      "epochs with the last layers unfrozen");
  add("phase2-lr", po::value(&c.phase2_lr)->default_value(c.phase2_lr),
      "phase 2 Adam learning rate (a fresh Adam)");
  add("unfreeze-last", po::value(&c.unfreeze_last)->default_value(c.unfreeze_last),
      "base layers (Keras layers[-N:]) unfrozen in phase 2");
  opts.bound("head-units", 1, kMaxHeadUnits);
  opts.bound("batch-size", 1, kMaxBatchSize);
  opts.bound("phase1-epochs", 0, kMaxEpochs);
  opts.bound("phase2-epochs", 0, kMaxEpochs);
}

void add_threads_option(CommandOptions& opts, int& threads, const std::string& use) {
  opts.add()("threads", po::value(&threads)->default_value(0),
             (use + " per rank (0 = OMP_NUM_THREADS, else SLURM_CPUS_PER_TASK, else the CPU "
                    "affinity mask / the ranks sharing it, capped by the cgroup CPU quota)")
                 .c_str());
  opts.bound("threads", 0, kMaxThreads, "0: the default");
}

int threads_per_rank(int requested, std::ostream* log) {
  if (requested < 0 || requested > kMaxThreads)
    throw UsageError("--threads must be between 0 and " + std::to_string(kMaxThreads) + ", got " +
                     std::to_string(requested) + " (0: the default)");
  unsigned mask_key = 0;
  affinity_cpus(&mask_key);
  // Collective only without --threads (the same on every rank: one command line).
  const int on_node = requested > 0 ? 1 : Comm::ranks_on_node();
  const int sharing = requested > 0 ? 1 : Comm::ranks_on_node_sharing(mask_key);
  const ThreadBudget b = decide_threads(requested, read_thread_sources(on_node, sharing));
  const int threads = std::min(b.threads, kMaxThreads);
  if (log) *log << "threads per rank: " << threads << " (" << b.source << ")" << std::endl;
  return threads;
}

void add_precision_option(CommandOptions& opts, std::string& precision) {
  opts.add()("precision", po::value(&precision)->default_value("float32"),
             "float32 | mixed_bfloat16 (Keras's policy: float32 variables, optimizer, "
             "BatchNormalization and loss; bfloat16 activations, gradients and Conv2D/Dense "
             "weights) | auto");
}

Precision resolve_precision(const std::string& requested, std::ostream& log) {
  CpuBfloat16 cpu = cpu_bfloat16();
  // The choice must not differ between ranks: a rank without bfloat16 decides for all.
  std::vector<int> lacks{cpu.avx512_bf16 || cpu.amx_bf16 ? 0 : 1};
  Comm::allreduce_max(lacks);
  if (lacks[0]) cpu = CpuBfloat16{};
  std::string note;
  Precision p;
  try {
    p = choose_precision(requested, cpu, note);
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string(e.what()) +
                     (Comm::size() > 1 ? " (on at least one rank's node)" : ""));
  }
  if (!note.empty()) log << note << std::endl;
  return p;
}

}  // namespace parafine
