// Concatenate along the channel axis (see concatenate.hpp).
#include "parafine/layers/concatenate.hpp"

#include <cstring>

#include "parafine/core/compute.hpp"

namespace parafine {

Concatenate::Concatenate(std::string name, int num_inputs)
    : Layer(std::move(name)), num_inputs_(num_inputs) {
  if (num_inputs < 2) fail("needs at least 2 inputs, got " + std::to_string(num_inputs));
}

Shape Concatenate::infer_shape(const std::vector<Shape>& in) {
  expect_count(in, num_inputs_);
  const int rank = in[0].rank();
  if (rank < 2) fail("expects inputs of rank >= 2, got " + in[0].str());
  Shape out = in[0];
  int channels = 0;
  for (std::size_t k = 0; k < in.size(); ++k) {
    expect_input(in[k], rank);
    for (int d = 0; d + 1 < rank; ++d)
      if (in[k][d] != in[0][d])
        fail("input " + std::to_string(k) + " has shape " + in[k].str() + ", input 0 " +
             in[0].str() + ": all but the last (channel) axis must match");
    channels += in[k].channels();
  }
  out.set(rank - 1, channels);
  return out;
}

void Concatenate::forward(const std::vector<const Tensor*>& in, Tensor& out, bool) {
  // The shapes were checked by infer_shape; here (without allocating) only what the copy needs.
  Shape os = in[0]->shape();
  int channels = 0;
  for (const Tensor* t : in) {
    if (t->shape().rows() != os.rows())
      fail("input shapes " + t->shape().str() + " and " + os.str() +
           " differ outside the channel axis");
    channels += t->shape().channels();
  }
  os.set(os.rank() - 1, channels);
  out.resize(os);
  const long rows = static_cast<long>(os.rows());
  const int c = os.channels();
  float* y = out.data();
  const int k_count = static_cast<int>(in.size());
#pragma omp parallel for if (parallel_worth(out.numel()))
  for (long r = 0; r < rows; ++r) {
    float* dst = y + static_cast<size_t>(r) * c;
    for (int k = 0; k < k_count; ++k) {
      const int ck = in[static_cast<size_t>(k)]->shape().channels();
      std::memcpy(dst, in[static_cast<size_t>(k)]->data() + static_cast<size_t>(r) * ck,
                  sizeof(float) * ck);
      dst += ck;
    }
  }
}

void Concatenate::backward(const std::vector<const Tensor*>& in, const Tensor& out,
                           const Tensor& dout, const std::vector<Tensor*>& din) {
  const long rows = static_cast<long>(out.shape().rows());
  const int c = out.shape().channels();
  int offset = 0;
  for (std::size_t k = 0; k < in.size(); ++k) {
    const int ck = in[k]->shape().channels();  // in[k] may be hollow: shape only
    if (din[k]) {
      din[k]->resize(in[k]->shape());
      float* dx = din[k]->data();
      const float* dy = dout.data() + offset;
#pragma omp parallel for if (parallel_worth(static_cast <double>(rows) * ck))
      for (long r = 0; r < rows; ++r)
        std::memcpy(dx + static_cast<size_t>(r) * ck, dy + static_cast<size_t>(r) * c,
                    sizeof(float) * ck);
    }
    offset += ck;
  }
}

}  // namespace parafine
