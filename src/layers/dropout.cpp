// Dropout's keyed masks, forward and backward (see dropout.hpp for the exact rule).
#include "parafine/layers/dropout.hpp"

#include <cmath>
#include <cstring>
#include <stdexcept>

#include "parafine/core/bfloat16.hpp"
#include "parafine/core/compute.hpp"

namespace parafine {

std::uint64_t splitmix64(std::uint64_t x) {
  std::uint64_t z = x + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::uint64_t fnv1a64(const std::string& bytes) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char b : bytes) {
    h ^= b;
    h *= 0x100000001b3ull;
  }
  return h;
}

namespace {
// Element j of a sample whose per-sample hash is `sample` (= splitmix64(stream ^ key)).
inline bool kept(std::uint64_t sample, std::uint64_t j, double rate) {
  const std::uint64_t bits = splitmix64(sample ^ j);
  return static_cast<double>(bits >> 11) * 0x1.0p-53 >= rate;
}
}  // namespace

Dropout::Dropout(std::string name, float rate, std::optional<std::uint64_t> seed)
    : Layer(std::move(name)), rate_(rate), seed_(seed) {
  if (!(rate >= 0.0f && rate < 1.0f)) fail("rate must be in [0, 1), got " + std::to_string(rate));
  update_stream();
}

void Dropout::set_run_seed(std::uint64_t s) {
  run_seed_ = s;
  update_stream();
}

void Dropout::update_stream() {
  std::uint64_t seed_value = seed_.value_or(0);
  if (run_seed_) seed_value ^= splitmix64(*run_seed_);
  stream_ = splitmix64(seed_value ^ fnv1a64(name()));
}

bool Dropout::keeps(std::uint64_t key, std::uint64_t j) const {
  return kept(splitmix64(stream_ ^ key), j, static_cast<double>(rate_));
}

float Dropout::scale() const {
  // TensorFlow: scale = 1 / (1 - rate) in Python (double), converted to the compute dtype.
  const auto s = static_cast<float>(1.0 / (1.0 - static_cast<double>(rate_)));
  return bfloat16_compute_ ? round_to_bfloat16(s) : s;
}

Shape Dropout::infer_shape(const std::vector<Shape>& in) {
  expect_count(in, 1);
  if (in[0].rank() < 1) fail("expects an input [N,...], got a rank-0 shape");
  expect_input(in[0], in[0].rank());  // positive dims
  return in[0];
}

// x [N, per] -> y [N, per]: sample i's mask from key i.
void Dropout::forward(const std::vector<const Tensor*>& in, Tensor& out, bool training) {
  const Shape& s = in[0]->shape();
  out.resize(s);
  dropped_ = training && active();
  if (!dropped_) {
    std::memcpy(out.data(), in[0]->data(), sizeof(float) * out.numel());
    return;
  }
  const int n = s[0];
  const std::size_t per = n == 0 ? 0 : out.numel() / static_cast<std::size_t>(n);
  const std::vector<std::uint64_t>* keys = ws_ ? &ws_->sample_keys : nullptr;
  if (!keys || keys->size() != static_cast<std::size_t>(n))
    throw std::logic_error("Dropout layer '" + name() + "': a training forward of " +
                           std::to_string(n) + " sample(s) needs one sample key each, " +
                           (keys ? std::to_string(keys->size()) + " set" : "no workspace") +
                           " (Model::set_sample_keys before every training forward)");
  keep_.resize(out.numel());
  const float sc = scale();
  const double rate = static_cast<double>(rate_);
  const float* x = in[0]->data();
  float* y = out.data();
#pragma omp parallel for if (parallel_worth(1.0 * out.numel() * 8))
  for (int i = 0; i < n; ++i) {
    const std::uint64_t sample = splitmix64(stream_ ^ (*keys)[static_cast<std::size_t>(i)]);
    const std::size_t base = static_cast<std::size_t>(i) * per;
    for (std::size_t j = 0; j < per; ++j) {
      const bool k = kept(sample, j, rate);
      keep_[base + j] = k;
      y[base + j] = k ? x[base + j] * sc : 0.0f;
    }
  }
}

void Dropout::backward(const std::vector<const Tensor*>& in, const Tensor&, const Tensor& dout,
                       const std::vector<Tensor*>& din) {
  if (!din[0]) return;
  din[0]->resize(in[0]->shape());  // in[0] may be hollow: its shape only
  const float* dy = dout.data();
  float* dx = din[0]->data();
  const std::size_t n = dout.numel();
  if (!dropped_) {
    std::memcpy(dx, dy, sizeof(float) * n);
    return;
  }
  if (keep_.size() != n)
    throw std::logic_error("Dropout layer '" + name() + "': backward of " + std::to_string(n) +
                           " elements after a forward of " + std::to_string(keep_.size()));
  const float sc = scale();
#pragma omp parallel for if (parallel_worth(1.0 * n))
  for (std::size_t e = 0; e < n; ++e) dx[e] = keep_[e] ? dy[e] * sc : 0.0f;
}

}  // namespace parafine
