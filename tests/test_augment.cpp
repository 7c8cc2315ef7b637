// --augment (data/augment.hpp): each transform against tests/reference/keras_augment.py (numpy
// float64 written from Keras 3's preprocessing layers and affine_transform / map_coordinates
// with fill_mode "reflect"), on fixed parameters, odd and non-square sizes and borders reached
// by large angles, zooms and shifts; the parameter draws' ranges and determinism; parsing and
// its errors; the prefetcher's augmented batches for any thread count; the cost per image.
// The fixture is written at test time (CTest fixture augment_reference) into
// $PARAFINE_AUGMENT_REFERENCE.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "parafine/data/augment.hpp"
#include "parafine/data/data_order.hpp"
#include "parafine/data/prefetcher.hpp"
#include "parafine/data/preprocess.hpp"
#include "parafine/data/sample_source.hpp"
#include "parafine/train/train_config.hpp"
#include "test_util.hpp"

namespace parafine {
namespace {

// Runs one reference case's steps with parafine's transforms. Square images go through
// apply_augment with a spec in the case's order (crop moved first by parse_augment); non-square
// ones through the single transforms.
std::vector<float> run_case(const nlohmann::json& c) {
  const int h = c["height"], w = c["width"];
  std::vector<float> image;
  for (double v : c["input"]) image.push_back(static_cast<float>(v));
  AugmentDraw draw;
  int size = h;
  for (const auto& s : c["steps"]) {
    const std::string kind = s["kind"];
    if (kind == "rotation") {
      draw.angle_degrees = s["angle_degrees"];
    } else if (kind == "zoom") {
      draw.zoom = s["zoom"];
    } else if (kind == "translation") {
      draw.shift_y = s["shift_y"];
      draw.shift_x = s["shift_x"];
    } else if (kind == "contrast") {
      draw.contrast = s["contrast"];
    } else if (kind == "flip") {
      draw.flip = true;
    } else if (kind == "crop") {
      size = s["size"];
      draw.crop_y = s["crop_y"];
      draw.crop_x = s["crop_x"];
    }
  }
  if (h != w) {  // one transform on a non-square image
    const auto& s = c["steps"][0];
    const std::string kind = s["kind"];
    std::vector<float> out(image.size());
    if (kind == "rotation")
      affine_reflect_bilinear(image.data(), h, w, rotation_map(draw.angle_degrees, h, w),
                              out.data());
    else if (kind == "zoom")
      affine_reflect_bilinear(image.data(), h, w, zoom_map(draw.zoom, h, w), out.data());
    else
      ADD_FAILURE() << "no non-square path for " << kind;
    return out;
  }
  // The spec in the case's order, but crop last in the text: parse_augment moves it first.
  // (The factors do not matter: the draw is given.)
  std::string ordered;
  for (const auto& s : c["steps"]) {
    const std::string kind = s["kind"];
    if (kind == "crop") continue;
    ordered += (ordered.empty() ? "" : ",") + kind + (kind == "flip" ? "" : ":1");
  }
  if (size != h) ordered += (ordered.empty() ? "" : ",") + ("crop:" + std::to_string(h));
  const AugmentSpec spec = parse_augment(ordered);
  std::vector<float> out(static_cast<std::size_t>(size) * size * 3);
  if (size != h)
    crop_window(image.data(), h, draw.crop_y, draw.crop_x, size, out.data());
  else
    out = image;
  std::vector<float> scratch;
  apply_augment(spec, draw, out.data(), size, scratch);
  return out;
}

TEST(Augment, MatchesKerasReference) {
  const char* path = std::getenv("PARAFINE_AUGMENT_REFERENCE");
  ASSERT_NE(path, nullptr) << "PARAFINE_AUGMENT_REFERENCE is not set (CTest sets it)";
  std::ifstream f(path);
  ASSERT_TRUE(f) << "cannot open " << path;
  const nlohmann::json ref = nlohmann::json::parse(f);
  ASSERT_GE(ref["cases"].size(), 10u);
  for (const auto& c : ref["cases"]) {
    const std::vector<float> got = run_case(c);
    const std::vector<double> want = c["output"];
    ASSERT_EQ(got.size(), want.size()) << c["name"];
    double worst = 0;
    for (std::size_t i = 0; i < want.size(); ++i)
      worst = std::max(worst, std::fabs(static_cast<double>(got[i]) - want[i]));
    std::cout << c["name"].get<std::string>() << " (" << c["out_height"] << "x" << c["out_width"]
              << "): max |parafine - keras reference| = " << worst << "\n";
    EXPECT_LT(worst, 1e-3) << c["name"];
  }
}

TEST(Augment, IdentityParametersLeaveTheImage) {
  // angle 0, zoom 1, shift 0, contrast 1: the affine maps land on integer pixels.
  std::vector<float> image(9 * 9 * 3);
  for (std::size_t i = 0; i < image.size(); ++i) image[i] = static_cast<float>((i * 37) % 256);
  std::vector<float> out = image, scratch;
  apply_augment(parse_augment("rotation:0.2,zoom:0.2,translation:0.2,contrast:0.5"), AugmentDraw{},
                out.data(), 9, scratch);
  double worst = 0;
  for (std::size_t i = 0; i < image.size(); ++i)
    worst = std::max(worst, static_cast<double>(std::fabs(out[i] - image[i])));
  std::cout << "identity draw: max change " << worst << "\n";
  EXPECT_LT(worst, 1e-4);
}

TEST(Augment, DrawsStayInKerasRangesAndAreDeterministic) {
  const AugmentSpec spec =
      parse_augment("flip,rotation:0.1,zoom:0.2,translation:0.15,contrast:0.3,crop:40");
  const int S = 32, n = 4000;
  double angle_sum = 0, zoom_sum = 0, shift_sum = 0, contrast_sum = 0;
  double angle_lo = 1e9, angle_hi = -1e9, zoom_lo = 1e9, zoom_hi = -1e9, shift_lo = 1e9,
         shift_hi = -1e9, contrast_lo = 1e9, contrast_hi = -1e9;
  int crop_lo = 1 << 30, crop_hi = -1, flips = 0, same_angle_and_zoom_order = 0;
  for (int i = 0; i < n; ++i) {
    const AugmentDraw d = draw_augment(spec, 5, 3, i, S);
    angle_sum += d.angle_degrees;
    zoom_sum += d.zoom;
    shift_sum += d.shift_x + d.shift_y;
    contrast_sum += d.contrast;
    angle_lo = std::min(angle_lo, d.angle_degrees);
    angle_hi = std::max(angle_hi, d.angle_degrees);
    zoom_lo = std::min(zoom_lo, d.zoom);
    zoom_hi = std::max(zoom_hi, d.zoom);
    shift_lo = std::min({shift_lo, d.shift_x, d.shift_y});
    shift_hi = std::max({shift_hi, d.shift_x, d.shift_y});
    contrast_lo = std::min(contrast_lo, d.contrast);
    contrast_hi = std::max(contrast_hi, d.contrast);
    crop_lo = std::min({crop_lo, d.crop_x, d.crop_y});
    crop_hi = std::max({crop_hi, d.crop_x, d.crop_y});
    flips += d.flip;
    EXPECT_EQ(d.flip, flip_decision(5, 3, i)) << "flip keeps --augment flip's stream";
    // Streams are independent: the angle's and the zoom's uniforms above/below their middle
    // agree about half of the time.
    same_angle_and_zoom_order += (d.angle_degrees > 0) == (d.zoom > 1);
    const AugmentDraw again = draw_augment(spec, 5, 3, i, S);
    ASSERT_EQ(again.angle_degrees, d.angle_degrees);
    ASSERT_EQ(again.crop_x, d.crop_x);
  }
  std::cout << "angle degrees [" << angle_lo << ", " << angle_hi << "] mean " << angle_sum / n
            << "; zoom [" << zoom_lo << ", " << zoom_hi << "] mean " << zoom_sum / n
            << "; shift px [" << shift_lo << ", " << shift_hi << "] mean " << shift_sum / (2 * n)
            << "; contrast [" << contrast_lo << ", " << contrast_hi << "] mean " << contrast_sum / n
            << "; crop offsets [" << crop_lo << ", " << crop_hi << "]; " << flips
            << " flips; angle/zoom sign agreement " << same_angle_and_zoom_order << " of " << n
            << "\n";
  // rotation:0.1 -> +-0.1 * 360 degrees (+-0.1 * 2 pi radians).
  EXPECT_GE(angle_lo, -36.0);
  EXPECT_LE(angle_hi, 36.0);
  EXPECT_LT(angle_lo, -35.0);
  EXPECT_GT(angle_hi, 35.0);
  EXPECT_NEAR(angle_sum / n, 0.0, 1.5);  // sd of the mean: 36/sqrt(3)/sqrt(4000) = 0.33
  EXPECT_GE(zoom_lo, 0.8);
  EXPECT_LE(zoom_hi, 1.2);
  EXPECT_NEAR(zoom_sum / n, 1.0, 0.01);
  EXPECT_GE(shift_lo, -0.15 * S);
  EXPECT_LE(shift_hi, 0.15 * S);
  EXPECT_NEAR(shift_sum / (2 * n), 0.0, 0.15);
  EXPECT_GE(contrast_lo, 1.0);  // Keras 3: uniform(1 - max(-F, 0), 1 + F)
  EXPECT_LE(contrast_hi, 1.3);
  EXPECT_NEAR(contrast_sum / n, 1.15, 0.01);
  EXPECT_EQ(crop_lo, 0);
  EXPECT_EQ(crop_hi, 40 - S);
  EXPECT_GT(flips, n * 0.45);
  EXPECT_LT(flips, n * 0.55);
  EXPECT_GT(same_angle_and_zoom_order, n * 0.45);
  EXPECT_LT(same_angle_and_zoom_order, n * 0.55);
  // Another epoch, another seed: other parameters.
  EXPECT_NE(draw_augment(spec, 5, 4, 7, S).angle_degrees,
            draw_augment(spec, 5, 3, 7, S).angle_degrees);
  EXPECT_NE(draw_augment(spec, 6, 3, 7, S).angle_degrees,
            draw_augment(spec, 5, 3, 7, S).angle_degrees);
}

TEST(Augment, ParsesAndNamesTheSpec) {
  EXPECT_FALSE(parse_augment("none").any());
  EXPECT_EQ(augment_name(parse_augment("none")), "none");
  EXPECT_EQ(augment_name(parse_augment("flip")), "flip");  // as old checkpoints spell it
  EXPECT_EQ(augment_name(parse_augment("zoom:0.1,crop,flip,rotation:-0.1")),
            "crop,zoom:0.1,flip,rotation:0.1");
  EXPECT_EQ(augment_name(parse_augment("translation:0.25,crop:256,contrast:1")),
            "crop:256,translation:0.25,contrast:1");
  for (const char* text : {"crop:256,translation:0.25,contrast:1", "rotation:0.1", "none"})
    EXPECT_EQ(augment_name(parse_augment(text)), text) << "reads back";
}

TEST(Augment, TrajectoryLineKeepsOldCheckpointsMatching) {
  TrainConfig c;
  const auto line = [&](const char* text) {
    c.augment = parse_augment(text);
    const std::string t = trajectory_options(c);
    const auto at = t.find("--augment ");
    return at == std::string::npos ? t : t.substr(at, t.find('\n', at) - at);
  };
  EXPECT_EQ(line("none"), "--augment none");
  EXPECT_EQ(line("flip"), "--augment flip");  // what checkpoints written before this hold
  EXPECT_EQ(line("rotation:0.1,crop,flip"), "--augment crop,rotation:0.1,flip");
  c.augment = parse_augment("flip");
  const std::string before = trajectory_options(c);
  c.augment = parse_augment("flip,zoom:0.1");
  const std::string diff = trajectory_differences(before, trajectory_options(c));
  std::cout << diff << "\n";
  EXPECT_EQ(diff, "--augment flip in the checkpoint, flip,zoom:0.1 now");
}

TEST(Augment, RefusesBadSpecsNamingTheOption) {
  for (const char* bad :
       {"rotate", "rotation", "rotation:1.5", "rotation:x", "translation:-1.01", "zoom:-1",
        "zoom:1.2", "contrast:-0.1", "contrast:1.1", "crop:abc", "crop:0", "crop:10.5", "flip:1",
        "flip,flip", "none,flip", "", "flip,", "rotation:nan", "zoom:0.1 "}) {
    try {
      parse_augment(bad);
      ADD_FAILURE() << "'" << bad << "' accepted";
    } catch (const std::invalid_argument& e) {
      const std::string what = e.what();
      std::cout << "'" << bad << "': " << what << "\n";
      EXPECT_NE(what.find("--augment"), std::string::npos) << what;
    }
  }
  for (const char* good : {"rotation:1", "rotation:-1", "zoom:1", "zoom:-0.99", "contrast:0",
                           "contrast:1", "translation:1", "crop:224"})
    EXPECT_NO_THROW(parse_augment(good)) << good;
  EXPECT_THROW(check_augment_size(parse_augment("crop:200"), 224), std::invalid_argument);
  EXPECT_NO_THROW(check_augment_size(parse_augment("crop:224"), 224));
  EXPECT_NO_THROW(check_augment_size(parse_augment("crop"), 224));
  EXPECT_EQ(parse_augment("crop").decode_size(224), 256);
  EXPECT_EQ(parse_augment("crop").decode_size(32), 37);  // round(36.57)
  EXPECT_EQ(parse_augment("flip").decode_size(32), 32);
}

InMemorySource random_source(int N, int H, int W, std::uint64_t seed) {
  std::vector<unsigned char> px =
      test_util::random_pixels(static_cast<size_t>(N) * H * W * 3, seed);
  std::vector<int> labels(static_cast<size_t>(N));
  for (int i = 0; i < N; ++i) labels[static_cast<size_t>(i)] = i % 2;
  return InMemorySource(N, H, W, std::move(px), std::move(labels), 2);
}

TEST(Augment, PrefetcherAugmentsTheSameForAnyThreadCount) {
  const InMemorySource src = random_source(23, 20, 20, 4);
  const ShardPlan plan(23, 6, 1, 0, true, 2);
  const auto steps = plan.local_batches(1);
  PrefetchConfig c;
  c.image_size = 16;
  c.preprocess = Preprocess::kTf;
  c.augment = parse_augment("flip,rotation:0.1,zoom:0.1,translation:0.1,contrast:0.2,crop");
  c.seed = 9;
  c.epoch = 2;
  // The serial reference: decode at D = 18, crop, transforms, preprocessing.
  const int D = c.augment.decode_size(16);
  ASSERT_EQ(D, 18);
  std::vector<std::vector<float>> want;
  for (const auto& step : steps)
    for (int i : step) {
      std::vector<float> big(static_cast<std::size_t>(D) * D * 3), img(16 * 16 * 3), scratch;
      src.load(i, D, big.data());
      const AugmentDraw d = draw_augment(c.augment, c.seed, c.epoch, i, 16);
      crop_window(big.data(), D, d.crop_y, d.crop_x, 16, img.data());
      apply_augment(c.augment, d, img.data(), 16, scratch);
      prepare_sample(img.data(), 16, false, c.preprocess);
      want.push_back(img);
    }
  PrefetchConfig plain = c;
  plain.augment = AugmentSpec{};
  for (int threads : {1, 3}) {
    c.threads = threads;
    BatchPrefetcher pf(src, steps, c);
    BatchPrefetcher unaugmented(src, steps, plain);
    Batch b, u;
    std::size_t k = 0;
    double worst = 0, changed = 0;
    while (pf.next(b) && unaugmented.next(u))
      for (int p = 0; p < b.size(); ++p, ++k) {
        const float* x = b.images.data() + static_cast<std::size_t>(p) * 16 * 16 * 3;
        const float* y = u.images.data() + static_cast<std::size_t>(p) * 16 * 16 * 3;
        for (std::size_t j = 0; j < 16 * 16 * 3; ++j) {
          worst = std::max(worst, static_cast<double>(std::fabs(x[j] - want[k][j])));
          changed = std::max(changed, static_cast<double>(std::fabs(x[j] - y[j])));
        }
      }
    std::cout << threads << " threads: max |prefetched - serial| = " << worst
              << ", max |augmented - plain| = " << changed << "\n";
    EXPECT_EQ(k, want.size());
    EXPECT_EQ(worst, 0.0);
    EXPECT_GT(changed, 0.1);
  }
  PrefetchConfig small = c;
  small.augment = parse_augment("crop:15");
  EXPECT_THROW(BatchPrefetcher(src, steps, small), std::invalid_argument);
}

TEST(Augment, CostPerImageAt224) {
  const AugmentSpec spec = parse_augment("flip,rotation:0.1,zoom:0.1,translation:0.1,contrast:0.2");
  std::vector<float> image(224 * 224 * 3), scratch;
  for (std::size_t i = 0; i < image.size(); ++i) image[i] = static_cast<float>(i % 251);
  const int n = 10;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i)
    apply_augment(spec, draw_augment(spec, 1, 0, i, 224), image.data(), 224, scratch);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() /
      n;
  std::cout << "flip+rotation+zoom+translation+contrast on 224x224: " << ms << " ms per image\n";
  EXPECT_LT(ms, 100.0) << "far above a JPEG decode";
}

}  // namespace
}  // namespace parafine
