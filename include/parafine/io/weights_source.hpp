// Where --weights points: `imagenet` (the Keras notop file, found where Keras caches it),
// `none` (random Keras initialisation) or a file path.
#pragma once

#include <string>
#include <vector>

namespace parafine {

constexpr const char* kImagenetNotopFile = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5";
constexpr const char* kImagenetNotopUrl =
    "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
    "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5";

// Directories searched for `imagenet`, in order: weights_dir (--weights-dir) when given,
// $PARAFINE_WEIGHTS_DIR, $KERAS_HOME/models, ~/.keras/models.
std::vector<std::string> imagenet_search_dirs(const std::string& weights_dir);

// The file to load for `spec`, or "" for `none`. Throws std::runtime_error when `imagenet`
// is not found (saying where Keras downloads it from and where to put it) or a given file
// does not exist.
std::string resolve_weights(const std::string& spec, const std::string& weights_dir = "");

}  // namespace parafine
