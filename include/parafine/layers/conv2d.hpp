// Conv2D as Keras defines it: NHWC input, HWIO kernel [KH,KW,Cin,Cout] (KH and KW may differ,
// as InceptionV3's 1x7 and 7x1), optional bias [Cout], stride, 'valid' or 'same' padding
// (TensorFlow's rule, per axis: extra padding goes bottom/right), and an optional activation
// applied after the bias (Keras Conv2D(activation='relu'), as VGG uses).
// Two engines compute it. oneDNN: convolution primitives on the NHWC tensors, created once
// per input shape (src/layers/conv_onednn.hpp). im2col: 1x1 stride-1 convolutions are one
// sgemm over [N*H*W, Cin]; others build im2col columns [rows, KH*KW*Cin] (column order matches
// the HWIO kernel) a few images at a time, multiplied by OpenBLAS sgemm.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "parafine/layers/layer.hpp"

namespace parafine {

enum class Padding { kValid, kSame };

enum class ConvEngine { kIm2col, kOneDnn };

// Keras Conv2D's activation argument: None (linear) or 'relu'.
enum class ConvActivation { kNone, kRelu };

// A kernel's height and width (Keras kernel_size=(kh, kw)).
struct KernelSize {
  int h, w;
};

// The engine a new Conv2D uses: PARAFINE_CONV_ENGINE=im2col|onednn (read once; any other
// value throws std::invalid_argument), else the faster one as measured (benchmarks/README.md).
ConvEngine default_conv_engine();
const char* conv_engine_name(ConvEngine e);

class ConvOneDnn;
struct ConvDims;

// The substitute kernel of a fused forward (a frozen conv with its inference BatchNormalization
// folded in). plain() returns it as HWIO [KH,KW,Cin,Cout]. A nonzero stamp names those values:
// a conv that already holds a copy made under the same stamp (in the layout oneDNN prefers)
// reuses it without calling plain(), so a frozen kernel is folded and reordered once, not on
// every forward. Stamp 0: the values may differ on every call.
struct KernelSource {
  std::uint64_t stamp = 0;
  std::function<const float*()> plain;
};

class Conv2D : public Layer {
 public:
  // A square kernel x kernel.
  Conv2D(std::string name, int filters, int kernel, int stride, Padding padding,
         bool use_bias = true, ConvActivation activation = ConvActivation::kNone);
  Conv2D(std::string name, int filters, KernelSize kernel, int stride, Padding padding,
         bool use_bias = true, ConvActivation activation = ConvActivation::kNone);
  ~Conv2D() override;
  const char* type() const override { return "Conv2D"; }
  // x and dy; with a ReLU activation also the output (dy is masked by out > 0).
  bool backward_reads_output_values() const override {
    return activation_ == ConvActivation::kRelu;
  }
  // mixed_bfloat16: the convolution's result and the bias add are each rounded here (the ReLU
  // of a bfloat16 value is exact).
  bool output_is_bfloat16() const override { return bfloat16_compute_; }
  bool multiplies_by_weights() const override { return true; }

  Shape infer_shape(const std::vector<Shape>& in) override;
  std::vector<ParamSpec> param_specs() const override;  // kernel, bias
  void forward(const std::vector<const Tensor*>& in, Tensor& out, bool training) override;
  void backward(const std::vector<const Tensor*>& in, const Tensor& out, const Tensor& dout,
                const std::vector<Tensor*>& din) override;

  // When the only consumer is a BatchNormalization in training mode, the bias cancels in the
  // batch mean and its gradient is exactly zero; the Model sets this so it stays exactly zero.
  // (Not so with the layer's own ReLU between them: then it is ignored.)
  void set_bias_gradient_is_zero(bool z) { bias_grad_zero_ = z; }

  // Forward with substitute weights (bias [Cout] or null) and an optional fused ReLU: how the
  // Model runs a frozen conv with its inference BN folded in. accumulate: `out` already holds
  // a tensor of the output's shape (a residual shortcut), and the result is added to it before
  // the ReLU, in place. Throws for a conv with its own activation (BN cannot be folded past it).
  void forward_with(const Tensor& input, Tensor& out, const KernelSource& kernel, const float* bias,
                    bool relu, bool accumulate = false);

  // A nonzero stamp tells forward() that the kernel (and bias) have these values for as long as
  // the stamp is the same (the Model's frozen layers): the oneDNN engine then keeps its copy in
  // its layout (bfloat16-rounded under mixed_bfloat16) instead of making one every call.
  void set_kernel_stamp(std::uint64_t stamp) { kernel_stamp_ = stamp; }

  // Which engine computes this layer (default_conv_engine() when constructed).
  void set_engine(ConvEngine e) { engine_ = e; }
  ConvEngine engine() const { return engine_; }
  // oneDNN primitive sets this layer has cached (0 under im2col): one per kind and shape.
  int onednn_cached_primitives() const;

  int filters() const { return filters_; }
  int kernel_h() const { return kh_; }
  int kernel_w() const { return kw_; }
  ConvActivation activation() const { return activation_; }
  int stride() const { return stride_; }
  Padding padding() const { return padding_; }
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
  ConvDims onednn_dims(const Geometry& g) const;
  ConvOneDnn& onednn();
  void forward_impl(const Tensor& input, Tensor& out, const KernelSource& kernel, const float* bias,
                    bool relu, bool accumulate, bool training);
  void backward_onednn(const Geometry& g, const float* x, const float* dy, const float* kernel,
                       bool weight_grads, Tensor* dx);
  const float* compute_kernel();
  const float* compute_bias();
  void bias_gradient(const float* dy, long rows, float* db);
  void relu_in_place(Tensor& out) const;
  bool is_pointwise() const;  // 1x1, stride 1: the input already is the column matrix
  int images_per_chunk(const Geometry& g) const;
  void im2col(const float* x, const Geometry& g, int n0, int n1, float* col) const;
  void col2im_add(const float* col, const Geometry& g, int n0, int n1, float* dx) const;

  int filters_, kh_, kw_, stride_;
  Padding padding_;
  bool use_bias_;
  ConvActivation activation_;
  int cin_ = 0;
  bool bias_grad_zero_ = false;
  std::uint64_t kernel_stamp_ = 0;
  ConvEngine engine_;
  std::unique_ptr<ConvOneDnn> onednn_;  // created on first use
  std::vector<float> bias_bf16_;        // the bias rounded to bfloat16 (mixed_bfloat16)
  ThreadSums bias_sums_;                // per-thread column sums of dy for the bias gradient
  std::vector<double> bias_total_;      // [Cout], their total
};

}  // namespace parafine
