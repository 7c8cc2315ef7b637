// Normalization forward and backward (see normalization.hpp).
#include "parafine/layers/normalization.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "parafine/core/bfloat16.hpp"
#include "parafine/core/compute.hpp"

namespace parafine {

namespace {
void refuse_invert(bool invert, const Normalization& layer) {
  if (invert)
    throw std::invalid_argument("Normalization layer '" + layer.name() +
                                "': invert=True is not supported (only the forward "
                                "normalisation (x - mean) / sqrt(variance))");
}
}  // namespace

Normalization::Normalization(std::string name, bool invert) : Layer(std::move(name)) {
  refuse_invert(invert, *this);
}

Normalization::Normalization(std::string name, std::vector<float> mean, std::vector<float> variance,
                             bool invert)
    : Layer(std::move(name)), const_mean_(std::move(mean)), const_variance_(std::move(variance)) {
  refuse_invert(invert, *this);
  if (const_mean_->empty() || const_mean_->size() != const_variance_->size())
    fail("mean and variance must have the same, non-zero number of values; got " +
         std::to_string(const_mean_->size()) + " and " + std::to_string(const_variance_->size()));
}

Shape Normalization::infer_shape(const std::vector<Shape>& in) {
  expect_count(in, 1);
  const Shape& s = in[0];
  if (s.rank() < 2) fail("expects an input of rank 2 or more ([N,...,C]), got " + s.str());
  expect_input(s, s.rank());  // positive dims
  if (channels_ != 0 && s.channels() != channels_)
    fail("expects " + std::to_string(channels_) + " channels (last axis), got input " + s.str());
  if (const_mean_ && const_mean_->size() != 1 &&
      const_mean_->size() != static_cast<std::size_t>(s.channels()))
    fail("has " + std::to_string(const_mean_->size()) + " means and variances for an input " +
         s.str() + " of " + std::to_string(s.channels()) + " channels (axis=-1)");
  channels_ = s.channels();
  return s;
}

std::vector<ParamSpec> Normalization::param_specs() const {
  if (!adapted()) return {};
  return {{"mean", Shape{channels_}, false}, {"variance", Shape{channels_}, false}};
}

void Normalization::prepare() {
  const auto c = static_cast<std::size_t>(channels_);
  mean_.resize(c);
  denominator_.resize(c);
  const bool bf16 = bfloat16_compute_;
  auto round = [bf16](float v) { return bf16 ? round_to_bfloat16(v) : v; };
  const float eps = round(kEpsilon);
  for (std::size_t ch = 0; ch < c; ++ch) {
    const float m = adapted() ? param(0)[ch] : (*const_mean_)[const_mean_->size() == 1 ? 0 : ch];
    const float v =
        adapted() ? param(1)[ch] : (*const_variance_)[const_variance_->size() == 1 ? 0 : ch];
    mean_[ch] = round(m);
    denominator_[ch] = round(std::max(round(std::sqrt(round(v))), eps));
  }
}

// x [rows, C] -> y [rows, C].
void Normalization::forward(const std::vector<const Tensor*>& in, Tensor& out, bool) {
  const Shape& s = in[0]->shape();
  if (s.channels() != channels_) infer_shape({s});
  prepare();
  out.resize(s);
  const std::size_t rows = s.rows(), c = static_cast<std::size_t>(channels_);
  const float* x = in[0]->data();
  float* y = out.data();
  const bool bf16 = bfloat16_compute_;
#pragma omp parallel for if (parallel_worth(1.0 * out.numel()))
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t ch = 0; ch < c; ++ch) {
      float d = x[r * c + ch] - mean_[ch];
      if (bf16) d = round_to_bfloat16(d);
      y[r * c + ch] = d / denominator_[ch];
    }
}

void Normalization::backward(const std::vector<const Tensor*>& in, const Tensor&,
                             const Tensor& dout, const std::vector<Tensor*>& din) {
  if (!din[0]) return;
  const Shape& s = in[0]->shape();  // may be hollow: its shape only
  din[0]->resize(s);
  const std::size_t rows = s.rows(), c = static_cast<std::size_t>(channels_);
  const float* dy = dout.data();
  float* dx = din[0]->data();
#pragma omp parallel for if (parallel_worth(1.0 * dout.numel()))
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t ch = 0; ch < c; ++ch) dx[r * c + ch] = dy[r * c + ch] / denominator_[ch];
}

}  // namespace parafine
