// Shared Layer helpers: parameter binding and error messages that name the layer.
#include "parafine/layers/layer.hpp"

#include <omp.h>

#include <stdexcept>

namespace parafine {

void Layer::bind_param(int i, float* value, float* grad) {
  const size_t n = param_specs().size();
  if (values_.size() != n) {
    values_.assign(n, nullptr);
    grads_.assign(n, nullptr);
  }
  values_.at(static_cast<size_t>(i)) = value;
  grads_.at(static_cast<size_t>(i)) = grad;
}

void Layer::fail(const std::string& what) const {
  throw std::invalid_argument(std::string(type()) + " layer '" + name_ + "': " + what);
}

void Layer::expect_inputs(const std::vector<Shape>& in, int count, int rank) const {
  expect_count(in, count);
  for (const Shape& s : in) expect_input(s, rank);
}

void Layer::expect_count(const std::vector<Shape>& in, int count) const {
  if (static_cast<int>(in.size()) != count)
    fail("expects " + std::to_string(count) + " input(s), got " + std::to_string(in.size()));
}

void Layer::expect_input(const Shape& s, int rank) const {
  if (s.rank() != rank)
    fail("expects a rank-" + std::to_string(rank) + " input, got shape " + s.str());
  for (int i = 0; i < s.rank(); ++i)  // the batch may be empty (a rank with no samples)
    if (s[i] < 0 || (i > 0 && s[i] == 0))
      fail("input shape " + s.str() + " has a non-positive dimension");
}

void ThreadSums::prepare(int width) {
  constexpr std::size_t kLine = 64 / sizeof(double);  // doubles per cache line
  threads_ = omp_get_max_threads();
  stride_ = (static_cast<std::size_t>(width) + kLine - 1) / kLine * kLine;
  const std::size_t n = stride_ * static_cast<std::size_t>(threads_);
  if (buf_.size() < n) buf_.resize(n);
}

double* ThreadSums::slice(int thread) {
  if (thread < 0 || thread >= threads_)
    throw std::logic_error("ThreadSums: thread " + std::to_string(thread) + " of " +
                           std::to_string(threads_) + " prepared");
  return buf_.data() + static_cast<std::size_t>(thread) * stride_;
}

}  // namespace parafine
