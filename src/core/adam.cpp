// Keras Adam update (see adam.hpp).
#include "parafine/core/adam.hpp"
#include "parafine/core/compute.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

namespace parafine {

Adam::Adam(std::size_t size, double lr, double beta1, double beta2, double epsilon)
    : lr_(lr), b1_(beta1), b2_(beta2), eps_(epsilon), m_(size, 0.0f), v_(size, 0.0f) {
  if (!(lr >= 0.0) || !std::isfinite(lr))
    throw std::invalid_argument("learning rate must be a finite number >= 0, got " +
                                std::to_string(lr));
}

void Adam::step(float* w, const float* g) {
  ++t_;
  const double lr_t = lr_ * std::sqrt(1.0 - std::pow(b2_, t_)) / (1.0 - std::pow(b1_, t_));
  const float a = static_cast<float>(lr_t), b1 = static_cast<float>(b1_),
              b2 = static_cast<float>(b2_), eps = static_cast<float>(eps_);
  float* m = m_.data();
  float* v = v_.data();
  const long n = static_cast<long>(m_.size());
#pragma omp parallel for if (parallel_worth(n))
  for (long i = 0; i < n; ++i) {
    m[i] = b1 * m[i] + (1.0f - b1) * g[i];
    v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
    w[i] -= a * m[i] / (std::sqrt(v[i]) + eps);
  }
}

}  // namespace parafine
