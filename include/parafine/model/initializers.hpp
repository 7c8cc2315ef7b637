// Keras default initialisers, seeded: glorot_uniform kernels, zero biases, BatchNormalization
// gamma 1, beta 0, moving mean 0, moving variance 1. Each variable draws from its own stream
// derived from (seed, layer name, variable name), so the values do not depend on layer order.
#pragma once

#include <cstdint>

#include "parafine/model/model.hpp"

namespace parafine {

void keras_initialize(Model& model, std::uint64_t seed);

// A small counter-free generator used for initialisation and synthetic data: splitmix64.
class SplitMix64 {
 public:
  explicit SplitMix64(std::uint64_t seed) : s_(seed) {}
  std::uint64_t next();
  double uniform();  // [0,1) with 53 random bits
 private:
  std::uint64_t s_;
};

std::uint64_t hash_string(const std::string& s, std::uint64_t seed);

}  // namespace parafine
