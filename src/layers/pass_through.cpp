// PassThrough: identity under another Keras class name (see pass_through.hpp).
#include "parafine/layers/pass_through.hpp"

#include <cstring>

namespace parafine {

PassThrough::PassThrough(std::string name, std::string keras_class)
    : Layer(std::move(name)), keras_class_(std::move(keras_class)) {
  if (keras_class_.empty()) fail("needs the Keras class name it stands for");
}

Shape PassThrough::infer_shape(const std::vector<Shape>& in) {
  expect_count(in, 1);
  expect_input(in[0], in[0].rank());  // positive dims
  return in[0];
}

void PassThrough::forward(const std::vector<const Tensor*>& in, Tensor& out, bool) {
  out.resize(in[0]->shape());
  std::memcpy(out.data(), in[0]->data(), sizeof(float) * out.numel());
}

void PassThrough::backward(const std::vector<const Tensor*>& in, const Tensor&, const Tensor& dout,
                           const std::vector<Tensor*>& din) {
  if (!din[0]) return;
  din[0]->resize(in[0]->shape());
  std::memcpy(din[0]->data(), dout.data(), sizeof(float) * dout.numel());
}

}  // namespace parafine
