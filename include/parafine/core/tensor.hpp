// Dense float32 tensors in NHWC order, and the buffer pool that recycles their storage.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace parafine {

// A shape of rank 1..4. Images are NHWC [N,H,W,C]; features [N,C]; weights as Keras stores
// them (Conv2D kernels HWIO [KH,KW,Cin,Cout], Dense kernels [in,out], vectors [C]).
struct Shape {
  std::vector<int> dims;

  Shape() = default;
  Shape(std::initializer_list<int> d) : dims(d) {}
  explicit Shape(std::vector<int> d) : dims(std::move(d)) {}

  int rank() const { return static_cast<int>(dims.size()); }
  int operator[](int i) const { return dims.at(static_cast<size_t>(i)); }
  std::size_t numel() const;
  // Product of all dims but the last: the "row count" of an NHWC tensor seen as [rows, C].
  std::size_t rows() const;
  int channels() const { return dims.empty() ? 0 : dims.back(); }
  bool operator==(const Shape& o) const { return dims == o.dims; }
  bool operator!=(const Shape& o) const { return dims != o.dims; }
  std::string str() const;  // "[2,7,7,2048]"
};

// A tensor owns a float vector. The vector's capacity is kept when the shape shrinks, so a
// tensor re-used across steps allocates only when it must grow.
class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(const Shape& s) { resize(s); }

  void resize(const Shape& s);
  void fill(float v);
  void zero() { fill(0.0f); }

  const Shape& shape() const { return shape_; }
  std::size_t numel() const { return shape_.numel(); }
  float* data() { return data_.data(); }
  const float* data() const { return data_.data(); }
  float& operator[](std::size_t i) { return data_[i]; }
  float operator[](std::size_t i) const { return data_[i]; }
  bool empty() const { return numel() == 0; }

  // Move the storage out (to a pool) or in (from a pool); the tensor keeps its shape only
  // while it has storage.
  std::vector<float> take_storage();
  void give_storage(std::vector<float>&& v, const Shape& s);

 private:
  Shape shape_;
  std::vector<float> data_;
};

// Recycles float vectors so forward/backward allocate only on the first step of a shape.
class BufferPool {
 public:
  std::vector<float> acquire(std::size_t n);  // best fit by capacity, else a new vector
  void release(std::vector<float>&& v);
  std::size_t pooled_floats() const;

 private:
  std::vector<std::vector<float>> free_;
};

}  // namespace parafine
