// A Model printed as Keras's model.summary() prints a Functional model: one row per layer with
// its name (class), output shape (None, H, W, C), parameter count and inbound layers
// ('name[0][0]'), then the total, trainable and non-trainable parameter counts (BatchNormalization
// moving statistics count as non-trainable, as in Keras).
#pragma once

#include <cstddef>
#include <iosfwd>
#include <string>

#include "parafine/model/model.hpp"

namespace parafine {

struct ParamCounts {
  std::size_t total = 0, trainable = 0;
};
// Keras's counts over nodes [first, last): every variable; trainable ones are the optimised
// variables of layers whose trainable flag is set.
ParamCounts count_params(const Model& model, int first, int last);

// `title` is the Keras model name (e.g. "resnet50"). A line marks where the base ends.
void print_model_summary(const Model& model, const std::string& title, std::ostream& out);

// 23587712 -> "23,587,712"
std::string with_commas(std::size_t n);

}  // namespace parafine
