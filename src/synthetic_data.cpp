// Synthetic learnable images and caffe preprocessing (see dataset.hpp).
#include "parafine/dataset.hpp"

#include <cmath>
#include <stdexcept>

#include "parafine/initializers.hpp"

namespace parafine {

void caffe_preprocess(const float* rgb, float* out) {
  // keras.applications.imagenet_utils.preprocess_input(mode="caffe")
  out[0] = rgb[2] - 103.939f;
  out[1] = rgb[1] - 116.779f;
  out[2] = rgb[0] - 123.68f;
}

Dataset make_synthetic_dataset(int samples, int image_size, int classes, std::uint64_t seed) {
  if (samples < 1 || classes < 1 || image_size < 1)
    throw std::invalid_argument("synthetic dataset: samples, classes and image size must be positive");
  Dataset d;
  d.classes = classes;
  for (int c = 0; c < classes; ++c) d.class_names.push_back("class" + std::to_string(c));
  d.images.resize(Shape{samples, image_size, image_size, 3});
  d.labels.resize(static_cast<size_t>(samples));
  SplitMix64 rng(seed);
  for (int i = 0; i < samples; ++i) {
    const int label = i % classes;  // balanced; the trainer shuffles
    d.labels[static_cast<size_t>(i)] = label;
    // Class colour on a hue circle, stripes whose angle depends on the class.
    const double hue = 2.0 * M_PI * label / classes;
    const float base[3] = {static_cast<float>(128 + 90 * std::cos(hue)),
                           static_cast<float>(128 + 90 * std::cos(hue + 2.094)),
                           static_cast<float>(128 + 90 * std::cos(hue + 4.189))};
    const double angle = M_PI * label / classes;
    const double period = 8.0;
    const double phase = 2.0 * M_PI * rng.uniform();
    const float brightness = static_cast<float>(0.9 + 0.2 * rng.uniform());
    for (int y = 0; y < image_size; ++y)
      for (int x = 0; x < image_size; ++x) {
        const double t = (x * std::cos(angle) + y * std::sin(angle)) * 2.0 * M_PI / period + phase;
        const float stripe = static_cast<float>(10.0 * std::sin(t));
        float rgb[3];
        for (int ch = 0; ch < 3; ++ch) {
          const float noise = static_cast<float>(8.0 * (rng.uniform() - 0.5));
          rgb[ch] = std::fmin(255.0f, std::fmax(0.0f, base[ch] * brightness + stripe + noise));
        }
        caffe_preprocess(rgb, d.images.data() + ((static_cast<size_t>(i) * image_size + y) * image_size + x) * 3);
      }
  }
  return d;
}

}  // namespace parafine
