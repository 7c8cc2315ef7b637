// Window geometry, AveragePooling2D and GlobalMaxPooling2D (see pooling.hpp).
#include "parafine/layers/pooling.hpp"

#include <algorithm>
#include <cstring>

#include "parafine/core/compute.hpp"

namespace parafine {

PoolAxis pool_axis(int in, int pool, int stride, Padding padding) {
  PoolAxis a;
  if (padding == Padding::kValid) {
    a.out = in < pool ? 0 : (in - pool) / stride + 1;
    return a;
  }
  a.out = (in + stride - 1) / stride;
  const int total = std::max((a.out - 1) * stride + pool - in, 0);
  a.pad_before = total / 2;
  return a;
}

// ---- AveragePooling2D ----
AveragePooling2D::AveragePooling2D(std::string name, int pool, int stride, Padding padding)
    : Layer(std::move(name)), pool_(pool), stride_(stride), padding_(padding) {
  if (pool < 1 || stride < 1) fail("pool size and stride must be positive");
}

Shape AveragePooling2D::infer_shape(const std::vector<Shape>& in) {
  expect_count(in, 1);
  return infer_one(in[0]);
}

Shape AveragePooling2D::infer_one(const Shape& s) const {
  expect_input(s, 4);
  if (padding_ == Padding::kValid && (s[1] < pool_ || s[2] < pool_))
    fail("input " + s.str() + " is smaller than the " + std::to_string(pool_) + "x" +
         std::to_string(pool_) + " window ('valid' padding)");
  return Shape{s[0], pool_axis(s[1], pool_, stride_, padding_).out,
               pool_axis(s[2], pool_, stride_, padding_).out, s[3]};
}

void AveragePooling2D::forward(const std::vector<const Tensor*>& in, Tensor& out, bool) {
  const Shape& s = in[0]->shape();
  const Shape os = infer_one(s);
  out.resize(os);
  const int n = s[0], h = s[1], w = s[2], c = s[3], ho = os[1], wo = os[2];
  const int top = pool_axis(h, pool_, stride_, padding_).pad_before;
  const int left = pool_axis(w, pool_, stride_, padding_).pad_before;
  const float* x = in[0]->data();
  float* y = out.data();
  // Per output pixel: sum the window's real pixels (rows of C channels) in float, then divide
  // by their count.
#pragma omp parallel for collapse(2) if (parallel_worth(out.numel() * pool_ * pool_))
  for (int i = 0; i < n; ++i)
    for (int r = 0; r < ho; ++r)
      for (int q = 0; q < wo; ++q) {
        float* acc = y + ((static_cast<size_t>(i) * ho + r) * wo + q) * c;
        std::fill(acc, acc + c, 0.0f);
        const int r0 = r * stride_ - top, q0 = q * stride_ - left;
        const int a_lo = std::max(0, -r0), a_hi = std::min(pool_, h - r0);
        const int b_lo = std::max(0, -q0), b_hi = std::min(pool_, w - q0);
        for (int a = a_lo; a < a_hi; ++a)
          for (int b = b_lo; b < b_hi; ++b) {
            const float* px = x + ((static_cast<size_t>(i) * h + r0 + a) * w + q0 + b) * c;
            for (int ch = 0; ch < c; ++ch) acc[ch] += px[ch];
          }
        const auto count = static_cast<float>((a_hi - a_lo) * (b_hi - b_lo));
        for (int ch = 0; ch < c; ++ch) acc[ch] /= count;
      }
}

void AveragePooling2D::backward(const std::vector<const Tensor*>& in, const Tensor& out,
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
  // dx[cell] += dy[o] / count(o) over the windows o holding the cell. Windows overlap: parallel
  // over images only, each image's outputs in order (the sums do not depend on the threads).
#pragma omp parallel for if (parallel_worth(in[0]->numel() * pool_ * pool_ / (stride_ * stride_)))
  for (int i = 0; i < n; ++i)
    for (int r = 0; r < ho; ++r)
      for (int q = 0; q < wo; ++q) {
        const float* g = dy + ((static_cast<size_t>(i) * ho + r) * wo + q) * c;
        const int r0 = r * stride_ - top, q0 = q * stride_ - left;
        const int a_lo = std::max(0, -r0), a_hi = std::min(pool_, h - r0);
        const int b_lo = std::max(0, -q0), b_hi = std::min(pool_, w - q0);
        const float inv = 1.0f / static_cast<float>((a_hi - a_lo) * (b_hi - b_lo));
        for (int a = a_lo; a < a_hi; ++a)
          for (int b = b_lo; b < b_hi; ++b) {
            float* px = dx + ((static_cast<size_t>(i) * h + r0 + a) * w + q0 + b) * c;
            for (int ch = 0; ch < c; ++ch) px[ch] += g[ch] * inv;
          }
      }
}

// ---- GlobalMaxPooling2D ----
Shape GlobalMaxPooling2D::infer_shape(const std::vector<Shape>& in) {
  expect_inputs(in, 1, 4);
  return Shape{in[0][0], in[0][3]};
}

void GlobalMaxPooling2D::forward(const std::vector<const Tensor*>& in, Tensor& out, bool) {
  const Shape& s = in[0]->shape();
  const int n = s[0], hw = s[1] * s[2], c = s[3];
  out.resize(Shape{n, c});
  const float* x = in[0]->data();
  float* y = out.data();
#pragma omp parallel for if (parallel_worth(in[0]->numel()))
  for (int i = 0; i < n; ++i) {
    float* best = y + static_cast<size_t>(i) * c;
    std::copy(x + static_cast<size_t>(i) * hw * c, x + (static_cast<size_t>(i) * hw + 1) * c, best);
    for (int p = 1; p < hw; ++p) {
      const float* row = x + (static_cast<size_t>(i) * hw + p) * c;
      for (int ch = 0; ch < c; ++ch) best[ch] = row[ch] > best[ch] ? row[ch] : best[ch];
    }
  }
}

void GlobalMaxPooling2D::backward(const std::vector<const Tensor*>& in, const Tensor& out,
                                  const Tensor& dout, const std::vector<Tensor*>& din) {
  if (!din[0]) return;
  const Shape& s = in[0]->shape();
  const int n = s[0], hw = s[1] * s[2], c = s[3];
  din[0]->resize(s);
  const float* x = in[0]->data();
  const float* y = out.data();
  const float* dy = dout.data();
  float* dx = din[0]->data();
  // Per image and channel: dx = dy / (number of cells equal to the max) at those cells.
  // dx first holds the 0/1 indicator; the count per channel is then taken from it.
#pragma omp parallel for if (parallel_worth(2.0 * in[0]->numel()))
  for (int i = 0; i < n; ++i) {
    const float* m = y + static_cast<size_t>(i) * c;
    const float* g = dy + static_cast<size_t>(i) * c;
    float* d0 = dx + static_cast<size_t>(i) * hw * c;
    const float* x0 = x + static_cast<size_t>(i) * hw * c;
    for (int ch = 0; ch < c; ++ch) {
      int count = 0;
      for (int p = 0; p < hw; ++p) count += x0[static_cast<size_t>(p) * c + ch] == m[ch];
      const float share = g[ch] / static_cast<float>(count);
      for (int p = 0; p < hw; ++p) {
        const size_t k = static_cast<size_t>(p) * c + ch;
        d0[k] = x0[k] == m[ch] ? share : 0.0f;
      }
    }
  }
}

}  // namespace parafine
