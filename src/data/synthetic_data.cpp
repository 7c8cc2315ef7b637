// Synthetic learnable images (see synthetic_data.hpp).
#include "parafine/data/synthetic_data.hpp"

#include <cmath>
#include <stdexcept>

#include "parafine/core/out_of_memory.hpp"
#include "parafine/core/rng.hpp"

namespace parafine {

InMemorySource make_synthetic_source(int samples, int image_size, int classes, std::uint64_t seed) {
  if (samples < 1 || classes < 1 || image_size < 1)
    throw std::invalid_argument(
        "synthetic dataset: samples, classes and image size must be positive");
  std::vector<std::string> names;
  for (int c = 0; c < classes; ++c) names.push_back("class" + std::to_string(c));
  const std::size_t bytes = static_cast<size_t>(samples) * image_size * image_size * 3;
  std::vector<unsigned char> pixels =
      allocating("the synthetic dataset (" + std::to_string(samples) + " images of " +
                     std::to_string(image_size) + "x" + std::to_string(image_size) + ")",
                 static_cast<double>(bytes), "Try fewer samples or a smaller --image-size.",
                 [&] { return std::vector<unsigned char>(bytes); });
  std::vector<int> labels(static_cast<size_t>(samples));
  SplitMix64 rng(seed);
  for (int i = 0; i < samples; ++i) {
    const int label = i % classes;  // balanced; the trainer shuffles
    labels[static_cast<size_t>(i)] = label;
    const double hue = 2.0 * M_PI * label / classes;
    const double base[3] = {128 + 90 * std::cos(hue), 128 + 90 * std::cos(hue + 2.094),
                            128 + 90 * std::cos(hue + 4.189)};
    const double angle = M_PI * label / classes, period = 8.0;
    const double phase = 2.0 * M_PI * rng.uniform();
    const double brightness = 0.9 + 0.2 * rng.uniform();
    for (int y = 0; y < image_size; ++y)
      for (int x = 0; x < image_size; ++x) {
        const double stripe =
            10.0 *
            std::sin((x * std::cos(angle) + y * std::sin(angle)) * 2.0 * M_PI / period + phase);
        unsigned char* px =
            pixels.data() + ((static_cast<size_t>(i) * image_size + y) * image_size + x) * 3;
        for (int ch = 0; ch < 3; ++ch) {
          const double noise = 8.0 * (rng.uniform() - 0.5);
          px[ch] = static_cast<unsigned char>(std::lround(
              std::fmin(255.0, std::fmax(0.0, base[ch] * brightness + stripe + noise))));
        }
      }
  }
  return InMemorySource(samples, image_size, image_size, std::move(pixels), std::move(labels),
                        classes, names);
}

}  // namespace parafine
