// Shared Layer helpers: parameter binding and error messages that name the layer.
#include "parafine/layers/layer.hpp"

#include <stdexcept>

namespace parafine {

void Layer::bind_param(int i, float* value, float* grad) {
  const size_t n = param_specs().size();
  if (values_.size() != n) {
    values_.assign(n, nullptr);
    grads_.assign(n, nullptr);
  }
  values_.at(static_cast<size_t>(i)) = value;
  grads_.at(static_cast<size_t>(i)) = grad;
}

void Layer::fail(const std::string& what) const {
  throw std::invalid_argument(std::string(type()) + " layer '" + name_ + "': " + what);
}

void Layer::expect_inputs(const std::vector<Shape>& in, int count, int rank) const {
  if (static_cast<int>(in.size()) != count)
    fail("expects " + std::to_string(count) + " input(s), got " + std::to_string(in.size()));
  for (const Shape& s : in) {
    if (s.rank() != rank)
      fail("expects a rank-" + std::to_string(rank) + " input, got shape " + s.str());
    for (int i = 0; i < s.rank(); ++i)  // the batch may be empty (a rank with no samples)
      if (s[i] < 0 || (i > 0 && s[i] == 0))
        fail("input shape " + s.str() + " has a non-positive dimension");
  }
}

}  // namespace parafine
