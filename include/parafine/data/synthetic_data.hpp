// The synthetic image set the demo and tests learn from.
#pragma once

#include <cstdint>

#include "parafine/data/sample_source.hpp"

namespace parafine {

// `samples` RGB images of `image_size`^2, `classes` classes told apart by colour (and faint
// stripes whose orientation depends on the class) under noise, so that even a randomly
// initialised ResNet's features separate them. Deterministic in `seed`. Labels cycle 0..C-1.
InMemorySource make_synthetic_source(int samples, int image_size, int classes, std::uint64_t seed);

}  // namespace parafine
