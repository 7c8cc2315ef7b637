// Dense (fully connected) layer as Keras: y = act(x W + b), x [N,in], W [in,units], b [units]
// (no b when use_bias is false). Activations:
//  - linear, relu, tanh: backward takes dLoss/dy and applies the activation's derivative
//    (relu: where y > 0; tanh: 1 - y^2, from the output);
//  - softmax, sigmoid: by default fused with the loss, as Keras's losses take the logits of a
//    Softmax or Sigmoid (`_keras_logits`): forward writes probabilities but keeps the logits
//    (logits()), and backward then takes dLoss/dlogits (see loss.hpp) -- right for the output
//    layer of a model trained with the matching loss. Anywhere else set_fused_with_loss(false):
//    backward then takes dLoss/dy and applies the activation's Jacobian.
#pragma once

#include "parafine/layers/layer.hpp"

namespace parafine {

enum class Activation { kLinear, kRelu, kSoftmax, kSigmoid, kTanh };

class Dense : public Layer {
 public:
  Dense(std::string name, int units, Activation activation, bool use_bias = true);
  const char* type() const override { return "Dense"; }
  bool multiplies_by_weights() const override { return true; }

  Shape infer_shape(const std::vector<Shape>& in) override;
  // kernel [in,units], then bias [units] when use_bias.
  std::vector<ParamSpec> param_specs() const override;
  void forward(const std::vector<const Tensor*>& in, Tensor& out, bool training) override;
  void backward(const std::vector<const Tensor*>& in, const Tensor& out, const Tensor& dout,
                const std::vector<Tensor*>& din) override;

  int units() const { return units_; }
  Activation activation() const { return activation_; }
  bool use_bias() const { return use_bias_; }
  // Whether backward takes dLoss/dlogits (a softmax or sigmoid Dense at the output) rather
  // than dLoss/dy.
  bool fused_with_loss() const {
    return fused_ && (activation_ == Activation::kSoftmax || activation_ == Activation::kSigmoid);
  }
  void set_fused_with_loss(bool on) { fused_ = on; }
  // Pre-activation outputs of the last forward [N,units] (only kept for softmax and sigmoid).
  const Tensor& logits() const { return logits_; }

 private:
  Shape infer_one(const Shape& in);  // infer_shape for the one input, without a vector

  int units_;
  Activation activation_;
  bool use_bias_;
  bool fused_ = true;
  int in_ = 0;
  Tensor logits_;
  Tensor dz_;                     // scratch for relu and tanh backward
  std::vector<float> bias_bf16_;  // the bias rounded to bfloat16 (mixed_bfloat16)
  const float* compute_kernel();
};

// Row-wise softmax of [N,C] logits, computed stably (max subtracted).
void softmax_rows(const float* logits, int n, int c, float* probs);

}  // namespace parafine
