// Keras Activation layers (keras/src/layers/activations/activation.py, keras/src/activations):
// an element-wise function (softmax: over the last axis) named by a Keras activation string.
// make_activation() builds the right layer for a name:
//   "relu"    the ReLU of simple_layers.hpp (the Model fuses it into convs, BN and Add);
//   "relu6"   ReLU(name, 6) reporting the Keras class "Activation" (ops.relu6);
//   "linear"  identity;
//   "sigmoid" 1 / (1 + exp(-x));          dx = dy * y * (1 - y)
//   "tanh"    tanh(x);                    dx = dy * (1 - y^2)
//   "softmax" exp(x - max) / sum, last axis, stable;  dx = y * (dy - sum(dy * y))
//   "swish", "silu"  x * sigmoid(x);      dx = dy * s * (1 + x * (1 - s)), s = sigmoid(x)
//   "gelu"    Keras's default approximate=False: 0.5 x (1 + erf(x / sqrt 2));
//             dx = dy * (0.5 (1 + erf(x / sqrt 2)) + x exp(-x^2 / 2) / sqrt(2 pi))
//   "elu"     alpha 1: x > 0 ? x : exp(x) - 1; dx = dy * (y < 0 ? y + 1 : 1) (TF's EluGrad)
// hard_sigmoid is not offered: Keras 3 (relu6(x + 3) / 6) and tf.keras 2 (clip(0.2 x + 0.5))
// define it differently, and the layer config does not say which Keras wrote it.
#pragma once

#include <memory>
#include <string>

#include "parafine/layers/layer.hpp"
#include "parafine/layers/simple_layers.hpp"

namespace parafine {

// Throws std::invalid_argument naming the activation and the layer, listing the supported
// names, for any other name.
std::unique_ptr<Layer> make_activation(const std::string& name,
                                       const std::string& keras_activation);

// Keras Activation('relu6'): ReLU with max_value 6 (ops.relu6, gradient from the output where
// 0 < y < 6), reported as class "Activation". A ReLU: the Model's ReLU6 fusions apply.
class ReLU6Activation : public ReLU {
 public:
  explicit ReLU6Activation(std::string name) : ReLU(std::move(name), 6.0f) {}
  const char* type() const override { return "Activation"; }
};

enum class ElementwiseKind { kLinear, kSigmoid, kTanh, kSoftmax, kSilu, kGelu, kElu };

// Every activation of the list above but relu and relu6.
class ElementwiseActivation : public Layer {
 public:
  ElementwiseActivation(std::string name, ElementwiseKind kind);
  const char* type() const override { return "Activation"; }
  ElementwiseKind kind() const { return kind_; }
  const char* activation_name() const;  // the Keras name: "sigmoid", "silu", ...

  // For a sigmoid or softmax whose output is the model's output when the loss is computed
  // from its input (Keras's losses take the logits of a Sigmoid/Softmax, `_keras_logits`):
  // backward then receives dLoss/d(input) already and passes it through unchanged. Throws for
  // other activations.
  void set_fused_with_loss(bool on);
  bool fused_with_loss() const { return fused_with_loss_; }

  bool output_is_bfloat16() const override { return kind_ == ElementwiseKind::kLinear; }
  bool backward_reads_input_values() const override;
  bool backward_reads_output_values() const override;
  Shape infer_shape(const std::vector<Shape>& in) override;  // {s} -> s
  void forward(const std::vector<const Tensor*>& in, Tensor& out, bool training) override;
  void backward(const std::vector<const Tensor*>& in, const Tensor& out, const Tensor& dout,
                const std::vector<Tensor*>& din) override;

 private:
  void softmax_backward(const Tensor& out, const Tensor& dout, Tensor& din) const;

  ElementwiseKind kind_;
  bool fused_with_loss_ = false;
};

}  // namespace parafine
