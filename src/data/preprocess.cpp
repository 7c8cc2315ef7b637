// Augmentation and preprocessing of decoded pixels (see preprocess.hpp).
#include "parafine/data/preprocess.hpp"

#include <stdexcept>
#include <utility>

#include "parafine/core/rng.hpp"

namespace parafine {

Preprocess parse_preprocess(const std::string& name) {
  if (name == "caffe") return Preprocess::kCaffe;
  if (name == "tf") return Preprocess::kTf;
  if (name == "none") return Preprocess::kNone;
  throw std::invalid_argument("--preprocess must be 'caffe', 'tf' or 'none', got '" + name + "'");
}

const char* preprocess_name(Preprocess p) {
  switch (p) {
    case Preprocess::kCaffe: return "caffe";
    case Preprocess::kTf: return "tf";
    case Preprocess::kNone: break;
  }
  return "none";
}

void caffe_preprocess(const float* rgb, float* out) {
  // keras.applications.imagenet_utils.preprocess_input(mode="caffe")
  out[0] = rgb[2] - 103.939f;
  out[1] = rgb[1] - 116.779f;
  out[2] = rgb[0] - 123.68f;
}

Augment parse_augment(const std::string& name) {
  if (name == "none") return Augment::kNone;
  if (name == "flip") return Augment::kFlip;
  throw std::invalid_argument("--augment must be 'none' or 'flip', got '" + name + "'");
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
  if (flip)
    for (std::size_t y = 0; y < S; ++y) {
      float* row = image + y * S * 3;  // [S,3]
      for (std::size_t a = 0, b = S - 1; a < b; ++a, --b)
        for (int c = 0; c < 3; ++c) std::swap(row[a * 3 + c], row[b * 3 + c]);
    }
  if (preprocess == Preprocess::kCaffe)
    for (std::size_t p = 0; p < S * S * 3; p += 3) {
      const float rgb[3] = {image[p], image[p + 1],
                            image[p + 2]};  // caffe_preprocess is not in-place safe
      caffe_preprocess(rgb, image + p);
    }
  else if (preprocess == Preprocess::kTf)  // imagenet_utils.preprocess_input(mode="tf")
    for (std::size_t p = 0; p < S * S * 3; ++p) image[p] = image[p] / 127.5f - 1.0f;
}

}  // namespace parafine
