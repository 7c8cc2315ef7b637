// Where --weights points: `imagenet` (the backbone's Keras notop file, found where Keras caches
// it), `none` (random Keras initialisation) or a file path.
#pragma once

#include <string>
#include <vector>

#include "parafine/model/backbone.hpp"

namespace parafine {

// The file keras.applications downloads for a backbone with include_top=False, under the name
// it caches it as, and the address it downloads it from. MobileNetV2's name carries the alpha
// and the input size (96, 128, 160, 192 or 224; Keras takes 224's file for any other size).
struct ImagenetFile {
  std::string name, url;
};
ImagenetFile imagenet_notop_file(const NetworkConfig& net);

// Directories searched for `imagenet`, in order: weights_dir (--weights-dir) when given,
// $PARAFINE_WEIGHTS_DIR, $KERAS_HOME/models, ~/.keras/models.
std::vector<std::string> imagenet_search_dirs(const std::string& weights_dir);

// The file to load for `spec`, or "" for `none`. Throws std::runtime_error when `imagenet`
// is not found (naming the file, where Keras downloads it from and where to put it) or a given
// file does not exist.
std::string resolve_weights(const std::string& spec, const std::string& weights_dir = "",
                            const NetworkConfig& net = NetworkConfig{});

}  // namespace parafine
