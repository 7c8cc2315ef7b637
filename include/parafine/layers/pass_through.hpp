// An identity layer with one input that reports a given Keras class: a nested model's
// InputLayer inlined into the outer graph ("InputLayer"), or an augmentation layer that is
// the identity outside training and is only run in inference here (RandomFlip,
// RandomRotation, ...). Forward copies the input; backward copies the gradient.
#pragma once

#include <string>

#include "parafine/layers/layer.hpp"

namespace parafine {

class PassThrough : public Layer {
 public:
  // keras_class: what type() returns, e.g. "InputLayer" or "RandomFlip".
  PassThrough(std::string name, std::string keras_class);
  const char* type() const override { return keras_class_.c_str(); }
  bool output_is_bfloat16() const override { return true; }  // a copy
  bool backward_reads_input_values() const override { return false; }
  bool backward_reads_output_values() const override { return false; }
  Shape infer_shape(const std::vector<Shape>& in) override;  // {s} -> s
  void forward(const std::vector<const Tensor*>& in, Tensor& out, bool training) override;
  void backward(const std::vector<const Tensor*>& in, const Tensor& out, const Tensor& dout,
                const std::vector<Tensor*>& din) override;

 private:
  std::string keras_class_;
};

}  // namespace parafine
