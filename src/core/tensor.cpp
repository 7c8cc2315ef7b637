// Tensor, Shape and BufferPool implementations.
#include "parafine/core/tensor.hpp"

#include <algorithm>
#include <sstream>
#include <stdexcept>

namespace parafine {

Shape::Shape(std::initializer_list<int> d) {
  assign(d.begin(), d.end(), d.size());
}

Shape::Shape(const std::vector<int>& d) {
  assign(d.begin(), d.end(), d.size());
}

template <typename It>
void Shape::assign(It first, It last, std::size_t count) {
  if (count > static_cast<std::size_t>(kMaxRank)) {
    std::ostringstream os;
    os << "shape [";
    for (It it = first; it != last; ++it) os << (it == first ? "" : ",") << *it;
    os << "] has rank " << count << "; tensors have rank " << kMaxRank << " at most";
    throw std::invalid_argument(os.str());
  }
  std::copy(first, last, dims_.begin());
  rank_ = static_cast<int>(count);
}

std::size_t Shape::check(int i) const {
  if (i < 0 || i >= rank_)
    throw std::out_of_range("shape " + str() + ": no dimension " + std::to_string(i));
  return static_cast<std::size_t>(i);
}

std::size_t Shape::numel() const {
  if (rank_ == 0) return 0;
  std::size_t n = 1;
  for (int d : *this) n *= static_cast<std::size_t>(d);
  return n;
}

std::size_t Shape::rows() const {
  if (rank_ == 0) return 0;
  std::size_t n = 1;
  for (const int* d = begin(); d + 1 < end(); ++d) n *= static_cast<std::size_t>(*d);
  return n;
}

std::string dims_str(const std::vector<int>& dims) {
  std::ostringstream os;
  os << '[';
  for (std::size_t i = 0; i < dims.size(); ++i) os << (i ? "," : "") << dims[i];
  os << ']';
  return os.str();
}

std::string Shape::str() const {
  std::ostringstream os;
  os << '[';
  for (int i = 0; i < rank_; ++i) os << (i ? "," : "") << dims_[static_cast<std::size_t>(i)];
  os << ']';
  return os.str();
}

void Tensor::resize(const Shape& s) {
  shape_ = s;
  data_.resize(s.numel());
}

void Tensor::fill(float v) {
  std::fill(data_.begin(), data_.end(), v);
}

std::vector<float> Tensor::take_storage() {
  shape_ = Shape();
  return std::move(data_);
}

std::vector<float> Tensor::hollow_out() {
  return std::move(data_);  // a moved-from vector is empty: data_.size() != numel()
}

void Tensor::give_storage(std::vector<float>&& v, const Shape& s) {
  data_ = std::move(v);
  shape_ = s;
  data_.resize(s.numel());
}

std::vector<float> Tensor::hollow_as(const Shape& s) {
  std::vector<float> v = std::move(data_);
  data_ = std::vector<float>();
  shape_ = s;
  return v;
}

std::vector<float> BufferPool::acquire(std::size_t n) {
  auto best = free_.end();
  for (auto it = free_.begin(); it != free_.end(); ++it)
    if (it->capacity() >= n && (best == free_.end() || it->capacity() < best->capacity()))
      best = it;
  if (best == free_.end()) {
    // A new buffer: make room to pool it as well, so that release() does not grow free_ when a
    // later step returns more buffers at once than this one held.
    if (free_.capacity() < ++created_) free_.reserve(2 * created_);
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
