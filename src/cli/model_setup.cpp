// Building the starting model of a training run from --init / --weights (see cli.hpp).
#include <optional>
#include <ostream>

#include "cli/cli.hpp"
#include "cli/options.hpp"
#include "parafine/core/out_of_memory.hpp"
#include "parafine/io/backbone_of_file.hpp"
#include "parafine/io/keras_weights.hpp"
#include "parafine/io/model_from_config.hpp"
#include "parafine/io/weights_source.hpp"
#include "parafine/layers/dense.hpp"
#include "parafine/model/initializers.hpp"
#include "parafine/train/evaluation.hpp"

namespace parafine {

bool prepare_model(Model& model, const NetworkConfig& net, const std::string& weights,
                   const std::string& weights_dir, const std::string& init, std::uint64_t seed,
                   std::ostream& log) {
  keras_initialize(model, seed);
  if (!init.empty()) {
    if (weights != "none") throw UsageError("give --weights or --init, not both");
    load_keras_weights(model, init, WeightScope::kFull, &log);
    log << "initialised from the full model " << init << std::endl;
    return false;
  }
  const std::string file = resolve_weights(weights, weights_dir, net);
  if (file.empty()) return true;
  load_keras_weights(model, file, WeightScope::kBase, &log);
  log << "base weights loaded from " << file << std::endl;
  return false;
}

LoadedModel load_model_option(const std::string& option, const std::string& path, int image_size,
                              int fallback_size) {
  try {
    model_format_of(path, option);
    return load_model_file(path, image_size, fallback_size);
  } catch (const OutOfMemory&) {
    throw;
  } catch (const std::exception& e) {
    const std::string what = e.what();
    throw UsageError(what.rfind(option, 0) == 0 ? what : option + " " + what);
  }
}

std::vector<std::string> reasons_not_trainable(const LoadedModel& loaded) {
  const Model& model = loaded.model;
  std::vector<std::string> reasons = training_problems(loaded.graph);
  try {
    output_loss(model);
  } catch (const std::invalid_argument& e) {
    reasons.push_back(e.what());
  }
  return reasons;
}

Preprocess model_preprocess(const std::string& text, const LoadedModel& loaded, std::ostream& log) {
  if (text != "auto") return preprocess_option(text, Backbone::kResNet50);
  if (loaded.network) return preprocess_option("auto", loaded.network->backbone);
  const Model& m = loaded.model;
  for (int i = 1; i < m.size(); ++i) {
    const std::string type = m.layer(i).type();
    if (type == "Rescaling" || type == "Normalization") return Preprocess::kNone;
    if (type.rfind("Random", 0) != 0 && type != "InputLayer") break;  // augmentation aside
  }
  if (const auto held = backbone_of_file(describe_weights(m))) {
    log << "--preprocess auto: " << backbone_info(held->backbone).keras_name
        << "'s preprocess_input (its layers are that backbone's)" << std::endl;
    return preprocess_option("auto", held->backbone);
  }
  log << "--preprocess auto: none (the model has no Rescaling input stage and the file does not "
         "say how its inputs were scaled; give --preprocess rescale:1/255, tf, caffe or torch "
         "if it was trained on scaled inputs)"
      << std::endl;
  return Preprocess::kNone;
}

std::optional<FileBackbone> backbone_of_weights_file(const std::string& path) {
  if (path.empty() || path == "imagenet" || path == "none") return std::nullopt;
  std::optional<FileBackbone> held;
  try {
    parse_untrusted_hdf5(path, "Keras weight file", [&] {
      H5File h5(path, H5File::Mode::kRead);
      held = backbone_of_file(read_keras_weight_file(h5));
    });
  } catch (const std::exception&) {
    return std::nullopt;  // the load reports an unreadable file, with every detail
  }
  return held;
}

void check_weights_backbone(const std::string& option, const std::string& path,
                            const NetworkConfig& net) {
  const std::optional<FileBackbone> held = backbone_of_weights_file(path);
  if (!held) return;  // not a known backbone: the load lists what does not match
  const BackboneInfo& chosen = backbone_info(net.backbone);
  const BackboneInfo& file = backbone_info(held->backbone);
  if (held->backbone != net.backbone)
    throw UsageError(option + " " + path + " holds " + file.keras_name +
                     " weights, but --backbone is " + chosen.name + " (" + chosen.keras_name +
                     "); add --backbone " + file.name);
  if (held->alpha != net.alpha)
    throw UsageError(option + " " + path + " holds MobileNetV2 weights of alpha " +
                     alpha_text(held->alpha) + ", but --alpha is " + alpha_text(net.alpha) +
                     "; add --alpha " + alpha_text(held->alpha));
}

}  // namespace parafine
