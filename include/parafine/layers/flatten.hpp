// Keras Flatten (channels_last): [N,d1,...,dk] -> [N, d1*...*dk], the values of each sample
// in row-major (NHWC) order, as ops.reshape(x, (N, -1)). Backward reshapes the gradient back.
#pragma once

#include "parafine/layers/layer.hpp"

namespace parafine {

class Flatten : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Flatten"; }
  bool output_is_bfloat16() const override { return true; }  // a copy
  bool backward_reads_input_values() const override { return false; }
  bool backward_reads_output_values() const override { return false; }
  Shape infer_shape(const std::vector<Shape>& in) override;  // in = {[N,...]} -> [N,prod]
  void forward(const std::vector<const Tensor*>& in, Tensor& out, bool training) override;
  void backward(const std::vector<const Tensor*>& in, const Tensor& out, const Tensor& dout,
                const std::vector<Tensor*>& din) override;

 private:
  Shape infer_one(const Shape& in) const;
};

}  // namespace parafine
