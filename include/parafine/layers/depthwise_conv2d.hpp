// DepthwiseConv2D as Keras defines it (MobileNetV2's 3x3 depthwise convolutions): NHWC input
// [N,H,W,C], kernel `depthwise_kernel` [KH,KW,C,M] (M = depth_multiplier), optional `bias`
// [C*M]; output channel c*M + m reads input channel c only:
//   y[n,i,j,c*M+m] = bias[c*M+m] + sum_{a,b} x[n, i*s - top + a, j*s - left + b, c] * w[a,b,c,m]
// with 'valid' (top = left = 0) or TensorFlow 'same' padding (out = ceil(in / s); the smaller
// half of the total padding on top/left, the extra row and column at the bottom/right).
// Direct OpenMP loops over NHWC, channels innermost.
#pragma once

#include <optional>

#include "parafine/layers/conv2d.hpp"  // Padding
#include "parafine/layers/layer.hpp"

namespace parafine {

class DepthwiseConv2D : public Layer {
 public:
  // Throws std::invalid_argument (naming the layer) unless kernel, stride and
  // depth_multiplier are positive.
  DepthwiseConv2D(std::string name, int kernel, int stride, Padding padding, bool use_bias = true,
                  int depth_multiplier = 1);
  const char* type() const override { return "DepthwiseConv2D"; }
  bool multiplies_by_weights() const override { return true; }
  bool backward_reads_output_values() const override { return false; }  // x and dy only
  // mixed_bfloat16: the convolution's result and the bias add are each rounded here.
  bool output_is_bfloat16() const override { return bfloat16_compute_; }

  Shape infer_shape(const std::vector<Shape>& in) override;
  std::vector<ParamSpec> param_specs() const override;  // depthwise_kernel, bias
  void forward(const std::vector<const Tensor*>& in, Tensor& out, bool training) override;
  void backward(const std::vector<const Tensor*>& in, const Tensor& out, const Tensor& dout,
                const std::vector<Tensor*>& din) override;

  // Forward with substitute weights, kernel [KH,KW,C,M] and bias [C*M] (or null), and the
  // activation that follows clamped in the same pass when relu: y = max(y, 0), or with
  // relu_max, min(max(y, 0), relu_max). How the Model runs a frozen depthwise conv with its
  // inference BatchNormalization folded in (float32 only).
  void forward_with(const Tensor& input, Tensor& out, const float* kernel, const float* bias,
                    bool relu, std::optional<float> relu_max = std::nullopt);

  int kernel_size() const { return k_; }
  int stride() const { return stride_; }
  Padding padding() const { return padding_; }
  int depth_multiplier() const { return mult_; }
  bool use_bias() const { return use_bias_; }
  // FLOPs of one forward for an input [N,H,W,C] (2 per multiply-add).
  double forward_flops(const Shape& in) const;

 private:
  struct Geometry {
    int n, h, w, ho, wo, pad_top, pad_left;
  };
  Shape infer_one(const Shape& in);
  Geometry geometry(const Shape& in) const;
  int out_channels() const { return cin_ * mult_; }
  const float* compute_kernel();  // the kernel, or its bfloat16-rounded copy (workspace c)
  const float* compute_bias();    // the bias, its bfloat16-rounded copy, or null
  // relu / relu_max: the activation clamped per output pixel (forward_with).
  void convolve(const Geometry& g, const float* x, const float* w, const float* bias, float* y,
                bool relu = false, std::optional<float> relu_max = std::nullopt) const;
  void input_gradient(const Geometry& g, const float* dy, const float* w, float* dx) const;
  void weight_gradients(const Geometry& g, const float* x, const float* dy);

  int k_, stride_;
  Padding padding_;
  bool use_bias_;
  int mult_;
  int cin_ = 0;
  std::vector<float> bias_bf16_;  // the bias rounded to bfloat16 (mixed_bfloat16)
  ThreadSums sums_;               // per-thread [KH*KW*C*M kernel | C*M bias] gradient sums
  std::vector<double> total_;     // their total
};

}  // namespace parafine
