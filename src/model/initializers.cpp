// Keras default initialisers (see initializers.hpp).
#include "parafine/model/initializers.hpp"

#include <algorithm>
#include <cmath>

#include "parafine/core/rng.hpp"

namespace parafine {

void keras_initialize(Model& model, std::uint64_t seed) {
  for (const ParamRef& r : model.param_refs()) {
    float* w = model.data(r);
    const std::size_t n = r.shape.numel();
    if (r.name == "kernel" || r.name == "depthwise_kernel") {
      // glorot_uniform: limit sqrt(6 / (fan_in + fan_out)); for a conv kernel [KH,KW,Cin,Cout]
      // fan_in = KH*KW*Cin and fan_out = KH*KW*Cout, for a dense kernel [in,out] in and out.
      // DepthwiseConv2D's depthwise_kernel [KH,KW,C,M] takes the same rule (Keras's
      // depthwise_initializer is glorot_uniform, its fans computed from that shape).
      const int rank = r.shape.rank();
      const double receptive =
          static_cast<double>(n) / (r.shape[rank - 2] * static_cast<double>(r.shape[rank - 1]));
      const double fan_in = receptive * r.shape[rank - 2], fan_out = receptive * r.shape[rank - 1];
      const double limit = std::sqrt(6.0 / (fan_in + fan_out));
      SplitMix64 rng(hash_string(model.layer(r.node).name() + "/" + r.name, seed));
      for (std::size_t i = 0; i < n; ++i)
        w[i] = static_cast<float>((2.0 * rng.uniform() - 1.0) * limit);
    } else {
      const float v =
          (r.name == "gamma" || r.name == "moving_variance" || r.name == "variance") ? 1.0f : 0.0f;
      std::fill(w, w + n, v);
    }
  }
}

}  // namespace parafine
