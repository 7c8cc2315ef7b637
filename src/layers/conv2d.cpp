// Conv2D forward/backward through oneDNN or im2col + OpenBLAS sgemm (see conv2d.hpp).
#include "parafine/layers/conv2d.hpp"

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "conv_onednn.hpp"
#include "parafine/core/bfloat16.hpp"
#include "parafine/core/compute.hpp"

namespace parafine {

namespace {
// im2col buffers are bounded to this many floats (64 MiB) by splitting the batch.
constexpr std::size_t kMaxColumnFloats = std::size_t(16) << 20;
}  // namespace

ConvEngine default_conv_engine() {
  static const ConvEngine e = [] {
    const char* v = std::getenv("PARAFINE_CONV_ENGINE");
    if (!v || !*v) return ConvEngine::kOneDnn;
    const std::string s(v);
    if (s == "onednn") return ConvEngine::kOneDnn;
    if (s == "im2col") return ConvEngine::kIm2col;
    throw std::invalid_argument("PARAFINE_CONV_ENGINE must be im2col or onednn, not '" + s + "'");
  }();
  return e;
}

const char* conv_engine_name(ConvEngine e) {
  return e == ConvEngine::kOneDnn ? "onednn" : "im2col";
}

Conv2D::~Conv2D() = default;

Conv2D::Conv2D(std::string name, int filters, int kernel, int stride, Padding padding,
               bool use_bias, ConvActivation activation)
    : Conv2D(std::move(name), filters, KernelSize{kernel, kernel}, stride, padding, use_bias,
             activation) {}

Conv2D::Conv2D(std::string name, int filters, KernelSize kernel, int stride, Padding padding,
               bool use_bias, ConvActivation activation)
    : Layer(std::move(name)),
      filters_(filters),
      kh_(kernel.h),
      kw_(kernel.w),
      stride_(stride),
      padding_(padding),
      use_bias_(use_bias),
      activation_(activation),
      engine_(default_conv_engine()) {
  if (filters < 1 || kernel.h < 1 || kernel.w < 1 || stride < 1)
    fail("filters, kernel size (" + std::to_string(kernel.h) + "x" + std::to_string(kernel.w) +
         ") and stride must be positive");
}

Shape Conv2D::infer_shape(const std::vector<Shape>& in) {
  expect_count(in, 1);
  return infer_one(in[0]);
}

Shape Conv2D::infer_one(const Shape& in) {
  expect_input(in, 4);
  if (cin_ != 0 && in[3] != cin_)
    fail("expects " + std::to_string(cin_) + " input channels, got input " + in.str());
  cin_ = in[3];
  const Geometry g = geometry(in);
  if (g.ho < 1 || g.wo < 1)
    fail("input " + in.str() + " is smaller than the " + std::to_string(kh_) + "x" +
         std::to_string(kw_) + " kernel");
  return Shape{g.n, g.ho, g.wo, filters_};
}

std::vector<ParamSpec> Conv2D::param_specs() const {
  std::vector<ParamSpec> p{{"kernel", Shape{kh_, kw_, cin_, filters_}, true}};
  if (use_bias_) p.push_back({"bias", Shape{filters_}, true});
  return p;
}

Conv2D::Geometry Conv2D::geometry(const Shape& s) const {
  Geometry g{s[0], s[1], s[2], 0, 0, 0, 0};
  if (padding_ == Padding::kValid) {
    g.ho = (g.h - kh_) / stride_ + 1;
    g.wo = (g.w - kw_) / stride_ + 1;
    if (g.h < kh_) g.ho = 0;
    if (g.w < kw_) g.wo = 0;
  } else {
    g.ho = (g.h + stride_ - 1) / stride_;
    g.wo = (g.w + stride_ - 1) / stride_;
    g.pad_top = std::max((g.ho - 1) * stride_ + kh_ - g.h, 0) / 2;
    g.pad_left = std::max((g.wo - 1) * stride_ + kw_ - g.w, 0) / 2;
  }
  return g;
}

double Conv2D::forward_flops(const Shape& in) const {
  const Geometry g = geometry(in);
  return 2.0 * g.n * g.ho * g.wo * static_cast<double>(kh_) * kw_ * in[3] * filters_;
}

ConvDims Conv2D::onednn_dims(const Geometry& g) const {
  // oneDNN wants (in - k + top + bottom) / stride + 1 == out; TF's 'same' puts the rest of the
  // total padding at the bottom/right, 'valid' pads nothing.
  const int pad_bottom =
      padding_ == Padding::kSame ? std::max((g.ho - 1) * stride_ + kh_ - g.h, 0) - g.pad_top : 0;
  const int pad_right =
      padding_ == Padding::kSame ? std::max((g.wo - 1) * stride_ + kw_ - g.w, 0) - g.pad_left : 0;
  return ConvDims{g.n, g.h, g.w,     cin_,      g.ho,       g.wo,       filters_,
                  kh_, kw_, stride_, g.pad_top, g.pad_left, pad_bottom, pad_right};
}

ConvOneDnn& Conv2D::onednn() {
  if (!onednn_) onednn_ = std::make_unique<ConvOneDnn>();
  return *onednn_;
}

int Conv2D::onednn_cached_primitives() const {
  return onednn_ ? onednn_->cached_primitives() : 0;
}

bool Conv2D::is_pointwise() const {
  return kh_ == 1 && kw_ == 1 && stride_ == 1;
}

int Conv2D::images_per_chunk(const Geometry& g) const {
  const std::size_t per_image = static_cast<std::size_t>(g.ho) * g.wo * kh_ * kw_ * cin_;
  return static_cast<int>(
      std::max<std::size_t>(1, std::min<std::size_t>(g.n, kMaxColumnFloats / per_image)));
}

// col [(n1-n0)*Ho*Wo, KH*KW*Cin] for images n0..n1-1; out-of-image taps are zero.
void Conv2D::im2col(const float* x, const Geometry& g, int n0, int n1, float* col) const {
  const int kcols = kh_ * kw_ * cin_;
#pragma omp parallel for collapse(2) if (parallel_worth((n1 - n0) * g.ho * g.wo * kcols))
  for (int i = n0; i < n1; ++i)
    for (int r = 0; r < g.ho; ++r)
      for (int q = 0; q < g.wo; ++q) {
        float* dst = col + ((static_cast<size_t>(i - n0) * g.ho + r) * g.wo + q) * kcols;
        for (int a = 0; a < kh_; ++a) {
          const int y = r * stride_ - g.pad_top + a;
          const int x0 = q * stride_ - g.pad_left;
          if (y >= 0 && y < g.h && x0 >= 0 && x0 + kw_ <= g.w) {
            // The KW taps of this kernel row are adjacent pixels: one contiguous copy.
            std::memcpy(dst + a * kw_ * cin_,
                        x + ((static_cast<size_t>(i) * g.h + y) * g.w + x0) * cin_,
                        sizeof(float) * kw_ * cin_);
            continue;
          }
          for (int b = 0; b < kw_; ++b) {
            const int xx = q * stride_ - g.pad_left + b;
            float* d = dst + (a * kw_ + b) * cin_;
            if (y < 0 || y >= g.h || xx < 0 || xx >= g.w)
              std::memset(d, 0, sizeof(float) * cin_);
            else
              std::memcpy(d, x + ((static_cast<size_t>(i) * g.h + y) * g.w + xx) * cin_,
                          sizeof(float) * cin_);
          }
        }
      }
}

// dx[i,y,x,:] += sum of the column entries that read it. Gathered per input pixel, so the
// parallel loop never writes one location from two threads.
void Conv2D::col2im_add(const float* col, const Geometry& g, int n0, int n1, float* dx) const {
  const int kcols = kh_ * kw_ * cin_;
#pragma omp parallel for collapse(2) if (parallel_worth((n1 - n0) * g.h * g.w * kcols))
  for (int i = n0; i < n1; ++i)
    for (int y = 0; y < g.h; ++y)
      for (int xx = 0; xx < g.w; ++xx) {
        float* d = dx + ((static_cast<size_t>(i) * g.h + y) * g.w + xx) * cin_;
        for (int a = 0; a < kh_; ++a) {
          const int ry = y + g.pad_top - a;
          if (ry < 0 || ry % stride_ != 0 || ry / stride_ >= g.ho) continue;
          const int r = ry / stride_;
          for (int b = 0; b < kw_; ++b) {
            const int qx = xx + g.pad_left - b;
            if (qx < 0 || qx % stride_ != 0 || qx / stride_ >= g.wo) continue;
            const int q = qx / stride_;
            const float* s = col + ((static_cast<size_t>(i - n0) * g.ho + r) * g.wo + q) * kcols +
                             (a * kw_ + b) * cin_;
            for (int c = 0; c < cin_; ++c) d[c] += s[c];
          }
        }
      }
}

// The kernel (and bias) this layer multiplies by: its own, or under mixed_bfloat16 a copy
// rounded to bfloat16 (in the workspace; the bias in a member).
const float* Conv2D::compute_kernel() {
  if (!bfloat16_compute_) return param(0);
  const std::size_t n = static_cast<std::size_t>(kh_) * kw_ * cin_ * filters_;
  float* rounded = ws_->get_c(n);
  round_to_bfloat16(param(0), n, rounded);
  return rounded;
}

const float* Conv2D::compute_bias() {
  if (!use_bias_) return nullptr;
  if (!bfloat16_compute_) return param(1);
  bias_bf16_.resize(static_cast<std::size_t>(filters_));
  round_to_bfloat16(param(1), bias_bf16_.size(), bias_bf16_.data());
  return bias_bf16_.data();
}

void Conv2D::forward(const std::vector<const Tensor*>& in, Tensor& out, bool training) {
  const KernelSource source{kernel_stamp_, [this] { return compute_kernel(); }};
  const bool relu = activation_ == ConvActivation::kRelu;
  if (!bfloat16_compute_) {  // relu(conv + bias), the ReLU fused into the convolution's pass
    forward_impl(*in[0], out, source, compute_bias(), relu, false, training);
    return;
  }
  if (!use_bias_) {  // mixed_bfloat16 without a bias: the convolution's bfloat16 result
    forward_impl(*in[0], out, source, nullptr, false, false, training);
    round_to_bfloat16(out.data(), out.numel());
  } else {
    // mixed_bfloat16, as TensorFlow runs it: the convolution's bfloat16 result, then a bfloat16
    // bias_add (rounded again).
    forward_impl(*in[0], out, source, nullptr, false, false, training);
    add_bias_bfloat16(out.data(), out.shape().rows(), filters_, compute_bias());
  }
  if (relu) relu_in_place(out);  // exact on bfloat16 values: no rounding after it
}

void Conv2D::relu_in_place(Tensor& out) const {
  float* y = out.data();
  const long n = static_cast<long>(out.numel());
#pragma omp parallel for if (parallel_worth(n))
  for (long k = 0; k < n; ++k) y[k] = y[k] > 0.0f ? y[k] : 0.0f;
}

void Conv2D::forward_with(const Tensor& input, Tensor& out, const KernelSource& kernel,
                          const float* bias, bool relu, bool accumulate) {
  if (activation_ != ConvActivation::kNone)
    fail(
        "has its own activation: a substitute kernel and bias (a folded BatchNormalization) "
        "cannot replace what comes before it");
  forward_impl(input, out, kernel, bias, relu, accumulate, false);
}

void Conv2D::forward_impl(const Tensor& input, Tensor& out, const KernelSource& source,
                          const float* bias, bool relu, bool accumulate, bool training) {
  const Shape os = infer_one(input.shape());
  if (accumulate && out.shape() != os)
    fail("the tensor to accumulate into is " + out.shape().str() + ", the output " + os.str());
  out.resize(os);
  const Geometry g = geometry(input.shape());
  const float* x = input.data();
  float* y = out.data();
  if (engine_ == ConvEngine::kOneDnn) {
    if (g.n > 0)
      onednn().forward(onednn_dims(g), x, source, bias, relu, accumulate, training, y, *ws_);
    return;
  }
  const float* kernel = source.plain();
  const float beta = accumulate ? 1.0f : 0.0f;
  const int kcols = kh_ * kw_ * cin_;
  const size_t out_rows_per_image = static_cast<size_t>(g.ho) * g.wo;

  if (is_pointwise()) {
    sgemm(false, false, static_cast<int>(os.rows()), filters_, cin_, 1.0f, x, cin_, kernel,
          filters_, beta, y, filters_);
  } else {
    const int chunk = images_per_chunk(g);
    float* col = ws_->get_a(static_cast<size_t>(chunk) * out_rows_per_image * kcols);
    for (int n0 = 0; n0 < g.n; n0 += chunk) {
      const int n1 = std::min(g.n, n0 + chunk);
      im2col(x, g, n0, n1, col);
      sgemm(false, false, static_cast<int>((n1 - n0) * out_rows_per_image), filters_, kcols, 1.0f,
            col, kcols, kernel, filters_, beta, y + n0 * out_rows_per_image * filters_, filters_);
    }
  }
  if (bias || relu) {
    // One pass for the bias and, when fused, the ReLU that follows a folded BatchNormalization.
    const long rows = static_cast<long>(os.rows());
#pragma omp parallel for if (parallel_worth(rows * filters_))
    for (long r = 0; r < rows; ++r) {
      float* row = y + r * filters_;
      if (bias)
        for (int c = 0; c < filters_; ++c) row[c] += bias[c];
      if (relu)
        for (int c = 0; c < filters_; ++c) row[c] = row[c] > 0.0f ? row[c] : 0.0f;
    }
  }
}

// db[c] = sum over rows of dy[r, c]: accumulated in double per thread, then combined.
void Conv2D::bias_gradient(const float* dy, long rows, float* db) {
  bias_total_.assign(static_cast<size_t>(filters_), 0.0);
  double* total = bias_total_.data();
  bias_sums_.prepare(filters_);
#pragma omp parallel if (parallel_worth(rows * filters_))
  {
    double* part = bias_sums_.slice(omp_get_thread_num());
    std::fill(part, part + filters_, 0.0);
#pragma omp for nowait
    for (long r = 0; r < rows; ++r)
      for (int c = 0; c < filters_; ++c) part[c] += dy[r * filters_ + c];
#pragma omp critical
    for (int c = 0; c < filters_; ++c) total[c] += part[c];
  }
  for (int c = 0; c < filters_; ++c) db[c] = static_cast<float>(total[c]);
}

void Conv2D::backward(const std::vector<const Tensor*>& in, const Tensor& out, const Tensor& dout,
                      const std::vector<Tensor*>& din) {
  const Geometry g = geometry(in[0]->shape());
  const float* x = in[0]->data();
  const float* kernel = din[0] ? compute_kernel() : param(0);
  const float* dy = dout.data();
  if (activation_ == ConvActivation::kRelu) {
    // out = relu(z): dLoss/dz = dy where out > 0, else 0.
    dz_.resize(dout.shape());
    const float* y = out.data();
    float* dz = dz_.data();
    const long n = static_cast<long>(dout.numel());
#pragma omp parallel for if (parallel_worth(n))
    for (long k = 0; k < n; ++k) dz[k] = y[k] > 0.0f ? dy[k] : 0.0f;
    dy = dz;
  }
  const int kcols = kh_ * kw_ * cin_;
  const size_t out_rows_per_image = static_cast<size_t>(g.ho) * g.wo;
  const bool weight_grads = trainable && grad(0) != nullptr;
  Tensor* dx = din[0];
  if (dx) dx->resize(in[0]->shape());
  if (g.n == 0) {  // a rank with no samples in this step still reports (zero) gradients
    if (weight_grads)
      for (const int i : {0, 1})
        if (i == 0 || use_bias_) {
          const std::size_t count = i == 0 ? static_cast<std::size_t>(kcols) * filters_ : filters_;
          std::fill(grad(i), grad(i) + count, 0.0f);
        }
    return;
  }

  if (weight_grads && use_bias_) {
    float* db = grad(1);
    std::fill(db, db + filters_, 0.0f);
    // (A ReLU between this conv and its BatchNormalization keeps the bias gradient.)
    if (!bias_grad_zero_ || activation_ != ConvActivation::kNone)
      bias_gradient(dy, static_cast<long>(out.shape().rows()), db);
  }

  if (engine_ == ConvEngine::kOneDnn) {
    backward_onednn(g, x, dy, kernel, weight_grads, dx);
    return;
  }
  if (is_pointwise()) {
    const int rows = static_cast<int>(out.shape().rows());
    // dW[Cin,Cout] = x^T dy ; dx[rows,Cin] = dy W^T
    if (weight_grads)
      sgemm(true, false, cin_, filters_, rows, 1.0f, x, cin_, dy, filters_, 0.0f, grad(0),
            filters_);
    if (dx)
      sgemm(false, true, rows, cin_, filters_, 1.0f, dy, filters_, kernel, filters_, 0.0f,
            dx->data(), cin_);
    return;
  }

  const int chunk = images_per_chunk(g);
  float* col = ws_->get_a(static_cast<size_t>(chunk) * out_rows_per_image * kcols);
  if (dx) dx->zero();
  for (int n0 = 0; n0 < g.n; n0 += chunk) {
    const int n1 = std::min(g.n, n0 + chunk);
    const int rows = static_cast<int>((n1 - n0) * out_rows_per_image);
    const float* dy_chunk = dy + n0 * out_rows_per_image * filters_;
    if (weight_grads) {
      // dW[KH*KW*Cin, Cout] += col^T dy
      im2col(x, g, n0, n1, col);
      sgemm(true, false, kcols, filters_, rows, 1.0f, col, kcols, dy_chunk, filters_,
            n0 == 0 ? 0.0f : 1.0f, grad(0), filters_);
    }
    if (dx) {
      // dcol[rows, KH*KW*Cin] = dy W^T, then scattered back onto the input pixels.
      sgemm(false, true, rows, kcols, filters_, 1.0f, dy_chunk, filters_, kernel, filters_, 0.0f,
            col, kcols);
      col2im_add(col, g, n0, n1, dx->data());
    }
  }
}

void Conv2D::backward_onednn(const Geometry& g, const float* x, const float* dy,
                             const float* kernel, bool weight_grads, Tensor* dx) {
  const ConvDims d = onednn_dims(g);
  if (weight_grads) onednn().backward_weights(d, x, dy, grad(0), *ws_);
  if (dx) onednn().backward_data(d, dy, kernel, dx->data(), *ws_);
}

}  // namespace parafine
