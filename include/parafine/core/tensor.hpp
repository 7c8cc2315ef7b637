// Dense float32 tensors in NHWC order, and the buffer pool that recycles their storage.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace parafine {

// A shape of rank 1..4. Images are NHWC [N,H,W,C]; features [N,C]; weights as Keras stores
// them (Conv2D kernels HWIO [KH,KW,Cin,Cout], Dense kernels [in,out], vectors [C]).
// The dims live inline (no heap), so shapes are cheap to build on every step; the default
// shape has rank 0 and no elements.
struct Shape {
  static constexpr int kMaxRank = 4;

  Shape() = default;
  // Throw std::invalid_argument for more than kMaxRank dims.
  Shape(std::initializer_list<int> d);
  explicit Shape(const std::vector<int>& d);  // e.g. an HDF5 dataset's shape

  int rank() const { return rank_; }
  // Bounds-checked: throws std::out_of_range unless 0 <= i < rank().
  int operator[](int i) const { return dims_[check(i)]; }
  void set(int i, int value) { dims_[check(i)] = value; }  // bounds-checked too
  const int* begin() const { return dims_.data(); }
  const int* end() const { return dims_.data() + rank_; }
  std::size_t numel() const;
  // Product of all dims but the last: the "row count" of an NHWC tensor seen as [rows, C].
  std::size_t rows() const;
  int channels() const { return rank_ == 0 ? 0 : dims_[static_cast<std::size_t>(rank_ - 1)]; }
  // Unused dims stay 0, so comparing the whole arrays compares the used ones.
  bool operator==(const Shape& o) const { return rank_ == o.rank_ && dims_ == o.dims_; }
  bool operator!=(const Shape& o) const { return !(*this == o); }
  std::string str() const;  // "[2,7,7,2048]"
  // Whether `dims` (e.g. a file's shape, of any rank) are this shape's dims.
  bool matches(const std::vector<int>& dims) const {
    return dims.size() == static_cast<std::size_t>(rank_) &&
           std::equal(begin(), end(), dims.begin());
  }

 private:
  template <typename It>
  void assign(It first, It last, std::size_t count);
  std::size_t check(int i) const;

  std::array<int, kMaxRank> dims_{};
  int rank_ = 0;
};

// "[a,b,...]" for dims of any rank (a file's shape, which may not fit a Shape).
std::string dims_str(const std::vector<int>& dims);

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
  // Moves the storage out but keeps the shape: a hollow tensor, whose values are gone while
  // its shape still answers (for a backward that needs only the shape of an output).
  std::vector<float> hollow_out();
  // Makes this a hollow tensor of shape s (an output computed into another node's buffer by a
  // fusion); returns the storage it had, if any.
  std::vector<float> hollow_as(const Shape& s);
  bool hollow() const { return data_.size() != numel(); }

 private:
  Shape shape_;
  std::vector<float> data_;
};

// Recycles float vectors so forward/backward allocate only on the first step of a shape.
// A request of n floats takes the smallest free buffer of n to 2n floats, else the smallest
// free one larger than every request still to come in the pass (set_later; 0, the default at
// the start of a pass, when the caller expects none or does not know: best fit), else a new one.
// Within a pass (Model: one forward, or forward + backward) requests are numbered; request k first
// looks for a buffer of the capacity that request k of the last pass of the same kind took (same
// size asked), so a repeated pass allocates nothing.
class BufferPool {
 public:
  // Starts a pass; `kind` tells passes that repeat one another's requests (e.g. the same
  // batch shape and training mode) from others. Without it, requests are not numbered.
  void begin_pass(std::uint64_t kind);
  // The largest request (floats) the pass still makes after the ones that follow this call.
  void set_later(std::size_t later) { later_ = later; }
  std::vector<float> acquire(std::size_t n);  // n = 0: an empty vector
  void release(std::vector<float>&& v);
  std::size_t pooled_floats() const;

 private:
  struct Choice {
    std::size_t n, capacity;  // a request's size and the capacity of the buffer it got
  };
  struct Record {
    std::uint64_t kind;
    std::vector<Choice> choices;  // by request number in the pass
  };
  static constexpr std::size_t kMaxRecords = 4;  // kinds remembered

  std::vector<std::vector<float>> free_;
  std::size_t created_ = 0;  // buffers acquire() has made (free_ has room for them all)
  std::vector<Record> records_;
  std::size_t record_ = kMaxRecords;  // the current pass's record (none before begin_pass)
  std::size_t oldest_ = 0;            // the record to reuse once kMaxRecords kinds were seen
  std::size_t next_ = 0;              // number of the pass's next request
  std::size_t later_ = 0;             // see set_later
};

}  // namespace parafine
