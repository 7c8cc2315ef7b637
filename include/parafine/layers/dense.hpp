// Dense (fully connected) layer as Keras: y = act(x W + b), x [N,in], W [in,units], b [units].
// activation relu or linear; softmax is fused with the loss: forward writes probabilities but
// keeps the logits, and backward then takes dLoss/dlogits (see loss.hpp).
#pragma once

#include "parafine/layers/layer.hpp"

namespace parafine {

enum class Activation { kLinear, kRelu, kSoftmax };

class Dense : public Layer {
 public:
  Dense(std::string name, int units, Activation activation);
  const char* type() const override { return "Dense"; }
  bool multiplies_by_weights() const override { return true; }

  Shape infer_shape(const std::vector<Shape>& in) override;
  std::vector<ParamSpec> param_specs() const override;  // kernel [in,units], bias [units]
  void forward(const std::vector<const Tensor*>& in, Tensor& out, bool training) override;
  void backward(const std::vector<const Tensor*>& in, const Tensor& out, const Tensor& dout,
                const std::vector<Tensor*>& din) override;

  int units() const { return units_; }
  Activation activation() const { return activation_; }
  // Pre-softmax outputs of the last forward [N,units] (only kept for softmax).
  const Tensor& logits() const { return logits_; }

 private:
  Shape infer_one(const Shape& in);  // infer_shape for the one input, without a vector

  int units_;
  Activation activation_;
  int in_ = 0;
  Tensor logits_;
  Tensor dz_;  // scratch for relu backward
  std::vector<float> bias_bf16_;  // the bias rounded to bfloat16 (mixed_bfloat16)
  const float* compute_kernel();
};

// Row-wise softmax of [N,C] logits, computed stably (max subtracted).
void softmax_rows(const float* logits, int n, int c, float* probs);

}  // namespace parafine
