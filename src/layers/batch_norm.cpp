// BatchNormalization forward/backward (see batch_norm.hpp). Reductions over rows accumulate
// in double, per thread, then combine.
#include "parafine/layers/batch_norm.hpp"
#include "parafine/core/bfloat16.hpp"
#include "parafine/core/compute.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>

namespace parafine {

namespace {
// out[0..C) += sum_r a[r,c]; out[C..2C) += sum_r a[r,c]*b[r,c] (b may be null: then a^2 with
// a centred on `centre` when given). Each thread sums into its own slice of `scratch`.
void row_sums(const float* a, const float* b, const float* centre, long rows, int c,
              ThreadSums& scratch, double* out) {
  scratch.prepare(2 * c);
#pragma omp parallel if (parallel_worth(rows * c))
  {
    double* s1 = scratch.slice(omp_get_thread_num());
    double* s2 = s1 + c;
    std::fill(s1, s1 + 2 * c, 0.0);
#pragma omp for nowait
    for (long r = 0; r < rows; ++r) {
      const float* ar = a + r * c;
      if (b) {
        const float* br = b + r * c;
        for (int k = 0; k < c; ++k) {
          s1[k] += ar[k];
          s2[k] += static_cast<double>(ar[k]) * (br[k] - centre[k]);
        }
      } else {
        for (int k = 0; k < c; ++k) {
          const double d = static_cast<double>(ar[k]) - (centre ? centre[k] : 0.0f);
          s1[k] += d;
          s2[k] += d * d;
        }
      }
    }
#pragma omp critical
    for (int k = 0; k < c; ++k) {
      out[k] += s1[k];
      out[c + k] += s2[k];
    }
  }
}
}  // namespace

BatchNormalization::BatchNormalization(std::string name, float epsilon, float momentum, bool scale)
    : Layer(std::move(name)), eps_(epsilon), momentum_(momentum), scale_(scale) {}

Shape BatchNormalization::infer_shape(const std::vector<Shape>& in) {
  if (in.size() != 1) fail("expects 1 input");
  return infer_one(in[0]);
}

Shape BatchNormalization::infer_one(const Shape& in) {
  if (in.rank() < 2) fail("expects an input with a channel axis, got " + in.str());
  if (channels_ != 0 && in.channels() != channels_)
    fail("expects " + std::to_string(channels_) + " channels, got input " + in.str());
  channels_ = in.channels();
  if (!scale_) ones_.assign(static_cast<size_t>(channels_), 1.0f);
  return in;
}

std::vector<ParamSpec> BatchNormalization::param_specs() const {
  const Shape c{channels_};
  std::vector<ParamSpec> specs;
  if (scale_) specs.push_back({"gamma", c, true});
  specs.push_back({"beta", c, true});
  specs.push_back({"moving_mean", c, false});
  specs.push_back({"moving_variance", c, false});
  return specs;
}

void BatchNormalization::forward(const std::vector<const Tensor*>& in, Tensor& out, bool training) {
  forward_impl(*in[0], out, training, false);
}

void BatchNormalization::forward_relu(const Tensor& x, Tensor& out, bool training) {
  forward_impl(x, out, training, true);
}

void BatchNormalization::forward_impl(const Tensor& xt, Tensor& out, bool training, bool relu) {
  infer_one(xt.shape());
  out.resize(xt.shape());
  const int c = channels_;
  const long rows = static_cast<long>(xt.shape().rows());
  const float* x = xt.data();
  const float* gamma = this->gamma();
  const float* beta = param(beta_slot());
  float* moving_mean = param(beta_slot() + 1);
  float* moving_var = param(beta_slot() + 2);
  mean_.resize(c);
  inv_std_.resize(c);

  last_used_batch_stats_ = calibrating_ || uses_batch_statistics(training);
  last_rows_ = static_cast<std::size_t>(rows);
  if (last_used_batch_stats_) {
    // One pass (and one sum over the ranks): sums of d = x - K and d^2 in double, shifted by
    // K = the moving mean, an estimate of the batch mean known on every rank, so that
    // var = E[d^2] - E[d]^2 does not cancel: in double its error is ~1e-16 * (mean - K)^2 / var.
    shift_.resize(static_cast<size_t>(c));
    for (int k = 0; k < c; ++k)
      shift_[k] = calibrating_ || !std::isfinite(moving_mean[k]) ? 0.0f : moving_mean[k];
    sums_.assign(2 * static_cast<size_t>(c) + 1, 0.0);
    row_sums(x, nullptr, shift_.data(), rows, c, thread_sums_, sums_.data());
    sums_[2 * c] = static_cast<double>(rows);
    if (reduce_) reduce_(sums_);
    const double n = sums_[2 * c];
    if (n ==
        0) {  // a rank with no samples and no cross-rank sums (--bn-mode local): nothing to learn
      std::fill(mean_.begin(), mean_.end(), 0.0f);
      std::fill(inv_std_.begin(), inv_std_.end(), 1.0f);
      return;
    }
    for (int k = 0; k < c; ++k) {
      const double d_mean = sums_[k] / n;
      mean_[k] = static_cast<float>(shift_[k] + d_mean);
      const double var = std::max(0.0, sums_[c + k] / n - d_mean * d_mean);  // biased
      inv_std_[k] = static_cast<float>(1.0 / std::sqrt(var + eps_));
      if (calibrating_) {
        moving_mean[k] = mean_[k];
        moving_var[k] = static_cast<float>(var);
      } else {
        const double unbiased = n > 1 ? var * n / (n - 1) : var;
        moving_mean[k] = moving_mean[k] * momentum_ + mean_[k] * (1.0f - momentum_);
        moving_var[k] =
            moving_var[k] * momentum_ + static_cast<float>(unbiased) * (1.0f - momentum_);
      }
    }
  } else {
    for (int k = 0; k < c; ++k) {
      mean_[k] = moving_mean[k];
      inv_std_[k] = 1.0f / std::sqrt(moving_var[k] + eps_);
    }
  }

  float* y = out.data();
  if (bfloat16_compute_) {  // the float32 result cast to bfloat16 (then the ReLU, exact)
#pragma omp parallel for if (parallel_worth(rows * c))
    for (long r = 0; r < rows; ++r)
      for (int k = 0; k < c; ++k) {
        const float v =
            round_to_bfloat16((x[r * c + k] - mean_[k]) * (inv_std_[k] * gamma[k]) + beta[k]);
        y[r * c + k] = relu && v < 0.0f ? 0.0f : v;
      }
    return;
  }
  if (relu) {
#pragma omp parallel for if (parallel_worth(rows * c))
    for (long r = 0; r < rows; ++r)
      for (int k = 0; k < c; ++k) {
        const float v = (x[r * c + k] - mean_[k]) * (inv_std_[k] * gamma[k]) + beta[k];
        y[r * c + k] = v > 0.0f ? v : 0.0f;
      }
    return;
  }
#pragma omp parallel for if (parallel_worth(rows * c))
  for (long r = 0; r < rows; ++r)
    for (int k = 0; k < c; ++k)
      y[r * c + k] = (x[r * c + k] - mean_[k]) * (inv_std_[k] * gamma[k]) + beta[k];
}

void BatchNormalization::inference_affine(float* scale, float* shift) const {
  const float* gamma = this->gamma();
  const float* beta = param(beta_slot());
  const float* mean = param(beta_slot() + 1);
  const float* var = param(beta_slot() + 2);
  for (int k = 0; k < channels_; ++k) {
    scale[k] = gamma[k] / std::sqrt(var[k] + eps_);
    shift[k] = beta[k] - mean[k] * scale[k];
  }
}

void BatchNormalization::backward(const std::vector<const Tensor*>& in, const Tensor&,
                                  const Tensor& dout, const std::vector<Tensor*>& din) {
  const Tensor& xt = *in[0];
  const int c = channels_;
  const long rows = static_cast<long>(xt.shape().rows());
  const float* x = xt.data();
  const float* dy = dout.data();
  const float* gamma = this->gamma();

  // sum(dy) and sum(dy * (x - mean)); dbeta = sum(dy), dgamma = inv_std * sum(dy*(x-mean)).
  sums_.assign(2 * static_cast<size_t>(c) + 1, 0.0);
  row_sums(dy, x, mean_.data(), rows, c, thread_sums_, sums_.data());
  sums_[2 * c] = static_cast<double>(rows);
  // gamma/beta gradients from this rank's rows only: the trainer sums weight gradients over
  // ranks, so writing the reduced sums here would count them once per rank.
  if (trainable && grad(beta_slot())) {
    float* dbeta = grad(beta_slot());
    for (int k = 0; k < c; ++k) dbeta[k] = static_cast<float>(sums_[k]);
    if (scale_) {
      float* dgamma = grad(0);
      for (int k = 0; k < c; ++k) dgamma[k] = static_cast<float>(sums_[c + k] * inv_std_[k]);
    }
  }
  // No input gradient wanted (the earliest trainable layer): every rank returns here alike.
  if (!din[0]) return;
  if (last_used_batch_stats_ && reduce_) reduce_(sums_);  // dx needs the global batch's sums
  const double n = sums_[2 * c];
  din[0]->resize(xt.shape());
  float* dx = din[0]->data();
  if (!last_used_batch_stats_) {
#pragma omp parallel for if (parallel_worth(rows * c))
    for (long r = 0; r < rows; ++r)
      for (int k = 0; k < c; ++k) dx[r * c + k] = dy[r * c + k] * gamma[k] * inv_std_[k];
    return;
  }
  // dx = gamma*inv_std * (dy - mean(dy) - xhat * mean(dy*xhat)), xhat = (x-mean)*inv_std
  dx_a_.resize(static_cast<size_t>(c));
  dx_b_.resize(static_cast<size_t>(c));
  dx_scale_.resize(static_cast<size_t>(c));
  float* a = dx_a_.data();
  float* b = dx_b_.data();
  float* scale = dx_scale_.data();
  for (int k = 0; k < c; ++k) {
    a[k] = static_cast<float>(sums_[k] / n);
    b[k] = static_cast<float>(sums_[c + k] / n * inv_std_[k] * inv_std_[k]);
    scale[k] = gamma[k] * inv_std_[k];
  }
#pragma omp parallel for if (parallel_worth(rows * c))
  for (long r = 0; r < rows; ++r)
    for (int k = 0; k < c; ++k)
      dx[r * c + k] = scale[k] * (dy[r * c + k] - a[k] - (x[r * c + k] - mean_[k]) * b[k]);
}

}  // namespace parafine
