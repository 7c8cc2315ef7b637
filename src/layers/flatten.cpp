// Flatten: a copy into [N, features] and back (see flatten.hpp).
#include "parafine/layers/flatten.hpp"

#include <cstring>

namespace parafine {

Shape Flatten::infer_shape(const std::vector<Shape>& in) {
  expect_count(in, 1);
  return infer_one(in[0]);
}

Shape Flatten::infer_one(const Shape& s) const {
  if (s.rank() < 2) fail("expects an input of rank 2 or more ([N,...]), got shape " + s.str());
  expect_input(s, s.rank());  // positive dims
  std::size_t features = 1;
  for (int d = 1; d < s.rank(); ++d) features *= static_cast<std::size_t>(s[d]);
  if (features > 0x7fffffffu) fail("input " + s.str() + " has too many features per sample");
  return Shape{s[0], static_cast<int>(features)};
}

void Flatten::forward(const std::vector<const Tensor*>& in, Tensor& out, bool) {
  out.resize(infer_one(in[0]->shape()));
  std::memcpy(out.data(), in[0]->data(), sizeof(float) * out.numel());
}

void Flatten::backward(const std::vector<const Tensor*>& in, const Tensor&, const Tensor& dout,
                       const std::vector<Tensor*>& din) {
  if (!din[0]) return;
  din[0]->resize(in[0]->shape());  // in[0] may be hollow: its shape only
  std::memcpy(din[0]->data(), dout.data(), sizeof(float) * dout.numel());
}

}  // namespace parafine
