// Conv2D as Keras defines it: NHWC input, HWIO kernel [KH,KW,Cin,Cout], optional bias [Cout],
// stride, 'valid' or 'same' padding (TensorFlow's rule: extra padding goes bottom/right).
// Compute: 1x1 stride-1 convolutions are one sgemm over [N*H*W, Cin]; others build im2col
// columns [rows, KH*KW*Cin] (column order matches the HWIO kernel) a few images at a time.
#pragma once

#include "parafine/layers/layer.hpp"

namespace parafine {

enum class Padding { kValid, kSame };

class Conv2D : public Layer {
 public:
  Conv2D(std::string name, int filters, int kernel, int stride, Padding padding,
         bool use_bias = true);
  const char* type() const override { return "Conv2D"; }
  bool backward_reads_output_values() const override { return false; }  // x and dy only

  Shape infer_shape(const std::vector<Shape>& in) override;
  std::vector<ParamSpec> param_specs() const override;  // kernel, bias
  void forward(const std::vector<const Tensor*>& in, Tensor& out, bool training) override;
  void backward(const std::vector<const Tensor*>& in, const Tensor& out, const Tensor& dout,
                const std::vector<Tensor*>& din) override;

  // When the only consumer is a BatchNormalization in training mode, the bias cancels in the
  // batch mean and its gradient is exactly zero; the Model sets this so it stays exactly zero.
  void set_bias_gradient_is_zero(bool z) { bias_grad_zero_ = z; }

  // Forward with substitute weights (kernel [KH,KW,Cin,Cout], bias [Cout] or null) and an
  // optional fused ReLU: how the Model runs a frozen conv with its inference BN folded in.
  void forward_with(const Tensor& input, Tensor& out, const float* kernel, const float* bias,
                    bool relu);

  int filters() const { return filters_; }
  int kernel_size() const { return k_; }
  int stride() const { return stride_; }
  int input_channels() const { return cin_; }
  bool use_bias() const { return use_bias_; }
  // FLOPs of one forward for an input [N,H,W,Cin] (2 per multiply-add).
  double forward_flops(const Shape& in) const;

 private:
  struct Geometry {
    int n, h, w, ho, wo, pad_top, pad_left;
  };
  Shape infer_one(const Shape& in);  // infer_shape for the one input, without a vector
  Geometry geometry(const Shape& in) const;
  void bias_gradient(const float* dy, long rows, float* db);
  bool is_pointwise() const;  // 1x1, stride 1: the input already is the column matrix
  int images_per_chunk(const Geometry& g) const;
  void im2col(const float* x, const Geometry& g, int n0, int n1, float* col) const;
  void col2im_add(const float* col, const Geometry& g, int n0, int n1, float* dx) const;

  int filters_, k_, stride_;
  Padding padding_;
  bool use_bias_;
  int cin_ = 0;
  bool bias_grad_zero_ = false;
  ThreadSums bias_sums_;            // per-thread column sums of dy for the bias gradient
  std::vector<double> bias_total_;  // [Cout], their total
};

}  // namespace parafine
