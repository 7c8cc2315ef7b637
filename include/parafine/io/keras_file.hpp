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
// A whole model saved by Keras 2 / tf.keras model.save("m.h5") (hdf5_format.save_model_to_hdf5)
// has the root attribute model_config (the model's JSON) and its weights under /model_weights.
// A layer of layer_names that is itself a model (a nested Functional / Sequential / Model) has
// ONE group holding all its inner variables: save_weights_to_hdf5_group writes
// _legacy_weights(nested) = nested.trainable_weights + nested.non_trainable_weights (every
// inner layer's trainable variables in layer order, then every non-trainable one: BN moving
// statistics, and ALL variables of frozen inner layers), named by the variables' own names,
// "<inner layer>/<var>:0" (Keras 3's legacy writer: w.path, "<inner layer>/<var>"), so the
// datasets are /model_weights/<nested>/<inner layer>/<var>:0. A model nested in a nested model
// writes nothing of its own: its layers' variables appear in the outermost nested model's group
// under the innermost layers' names, so only model_config shows that middle level.
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
  std::string stored_name;  // as in the file (an inner layer: as in its weight names)
  std::string name;         // tf.keras name (Keras-1 names are translated)
  // "" for a top-level layer; for a layer inside a nested model, the group name (= layer name)
  // of the top-level nested model whose group holds its variables.
  std::string model;
  std::vector<StoredWeight> weights;
};

struct KerasWeightFile {
  std::string path;
  KerasLayout layout = KerasLayout::kTfKeras;
  std::string root;  // "/" or "/model_weights"
  std::string keras_version, backend;
  std::string model_config;  // the root model_config attribute (JSON text), "" when absent
  // Layers with weights, in layer_names order; a nested model's inner layers in its place, in
  // the order their first variable appears in its weight_names (inner layers whose variables
  // are all non-trainable come after the trainable ones), each with its variables in stored
  // order.
  std::vector<StoredLayer> layers;
  const StoredLayer* find(const std::string& name) const;
};

// Reads the structure. Throws std::runtime_error naming the file when it is not HDF5, has
// no layer_names, or lists a layer whose group or weight dataset is missing. A layer is taken
// for a nested model when model_config lists it with class_name Functional, Model or
// Sequential; without a (parsable) model_config, when its weight names name other layers
// ("conv1/kernel:0" in group "backbone"; the layer component is the one before the variable,
// so "seq/dense/kernel:0" names dense), except a single other name that is the group's own
// made unique by TensorFlow's graph ("conv1_1/kernel:0" in group conv1: a plain layer).
KerasWeightFile read_keras_weight_file(const H5File& file);

// Writing the tf.keras (Keras 2) HDF5 layouts, as hdf5_format.save_weights_to_hdf5_group and
// save_model_to_hdf5 write them:
//   <root>@layer_names   every entry's name, in model.layers order
//   <root>@backend, <root>@keras_version
// (byte strings as h5py >= 3 writes Python bytes: variable-length ASCII; a list over 64512
// bytes split as layer_names0, layer_names1, ... of fixed-length strings, as Keras splits it)
//   <root>/<entry>@weight_names  its variables' names ("conv1/kernel:0"; an empty float64
//                                array when it has none)
//   <root>/<entry>/<weight name> float32 datasets ("conv1/kernel:0" makes the group conv1)
//   <root>/top_level_model_weights@weight_names = []  (tf.keras >= 2.5 writes it; not listed)
// with <root> = "/" for save_weights, or, when model_config is given (a whole model,
// model.save("m.h5")), root attributes model_config (JSON bytes), keras_version, backend
// (and training_config when given) and <root> = /model_weights.
// A nested model is ONE entry whose weights are _legacy_weights(nested): the trainable
// variables of all its inner layers in layer order, then the non-trainable ones (see above),
// named "<inner layer>/<var>:0"; Keras's load_weights (by topology) matches them by ORDER, so
// the caller gives them in the order the model being loaded into would list them.
struct TfKerasWeightToWrite {
  std::string name;  // "conv1/kernel:0"
  const float* data;
  std::vector<int> shape;  // {} for a scalar
};
struct TfKerasEntryToWrite {
  std::string name;  // a top-level layer or nested model; weights may be empty
  std::vector<TfKerasWeightToWrite> weights;
};
struct TfKerasRootAttrs {
  std::string model_config;     // "" for the save_weights layout
  std::string training_config;  // written only with model_config, when not ""
  std::string keras_version = "2.12.0";
  std::string backend = "tensorflow";
};
// Writes atomically (temp + rename). Throws on duplicate entry names or weight names.
void write_tf_keras_weights(const std::string& path,
                            const std::vector<TfKerasEntryToWrite>& entries,
                            const TfKerasRootAttrs& root_attrs);

// Keras-1 ResNet50 layer name -> tf.keras name ("res3b_branch2c" -> "conv3_block2_3_conv",
// "bn_conv1" -> "conv1_bn"); "" when the name is not a Keras-1 ResNet50 layer.
std::string keras1_to_tf_keras(const std::string& keras1_name);

// Names of ImageNet top classifiers that a base-weights load ignores with a note.
bool is_top_classifier(const std::string& layer_name);

}  // namespace parafine
