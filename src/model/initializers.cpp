// Keras default initialisers (see initializers.hpp).
#include "parafine/model/initializers.hpp"

#include <algorithm>
#include <cmath>

namespace parafine {

std::uint64_t SplitMix64::next() {
  std::uint64_t z = (s_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

double SplitMix64::uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

std::uint64_t hash_string(const std::string& s, std::uint64_t seed) {
  std::uint64_t h = 1469598103934665603ULL ^ seed;  // FNV-1a
  for (unsigned char ch : s) {
    h ^= ch;
    h *= 1099511628211ULL;
  }
  return h;
}

void keras_initialize(Model& model, std::uint64_t seed) {
  for (const ParamRef& r : model.param_refs()) {
    float* w = model.data(r);
    const std::size_t n = r.shape.numel();
    if (r.name == "kernel") {
      // glorot_uniform: limit sqrt(6 / (fan_in + fan_out)); for a conv kernel [KH,KW,Cin,Cout]
      // fan_in = KH*KW*Cin and fan_out = KH*KW*Cout, for a dense kernel [in,out] in and out.
      const int rank = r.shape.rank();
      const double receptive = static_cast<double>(n) / (r.shape[rank - 2] * static_cast<double>(r.shape[rank - 1]));
      const double fan_in = receptive * r.shape[rank - 2], fan_out = receptive * r.shape[rank - 1];
      const double limit = std::sqrt(6.0 / (fan_in + fan_out));
      SplitMix64 rng(hash_string(model.layer(r.node).name() + "/" + r.name, seed));
      for (std::size_t i = 0; i < n; ++i) w[i] = static_cast<float>((2.0 * rng.uniform() - 1.0) * limit);
    } else {
      const float v = (r.name == "gamma" || r.name == "moving_variance") ? 1.0f : 0.0f;
      std::fill(w, w + n, v);
    }
  }
}

}  // namespace parafine
