// Keras's default initialisers (keras_initialize): every kernel, depthwise_kernel included, is
// glorot_uniform with Keras's fans (within +-limit, variance limit^2/3), biases and BN beta and
// moving mean 0, gamma and moving variance 1. A depthwise kernel left at zero would make a
// randomly started MobileNetV2 dead.
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>

#include "parafine/model/backbone.hpp"
#include "parafine/model/initializers.hpp"

namespace parafine {
namespace {

TEST(Initializers, GlorotUniformForEveryKernelWithKerasFans) {
  NetworkConfig c;
  c.backbone = Backbone::kMobileNetV2;
  c.alpha = 0.35f;
  c.image_size = 32;
  Model m = build_network(c);
  keras_initialize(m, 5);
  int depthwise = 0;
  for (const ParamRef& r : m.param_refs()) {
    const float* w = m.data(r);
    const std::size_t n = r.shape.numel();
    if (r.name == "kernel" || r.name == "depthwise_kernel") {
      const int rank = r.shape.rank();
      const double out = r.shape[rank - 1], in = r.shape[rank - 2];
      const double receptive = static_cast<double>(n) / (in * out);
      const double limit = std::sqrt(6.0 / (receptive * (in + out)));
      double sum2 = 0, worst = 0;
      for (std::size_t i = 0; i < n; ++i) {
        sum2 += static_cast<double>(w[i]) * w[i];
        worst = std::max(worst, std::fabs(static_cast<double>(w[i])));
      }
      const double ratio = (sum2 / n) / (limit * limit / 3);
      EXPECT_LE(worst, limit) << m.layer(r.node).name() << "/" << r.name;
      if (n >= 2000)  // the sample variance of n uniform draws is within ~5% of limit^2/3
        EXPECT_NEAR(ratio, 1.0, 0.15) << m.layer(r.node).name() << "/" << r.name;
      EXPECT_GT(sum2, 0) << m.layer(r.node).name() << "/" << r.name << " is all zero";
      if (r.name == "depthwise_kernel" && ++depthwise == 1)
        std::cout << m.layer(r.node).name() << "/depthwise_kernel " << r.shape.str() << ": limit "
                  << limit << ", max |w| " << worst << ", variance / (limit^2/3) " << ratio << "\n";
    } else {
      const float expected = (r.name == "gamma" || r.name == "moving_variance") ? 1.0f : 0.0f;
      for (std::size_t i = 0; i < n; ++i)
        ASSERT_EQ(w[i], expected) << m.layer(r.node).name() << "/" << r.name;
    }
  }
  EXPECT_EQ(depthwise, 17);  // expanded_conv and blocks 1..16
}

}  // namespace
}  // namespace parafine
