// --augment's parsing, parameter draws and image transforms (see augment.hpp).
#include "parafine/data/augment.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <utility>

#include "parafine/core/rng.hpp"
#include "parafine/data/preprocess.hpp"

namespace parafine {

namespace {

constexpr int kMaxCropDecode = 16384;  // D*D*3 floats stay far below any int/memory limit

struct KindInfo {
  AugmentKind kind;
  const char* name;
  bool has_factor;
};
constexpr KindInfo kKinds[] = {
    {AugmentKind::kCrop, "crop", false},
    {AugmentKind::kFlip, "flip", false},
    {AugmentKind::kRotation, "rotation", true},
    {AugmentKind::kZoom, "zoom", true},
    {AugmentKind::kTranslation, "translation", true},
    {AugmentKind::kContrast, "contrast", true},
};

const KindInfo& info(AugmentKind kind) {
  for (const KindInfo& k : kKinds)
    if (k.kind == kind) return k;
  throw std::logic_error("augment: unknown transform kind");
}

[[noreturn]] void bad(const std::string& why) {
  throw std::invalid_argument("--augment: " + why);
}

// The shortest "%.Ng" that reads back to v exactly.
std::string exact_text(double v) {
  char buf[40];
  for (int digits = 1; digits <= 17; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

double parse_number(const std::string& text, const std::string& item) {
  char* end = nullptr;
  const double v = text.empty() || std::isspace(static_cast<unsigned char>(text[0]))
                       ? NAN
                       : std::strtod(text.c_str(), &end);
  if (!std::isfinite(v) || end != text.c_str() + text.size())
    bad("'" + item + "' needs a number after ':', got '" + text + "'");
  return v;
}

// Keras's checks of a single-number factor, then abs() as Keras's _set_factor does.
double checked_factor(AugmentKind kind, double f, const std::string& item) {
  switch (kind) {
    case AugmentKind::kRotation:  // BaseImagePreprocessingLayer._FACTOR_BOUNDS (-1, 1)
    case AugmentKind::kTranslation:
      if (f < -1 || f > 1) bad("'" + item + "': the factor must be in [-1, 1] (as in Keras)");
      break;
    case AugmentKind::kZoom:  // RandomZoom._check_factor_range
      if (f <= -1 || f > 1) bad("'" + item + "': the factor must be in (-1, 1] (as in Keras)");
      break;
    case AugmentKind::kContrast:  // RandomContrast._FACTOR_BOUNDS (0, 1)
      if (f < 0 || f > 1) bad("'" + item + "': the factor must be in [0, 1] (as in Keras)");
      break;
    default:
      break;
  }
  return std::fabs(f);
}

double uniform(SplitMix64& rng, double lo, double hi) {
  return lo + rng.uniform() * (hi - lo);
}

// Keras's map_coordinates "reflect" (d c b a | a b c d | d c b a) for an integer index.
inline int reflect(int i, int n) {
  const int period = 2 * n;
  int m = i % period;
  if (m < 0) m += period;
  return m < n ? m : period - 1 - m;
}

// The two neighbours of source coordinate s along an axis of n pixels, reflected inside, and
// the second one's weight (map_coordinates' order-1 taps).
struct Tap {
  int i0, i1;
  float w;
};
inline Tap tap(double s, int n) {
  const double f = std::floor(s);
  // Every map the draws produce keeps |s| within a few image sizes: int is safe.
  const int i = static_cast<int>(f);
  const float w = static_cast<float>(s - f);
  if (i >= 0 && i + 1 < n) return {i, i + 1, w};  // inside: the common, cheap case
  return {reflect(i, n), reflect(i + 1, n), w};
}

}  // namespace

const AugmentStep* AugmentSpec::find(AugmentKind kind) const {
  for (const AugmentStep& s : steps)
    if (s.kind == kind) return &s;
  return nullptr;
}

int AugmentSpec::decode_size(int image_size) const {
  const AugmentStep* crop = find(AugmentKind::kCrop);
  if (!crop) return image_size;
  if (crop->crop_decode > 0) return crop->crop_decode;
  return static_cast<int>(std::lround(image_size * 8.0 / 7.0));
}

AugmentSpec parse_augment(const std::string& text) {
  AugmentSpec spec;
  if (text == "none") return spec;
  if (text.empty()) bad("give 'none' or transforms such as flip,rotation:0.1");
  std::size_t start = 0;
  for (;;) {
    const std::size_t comma = text.find(',', start);
    const std::string item =
        text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    const std::size_t colon = item.find(':');
    const std::string name = item.substr(0, colon);
    const KindInfo* k = nullptr;
    for (const KindInfo& candidate : kKinds)
      if (name == candidate.name) k = &candidate;
    if (!k)
      bad("unknown transform '" + item +
          "' (known: flip, rotation:F, zoom:F, translation:F, contrast:F, crop[:D]; 'none' "
          "alone turns augmentation off)");
    if (spec.find(k->kind)) bad("'" + name + "' is given twice");
    AugmentStep step;
    step.kind = k->kind;
    if (k->has_factor) {
      if (colon == std::string::npos) bad("'" + name + "' needs a factor, e.g. " + name + ":0.1");
      step.factor = checked_factor(k->kind, parse_number(item.substr(colon + 1), item), item);
    } else if (colon != std::string::npos) {
      if (k->kind != AugmentKind::kCrop) bad("'" + name + "' takes no value, got '" + item + "'");
      const double d = parse_number(item.substr(colon + 1), item);
      if (d != std::floor(d) || d < 1 || d > kMaxCropDecode)
        bad("'" + item + "': the decode size D must be a whole number between 1 and " +
            std::to_string(kMaxCropDecode));
      step.crop_decode = static_cast<int>(d);
    }
    spec.steps.push_back(step);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  // crop first: it sets the size the others work on.
  std::stable_partition(spec.steps.begin(), spec.steps.end(),
                        [](const AugmentStep& s) { return s.kind == AugmentKind::kCrop; });
  return spec;
}

std::string augment_name(const AugmentSpec& spec) {
  if (!spec.any()) return "none";
  std::string out;
  for (const AugmentStep& s : spec.steps) {
    out += (out.empty() ? "" : ",") + std::string(info(s.kind).name);
    if (info(s.kind).has_factor) out += ":" + exact_text(s.factor);
    if (s.kind == AugmentKind::kCrop && s.crop_decode > 0)
      out += ":" + std::to_string(s.crop_decode);
  }
  return out;
}

void check_augment_size(const AugmentSpec& spec, int image_size) {
  if (!spec.find(AugmentKind::kCrop)) return;
  const int d = spec.decode_size(image_size);
  if (d < image_size)
    bad("crop:" + std::to_string(d) + " decodes at " + std::to_string(d) + "x" + std::to_string(d) +
        ", smaller than the " + std::to_string(image_size) + "x" + std::to_string(image_size) +
        " input: give crop:D with D >= " + std::to_string(image_size) +
        " (or crop alone for D = round(S*8/7))");
  if (d > kMaxCropDecode)
    bad("crop decodes at " + std::to_string(d) + ", more than " + std::to_string(kMaxCropDecode));
}

AugmentDraw draw_augment(const AugmentSpec& spec, std::uint64_t seed, int epoch, int sample,
                         int image_size) {
  AugmentDraw d;
  const std::uint64_t key = (static_cast<std::uint64_t>(static_cast<std::uint32_t>(epoch)) << 32) |
                            static_cast<std::uint32_t>(sample);
  const auto stream = [&](const char* name) {
    return SplitMix64(hash_string(std::string("augment/") + name, seed) ^ key);
  };
  const double S = image_size;
  for (const AugmentStep& s : spec.steps) {
    const double f = s.factor;
    switch (s.kind) {
      case AugmentKind::kFlip:
        d.flip = flip_decision(seed, epoch, sample);  // the stream of --augment flip
        break;
      case AugmentKind::kCrop: {  // RandomCrop: int(uniform(0, D - S + 1)) per axis, h first
        SplitMix64 rng = stream("crop");
        const int span = spec.decode_size(image_size) - image_size;
        d.crop_y = std::min(static_cast<int>(uniform(rng, 0, span + 1)), span);
        d.crop_x = std::min(static_cast<int>(uniform(rng, 0, span + 1)), span);
        break;
      }
      case AugmentKind::kRotation: {  // RandomRotation: uniform(factor * 360)
        SplitMix64 rng = stream("rotation");
        d.angle_degrees = uniform(rng, -f * 360.0, f * 360.0);
        break;
      }
      case AugmentKind::kZoom: {  // RandomZoom: uniform(1 + lower, 1 + upper), width = height
        SplitMix64 rng = stream("zoom");
        d.zoom = uniform(rng, 1.0 - f, 1.0 + f);
        break;
      }
      case AugmentKind::kTranslation: {  // RandomTranslation: height first, then width
        SplitMix64 rng = stream("translation");
        d.shift_y = uniform(rng, -f, f) * S;
        d.shift_x = uniform(rng, -f, f) * S;
        break;
      }
      case AugmentKind::kContrast: {  // RandomContrast: uniform(1 - max(-F, 0), 1 + F)
        SplitMix64 rng = stream("contrast");
        d.contrast = uniform(rng, 1.0, 1.0 + f);
        break;
      }
    }
  }
  return d;
}

AffineMap rotation_map(double angle_degrees, int height, int width) {
  // BaseImagePreprocessingLayer._compute_affine_matrix with centre (0.5, 0.5), no shear,
  // scale 1, no translation.
  const double a = angle_degrees * (M_PI / 180.0);
  const double cx = 0.5 * (width - 1), cy = 0.5 * (height - 1);
  const double c = std::cos(a), s = std::sin(a);
  const double a0 = c, a1 = -s, b0 = s, b1 = c;
  return {a0, a1, cx - cx * a0 - cy * a1, b0, b1, cy - cx * b0 - cy * b1};
}

AffineMap zoom_map(double zoom, int height, int width) {
  // RandomZoom._get_zoom_matrix: [[zx 0 (W-1)/2 (1-zx)] [0 zy (H-1)/2 (1-zy)]].
  return {zoom, 0,    (width - 1.0) / 2.0 * (1.0 - zoom),
          0,    zoom, (height - 1.0) / 2.0 * (1.0 - zoom)};
}

AffineMap translation_map(double shift_y, double shift_x) {
  // RandomTranslation._get_translation_matrix: [[1 0 -dx] [0 1 -dy]].
  return {1, 0, -shift_x, 0, 1, -shift_y};
}

void affine_reflect_bilinear(const float* src, int height, int width, const AffineMap& m,
                             float* dst) {
  const std::size_t W = static_cast<std::size_t>(width);
  const auto blend = [&](const Tap& tx, const Tap& ty, float* out) {
    const float* r0 = src + static_cast<std::size_t>(ty.i0) * W * 3;  // [W,3]
    const float* r1 = src + static_cast<std::size_t>(ty.i1) * W * 3;
    const std::size_t c0 = static_cast<std::size_t>(tx.i0) * 3;
    const std::size_t c1 = static_cast<std::size_t>(tx.i1) * 3;
    for (int c = 0; c < 3; ++c) {
      const float top = r0[c0 + c] + tx.w * (r0[c1 + c] - r0[c0 + c]);
      const float bottom = r1[c0 + c] + tx.w * (r1[c1 + c] - r1[c0 + c]);
      out[c] = top + ty.w * (bottom - top);
    }
  };
  if (m[1] == 0 && m[3] == 0) {
    // Axis-aligned (zoom, translation): x' depends on x only and y' on y only, so each
    // column's and row's taps are computed once (the same numbers as per pixel).
    std::vector<Tap> cols(W), rows(static_cast<std::size_t>(height));
    for (int x = 0; x < width; ++x) cols[static_cast<std::size_t>(x)] = tap(m[0] * x + m[2], width);
    for (int y = 0; y < height; ++y)
      rows[static_cast<std::size_t>(y)] = tap(m[4] * y + m[5], height);
    for (int y = 0; y < height; ++y) {
      float* out = dst + static_cast<std::size_t>(y) * W * 3;  // [W,3]
      for (std::size_t x = 0; x < W; ++x, out += 3)
        blend(cols[x], rows[static_cast<std::size_t>(y)], out);
    }
    return;
  }
  for (int y = 0; y < height; ++y) {
    float* out = dst + static_cast<std::size_t>(y) * W * 3;  // [W,3]
    for (int x = 0; x < width; ++x, out += 3)
      blend(tap(m[0] * x + m[1] * y + m[2], width), tap(m[3] * x + m[4] * y + m[5], height), out);
  }
}

void adjust_contrast(float* image, int height, int width, double factor) {
  const std::size_t n = static_cast<std::size_t>(height) * static_cast<std::size_t>(width);
  double sum[3] = {0, 0, 0};
  for (std::size_t p = 0; p < n; ++p)
    for (int c = 0; c < 3; ++c) sum[c] += image[p * 3 + c];
  float mean[3];
  for (int c = 0; c < 3; ++c) mean[c] = static_cast<float>(sum[c] / static_cast<double>(n));
  const float f = static_cast<float>(factor);
  for (std::size_t p = 0; p < n; ++p)
    for (int c = 0; c < 3; ++c) {
      const float v = (image[p * 3 + c] - mean[c]) * f + mean[c];
      image[p * 3 + c] = std::min(255.0f, std::max(0.0f, v));  // value_range (0, 255)
    }
}

void flip_horizontal(float* image, int height, int width) {
  const std::size_t W = static_cast<std::size_t>(width);
  for (int y = 0; y < height; ++y) {
    float* row = image + static_cast<std::size_t>(y) * W * 3;  // [W,3]
    for (std::size_t a = 0, b = W - 1; a < b; ++a, --b)
      for (int c = 0; c < 3; ++c) std::swap(row[a * 3 + c], row[b * 3 + c]);
  }
}

void crop_window(const float* src, int decode, int y0, int x0, int size, float* dst) {
  const std::size_t D = static_cast<std::size_t>(decode), S = static_cast<std::size_t>(size);
  for (std::size_t y = 0; y < S; ++y)
    std::copy_n(src + ((static_cast<std::size_t>(y0) + y) * D + static_cast<std::size_t>(x0)) * 3,
                S * 3, dst + y * S * 3);
}

void apply_augment(const AugmentSpec& spec, const AugmentDraw& draw, float* image, int size,
                   std::vector<float>& scratch) {
  const std::size_t n = static_cast<std::size_t>(size) * static_cast<std::size_t>(size) * 3;
  scratch.resize(std::max(scratch.size(), n));
  // The affine maps read one buffer and write the other: `cur` holds the image so far.
  float* cur = image;
  const auto affine = [&](const AffineMap& m) {
    float* next = cur == image ? scratch.data() : image;
    affine_reflect_bilinear(cur, size, size, m, next);
    cur = next;
  };
  for (const AugmentStep& s : spec.steps) switch (s.kind) {
      case AugmentKind::kCrop:
        break;  // done when loading (the prefetcher decodes at D)
      case AugmentKind::kFlip:
        if (draw.flip) flip_horizontal(cur, size, size);
        break;
      case AugmentKind::kRotation:
        affine(rotation_map(draw.angle_degrees, size, size));
        break;
      case AugmentKind::kZoom:
        affine(zoom_map(draw.zoom, size, size));
        break;
      case AugmentKind::kTranslation:
        affine(translation_map(draw.shift_y, draw.shift_x));
        break;
      case AugmentKind::kContrast:
        adjust_contrast(cur, size, size, draw.contrast);
        break;
    }
  if (cur != image) std::copy_n(cur, n, image);
}

}  // namespace parafine
