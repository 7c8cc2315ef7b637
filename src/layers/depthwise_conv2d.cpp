// DepthwiseConv2D forward/backward with direct OpenMP loops over NHWC (see depthwise_conv2d.hpp).
// Kernel [KH,KW,C,M] is read as [KH*KW, C*M]: tap t's row holds output channel o = c*M + m at o,
// the same order as the output's channels, so every inner loop runs over contiguous channels.
#include "parafine/layers/depthwise_conv2d.hpp"

#include <omp.h>

#include <algorithm>
#include <limits>

#include "parafine/core/bfloat16.hpp"
#include "parafine/core/compute.hpp"

namespace parafine {

namespace {
// acc[c*M+m] += x[c] * w[c*M+m] over one tap; M == 1 (MobileNetV2) is a plain vector loop.
inline void tap(const float* x, const float* w, int c, int m, float* acc) {
  if (m == 1) {
    for (int k = 0; k < c; ++k) acc[k] += x[k] * w[k];
    return;
  }
  for (int k = 0; k < c; ++k)
    for (int j = 0; j < m; ++j) acc[k * m + j] += x[k] * w[k * m + j];
}
}  // namespace

DepthwiseConv2D::DepthwiseConv2D(std::string name, int kernel, int stride, Padding padding,
                                 bool use_bias, int depth_multiplier)
    : Layer(std::move(name)),
      k_(kernel),
      stride_(stride),
      padding_(padding),
      use_bias_(use_bias),
      mult_(depth_multiplier) {
  if (kernel < 1 || stride < 1 || depth_multiplier < 1)
    fail("kernel size (" + std::to_string(kernel) + "), stride (" + std::to_string(stride) +
         ") and depth_multiplier (" + std::to_string(depth_multiplier) + ") must be positive");
}

Shape DepthwiseConv2D::infer_shape(const std::vector<Shape>& in) {
  expect_count(in, 1);
  return infer_one(in[0]);
}

Shape DepthwiseConv2D::infer_one(const Shape& in) {
  expect_input(in, 4);
  if (cin_ != 0 && in[3] != cin_)
    fail("expects " + std::to_string(cin_) + " input channels, got input " + in.str());
  cin_ = in[3];
  const Geometry g = geometry(in);
  if (g.ho < 1 || g.wo < 1)
    fail("input " + in.str() + " is smaller than the " + std::to_string(k_) + "x" +
         std::to_string(k_) + " kernel");
  return Shape{g.n, g.ho, g.wo, out_channels()};
}

std::vector<ParamSpec> DepthwiseConv2D::param_specs() const {
  std::vector<ParamSpec> p{{"depthwise_kernel", Shape{k_, k_, cin_, mult_}, true}};
  if (use_bias_) p.push_back({"bias", Shape{out_channels()}, true});
  return p;
}

DepthwiseConv2D::Geometry DepthwiseConv2D::geometry(const Shape& s) const {
  Geometry g{s[0], s[1], s[2], 0, 0, 0, 0};
  if (padding_ == Padding::kValid) {
    g.ho = g.h < k_ ? 0 : (g.h - k_) / stride_ + 1;
    g.wo = g.w < k_ ? 0 : (g.w - k_) / stride_ + 1;
  } else {
    g.ho = (g.h + stride_ - 1) / stride_;
    g.wo = (g.w + stride_ - 1) / stride_;
    g.pad_top = std::max((g.ho - 1) * stride_ + k_ - g.h, 0) / 2;
    g.pad_left = std::max((g.wo - 1) * stride_ + k_ - g.w, 0) / 2;
  }
  return g;
}

double DepthwiseConv2D::forward_flops(const Shape& in) const {
  const Geometry g = geometry(in);
  return 2.0 * g.n * g.ho * g.wo * static_cast<double>(k_) * k_ * in[3] * mult_;
}

const float* DepthwiseConv2D::compute_kernel() {
  if (!bfloat16_compute_) return param(0);
  const std::size_t n = static_cast<std::size_t>(k_) * k_ * out_channels();
  float* rounded = ws_->get_c(n);
  round_to_bfloat16(param(0), n, rounded);
  return rounded;
}

const float* DepthwiseConv2D::compute_bias() {
  if (!use_bias_) return nullptr;
  if (!bfloat16_compute_) return param(1);
  bias_bf16_.resize(static_cast<std::size_t>(out_channels()));
  round_to_bfloat16(param(1), bias_bf16_.size(), bias_bf16_.data());
  return bias_bf16_.data();
}

// y [N,Ho,Wo,C*M] = the taps of x [N,H,W,C] times w [KH*KW, C*M], plus bias [C*M] or null.
void DepthwiseConv2D::convolve(const Geometry& g, const float* x, const float* w, const float* bias,
                               float* y, bool relu, std::optional<float> relu_max) const {
  const float hi = relu_max ? *relu_max : std::numeric_limits<float>::infinity();
  const int c = cin_, co = out_channels();
  const long out_rows = static_cast<long>(g.n) * g.ho;
#pragma omp parallel for if (parallel_worth(static_cast <double>(out_rows) * g.wo * co * k_ * k_))
  for (long nr = 0; nr < out_rows; ++nr) {
    const int n = static_cast<int>(nr / g.ho), r = static_cast<int>(nr % g.ho);
    for (int q = 0; q < g.wo; ++q) {
      float* acc = y + (nr * g.wo + q) * co;
      if (bias)
        std::copy(bias, bias + co, acc);
      else
        std::fill(acc, acc + co, 0.0f);
      for (int a = 0; a < k_; ++a) {
        const int iy = r * stride_ - g.pad_top + a;
        if (iy < 0 || iy >= g.h) continue;
        for (int b = 0; b < k_; ++b) {
          const int ix = q * stride_ - g.pad_left + b;
          if (ix < 0 || ix >= g.w) continue;
          const float* xr = x + ((static_cast<long>(n) * g.h + iy) * g.w + ix) * c;
          tap(xr, w + static_cast<long>(a * k_ + b) * co, c, mult_, acc);
        }
      }
      if (relu)
        for (int k = 0; k < co; ++k) acc[k] = acc[k] > 0.0f ? (acc[k] < hi ? acc[k] : hi) : 0.0f;
    }
  }
}

void DepthwiseConv2D::forward_with(const Tensor& input, Tensor& out, const float* kernel,
                                   const float* bias, bool relu, std::optional<float> relu_max) {
  out.resize(infer_one(input.shape()));
  convolve(geometry(input.shape()), input.data(), kernel, bias, out.data(), relu, relu_max);
}

void DepthwiseConv2D::forward(const std::vector<const Tensor*>& in, Tensor& out, bool) {
  const Tensor& input = *in[0];
  out.resize(infer_one(input.shape()));
  const Geometry g = geometry(input.shape());
  if (!bfloat16_compute_) {
    convolve(g, input.data(), compute_kernel(), compute_bias(), out.data());
    return;
  }
  // mixed_bfloat16, as TensorFlow runs it: the convolution's bfloat16 result, then a bfloat16
  // bias_add (rounded again).
  convolve(g, input.data(), compute_kernel(), nullptr, out.data());
  if (use_bias_)
    add_bias_bfloat16(out.data(), out.shape().rows(), out_channels(), compute_bias());
  else
    round_to_bfloat16(out.data(), out.numel());
}

// dx[n,iy,ix,c] = sum over the outputs (r,q) whose window holds (iy,ix) at tap (a,b) and over
// m of dy[n,r,q,c*M+m] * w[a,b,c,m]. Gathered per input pixel, so rows never race.
void DepthwiseConv2D::input_gradient(const Geometry& g, const float* dy, const float* w,
                                     float* dx) const {
  const int c = cin_, co = out_channels(), m = mult_;
  const long in_rows = static_cast<long>(g.n) * g.h;
#pragma omp parallel for if (parallel_worth(static_cast <double>(in_rows) * g.w * co * k_ * k_))
  for (long ny = 0; ny < in_rows; ++ny) {
    const int n = static_cast<int>(ny / g.h), iy = static_cast<int>(ny % g.h);
    for (int ix = 0; ix < g.w; ++ix) {
      float* d = dx + (ny * g.w + ix) * c;
      std::fill(d, d + c, 0.0f);
      for (int a = 0; a < k_; ++a) {
        const int ty = iy + g.pad_top - a;  // = r * stride for the output row r that uses it
        if (ty < 0 || ty % stride_ != 0 || ty / stride_ >= g.ho) continue;
        for (int b = 0; b < k_; ++b) {
          const int tx = ix + g.pad_left - b;
          if (tx < 0 || tx % stride_ != 0 || tx / stride_ >= g.wo) continue;
          const float* dyr =
              dy + ((static_cast<long>(n) * g.ho + ty / stride_) * g.wo + tx / stride_) * co;
          const float* wr = w + static_cast<long>(a * k_ + b) * co;
          if (m == 1) {
            for (int k = 0; k < c; ++k) d[k] += dyr[k] * wr[k];
          } else {
            for (int k = 0; k < c; ++k)
              for (int j = 0; j < m; ++j) d[k] += dyr[k * m + j] * wr[k * m + j];
          }
        }
      }
    }
  }
}

// dw[a,b,c,m] = sum_{n,r,q} x[n, r*s-top+a, q*s-left+b, c] * dy[n,r,q,c*M+m]; db = sum dy.
// Per-thread double sums over output rows, then their total.
void DepthwiseConv2D::weight_gradients(const Geometry& g, const float* x, const float* dy) {
  const int c = cin_, co = out_channels(), taps = k_ * k_;
  const int width = taps * co + (use_bias_ ? co : 0);
  total_.assign(static_cast<std::size_t>(width), 0.0);
  double* total = total_.data();
  sums_.prepare(width);
  const long out_rows = static_cast<long>(g.n) * g.ho;
#pragma omp parallel if (parallel_worth(static_cast <double>(out_rows) * g.wo * co * taps))
  {
    double* part = sums_.slice(omp_get_thread_num());
    std::fill(part, part + width, 0.0);
#pragma omp for nowait
    for (long nr = 0; nr < out_rows; ++nr) {
      const int n = static_cast<int>(nr / g.ho), r = static_cast<int>(nr % g.ho);
      for (int q = 0; q < g.wo; ++q) {
        const float* dyr = dy + (nr * g.wo + q) * co;
        if (use_bias_)
          for (int o = 0; o < co; ++o) part[taps * co + o] += dyr[o];
        for (int a = 0; a < k_; ++a) {
          const int iy = r * stride_ - g.pad_top + a;
          if (iy < 0 || iy >= g.h) continue;
          for (int b = 0; b < k_; ++b) {
            const int ix = q * stride_ - g.pad_left + b;
            if (ix < 0 || ix >= g.w) continue;
            const float* xr = x + ((static_cast<long>(n) * g.h + iy) * g.w + ix) * c;
            double* dw = part + static_cast<long>(a * k_ + b) * co;
            for (int k = 0; k < c; ++k)
              for (int j = 0; j < mult_; ++j)
                dw[k * mult_ + j] += static_cast<double>(xr[k] * dyr[k * mult_ + j]);
          }
        }
      }
    }
#pragma omp critical
    for (int i = 0; i < width; ++i) total[i] += part[i];
  }
  float* dw = grad(0);
  for (int i = 0; i < taps * co; ++i) dw[i] = static_cast<float>(total[i]);
  if (use_bias_)
    for (int o = 0; o < co; ++o) grad(1)[o] = static_cast<float>(total[taps * co + o]);
}

void DepthwiseConv2D::backward(const std::vector<const Tensor*>& in, const Tensor&,
                               const Tensor& dout, const std::vector<Tensor*>& din) {
  const Geometry g = geometry(in[0]->shape());
  const bool weight_grads = trainable && grad(0) != nullptr;
  Tensor* dx = din[0];
  if (dx) dx->resize(in[0]->shape());
  if (weight_grads) {  // a rank with no samples still reports (zero) gradients
    if (g.n == 0) {
      std::fill(grad(0), grad(0) + static_cast<std::size_t>(k_) * k_ * out_channels(), 0.0f);
      if (use_bias_) std::fill(grad(1), grad(1) + out_channels(), 0.0f);
    } else {
      weight_gradients(g, in[0]->data(), dout.data());
    }
  }
  if (dx && g.n > 0) input_gradient(g, dout.data(), compute_kernel(), dx->data());
}

}  // namespace parafine
