// Concatenate along the channel (last) axis, Keras Concatenate(axis=-1): InceptionV3's mixedK
// blocks. Inputs [..., C_k] agree in every other dimension; out is [..., sum C_k].
#pragma once

#include "parafine/layers/layer.hpp"

namespace parafine {

class Concatenate : public Layer {
 public:
  Concatenate(std::string name, int num_inputs);  // num_inputs >= 2
  const char* type() const override { return "Concatenate"; }
  int num_inputs() const override { return num_inputs_; }
  bool output_is_bfloat16() const override { return true; }  // a copy
  bool backward_reads_input_values() const override { return false; }
  bool backward_reads_output_values() const override { return false; }
  Shape infer_shape(const std::vector<Shape>& in) override;
  // Copies input k's C_k channels to channels [off_k, off_k + C_k) of every output row.
  void forward(const std::vector<const Tensor*>& in, Tensor& out, bool training) override;
  // din[k] = dout's channels [off_k, off_k + C_k) (a split); null din[k] are skipped.
  void backward(const std::vector<const Tensor*>& in, const Tensor& out, const Tensor& dout,
                const std::vector<Tensor*>& din) override;

 private:
  int num_inputs_;
};

}  // namespace parafine
