// Pooling of the Keras applications beyond ResNet50: the 'valid'/'same' window geometry that
// MaxPooling2D and AveragePooling2D share, AveragePooling2D (InceptionV3's 3x3 stride 1 'same'
// branch pools) and GlobalMaxPooling2D (pooling='max'). Tensors are NHWC.
#pragma once

#include "parafine/layers/conv2d.hpp"  // Padding
#include "parafine/layers/layer.hpp"

namespace parafine {

// One spatial axis of a pooling window k, stride s over an input of `in` cells, as TensorFlow
// computes it: 'valid': out = (in-k)/s+1, no padding (0 when in < k); 'same': out = ceil(in/s),
// pad_total = max((out-1)*s + k - in, 0), pad_before = pad_total/2 (the rest goes after).
// Window o covers cells o*s - pad_before .. o*s - pad_before + k - 1, clipped to [0, in).
struct PoolAxis {
  int out = 0;
  int pad_before = 0;
};
PoolAxis pool_axis(int in, int pool, int stride, Padding padding);

// Average over each window's real cells (TensorFlow's AvgPool: padded cells are not counted,
// so a 'same' border window of 3x3 with 4 real cells divides by 4):
// [N,H,W,C] -> [N,Ho,Wo,C] with Ho, Wo from pool_axis. Backward reads shapes only.
class AveragePooling2D : public Layer {
 public:
  AveragePooling2D(std::string name, int pool, int stride, Padding padding = Padding::kValid);
  int pool() const { return pool_; }
  int stride() const { return stride_; }
  Padding padding() const { return padding_; }
  const char* type() const override { return "AveragePooling2D"; }
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
};

// Max over H and W: [N,H,W,C] -> [N,C] (Keras GlobalMaxPooling2D, tf.reduce_max). Backward as
// TensorFlow's reduce_max gradient: dy split equally among the cells equal to the maximum
// (ties share it), so it reads the input and output values.
class GlobalMaxPooling2D : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "GlobalMaxPooling2D"; }
  bool output_is_bfloat16() const override { return true; }  // exact on bfloat16 inputs
  Shape infer_shape(const std::vector<Shape>& in) override;
  void forward(const std::vector<const Tensor*>& in, Tensor& out, bool training) override;
  void backward(const std::vector<const Tensor*>& in, const Tensor& out, const Tensor& dout,
                const std::vector<Tensor*>& din) override;
};

}  // namespace parafine
