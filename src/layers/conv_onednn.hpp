// Conv2D on oneDNN primitives (private to src/layers): forward (bias and ReLU fused),
// backward-data and backward-weights for NHWC activations in parafine's own tensors and HWIO
// kernels reordered every call into the layout the primitive prefers. Primitives, their memory
// objects and reorders are created once per input shape and reused; the scratchpad and the
// reordered kernels live in the model's shared Workspace, so a steady step allocates nothing.
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include <memory>
#include <vector>

#include "parafine/layers/layer.hpp"

namespace parafine {

// One convolution call's sizes; padding as TensorFlow places it (bottom/right get the extra).
struct ConvDims {
  int n, h, w, cin, ho, wo, cout, k, stride;
  int pad_top, pad_left, pad_bottom, pad_right;
};

class ConvOneDnn {
 public:
  ConvOneDnn();
  ~ConvOneDnn();
  ConvOneDnn(const ConvOneDnn&) = delete;
  ConvOneDnn& operator=(const ConvOneDnn&) = delete;

  // y[N,Ho,Wo,Cout] = conv(x, kernel) (+ bias) (then ReLU). bias may be null.
  void forward(const ConvDims& d, const float* x, const float* kernel, const float* bias, bool relu,
               bool training, float* y, Workspace& ws);
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
  Forward& forward_for(const ConvDims& d, bool bias, bool relu, bool training);
  BackwardData& backward_data_for(const ConvDims& d);
  BackwardWeights& backward_weights_for(const ConvDims& d);

  std::vector<std::unique_ptr<Forward>> forward_;
  std::vector<std::unique_ptr<BackwardData>> backward_data_;
  std::vector<std::unique_ptr<BackwardWeights>> backward_weights_;
};

}  // namespace parafine
