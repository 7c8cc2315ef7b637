// Dense forward/backward via sgemm (see dense.hpp).
#include "parafine/layers/dense.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "parafine/core/bfloat16.hpp"
#include "parafine/core/compute.hpp"

namespace parafine {

Dense::Dense(std::string name, int units, Activation activation)
    : Layer(std::move(name)), units_(units), activation_(activation) {
  if (units < 1) fail("units must be positive, got " + std::to_string(units));
}

Shape Dense::infer_shape(const std::vector<Shape>& in) {
  expect_count(in, 1);
  return infer_one(in[0]);
}

Shape Dense::infer_one(const Shape& in) {
  expect_input(in, 2);
  if (in_ != 0 && in[1] != in_)
    fail("expects " + std::to_string(in_) + " input features, got input " + in.str());
  in_ = in[1];
  return Shape{in[0], units_};
}

std::vector<ParamSpec> Dense::param_specs() const {
  return {{"kernel", Shape{in_, units_}, true}, {"bias", Shape{units_}, true}};
}

void softmax_rows(const float* logits, int n, int c, float* probs) {
  for (int i = 0; i < n; ++i) {
    const float* z = logits + static_cast<size_t>(i) * c;
    float* p = probs + static_cast<size_t>(i) * c;
    const float m = *std::max_element(z, z + c);
    double s = 0.0;
    for (int k = 0; k < c; ++k) s += std::exp(static_cast<double>(z[k]) - m);
    for (int k = 0; k < c; ++k)
      p[k] = static_cast<float>(std::exp(static_cast<double>(z[k]) - m) / s);
  }
}

// The kernel (and bias) this layer multiplies by: its own, or under mixed_bfloat16 copies
// rounded to bfloat16 (the kernel in the workspace).
const float* Dense::compute_kernel() {
  if (!bfloat16_compute_) return param(0);
  const std::size_t n = static_cast<std::size_t>(in_) * units_;
  float* rounded = ws_->get_c(n);
  round_to_bfloat16(param(0), n, rounded);
  return rounded;
}

void Dense::forward(const std::vector<const Tensor*>& in, Tensor& out, bool) {
  const Shape os = infer_one(in[0]->shape());
  const int n = os[0];
  Tensor& z = activation_ == Activation::kSoftmax ? logits_ : out;
  z.resize(os);
  out.resize(os);
  const float* bias = param(1);
  if (bfloat16_compute_) {
    bias_bf16_.resize(static_cast<std::size_t>(units_));
    round_to_bfloat16(bias, bias_bf16_.size(), bias_bf16_.data());
    bias = bias_bf16_.data();
  }
  // float32: z = bias + x W in one sgemm. mixed_bfloat16, as TensorFlow runs it: the bfloat16
  // matmul result, then a bfloat16 bias add; a softmax then runs in float32 on these logits
  // (the Keras mixed-precision guide's float32 output), and so does the loss.
  for (int i = 0; i < n; ++i) {
    float* row = z.data() + static_cast<size_t>(i) * units_;
    if (bfloat16_compute_)
      std::fill(row, row + units_, 0.0f);
    else
      std::memcpy(row, bias, sizeof(float) * units_);
  }
  sgemm(false, false, n, units_, in_, 1.0f, in[0]->data(), in_, compute_kernel(), units_, 1.0f,
        z.data(), units_);
  if (bfloat16_compute_) add_bias_bfloat16(z.data(), static_cast<std::size_t>(n), units_, bias);
  if (activation_ == Activation::kRelu) {
    float* y = out.data();
    for (size_t i = 0; i < out.numel(); ++i) y[i] = std::max(y[i], 0.0f);
  } else if (activation_ == Activation::kSoftmax) {
    softmax_rows(logits_.data(), n, units_, out.data());
  }
}

void Dense::backward(const std::vector<const Tensor*>& in, const Tensor& out, const Tensor& dout,
                     const std::vector<Tensor*>& din) {
  const int n = out.shape()[0];
  const float* dz = dout.data();
  if (activation_ == Activation::kRelu) {
    dz_.resize(out.shape());
    for (size_t i = 0; i < out.numel(); ++i) dz_[i] = out[i] > 0.0f ? dout[i] : 0.0f;
    dz = dz_.data();
  }
  if (trainable && grad(0) && n == 0) {  // a rank with no samples in this step
    std::fill(grad(0), grad(0) + static_cast<std::size_t>(in_) * units_, 0.0f);
    std::fill(grad(1), grad(1) + units_, 0.0f);
  } else if (trainable && grad(0)) {
    // dW[in,units] = x^T dz ; db = column sums of dz
    sgemm(true, false, in_, units_, n, 1.0f, in[0]->data(), in_, dz, units_, 0.0f, grad(0), units_);
    float* db = grad(1);
    for (int k = 0; k < units_; ++k) {
      double s = 0.0;
      for (int i = 0; i < n; ++i) s += dz[static_cast<size_t>(i) * units_ + k];
      db[k] = static_cast<float>(s);
    }
  }
  if (din[0]) {
    din[0]->resize(in[0]->shape());
    sgemm(false, true, n, in_, units_, 1.0f, dz, units_, compute_kernel(), units_, 0.0f,
          din[0]->data(), in_);
  }
}

}  // namespace parafine
