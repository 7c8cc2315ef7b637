// Building the starting model of a training run from --init / --weights (see cli.hpp).
#include <optional>
#include <ostream>

#include "cli/cli.hpp"
#include "parafine/io/backbone_of_file.hpp"
#include "parafine/io/keras_weights.hpp"
#include "parafine/io/weights_source.hpp"
#include "parafine/model/initializers.hpp"

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
