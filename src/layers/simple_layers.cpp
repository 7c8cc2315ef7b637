// Forward and backward of the weightless layers (see simple_layers.hpp).
#include "parafine/layers/simple_layers.hpp"
#include "parafine/core/compute.hpp"
#include "parafine/layers/pooling.hpp"  // pool_axis

#include <omp.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstring>

namespace parafine {

// ---- InputLayer ----
InputLayer::InputLayer(std::string name, Shape sample_shape)
    : Layer(std::move(name)), sample_(std::move(sample_shape)) {}

Shape InputLayer::infer_shape(const std::vector<Shape>& in) {
  expect_inputs(in, 1, 4);
  const Shape& s = in[0];
  if (s[1] != sample_[0] || s[2] != sample_[1] || s[3] != sample_[2])
    fail("expects images of shape [N," + std::to_string(sample_[0]) + "," +
         std::to_string(sample_[1]) + "," + std::to_string(sample_[2]) + "], got " + s.str());
  return s;
}

void InputLayer::forward(const std::vector<const Tensor*>& in, Tensor& out, bool) {
  out.resize(in[0]->shape());
  std::memcpy(out.data(), in[0]->data(), in[0]->numel() * sizeof(float));
}

// ---- ZeroPadding2D ----
ZeroPadding2D::ZeroPadding2D(std::string name, int top, int bottom, int left, int right)
    : Layer(std::move(name)), top_(top), bottom_(bottom), left_(left), right_(right) {
  if (top < 0 || bottom < 0 || left < 0 || right < 0)
    fail("padding must be non-negative, got ((" + std::to_string(top) + ", " +
         std::to_string(bottom) + "), (" + std::to_string(left) + ", " + std::to_string(right) +
         "))");
}

Shape ZeroPadding2D::infer_shape(const std::vector<Shape>& in) {
  expect_count(in, 1);
  return infer_one(in[0]);
}

Shape ZeroPadding2D::infer_one(const Shape& s) const {
  expect_input(s, 4);
  return Shape{s[0], top_ + s[1] + bottom_, left_ + s[2] + right_, s[3]};
}

// Row r of image i lands at row top + r, column left of the padded output [N,Ho,Wo,C].
void ZeroPadding2D::forward(const std::vector<const Tensor*>& in, Tensor& out, bool) {
  const Shape& s = in[0]->shape();
  const Shape os = infer_one(s);
  const int n = s[0], h = s[1], w = s[2], c = s[3], ho = os[1], wo = os[2];
  out.resize(os);
  out.zero();
  const float* x = in[0]->data();
  float* y = out.data();
#pragma omp parallel for collapse(2) if (parallel_worth(in[0]->numel()))
  for (int i = 0; i < n; ++i)
    for (int r = 0; r < h; ++r)
      std::memcpy(y + ((static_cast<size_t>(i) * ho + r + top_) * wo + left_) * c,
                  x + (static_cast<size_t>(i) * h + r) * w * c, sizeof(float) * w * c);
}

void ZeroPadding2D::backward(const std::vector<const Tensor*>& in, const Tensor&,
                             const Tensor& dout, const std::vector<Tensor*>& din) {
  if (!din[0]) return;
  const Shape& s = in[0]->shape();
  const Shape os = infer_one(s);
  const int n = s[0], h = s[1], w = s[2], c = s[3], ho = os[1], wo = os[2];
  din[0]->resize(s);
  const float* dy = dout.data();
  float* dx = din[0]->data();
#pragma omp parallel for collapse(2) if (parallel_worth(in[0]->numel()))
  for (int i = 0; i < n; ++i)
    for (int r = 0; r < h; ++r)
      std::memcpy(dx + (static_cast<size_t>(i) * h + r) * w * c,
                  dy + ((static_cast<size_t>(i) * ho + r + top_) * wo + left_) * c,
                  sizeof(float) * w * c);
}

// ---- ReLU ----
ReLU::ReLU(std::string name, std::optional<float> max_value)
    : Layer(std::move(name)), max_value_(max_value) {
  if (max_value_ && !(*max_value_ >= 0.0f))
    fail("max_value must be >= 0 (Keras ReLU), got " + std::to_string(*max_value_));
  clip_grad_ = max_value_ && *max_value_ != 6.0f;
}

bool ReLU::output_is_bfloat16() const {
  if (!max_value_) return true;  // y is x or 0
  std::uint32_t bits;
  std::memcpy(&bits, &*max_value_, sizeof bits);
  return (bits & 0xFFFFu) == 0;  // y is x, 0 or m: exact if m is a bfloat16
}

bool is_plain_relu(const Layer& layer) {
  const auto* r = dynamic_cast<const ReLU*>(&layer);
  return r && !r->max_value();
}

Shape ReLU::infer_shape(const std::vector<Shape>& in) {
  if (in.size() != 1) fail("expects 1 input");
  return in[0];
}

void ReLU::forward(const std::vector<const Tensor*>& in, Tensor& out, bool) {
  out.resize(in[0]->shape());
  const float* x = in[0]->data();
  float* y = out.data();
  const long n = static_cast<long>(out.numel());
  if (!max_value_) {
#pragma omp parallel for if (parallel_worth(n))
    for (long i = 0; i < n; ++i) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
    return;
  }
  const float m = *max_value_;
#pragma omp parallel for if (parallel_worth(n))
  for (long i = 0; i < n; ++i) y[i] = x[i] > 0.0f ? (x[i] < m ? x[i] : m) : 0.0f;
}

void ReLU::backward(const std::vector<const Tensor*>& in, const Tensor& out, const Tensor& dout,
                    const std::vector<Tensor*>& din) {
  if (!din[0]) return;
  din[0]->resize(out.shape());
  const float* dy = dout.data();
  float* dx = din[0]->data();
  const long n = static_cast<long>(out.numel());
  if (clip_grad_) {  // clip_by_value(relu(x), 0, m): passes where 0 < x <= m
    const float* x = in[0]->data();
    const float m = *max_value_;
#pragma omp parallel for if (parallel_worth(n))
    for (long i = 0; i < n; ++i) dx[i] = x[i] > 0.0f && x[i] <= m ? dy[i] : 0.0f;
    return;
  }
  const float* y = out.data();
  if (max_value_) {  // Relu6Grad: 0 < y < 6
#pragma omp parallel for if (parallel_worth(n))
    for (long i = 0; i < n; ++i) dx[i] = y[i] > 0.0f && y[i] < 6.0f ? dy[i] : 0.0f;
    return;
  }
#pragma omp parallel for if (parallel_worth(n))
  for (long i = 0; i < n; ++i) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

// ---- Add ----
Shape Add::infer_shape(const std::vector<Shape>& in) {
  if (in.size() != 2) fail("expects 2 inputs, got " + std::to_string(in.size()));
  if (in[0] != in[1]) fail("input shapes differ: " + in[0].str() + " vs " + in[1].str());
  return in[0];
}

void Add::forward(const std::vector<const Tensor*>& in, Tensor& out, bool) {
  out.resize(in[0]->shape());
  const float* a = in[0]->data();
  const float* b = in[1]->data();
  float* y = out.data();
  const long n = static_cast<long>(out.numel());
#pragma omp parallel for if (parallel_worth(n))
  for (long i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

void Add::backward(const std::vector<const Tensor*>&, const Tensor& out, const Tensor& dout,
                   const std::vector<Tensor*>& din) {
  for (Tensor* d : din) {
    if (!d) continue;
    d->resize(out.shape());
    std::memcpy(d->data(), dout.data(), sizeof(float) * out.numel());
  }
}

// ---- MaxPooling2D ----
MaxPooling2D::MaxPooling2D(std::string name, int pool, int stride, Padding padding)
    : Layer(std::move(name)), pool_(pool), stride_(stride), padding_(padding) {
  if (pool < 1 || stride < 1) fail("pool size and stride must be positive");
  if (pool * pool > 256) fail("pool windows above 16x16 are not supported");
}

Shape MaxPooling2D::infer_shape(const std::vector<Shape>& in) {
  expect_count(in, 1);
  return infer_one(in[0]);
}

Shape MaxPooling2D::infer_one(const Shape& s) const {
  expect_input(s, 4);
  if (padding_ == Padding::kValid && (s[1] < pool_ || s[2] < pool_))
    fail("input " + s.str() + " is smaller than the " + std::to_string(pool_) + "x" +
         std::to_string(pool_) + " window ('valid' padding)");
  return Shape{s[0], pool_axis(s[1], pool_, stride_, padding_).out,
               pool_axis(s[2], pool_, stride_, padding_).out, s[3]};
}

void MaxPooling2D::forward(const std::vector<const Tensor*>& in, Tensor& out, bool training) {
  const Shape& s = in[0]->shape();
  const Shape os = infer_one(s);
  out.resize(os);
  // Backward routes each gradient to the input its output came from: only training needs it.
  if (training) argmax_.resize(out.numel());
  std::uint8_t* argmax = training ? argmax_.data() : nullptr;
  const int n = s[0], h = s[1], w = s[2], c = s[3], ho = os[1], wo = os[2];
  const int top = pool_axis(h, pool_, stride_, padding_).pad_before;
  const int left = pool_axis(w, pool_, stride_, padding_).pad_before;
  const float* x = in[0]->data();
  float* y = out.data();
  // Per output pixel, the window's real pixels in order (a, then b), each a contiguous row of C
  // channels: the first maximum in window order wins, as a channel-by-channel scan would.
  // Padded cells are skipped (never win); every window has a real cell (pool_axis).
#pragma omp parallel for collapse(2) if (parallel_worth(out.numel() * pool_ * pool_))
  for (int i = 0; i < n; ++i)
    for (int r = 0; r < ho; ++r)
      for (int q = 0; q < wo; ++q) {
        const size_t o = ((static_cast<size_t>(i) * ho + r) * wo + q) * c;
        float* best = y + o;
        const int r0 = r * stride_ - top, q0 = q * stride_ - left;
        const int a_lo = std::max(0, -r0), a_hi = std::min(pool_, h - r0);
        const int b_lo = std::max(0, -q0), b_hi = std::min(pool_, w - q0);
        for (int a = a_lo; a < a_hi; ++a)
          for (int b = b_lo; b < b_hi; ++b) {
            const size_t at =
                ((static_cast<size_t>(i) * h + r0 + a) * w + q0 + b) * static_cast<size_t>(c);
            const float* px = x + at;
            const auto offset = static_cast<std::uint8_t>(a * pool_ + b);
            if (a == a_lo && b == b_lo) {
              std::copy(px, px + c, best);
              if (argmax) std::fill(argmax + o, argmax + o + c, offset);
              continue;
            }
            if (argmax) {
              for (int ch = 0; ch < c; ++ch)
                if (px[ch] > best[ch]) {
                  best[ch] = px[ch];
                  argmax[o + ch] = offset;
                }
            } else {
              for (int ch = 0; ch < c; ++ch) best[ch] = px[ch] > best[ch] ? px[ch] : best[ch];
            }
          }
      }
}

void MaxPooling2D::backward(const std::vector<const Tensor*>& in, const Tensor& out,
                            const Tensor& dout, const std::vector<Tensor*>& din) {
  if (!din[0]) return;
  const Shape& s = in[0]->shape();  // in[0] and out may be hollow: shapes only
  din[0]->resize(s);
  din[0]->zero();
  float* dx = din[0]->data();
  const float* dy = dout.data();
  const Shape& os = out.shape();
  const int n = s[0], h = s[1], w = s[2], c = s[3], ho = os[1], wo = os[2];
  const int top = pool_axis(h, pool_, stride_, padding_).pad_before;
  const int left = pool_axis(w, pool_, stride_, padding_).pad_before;
  // The input offset of each window position a*pool+b from the window's (possibly padded)
  // corner; the argmax always names a real cell, so corner + step is inside the image.
  std::array<std::ptrdiff_t, 256> step{};
  for (int a = 0; a < pool_; ++a)
    for (int b = 0; b < pool_; ++b)
      step[static_cast<size_t>(a * pool_ + b)] = (static_cast<std::ptrdiff_t>(a) * w + b) * c;
      // Windows overlap, so two outputs may route to one input: parallel over images only, each
      // image's outputs in order (the sums do not depend on the threads).
#pragma omp parallel for if (parallel_worth(out.numel()))
  for (int i = 0; i < n; ++i)
    for (int r = 0; r < ho; ++r)
      for (int q = 0; q < wo; ++q) {
        const size_t o = ((static_cast<size_t>(i) * ho + r) * wo + q) * c;
        const std::ptrdiff_t corner =
            ((static_cast<std::ptrdiff_t>(i) * h + r * stride_ - top) * w + q * stride_ - left) * c;
        for (int ch = 0; ch < c; ++ch) dx[corner + step[argmax_[o + ch]] + ch] += dy[o + ch];
      }
}

// ---- GlobalAveragePooling2D ----
Shape GlobalAveragePooling2D::infer_shape(const std::vector<Shape>& in) {
  expect_inputs(in, 1, 4);
  return Shape{in[0][0], in[0][3]};
}

void GlobalAveragePooling2D::forward(const std::vector<const Tensor*>& in, Tensor& out, bool) {
  const Shape& s = in[0]->shape();
  const int n = s[0], hw = s[1] * s[2], c = s[3];
  out.resize(Shape{n, c});
  const float* x = in[0]->data();
  float* y = out.data();
  const double inv = 1.0 / hw;
  sums_.prepare(c);
#pragma omp parallel for if (parallel_worth(in[0]->numel()))
  for (int i = 0; i < n; ++i) {
    double* acc = sums_.slice(omp_get_thread_num());
    std::fill(acc, acc + c, 0.0);
    for (int p = 0; p < hw; ++p) {
      const float* row = x + (static_cast<size_t>(i) * hw + p) * c;
      for (int ch = 0; ch < c; ++ch) acc[ch] += row[ch];
    }
    for (int ch = 0; ch < c; ++ch)
      y[static_cast<size_t>(i) * c + ch] = static_cast<float>(acc[ch] * inv);
  }
}

void GlobalAveragePooling2D::backward(const std::vector<const Tensor*>& in, const Tensor&,
                                      const Tensor& dout, const std::vector<Tensor*>& din) {
  if (!din[0]) return;
  const Shape& s = in[0]->shape();
  const int n = s[0], hw = s[1] * s[2], c = s[3];
  din[0]->resize(s);
  const float* dy = dout.data();
  float* dx = din[0]->data();
  const float inv = 1.0f / static_cast<float>(hw);
#pragma omp parallel for collapse(2) if (parallel_worth(in[0]->numel()))
  for (int i = 0; i < n; ++i)
    for (int p = 0; p < hw; ++p)
      for (int ch = 0; ch < c; ++ch)
        dx[(static_cast<size_t>(i) * hw + p) * c + ch] = dy[static_cast<size_t>(i) * c + ch] * inv;
}

}  // namespace parafine
