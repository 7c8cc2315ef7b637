// Adam exactly as Keras applies it, over one contiguous range of weights:
//   t += 1; lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t)
//   m = b1*m + (1-b1)*g ; v = b2*v + (1-b2)*g^2 ; w -= lr_t * m / (sqrt(v) + eps)
// Defaults b1 0.9, b2 0.999, eps 1e-7. A new phase builds a new Adam (m = v = 0, t = 0).
#pragma once

#include <cstddef>
#include <vector>

namespace parafine {

class Adam {
 public:
  explicit Adam(std::size_t size, double lr, double beta1 = 0.9, double beta2 = 0.999,
                double epsilon = 1e-7);
  // w and g hold size() floats.
  void step(float* w, const float* g);
  std::size_t size() const { return m_.size(); }
  long iterations() const { return t_; }
  std::vector<float>& m() { return m_; }
  const std::vector<float>& m_values() const { return m_; }
  const std::vector<float>& v_values() const { return v_; }
  std::vector<float>& v() { return v_; }
  void set_iterations(long t) { t_ = t; }
  double learning_rate() const { return lr_; }
  // The rate of the next steps (schedules, warmup, ReduceLROnPlateau); m, v and t are kept.
  void set_learning_rate(double lr) { lr_ = lr; }

 private:
  double lr_, b1_, b2_, eps_;
  long t_ = 0;
  std::vector<float> m_, v_;
};

}  // namespace parafine
