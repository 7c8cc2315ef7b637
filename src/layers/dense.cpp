// Dense forward/backward via sgemm (see dense.hpp).
#include "parafine/layers/dense.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "parafine/core/bfloat16.hpp"
#include "parafine/core/compute.hpp"

namespace parafine {

Dense::Dense(std::string name, int units, Activation activation, bool use_bias)
    : Layer(std::move(name)), units_(units), activation_(activation), use_bias_(use_bias) {
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
  if (!use_bias_) return {{"kernel", Shape{in_, units_}, true}};
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
  const bool keeps_logits =
      activation_ == Activation::kSoftmax || activation_ == Activation::kSigmoid;
  Tensor& z = keeps_logits ? logits_ : out;
  z.resize(os);
  out.resize(os);
  const float* bias = use_bias_ ? param(1) : nullptr;
  if (bias && bfloat16_compute_) {
    bias_bf16_.resize(static_cast<std::size_t>(units_));
    round_to_bfloat16(bias, bias_bf16_.size(), bias_bf16_.data());
    bias = bias_bf16_.data();
  }
  // float32: z = bias + x W in one sgemm. mixed_bfloat16, as TensorFlow runs it: the bfloat16
  // matmul result, then a bfloat16 bias add; a softmax then runs in float32 on these logits
  // (the Keras mixed-precision guide's float32 output), and so does the loss.
  for (int i = 0; i < n; ++i) {
    float* row = z.data() + static_cast<size_t>(i) * units_;
    if (bfloat16_compute_ || !bias)
      std::fill(row, row + units_, 0.0f);
    else
      std::memcpy(row, bias, sizeof(float) * units_);
  }
  sgemm(false, false, n, units_, in_, 1.0f, in[0]->data(), in_, compute_kernel(), units_, 1.0f,
        z.data(), units_);
  if (bfloat16_compute_ && bias)
    add_bias_bfloat16(z.data(), static_cast<std::size_t>(n), units_, bias);
  float* y = out.data();
  switch (activation_) {
    case Activation::kLinear:
      break;
    case Activation::kRelu:
      for (size_t i = 0; i < out.numel(); ++i) y[i] = std::max(y[i], 0.0f);
      break;
    case Activation::kTanh:
      for (size_t i = 0; i < out.numel(); ++i) y[i] = std::tanh(y[i]);
      break;
    case Activation::kSoftmax:
      softmax_rows(logits_.data(), n, units_, y);
      break;
    case Activation::kSigmoid:  // in double, as softmax_rows, rounded once
      for (size_t i = 0; i < out.numel(); ++i)
        y[i] = static_cast<float>(1.0 / (1.0 + std::exp(-static_cast<double>(logits_[i]))));
      break;
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
  } else if (activation_ == Activation::kTanh) {  // TanhGrad, from the output
    dz_.resize(out.shape());
    for (size_t i = 0; i < out.numel(); ++i) dz_[i] = dout[i] * (1.0f - out[i] * out[i]);
    dz = dz_.data();
  } else if (activation_ == Activation::kSigmoid && !fused_) {  // SigmoidGrad, from the output
    dz_.resize(out.shape());
    for (size_t i = 0; i < out.numel(); ++i) dz_[i] = dout[i] * out[i] * (1.0f - out[i]);
    dz = dz_.data();
  } else if (activation_ == Activation::kSoftmax && !fused_) {
    // Softmax's Jacobian per row: dz_k = y_k (dy_k - sum_j dy_j y_j).
    dz_.resize(out.shape());
    for (int r = 0; r < n; ++r) {
      const std::size_t row = static_cast<std::size_t>(r) * static_cast<std::size_t>(units_);
      double dot = 0;
      for (int k = 0; k < units_; ++k) dot += static_cast<double>(dout[row + k]) * out[row + k];
      for (int k = 0; k < units_; ++k)
        dz_[row + k] = static_cast<float>(out[row + k] * (dout[row + k] - dot));
    }
    dz = dz_.data();
  }
  if (trainable && grad(0) && n == 0) {  // a rank with no samples in this step
    std::fill(grad(0), grad(0) + static_cast<std::size_t>(in_) * units_, 0.0f);
    if (use_bias_) std::fill(grad(1), grad(1) + units_, 0.0f);
  } else if (trainable && grad(0)) {
    // dW[in,units] = x^T dz ; db = column sums of dz
    sgemm(true, false, in_, units_, n, 1.0f, in[0]->data(), in_, dz, units_, 0.0f, grad(0), units_);
    float* db = use_bias_ ? grad(1) : nullptr;
    for (int k = 0; db && k < units_; ++k) {
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
