// The Keras 3 weights layout (`model.weights.h5` inside a .keras archive, and
// `model.save_weights("x.weights.h5")`), format level only: which `vars` groups the file has and
// what they hold. Rules, from keras/src/saving/saving_lib.py and keras/src/layers/layer.py:
//  - _save_state(model, inner_path="") visits the model, then (Functional / Sequential)
//    "layers", then every other attribute in sorted dir() order; each saveable with
//    save_own_variables gets H5IOStore.make(inner_path, metadata={"name": saveable.name}),
//    which (metadata non-empty) creates <inner_path>/vars at once, with attribute name =
//    the object's name (Keras >= 3.6; older files have no attribute). So EVERY layer has a
//    vars group, an empty one when it has no variables. The root model's is /vars.
//  - A list attribute (the model's "layers") is a container: each element's path is
//    <container path>/<to_snake_case(class name)> numbered by _get_unique_name ("conv2d",
//    "conv2d_1", ...), so paths never use the layers' own names: "layers/conv2d",
//    "layers/functional/layers/batch_normalization_3".
//  - Which list: Functional.layers (models/functional.py) = every Layer of _operations, the
//    InputLayers included, in the order config["layers"] lists them; Sequential.layers
//    (models/sequential.py) leaves out the auto-generated InputLayer. The class name is the
//    Python class's (keras.Model(inputs, outputs) is a Functional: Model.__new__), so a
//    keras.applications base nested in a model is "layers/functional".
//  - Keras 2.13-2.15 .keras files used "_layer_checkpoint_dependencies" where Keras 3 has
//    "layers": H5IOStore.get retries with that replacement; the paths here are as stored.
//  - Layer.save_own_variables: store[str(i)] = v for v in _trainable_variables +
//    _non_trainable_variables (the layer's OWN variables, split by their trainable flag when
//    they were created: Conv2D kernel, bias; BatchNormalization gamma, beta, moving_mean,
//    moving_variance). load_own_variables refuses a count that differs.
//  - A SeedGenerator (Dropout, RandomFlip, ...) is not saved: it is no KerasSaveable and its
//    state variable is not in the layer's _trainable/_non_trainable_variables.
//  - H5IOStore.__setitem__ writes a bfloat16 value as its 2-byte data with the dataset
//    attribute dtype="bfloat16"; other values as numpy writes them (float32 here).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "parafine/core/tensor.hpp"
#include "parafine/io/h5_tensors.hpp"
#include "parafine/io/keras_file.hpp"

namespace parafine {

struct Keras3VarsGroup {
  std::string path;  // parent of the vars group, no leading slash: "", "layers/conv2d", ...
  std::string name;  // the vars group's "name" attribute, "" when absent (Keras < 3.6)
  // Datasets "0".."n-1" in index order: stored_name "0", "1", ...; var ""; dtype "bfloat16"
  // for a bfloat16-tagged dataset.
  std::vector<StoredWeight> vars;
};

struct Keras3WeightsFile {
  std::string path;
  std::vector<Keras3VarsGroup> groups;  // every vars group, sorted by path (HDF5 name order)
  const Keras3VarsGroup* find(const std::string& group_path) const;
};

// Reads the structure. Throws std::runtime_error naming the file and group: a tf.keras /
// Keras 2 file (layer_names attribute) or a file with no vars group at all ("not a Keras 3
// weights file"), vars keys that are not exactly 0..n-1, a non-float or unreadable dataset,
// soft or external links (Keras refuses them too).
Keras3WeightsFile read_keras3_weights_file(const H5File& file);

// One variable's values as float32 (bfloat16-tagged data widened exactly).
Tensor read_keras3_var(const H5File& file, const StoredWeight& var);

struct Keras3VarsToWrite {
  std::string path;  // "" for the root model
  std::string name;  // written as the vars group's "name" attribute
  struct Var {
    const float* data;
    std::vector<int> shape;  // {} for a scalar
  };
  std::vector<Var> vars;  // in Keras's order (save_own_variables), written as "0", "1", ...
};

// Writes exactly what Keras writes: for each entry, in the given order, the groups of its path,
// <path>/vars with the name attribute (a UTF-8 variable-length string, as h5py writes a str),
// and datasets "0", "1", ... float32 (contiguous, as h5py's group[key] = value), a vars group
// even when empty. Written atomically (temp + rename). Throws on a duplicate path.
void write_keras3_weights_file(const std::string& path,
                               const std::vector<Keras3VarsToWrite>& groups);

// naming.to_snake_case(class_name) exactly as Keras computes it:
//   re.sub(r"\W+", "", name); re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name);
//   re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()
// "Conv2D" -> "conv2d", "BatchNormalization" -> "batch_normalization",
// "GlobalAveragePooling2D" -> "global_average_pooling2d", "ReLU" -> "re_lu".
std::string keras3_container_name(const std::string& class_name);

// saving_lib._get_unique_name: the first use of a name is the name itself, later ones
// name_1, name_2, ... (one instance per container).
class Keras3UniqueNames {
 public:
  std::string next(const std::string& name);

 private:
  std::map<std::string, int> used_;
};

}  // namespace parafine
