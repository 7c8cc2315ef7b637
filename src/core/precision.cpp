// Precision names and the choice of one for this CPU (see precision.hpp).
#include "parafine/core/precision.hpp"

#include <cpuid.h>

#include <stdexcept>

namespace parafine {

const char* precision_name(Precision p) {
  return p == Precision::kMixedBfloat16 ? "mixed_bfloat16" : "float32";
}

CpuBfloat16 cpu_bfloat16() {
  CpuBfloat16 c;
  unsigned a = 0, b = 0, cx = 0, d = 0;
  if (__get_cpuid_max(0, nullptr) < 7) return c;
  __cpuid_count(7, 0, a, b, cx, d);
  const bool avx512f = (b >> 16) & 1u;
  c.amx_bf16 = (d >> 22) & 1u;
  __cpuid_count(7, 1, a, b, cx, d);
  c.avx512_bf16 = avx512f && ((a >> 5) & 1u);
  return c;
}

Precision choose_precision(const std::string& requested, const CpuBfloat16& cpu,
                           std::string& note) {
  note.clear();
  if (requested == "float32") return Precision::kFloat32;
  const bool bf16 = cpu.avx512_bf16 || cpu.amx_bf16;
  // parafine computes mixed_bfloat16 with float32 kernels on bfloat16-rounded values (the same
  // numbers): benchmarks/README.md measured this CPU class's bfloat16 kernels slower than its
  // float32 ones, so the policy buys Keras's numbers and a half-size feature cache, not speed.
  if (requested == "auto") {
    note = std::string("--precision auto: float32 (mixed_bfloat16 computes Keras's bfloat16 "
                       "numbers at float32 speed here") +
           (bf16 ? "" : "; this CPU has no AVX512_BF16 or AMX-BF16") + ")";
    return Precision::kFloat32;
  }
  if (requested == "mixed_bfloat16") {
    if (!bf16)
      throw std::invalid_argument(
          "--precision mixed_bfloat16: this CPU has neither AVX512_BF16 nor AMX-BF16 (see the "
          "flags in /proc/cpuinfo); use --precision float32, or auto to choose per machine");
    note = "mixed_bfloat16: Keras's policy (float32 variables, optimizer, BatchNormalization "
           "and loss; bfloat16 layer inputs, outputs, gradients and Conv2D/Dense weights), "
           "computed with float32 kernels on bfloat16-rounded values";
    return Precision::kMixedBfloat16;
  }
  throw std::invalid_argument("--precision must be float32, mixed_bfloat16 or auto, got '" +
                              requested + "'");
}

}  // namespace parafine
