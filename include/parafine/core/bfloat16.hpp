// bfloat16 as Keras's mixed_bfloat16 policy computes with it: float32's sign and 8-bit
// exponent with 8 significant bits, converted from float32 by rounding to nearest, ties to
// even (TensorFlow's and PyTorch's cast). parafine keeps bfloat16 values in float32 storage
// (every bfloat16 is exactly a float32) and stores them as 16-bit words where memory counts
// (the feature cache).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace parafine {

// The bfloat16 bits of v, rounded to nearest even; a NaN stays a (quiet) NaN.
inline std::uint16_t bfloat16_bits(float v) {
  std::uint32_t b;
  std::memcpy(&b, &v, sizeof b);
  if ((b & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((b >> 16) | 0x0040u);
  b += 0x7fffu + ((b >> 16) & 1u);
  return static_cast<std::uint16_t>(b >> 16);
}

inline float from_bfloat16_bits(std::uint16_t h) {
  const std::uint32_t b = static_cast<std::uint32_t>(h) << 16;
  float v;
  std::memcpy(&v, &b, sizeof v);
  return v;
}

// v rounded to the nearest bfloat16, as a float32.
inline float round_to_bfloat16(float v) {
  return from_bfloat16_bits(bfloat16_bits(v));
}

// x[0, n) rounded to bfloat16 in place (threaded for large n).
void round_to_bfloat16(float* x, std::size_t n);
// out[0, n) = x[0, n) rounded to bfloat16 (out may be x).
void round_to_bfloat16(const float* x, std::size_t n, float* out);
// mixed_bfloat16's bias add as TensorFlow runs it after a bfloat16 conv or matmul: y[rows, c]
// (the float32 result) rounded, plus bias[c] (bfloat16 values), rounded again.
void add_bias_bfloat16(float* y, std::size_t rows, int c, const float* bias);
// Packs x[0, n) into bfloat16 words (rounding) and back (exact).
void to_bfloat16_words(const float* x, std::size_t n, std::uint16_t* out);
void from_bfloat16_words(const std::uint16_t* x, std::size_t n, float* out);

}  // namespace parafine
