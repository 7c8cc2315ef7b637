// Loading Keras HDF5 weight files (either layout, see keras_file.hpp) into a Model, matched
// by layer name, not by position: in conv2 the shortcut conv and the last 1x1 conv have the
// same shape, and a positional loader swaps them silently. By position (Keras's load_weights
// order) only when the names differ in Keras's auto-generated index alone, as between Keras
// generations (InceptionV3's conv2d_1 ... conv2d_94 for conv2d ... conv2d_93). All-or-nothing:
// every variable is read and checked before any is copied in.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "parafine/io/keras_file.hpp"
#include "parafine/model/backbone.hpp"
#include "parafine/model/model.hpp"

namespace parafine {

enum class WeightScope {
  kBase,  // the model's base layers (--weights); head layers in the file are ignored
  kFull,  // every layer of the model, head included (--init, predict, evaluate)
};

struct WeightCheck {
  std::vector<std::string> problems;  // one line per offending layer/variable; empty = loadable
  std::vector<std::string> notes;     // things ignored on purpose (a top classifier, ...)
};

// Reads and checks every variable of `model` in `scope` against `file` (names, shapes,
// dtypes, NaN/Inf, unexpected layers). When `load` is true and there is no problem, copies
// the values into the model; otherwise the model is untouched.
WeightCheck check_and_load_keras_weights(Model& model, const H5File& h5,
                                         const KerasWeightFile& file, WeightScope scope, bool load);

// The model's layers with weights as a weight file would list them (names and shapes only),
// so that backbone_of_file can say which network a model is.
KerasWeightFile describe_weights(const Model& model);

// Opens `path` (either tf.keras layout, or Keras 3's .weights.h5) and loads it; throws
// std::runtime_error with ONE message listing every problem. Notes are written to `log` when given.
void load_keras_weights(Model& model, const std::string& path, WeightScope scope,
                        std::ostream* log = nullptr);

}  // namespace parafine
