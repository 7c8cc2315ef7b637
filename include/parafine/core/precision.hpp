// The computation precision, as Keras's mixed-precision policies name it, and which one a run
// gets on this CPU.
//  - float32: everything in float32.
//  - mixed_bfloat16 (keras.mixed_precision.set_global_policy("mixed_bfloat16")): variables,
//    optimizer state, BatchNormalization's arithmetic and statistics, the softmax and the loss
//    in float32; every layer's inputs, outputs and gradients, and the Conv2D and Dense kernels
//    and biases they compute with, rounded to bfloat16. Products of bfloat16 values are exact in
//    float32 and sums accumulate in float32, as oneDNN's and TensorFlow's bfloat16 kernels do.
#pragma once

#include <string>

namespace parafine {

enum class Precision { kFloat32, kMixedBfloat16 };

const char* precision_name(Precision p);  // "float32", "mixed_bfloat16"

// What this CPU offers for bfloat16 (CPUID): AVX512_BF16 dot products, AMX-BF16 tiles.
struct CpuBfloat16 {
  bool avx512_bf16 = false;
  bool amx_bf16 = false;
};
CpuBfloat16 cpu_bfloat16();

// Resolves a --precision value ("float32", "mixed_bfloat16" or "auto") for this CPU. Throws
// std::invalid_argument for any other value, and for mixed_bfloat16 on a CPU without
// AVX512_BF16 or AMX-BF16 (saying so and what to use instead). `note` gets one line for the
// log: why auto chose what it chose, or what mixed_bfloat16 costs here; empty for float32.
Precision choose_precision(const std::string& requested, const CpuBfloat16& cpu, std::string& note);

}  // namespace parafine
