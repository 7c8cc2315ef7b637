// What a Keras HDF5 weight file holds, read without loading any weight: its layout, and for
// every layer with weights, the canonical (tf.keras) layer name, each variable's canonical
// name ("kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance"), dataset path,
// shape and dtype. Two layouts are found in the wild:
//  - tf.keras save_weights: root attrs layer_names, backend, keras_version; dataset
//    /<layer>/<layer>/<var>:0 (the same under /model_weights for a whole saved model);
//  - Keras-1 (resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5): layer names conv1,
//    bn_conv1, res2a_branch2a, bn2a_branch1, ...; weights res2a_branch2a_W_1:0, _b_1:0,
//    bn..._gamma_1:0, _beta_1:0, _running_mean_1:0, _running_std_1:0 (the moving VARIANCE).
// Either may split long attribute lists as layer_names0, layer_names1, ...
#pragma once

#include <string>
#include <vector>

#include "parafine/io/h5_tensors.hpp"

namespace parafine {

enum class KerasLayout { kTfKeras, kKeras1, kParafineCheckpoint };
const char* layout_name(KerasLayout layout);

struct StoredWeight {
  std::string var;      // canonical variable name, "" when not recognised
  std::string dataset;  // full HDF5 path
  std::string stored_name;
  std::vector<int> shape;
  std::string dtype;  // "float32", "int64", ...
  bool is_float = false;
};

struct StoredLayer {
  std::string stored_name;  // as in the file
  std::string name;         // tf.keras name (Keras-1 names are translated)
  std::vector<StoredWeight> weights;
};

struct KerasWeightFile {
  std::string path;
  KerasLayout layout = KerasLayout::kTfKeras;
  std::string root;  // "/" or "/model_weights"
  std::string keras_version, backend;
  std::vector<StoredLayer> layers;  // layers with weights, in file order
  const StoredLayer* find(const std::string& name) const;
};

// Reads the structure. Throws std::runtime_error naming the file when it is not HDF5, has
// no layer_names, or lists a layer whose group or weight dataset is missing.
KerasWeightFile read_keras_weight_file(const H5File& file);

// Keras-1 ResNet50 layer name -> tf.keras name ("res3b_branch2c" -> "conv3_block2_3_conv",
// "bn_conv1" -> "conv1_bn"); "" when the name is not a Keras-1 ResNet50 layer.
std::string keras1_to_tf_keras(const std::string& keras1_name);

// Names of ImageNet top classifiers that a base-weights load ignores with a note.
bool is_top_classifier(const std::string& layer_name);

}  // namespace parafine
