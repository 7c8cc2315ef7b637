// Weightless layers of ResNet50: InputLayer, ZeroPadding2D, ReLU (Keras Activation('relu'), or
// Keras ReLU(max_value) such as MobileNetV2's ReLU6), Add, MaxPooling2D ('valid' or 'same') and
// GlobalAveragePooling2D. Tensors are NHWC.
#pragma once

#include <cstdint>
#include <optional>

#include "parafine/layers/conv2d.hpp"  // Padding
#include "parafine/layers/layer.hpp"

namespace parafine {

// input_1: passes the batch through; checks it matches the declared per-sample shape [H,W,C].
class InputLayer : public Layer {
 public:
  InputLayer(std::string name, Shape sample_shape);
  const char* type() const override { return "InputLayer"; }
  int num_inputs() const override { return 0; }
  const Shape& sample_shape() const { return sample_; }
  Shape infer_shape(const std::vector<Shape>& in) override;  // in = {[N,H,W,C]}
  void forward(const std::vector<const Tensor*>& in, Tensor& out, bool training) override;
  void backward(const std::vector<const Tensor*>&, const Tensor&, const Tensor&,
                const std::vector<Tensor*>&) override {}

 private:
  Shape sample_;
};

// [N,H,W,C] -> [N,top+H+bottom,left+W+right,C], zeros around: Keras ZeroPadding2D(p) (p on
// every side, ResNet's conv1_pad) or ZeroPadding2D(((top, bottom), (left, right))) (the
// asymmetric pads imagenet_utils.correct_pad gives MobileNetV2 before a stride-2 conv).
class ZeroPadding2D : public Layer {
 public:
  ZeroPadding2D(std::string name, int pad) : ZeroPadding2D(std::move(name), pad, pad, pad, pad) {}
  // Throws std::invalid_argument (naming the layer) for a negative pad.
  ZeroPadding2D(std::string name, int top, int bottom, int left, int right);
  int top() const { return top_; }
  int bottom() const { return bottom_; }
  int left() const { return left_; }
  int right() const { return right_; }
  const char* type() const override { return "ZeroPadding2D"; }
  bool output_is_bfloat16() const override { return true; }  // exact on bfloat16 inputs
  bool backward_reads_input_values() const override { return false; }
  bool backward_reads_output_values() const override { return false; }
  Shape infer_shape(const std::vector<Shape>& in) override;
  void forward(const std::vector<const Tensor*>& in, Tensor& out, bool training) override;
  void backward(const std::vector<const Tensor*>& in, const Tensor& out, const Tensor& dout,
                const std::vector<Tensor*>& din) override;

 private:
  Shape infer_one(const Shape& in) const;  // infer_shape for the one input, without a vector

  int top_, bottom_, left_, right_;
};

// Element-wise max(x, 0) (Keras Activation('relu')), or with max_value m, min(max(x, 0), m)
// (Keras layers.ReLU(m), class "ReLU"; m >= 0). Gradient, as TensorFlow's:
//   plain:   dx = dy where y > 0 (ReluGrad, from the output);
//   m == 6:  dx = dy where 0 < y < 6 (Keras uses nn.relu6; Relu6Grad, from the output);
//   other m: dx = dy where 0 < x <= m (nn.relu then clip_by_value, whose gradient passes at
//            x == m): the input is read, since y == m cannot tell x == m from x > m.
class ReLU : public Layer {
 public:
  explicit ReLU(std::string name, std::optional<float> max_value = std::nullopt);
  const char* type() const override { return max_value_ ? "ReLU" : "Activation"; }
  const std::optional<float>& max_value() const { return max_value_; }
  bool output_is_bfloat16() const override;  // exact on bfloat16 inputs if m is a bfloat16
  bool backward_reads_input_values() const override { return clip_grad_; }
  bool backward_reads_output_values() const override { return !clip_grad_; }
  Shape infer_shape(const std::vector<Shape>& in) override;
  void forward(const std::vector<const Tensor*>& in, Tensor& out, bool training) override;
  void backward(const std::vector<const Tensor*>& in, const Tensor& out, const Tensor& dout,
                const std::vector<Tensor*>& din) override;

 private:
  std::optional<float> max_value_;
  bool clip_grad_ = false;  // max_value set and not 6: the clip_by_value gradient, from x
};

// True for a plain ReLU (no max_value): what the Model may fuse into a conv, BN or Add.
bool is_plain_relu(const Layer& layer);

// out = in[0] + in[1], same shapes.
class Add : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Add"; }
  bool backward_reads_input_values() const override { return false; }
  bool backward_reads_output_values() const override { return false; }
  int num_inputs() const override { return 2; }
  Shape infer_shape(const std::vector<Shape>& in) override;
  void forward(const std::vector<const Tensor*>& in, Tensor& out, bool training) override;
  void backward(const std::vector<const Tensor*>& in, const Tensor& out, const Tensor& dout,
                const std::vector<Tensor*>& din) override;
};

// Max pooling, window k, stride s: [N,H,W,C] -> [N,Ho,Wo,C], 'valid': Ho = (H-k)/s+1;
// 'same': Ho = ceil(H/s), padded as TensorFlow does (pool_geometry in pooling.hpp: the extra
// row/column at the bottom/right); padded cells never win (as -inf).
// Backward routes each output gradient to the first maximum of its window, remembered by
// forward as the window offset (one byte per output); it reads no input or output values.
class MaxPooling2D : public Layer {
 public:
  MaxPooling2D(std::string name, int pool, int stride, Padding padding = Padding::kValid);
  int pool() const { return pool_; }
  int stride() const { return stride_; }
  Padding padding() const { return padding_; }
  const char* type() const override { return "MaxPooling2D"; }
  bool output_is_bfloat16() const override { return true; }  // exact on bfloat16 inputs
  bool backward_reads_input_values() const override { return false; }
  bool backward_reads_output_values() const override { return false; }
  Shape infer_shape(const std::vector<Shape>& in) override;
  void forward(const std::vector<const Tensor*>& in, Tensor& out, bool training) override;
  void backward(const std::vector<const Tensor*>& in, const Tensor& out, const Tensor& dout,
                const std::vector<Tensor*>& din) override;

 private:
  Shape infer_one(const Shape& in) const;  // infer_shape for the one input, without a vector

  int pool_, stride_;
  Padding padding_;
  // Per output element [N,Ho,Wo,C]: the offset a*pool+b of its maximum in the window.
  std::vector<std::uint8_t> argmax_;
};

// Mean over H and W: [N,H,W,C] -> [N,C].
class GlobalAveragePooling2D : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "GlobalAveragePooling2D"; }
  bool backward_reads_input_values() const override { return false; }
  bool backward_reads_output_values() const override { return false; }
  Shape infer_shape(const std::vector<Shape>& in) override;
  void forward(const std::vector<const Tensor*>& in, Tensor& out, bool training) override;
  void backward(const std::vector<const Tensor*>& in, const Tensor& out, const Tensor& dout,
                const std::vector<Tensor*>& din) override;

 private:
  ThreadSums sums_;  // per-thread [C] accumulator of one image's mean
};

}  // namespace parafine
