// What happens to a decoded image's pixels before the network sees them: the optional
// left-right flip of --augment flip (a fair coin per (seed, epoch, sample)) and the model's
// preprocess_input (--preprocess caffe: RGB->BGR minus the ImageNet means, as
// keras.applications.resnet50 / vgg16 preprocess_input; tf: x / 127.5 - 1, as inception_v3 /
// mobilenet_v2 preprocess_input; none: the raw [0,255] values).
#pragma once

#include <cstdint>
#include <string>

namespace parafine {

enum class Preprocess { kCaffe, kTf, kNone };
// "caffe" | "tf" | "none", else throws naming --preprocess.
Preprocess parse_preprocess(const std::string& name);
const char* preprocess_name(Preprocess p);

enum class Augment { kNone, kFlip };
// "none" | "flip", else throws naming --augment.
Augment parse_augment(const std::string& name);

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
