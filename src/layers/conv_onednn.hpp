// Conv2D on oneDNN primitives (private to src/layers): forward (bias and ReLU fused),
// backward-data and backward-weights for NHWC activations in parafine's own tensors and HWIO
// kernels reordered into the layout the primitive prefers: on every call for trainable
// kernels, once per stamp for a frozen one (KernelSource). Primitives, their memory objects and
// reorders are created once per input shape and reused; the scratchpad and the per-call
// reordered kernels live in the model's shared Workspace, so a steady step allocates nothing.
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include <memory>
#include <vector>

#include "parafine/layers/conv2d.hpp"
#include "parafine/layers/layer.hpp"

namespace parafine {

// One convolution call's sizes; padding as TensorFlow places it (bottom/right get the extra).
struct ConvDims {
  int n, h, w, cin, ho, wo, cout, kh, kw, stride;
  int pad_top, pad_left, pad_bottom, pad_right;
};

class ConvOneDnn {
 public:
  ConvOneDnn();
  ~ConvOneDnn();
  ConvOneDnn(const ConvOneDnn&) = delete;
  ConvOneDnn& operator=(const ConvOneDnn&) = delete;

  // y[N,Ho,Wo,Cout] = conv(x, kernel) (+ bias) (+ y when accumulating) (then ReLU). bias may
  // be null.
  void forward(const ConvDims& d, const float* x, const KernelSource& kernel, const float* bias,
               bool relu, bool accumulate, bool training, float* y, Workspace& ws);
  // dx[N,H,W,Cin] = dLoss/dx (overwritten).
  void backward_data(const ConvDims& d, const float* dy, const float* kernel, float* dx,
                     Workspace& ws);
  // dkernel[KH,KW,Cin,Cout] = dLoss/dkernel (overwritten).
  void backward_weights(const ConvDims& d, const float* x, const float* dy, float* dkernel,
                        Workspace& ws);

  // Primitive sets cached (for tests: a new batch size adds one, a repeated one does not).
  int cached_primitives() const;

 private:
  struct Forward;
  struct BackwardData;
  struct BackwardWeights;
  struct FrozenKernel;
  Forward& forward_for(const ConvDims& d, bool bias, bool relu, bool accumulate, bool training);
  const float* frozen_kernel(Forward& e, const KernelSource& source, Workspace& ws);
  BackwardData& backward_data_for(const ConvDims& d);
  BackwardWeights& backward_weights_for(const ConvDims& d);

  std::vector<std::unique_ptr<Forward>> forward_;
  std::vector<std::unique_ptr<BackwardData>> backward_data_;
  std::vector<std::unique_ptr<BackwardWeights>> backward_weights_;
  // Stamped kernels in each layout a forward primitive chose (usually one for all batch
  // sizes); dropped when the layer is next run with an unstamped (trainable) kernel.
  std::vector<std::unique_ptr<FrozenKernel>> frozen_;
};

}  // namespace parafine
