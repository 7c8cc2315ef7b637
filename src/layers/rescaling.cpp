// Rescaling forward and backward (see rescaling.hpp).
#include "parafine/layers/rescaling.hpp"

#include "parafine/core/bfloat16.hpp"
#include "parafine/core/compute.hpp"

namespace parafine {

namespace {
// Value of a scalar-or-per-channel vector v for channel ch.
inline float at(const std::vector<float>& v, std::size_t ch) {
  return v.size() == 1 ? v[0] : v[ch];
}
}  // namespace

// v rounded to bfloat16 into `into` (sized once), returned.
const std::vector<float>& Rescaling::rounded(const std::vector<float>& v,
                                             std::vector<float>& into) {
  into.resize(v.size());
  round_to_bfloat16(v.data(), v.size(), into.data());
  return into;
}

Rescaling::Rescaling(std::string name, std::vector<float> scale, std::vector<float> offset)
    : Layer(std::move(name)), scale_(std::move(scale)), offset_(std::move(offset)) {
  if (scale_.empty()) fail("scale has no values (a scalar or one per channel expected)");
  if (offset_.empty()) fail("offset has no values (a scalar or one per channel expected)");
}

void Rescaling::check_channels(const Shape& s) const {
  const auto c = static_cast<std::size_t>(s.channels());
  if (scale_.size() != 1 && scale_.size() != c)
    fail("scale has " + std::to_string(scale_.size()) + " values, the input " + s.str() + " has " +
         std::to_string(c) + " channels (a scalar or one per channel expected)");
  if (offset_.size() != 1 && offset_.size() != c)
    fail("offset has " + std::to_string(offset_.size()) + " values, the input " + s.str() +
         " has " + std::to_string(c) + " channels (a scalar or one per channel expected)");
}

Shape Rescaling::infer_shape(const std::vector<Shape>& in) {
  expect_count(in, 1);
  if (in[0].rank() < 2) fail("expects an input of rank 2 or more ([N,...,C]), got " + in[0].str());
  expect_input(in[0], in[0].rank());  // positive dims
  check_channels(in[0]);
  return in[0];
}

// x [rows, C] -> y [rows, C]. The product and the sum are two float32 operations, as Keras's
// `x * scale + offset` (two TensorFlow ops): two passes, so the compiler cannot fuse them
// into one fused multiply-add, which rounds once. Under mixed_bfloat16 Keras casts scale and
// offset to bfloat16 and rounds the product to bfloat16 (the Model rounds the sum).
void Rescaling::forward(const std::vector<const Tensor*>& in, Tensor& out, bool) {
  const Shape& s = in[0]->shape();
  check_channels(s);
  out.resize(s);
  const std::size_t rows = s.rows(), c = static_cast<std::size_t>(s.channels());
  const float* x = in[0]->data();
  float* y = out.data();
  const std::vector<float>& scale = bfloat16_compute_ ? rounded(scale_, scale_bf16_) : scale_;
  const std::vector<float>& offset = bfloat16_compute_ ? rounded(offset_, offset_bf16_) : offset_;
  const bool big = parallel_worth(1.0 * out.numel());
#pragma omp parallel for if (big)
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t ch = 0; ch < c; ++ch) y[r * c + ch] = x[r * c + ch] * at(scale, ch);
  if (bfloat16_compute_) round_to_bfloat16(y, out.numel());
#pragma omp parallel for if (big)
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t ch = 0; ch < c; ++ch) y[r * c + ch] += at(offset, ch);
}

void Rescaling::backward(const std::vector<const Tensor*>& in, const Tensor&, const Tensor& dout,
                         const std::vector<Tensor*>& din) {
  if (!din[0]) return;
  const Shape& s = in[0]->shape();  // in[0] may be hollow: its shape only
  din[0]->resize(s);
  const std::size_t rows = s.rows(), c = static_cast<std::size_t>(s.channels());
  const float* dy = dout.data();
  float* dx = din[0]->data();
  const std::vector<float>& scale = bfloat16_compute_ ? scale_bf16_ : scale_;  // forward's
#pragma omp parallel for if (parallel_worth(1.0 * dout.numel()))
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t ch = 0; ch < c; ++ch) dx[r * c + ch] = dy[r * c + ch] * at(scale, ch);
}

}  // namespace parafine
