// What happens to a decoded image's pixels before the network sees them: the optional
// left-right flip of --augment flip (a fair coin per (seed, epoch, sample); the other
// transforms of --augment are in augment.hpp) and the model's
// preprocess_input (--preprocess caffe: RGB->BGR minus the ImageNet means, as
// keras.applications.resnet50 / vgg16 preprocess_input; tf: x / 127.5 - 1, as inception_v3 /
// mobilenet_v2 preprocess_input; torch: x / 255 minus the ImageNet mean over its standard
// deviation per RGB channel, imagenet_utils' third mode (keras.applications.densenet); rescale:F:
// x * F, ImageDataGenerator(rescale=F), what most small Keras CNNs are trained with; none: the
// raw [0,255] values).
#pragma once

#include <cstdint>
#include <string>

namespace parafine {

struct Preprocess {
  enum class Mode { kCaffe, kTf, kTorch, kNone, kRescale };
  Mode mode = Mode::kCaffe;
  float scale = 1.0f;  // kRescale's factor

  static const Preprocess kCaffe, kTf, kTorch, kNone;
  static Preprocess rescale(float factor) { return {Mode::kRescale, factor}; }
  bool operator==(const Preprocess& o) const { return mode == o.mode && scale == o.scale; }
  bool operator!=(const Preprocess& o) const { return !(*this == o); }
};
inline constexpr Preprocess Preprocess::kCaffe{Preprocess::Mode::kCaffe, 1.0f};
inline constexpr Preprocess Preprocess::kTf{Preprocess::Mode::kTf, 1.0f};
inline constexpr Preprocess Preprocess::kTorch{Preprocess::Mode::kTorch, 1.0f};
inline constexpr Preprocess Preprocess::kNone{Preprocess::Mode::kNone, 1.0f};
// "caffe" | "tf" | "torch" | "none" | "rescale:F" (F a number or a fraction such as 1/255,
// finite and not 0), else throws naming --preprocess.
Preprocess parse_preprocess(const std::string& name);
// The spelling parse_preprocess reads back exactly ("rescale:0.00392156886").
std::string preprocess_name(Preprocess p);

// Keras "caffe" preprocessing of one RGB pixel in [0,255]: BGR order, ImageNet means removed.
// Not in-place safe (out must not alias rgb).
void caffe_preprocess(const float* rgb, float* out);

// Whether sample `sample` is mirrored left-right in epoch `epoch` under --augment flip: a fair
// coin drawn from a stream seeded by (seed, epoch, sample) only.
bool flip_decision(std::uint64_t seed, int epoch, int sample);

// In place on one image [S,S,3] of RGB floats in [0,255]: mirror left-right when `flip`, then
// apply `preprocess`. The single place where augmentation and preprocessing meet the pixels.
void prepare_sample(float* image, int image_size, bool flip, Preprocess preprocess);

}  // namespace parafine
