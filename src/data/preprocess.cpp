// Augmentation and preprocessing of decoded pixels (see preprocess.hpp).
#include "parafine/data/preprocess.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <stdexcept>
#include <utility>

#include "parafine/core/rng.hpp"
#include "parafine/data/augment.hpp"

namespace parafine {

namespace {

// A finite number, or a fraction of two ("1/255"); false when `text` is neither.
bool parse_factor(const std::string& text, double& value) {
  const auto number = [](const std::string& t, double& v) {
    if (t.empty() || std::isspace(static_cast<unsigned char>(t[0]))) return false;
    char* end = nullptr;
    v = std::strtod(t.c_str(), &end);
    return end == t.c_str() + t.size() && std::isfinite(v);
  };
  const std::size_t slash = text.find('/');
  if (slash == std::string::npos) return number(text, value);
  double a = 0, b = 0;
  if (!number(text.substr(0, slash), a) || !number(text.substr(slash + 1), b) || b == 0)
    return false;
  value = a / b;
  return std::isfinite(value);
}

}  // namespace

Preprocess parse_preprocess(const std::string& name) {
  if (name == "caffe") return Preprocess::kCaffe;
  if (name == "tf") return Preprocess::kTf;
  if (name == "torch") return Preprocess::kTorch;
  if (name == "none") return Preprocess::kNone;
  if (name.rfind("rescale:", 0) == 0) {
    double f = 0;
    if (!parse_factor(name.substr(8), f) || f == 0 ||
        std::fabs(f) > std::numeric_limits<float>::max())
      throw std::invalid_argument(
          "--preprocess rescale:F needs a finite, non-zero factor such as rescale:1/255 or "
          "rescale:0.5, got '" +
          name + "'");
    return Preprocess::rescale(static_cast<float>(f));
  }
  throw std::invalid_argument(
      "--preprocess must be 'caffe', 'tf', 'torch', 'none' or 'rescale:F' (e.g. rescale:1/255), "
      "got '" +
      name + "'");
}

std::string preprocess_name(Preprocess p) {
  switch (p.mode) {
    case Preprocess::Mode::kCaffe:
      return "caffe";
    case Preprocess::Mode::kTf:
      return "tf";
    case Preprocess::Mode::kTorch:
      return "torch";
    case Preprocess::Mode::kRescale: {
      char text[48];
      std::snprintf(text, sizeof text, "rescale:%.9g", static_cast<double>(p.scale));
      return text;
    }
    case Preprocess::Mode::kNone:
      break;
  }
  return "none";
}

void caffe_preprocess(const float* rgb, float* out) {
  // keras.applications.imagenet_utils.preprocess_input(mode="caffe")
  out[0] = rgb[2] - 103.939f;
  out[1] = rgb[1] - 116.779f;
  out[2] = rgb[0] - 123.68f;
}

bool flip_decision(std::uint64_t seed, int epoch, int sample) {
  // One splitmix64 output of a state mixing (seed, epoch, sample): a counter-based draw, so the
  // answer needs no shared generator and does not depend on who asks first.
  const std::uint64_t key = (static_cast<std::uint64_t>(static_cast<std::uint32_t>(epoch)) << 32) |
                            static_cast<std::uint32_t>(sample);
  SplitMix64 rng(hash_string("augment/flip", seed) ^ key);
  return (rng.next() >> 63) != 0;
}

void prepare_sample(float* image, int image_size, bool flip, Preprocess preprocess) {
  const std::size_t S = static_cast<std::size_t>(image_size);
  if (flip) flip_horizontal(image, image_size, image_size);
  const std::size_t n = S * S * 3;
  if (preprocess == Preprocess::kCaffe)
    for (std::size_t p = 0; p < S * S * 3; p += 3) {
      const float rgb[3] = {image[p], image[p + 1],
                            image[p + 2]};  // caffe_preprocess is not in-place safe
      caffe_preprocess(rgb, image + p);
    }
  else if (preprocess == Preprocess::kTf)  // imagenet_utils.preprocess_input(mode="tf")
    for (std::size_t p = 0; p < n; ++p) image[p] = image[p] / 127.5f - 1.0f;
  else if (preprocess == Preprocess::kTorch)  // imagenet_utils.preprocess_input(mode="torch")
    for (std::size_t p = 0; p < n; p += 3) {
      // x / 255, then (x - mean) / std per RGB channel, in that order as Keras computes it.
      static constexpr float kMean[3] = {0.485f, 0.456f, 0.406f};
      static constexpr float kStd[3] = {0.229f, 0.224f, 0.225f};
      for (int c = 0; c < 3; ++c) image[p + c] = (image[p + c] / 255.0f - kMean[c]) / kStd[c];
    }
  else if (preprocess.mode == Preprocess::Mode::kRescale)  // ImageDataGenerator(rescale=F)
    for (std::size_t p = 0; p < n; ++p) image[p] *= preprocess.scale;
}

}  // namespace parafine
