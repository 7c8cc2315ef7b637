// Tensor, Shape and BufferPool implementations.
#include "parafine/core/tensor.hpp"

#include <algorithm>
#include <sstream>

namespace parafine {

std::size_t Shape::numel() const {
  if (dims.empty()) return 0;
  std::size_t n = 1;
  for (int d : dims) n *= static_cast<std::size_t>(d);
  return n;
}

std::size_t Shape::rows() const {
  if (dims.empty()) return 0;
  std::size_t n = 1;
  for (size_t i = 0; i + 1 < dims.size(); ++i) n *= static_cast<std::size_t>(dims[i]);
  return n;
}

std::string Shape::str() const {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < dims.size(); ++i) os << (i ? "," : "") << dims[i];
  os << ']';
  return os.str();
}

void Tensor::resize(const Shape& s) {
  shape_ = s;
  data_.resize(s.numel());
}

void Tensor::fill(float v) { std::fill(data_.begin(), data_.end(), v); }

std::vector<float> Tensor::take_storage() {
  shape_ = Shape();
  return std::move(data_);
}

void Tensor::give_storage(std::vector<float>&& v, const Shape& s) {
  data_ = std::move(v);
  shape_ = s;
  data_.resize(s.numel());
}

std::vector<float> BufferPool::acquire(std::size_t n) {
  auto best = free_.end();
  for (auto it = free_.begin(); it != free_.end(); ++it)
    if (it->capacity() >= n && (best == free_.end() || it->capacity() < best->capacity())) best = it;
  if (best == free_.end()) {
    std::vector<float> v;
    v.reserve(n);
    return v;
  }
  std::vector<float> v = std::move(*best);
  free_.erase(best);
  return v;
}

void BufferPool::release(std::vector<float>&& v) {
  if (v.capacity() > 0) free_.push_back(std::move(v));
}

std::size_t BufferPool::pooled_floats() const {
  std::size_t n = 0;
  for (const auto& v : free_) n += v.capacity();
  return n;
}

}  // namespace parafine
