// Bulk bfloat16 rounding and packing (see bfloat16.hpp).
#include "parafine/core/bfloat16.hpp"

#include "parafine/core/compute.hpp"

namespace parafine {

void round_to_bfloat16(float* x, std::size_t n) {
  round_to_bfloat16(x, n, x);
}

void round_to_bfloat16(const float* x, std::size_t n, float* out) {
  const long count = static_cast<long>(n);
#pragma omp parallel for if (parallel_worth(static_cast<double>(n)))
  for (long i = 0; i < count; ++i) out[i] = round_to_bfloat16(x[i]);
}

void add_bias_bfloat16(float* y, std::size_t rows, int c, const float* bias) {
  const long count = static_cast<long>(rows);
#pragma omp parallel for if (parallel_worth(static_cast<double>(rows) * c))
  for (long r = 0; r < count; ++r)
    for (int k = 0; k < c; ++k) {
      float& v = y[r * c + k];
      v = round_to_bfloat16(round_to_bfloat16(v) + bias[k]);
    }
}

void to_bfloat16_words(const float* x, std::size_t n, std::uint16_t* out) {
  const long count = static_cast<long>(n);
#pragma omp parallel for if (parallel_worth(static_cast<double>(n)))
  for (long i = 0; i < count; ++i) out[i] = bfloat16_bits(x[i]);
}

void from_bfloat16_words(const std::uint16_t* x, std::size_t n, float* out) {
  const long count = static_cast<long>(n);
#pragma omp parallel for if (parallel_worth(static_cast<double>(n)))
  for (long i = 0; i < count; ++i) out[i] = from_bfloat16_bits(x[i]);
}

}  // namespace parafine
