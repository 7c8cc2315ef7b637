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

void BufferPool::begin_pass(std::uint64_t kind) {
  next_ = 0;
  later_ = 0;
  for (std::size_t r = 0; r < records_.size(); ++r)
    if (records_[r].kind == kind) {
      record_ = r;
      return;
    }
  if (records_.size() < kMaxRecords) {
    records_.push_back(Record{kind, {}});
    record_ = records_.size() - 1;
  } else {  // forget the kind first recorded of those kept (its storage is reused)
    record_ = oldest_;
    oldest_ = (oldest_ + 1) % kMaxRecords;
    records_[record_].kind = kind;
    records_[record_].choices.clear();
  }
}

std::vector<float> BufferPool::acquire(std::size_t n) {
  if (n == 0) return {};  // an empty tensor (a rank with no samples) needs no buffer
  // Request k of a pass first looks for a buffer of the capacity that request k of the last
  // pass of its kind got, when that asked for the same size: buffers of one capacity are
  // interchangeable, so a repeated pass then needs no buffer the first one did not create
  // (as it could if it chose anew from the larger pool the first one left).
  std::vector<Choice>* choices = record_ < records_.size() ? &records_[record_].choices : nullptr;
  const std::size_t k = next_++;
  std::size_t again = 0;
  if (choices && k < choices->size() && (*choices)[k].n == n) again = (*choices)[k].capacity;
  // Else the smallest free buffer of n to 2n floats, else the smallest larger than any request
  // still to come. Taking a large buffer that a later request fits would leave that one without
  // a buffer: over a training step (activations kept in forward order, gradients requested in
  // reverse) best fit over all capacities made the pool hold 1.4x the most bytes live at once,
  // this rule 1.12x (ResNet50, batch 32, 224).
  auto close = free_.end(), spare = free_.end();
  for (auto it = free_.begin(); it != free_.end(); ++it) {
    const std::size_t c = it->capacity();
    if (c == again) {
      close = it;
      break;
    }
    if (c < n) continue;
    if (c / 2 <= n && (close == free_.end() || c < close->capacity())) close = it;
    if (c > later_ && (spare == free_.end() || c < spare->capacity())) spare = it;
  }
  auto best = close != free_.end() ? close : spare;
  std::vector<float> v;
  if (best == free_.end()) {
    // A new buffer: make room to pool it as well, so that release() does not grow free_ when a
    // later step returns more buffers at once than this one held.
    if (free_.capacity() < ++created_) free_.reserve(2 * created_);
    v.reserve(n);
  } else {
    v = std::move(*best);
    free_.erase(best);
  }
  if (choices) {
    if (k < choices->size())
      (*choices)[k] = Choice{n, v.capacity()};
    else
      choices->push_back(Choice{n, v.capacity()});
  }
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
