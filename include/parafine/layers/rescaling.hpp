// Keras Rescaling (keras/src/layers/preprocessing/rescaling.py), channels_last:
//   y = x * scale + offset,
// each of scale and offset a scalar (size 1) or one value per channel (size C, the last axis),
// broadcast as NumPy does. Not weights: they are part of the layer's config. Under
// mixed_bfloat16, as Keras: scale and offset cast to bfloat16, the product rounded to bfloat16.
// Backward: dx = dy * scale.
#pragma once

#include <vector>

#include "parafine/layers/layer.hpp"

namespace parafine {

class Rescaling : public Layer {
 public:
  // Throws std::invalid_argument (naming the layer) for an empty scale or offset.
  Rescaling(std::string name, std::vector<float> scale, std::vector<float> offset = {0.0f});
  const char* type() const override { return "Rescaling"; }
  const std::vector<float>& scale() const { return scale_; }
  const std::vector<float>& offset() const { return offset_; }
  bool backward_reads_input_values() const override { return false; }
  bool backward_reads_output_values() const override { return false; }
  // {[N,...,C]} -> the same shape; a per-channel scale or offset must have C values.
  Shape infer_shape(const std::vector<Shape>& in) override;
  void forward(const std::vector<const Tensor*>& in, Tensor& out, bool training) override;
  void backward(const std::vector<const Tensor*>& in, const Tensor& out, const Tensor& dout,
                const std::vector<Tensor*>& din) override;

 private:
  void check_channels(const Shape& s) const;
  static const std::vector<float>& rounded(const std::vector<float>& v, std::vector<float>& into);

  std::vector<float> scale_, offset_;
  std::vector<float> scale_bf16_, offset_bf16_;  // mixed_bfloat16: the rounded copies
};

}  // namespace parafine
