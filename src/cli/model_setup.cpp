// Building the starting model of a training run from --init / --weights (see cli.hpp).
#include <ostream>

#include "cli/cli.hpp"
#include "parafine/io/keras_weights.hpp"
#include "parafine/io/weights_source.hpp"
#include "parafine/model/initializers.hpp"

namespace parafine {

bool prepare_model(Model& model, const std::string& weights, const std::string& weights_dir,
                   const std::string& init, std::uint64_t seed, std::ostream& log) {
  keras_initialize(model, seed);
  if (!init.empty()) {
    if (weights != "none") throw UsageError("give --weights or --init, not both");
    load_keras_weights(model, init, WeightScope::kFull, &log);
    log << "initialised from the full model " << init << std::endl;
    return false;
  }
  const std::string file = resolve_weights(weights, weights_dir);
  if (file.empty()) return true;
  load_keras_weights(model, file, WeightScope::kBase, &log);
  log << "base weights loaded from " << file << std::endl;
  return false;
}

}  // namespace parafine
