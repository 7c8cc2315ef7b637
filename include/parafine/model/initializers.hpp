// Keras default initialisers, seeded: glorot_uniform kernels (and depthwise kernels), zero biases, BatchNormalization
// gamma 1, beta 0, moving mean 0, moving variance 1. Each variable draws from its own stream
// derived from (seed, layer name, variable name), so the values do not depend on layer order.
#pragma once

#include <cstdint>

#include "parafine/model/model.hpp"

namespace parafine {

void keras_initialize(Model& model, std::uint64_t seed);

}  // namespace parafine
