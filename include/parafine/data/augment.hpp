// --augment: the random image transforms applied to training samples, each one Keras 3's
// preprocessing layer (keras/src/layers/preprocessing/image_preprocessing/) with its formula,
// defaults and fill mode:
//   flip           RandomFlip("horizontal")
//   rotation:F     RandomRotation(F): angle uniform in [-F*360, F*360] degrees about the centre
//   zoom:F         RandomZoom(F): one zoom z uniform in [1-F, 1+F] for both axes (width_factor
//                  None keeps the aspect)
//   translation:F  RandomTranslation(F, F): shifts uniform in [-F*H, F*H] and [-F*W, F*W]
//   contrast:F     RandomContrast(F, value_range=(0, 255)): per channel (x - mean) * f + mean,
//                  clipped to [0, 255]; f uniform in [1, 1+F] (Keras 3's _set_factor with
//                  _FACTOR_BOUNDS (0, 1) makes the lower bound max(-F, 0) = 0)
//   crop[:D]       RandomCrop(S, S) of the sample decoded at D x D (default D = round(S*8/7)):
//                  offsets uniform in [0, D-S] per axis
// rotation, zoom and translation are affine maps sampled bilinearly with fill_mode "reflect"
// (d c b a | a b c d | d c b a), as keras.ops.image.affine_transform; each is applied on its
// own (Keras interpolates once per layer, so composing them would change the result).
// Order: crop first (it sets the size), then the others in the order given.
//
// The random parameters of sample i in epoch e are drawn from counter-based streams keyed by
// (seed, e, i, transform), so an image does not depend on the rank count, thread count or
// order of decoding. flip keeps flip_decision's stream (preprocess.hpp).
// Images are float RGB [H,W,3] in [0,255], before preprocess_input.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace parafine {

enum class AugmentKind { kCrop, kFlip, kRotation, kZoom, kTranslation, kContrast };

struct AugmentStep {
  AugmentKind kind = AugmentKind::kFlip;
  double factor = 0;    // rotation/zoom/translation/contrast: Keras's factor, >= 0
  int crop_decode = 0;  // crop: the decode size D; 0 = round(S * 8 / 7)
  bool operator==(const AugmentStep& o) const {
    return kind == o.kind && factor == o.factor && crop_decode == o.crop_decode;
  }
};

struct AugmentSpec {
  std::vector<AugmentStep> steps;  // crop (when present) first, then the others as given

  bool any() const { return !steps.empty(); }
  const AugmentStep* find(AugmentKind kind) const;
  // The size the source decodes a training sample at: D with crop, else image_size.
  int decode_size(int image_size) const;
  bool operator==(const AugmentSpec& o) const { return steps == o.steps; }
  bool operator!=(const AugmentSpec& o) const { return !(*this == o); }
};

// "none" or a comma-separated subset of flip, rotation:F, zoom:F, translation:F, contrast:F,
// crop[:D], each at most once. Factors are checked as Keras checks them (rotation and
// translation in [-1, 1], zoom in (-1, 1], contrast in [0, 1]; a negative factor means its
// absolute value, as in Keras). Throws std::invalid_argument naming --augment.
AugmentSpec parse_augment(const std::string& text);
// The spelling parse_augment reads back to the same spec: "none", "flip" (as before there were
// other transforms), "crop:256,flip,rotation:0.1"...
std::string augment_name(const AugmentSpec& spec);
// Throws std::invalid_argument naming --augment when crop's D is smaller than image_size.
void check_augment_size(const AugmentSpec& spec, int image_size);

// One sample's random parameters (the identity for transforms not in the spec).
struct AugmentDraw {
  int crop_y = 0, crop_x = 0;  // the window's top-left corner in the D x D decode
  bool flip = false;
  double angle_degrees = 0;         // counter-clockwise
  double zoom = 1;                  // > 1 zooms out, < 1 zooms in (Keras's convention)
  double shift_y = 0, shift_x = 0;  // pixels (height_translate * H, width_translate * W)
  double contrast = 1;
};
AugmentDraw draw_augment(const AugmentSpec& spec, std::uint64_t seed, int epoch, int sample,
                         int image_size);

// Keras's affine transform: output pixel (y, x) reads the input at
// (x', y') = (m[0] x + m[1] y + m[2], m[3] x + m[4] y + m[5]), bilinearly, reflecting outside.
using AffineMap = std::array<double, 6>;  // a0 a1 a2 b0 b1 b2
AffineMap rotation_map(double angle_degrees, int height, int width);
AffineMap zoom_map(double zoom, int height, int width);
AffineMap translation_map(double shift_y, double shift_x);
// src and dst [H,W,3], distinct.
void affine_reflect_bilinear(const float* src, int height, int width, const AffineMap& m,
                             float* dst);
// In place on [H,W,3]: per channel (x - mean) * factor + mean, clipped to [0, 255].
void adjust_contrast(float* image, int height, int width, double factor);
// In place on [H,W,3]: left-right mirror.
void flip_horizontal(float* image, int height, int width);
// The S x S window at (y0, x0) of src [D,D,3] into dst [S,S,3].
void crop_window(const float* src, int decode, int y0, int x0, int size, float* dst);

// Every transform of the spec but crop (done at load), in order, on image [S,S,3]; scratch is
// resized as needed and reused between calls.
void apply_augment(const AugmentSpec& spec, const AugmentDraw& draw, float* image, int size,
                   std::vector<float>& scratch);

}  // namespace parafine
