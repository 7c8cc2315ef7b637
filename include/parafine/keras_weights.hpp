// Loading weights saved in the tf.keras `save_weights` HDF5 layout
// (/<layer>/<layer>/<var>:0, root attribute layer_names), matched by layer name, never by
// position. All-or-nothing: every variable is read and checked before any is copied in.
#pragma once

#include <string>

#include "parafine/model.hpp"

namespace parafine {

// Loads every weight variable of `model` from `path`. Throws std::runtime_error with ONE
// message listing every missing, mis-shaped or non-finite variable; the model is untouched
// then. Layers in the file that the model lacks are ignored.
void load_keras_weights(Model& model, const std::string& path);

}  // namespace parafine
