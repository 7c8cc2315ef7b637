// decode_image_file: JPEG/PNG in every colour layout we promise to turn into 8-bit RGB [h,w,3],
// every kind of damaged file we promise to reject with BadImageError("<path>: ..."), and the
// 1400 real photos of the seed data set. Fixtures are written here with libjpeg/libpng into a
// temporary directory (python3-pil is not installed, and no image file is committed).
#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "image_writers.hpp"
#include "parafine/data/image_decode.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;

namespace parafine {
namespace {

using namespace test_images;  // encode_jpeg, encode_png, byte patching (image_writers.hpp)
using test_util::TempDir;

// Mean absolute difference between decoded RGB and an expected [h,w,3].
double mean_abs_error(const RgbImage& img, const Bytes& expected) {
  EXPECT_EQ(img.pixels.size(), expected.size());
  if (img.pixels.size() != expected.size()) return 1e9;
  double s = 0;
  for (size_t i = 0; i < expected.size(); ++i) s += std::abs(int{img.pixels[i]} - int{expected[i]});
  return s / expected.size();
}

// Expands grey [h,w] to [h,w,3].
Bytes grey_to_rgb(const Bytes& g) {
  Bytes out;
  for (unsigned char v : g) out.insert(out.end(), {v, v, v});
  return out;
}

class ImageDecode : public ::testing::Test {
 protected:
  TempDir tmp{"parafine_img"};
};

// ---- JPEG -----------------------------------------------------------------------------------

TEST_F(ImageDecode, RgbJpegIsCloseToTheSource) {
  const int w = 67, h = 45;  // not multiples of the 16x16 MCU
  const Bytes src = smooth_rgb(w, h);
  for (bool progressive : {false, true}) {
    JpegOptions opt;
    opt.progressive = progressive;
    const std::string path =
        tmp.write(progressive ? "prog.jpg" : "rgb.jpg", encode_jpeg(src, w, h, 3, JCS_RGB, opt));
    const RgbImage img = decode_image_file(path);
    ASSERT_EQ(img.width, w);
    ASSERT_EQ(img.height, h);
    const double mae = mean_abs_error(img, src);
    std::cout << (progressive ? "progressive" : "baseline") << " RGB JPEG q95 " << w << "x" << h
              << ": mean abs error " << mae << "\n";
    EXPECT_LT(mae, 3.0);
  }
}

TEST_F(ImageDecode, RgbColourSpaceJpegIsCloseToTheSource) {  // Adobe transform 0, no YCbCr
  const int w = 40, h = 33;
  const Bytes src = smooth_rgb(w, h);
  JpegOptions opt;
  opt.jpeg_color_space = JCS_RGB;
  const RgbImage img =
      decode_image_file(tmp.write("rgbspace.jpg", encode_jpeg(src, w, h, 3, JCS_RGB, opt)));
  const double mae = mean_abs_error(img, src);
  std::cout << "RGB-colourspace JPEG q95: mean abs error " << mae << "\n";
  EXPECT_LT(mae, 3.0);
}

TEST_F(ImageDecode, GreyJpegBecomesEqualChannels) {
  const int w = 50, h = 31;
  Bytes grey(static_cast<size_t>(w) * h);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) grey[y * w + x] = static_cast<unsigned char>(30 + 3 * x + 2 * y);
  const RgbImage img =
      decode_image_file(tmp.write("grey.jpg", encode_jpeg(grey, w, h, 1, JCS_GRAYSCALE)));
  ASSERT_EQ(img.width, w);
  ASSERT_EQ(img.height, h);
  int unequal = 0;
  for (size_t i = 0; i < img.pixels.size(); i += 3)
    unequal += img.pixels[i] != img.pixels[i + 1] || img.pixels[i] != img.pixels[i + 2];
  EXPECT_EQ(unequal, 0);
  const double mae = mean_abs_error(img, grey_to_rgb(grey));
  std::cout << "grey JPEG q95: mean abs error " << mae << "\n";
  EXPECT_LT(mae, 3.0);
}

// Four flat 16x16 patches of printing ink (c, m, y, k), 0 = no ink, and the RGB that
// (255-ink)*(255-k)/255 gives for them.
struct InkPatch {
  int ink[4];
  int rgb[3];
};
const InkPatch kPatches[4] = {
    {{0, 255, 255, 0}, {255, 0, 0}},      // red
    {{0, 0, 0, 0}, {255, 255, 255}},      // white paper
    {{255, 0, 255, 64}, {0, 191, 0}},     // green, some black
    {{50, 100, 150, 30}, {180, 136, 92}}  // a brown: 205*225/255, 155*225/255, 105*225/255
};

// [32,32,4] CMYK, patch p at (p/2, p%2); `inverted` stores 255-ink as Photoshop does.
Bytes cmyk_patches(bool inverted) {
  Bytes p(32 * 32 * 4);
  for (int y = 0; y < 32; ++y)
    for (int x = 0; x < 32; ++x)
      for (int c = 0; c < 4; ++c) {
        const int ink = kPatches[(y / 16) * 2 + x / 16].ink[c];
        p[(y * 32 + x) * 4 + c] = static_cast<unsigned char>(inverted ? 255 - ink : ink);
      }
  return p;
}

void expect_patches(const RgbImage& img, const char* what, int tolerance) {
  ASSERT_EQ(img.width, 32);
  ASSERT_EQ(img.height, 32);
  int worst = 0;
  for (int p = 0; p < 4; ++p)
    for (int y = 4; y < 12; ++y)  // the centre 8x8 of each patch
      for (int x = 4; x < 12; ++x)
        for (int c = 0; c < 3; ++c) {
          const int got = img.pixels[(((p / 2) * 16 + y) * 32 + (p % 2) * 16 + x) * 3 + c];
          worst = std::max(worst, std::abs(got - kPatches[p].rgb[c]));
        }
  std::cout << what << ": worst channel error over the four patches " << worst << "\n";
  EXPECT_LE(worst, tolerance) << what;
}

TEST_F(ImageDecode, AdobeInvertedCmykJpeg) {  // libjpeg writes an Adobe marker for CMYK
  const Bytes j = encode_jpeg(cmyk_patches(true), 32, 32, 4, JCS_CMYK);
  ASSERT_NE(std::search(j.begin(), j.end(), "Adobe", "Adobe" + 5), j.end());
  expect_patches(decode_image_file(tmp.write("cmyk_adobe.jpg", j)), "Adobe inverted CMYK JPEG", 3);
}

TEST_F(ImageDecode, AdobeYcckJpeg) {  // Photoshop's YCCK: inverted CMYK with Y'CbCr for CMY
  JpegOptions opt;
  opt.jpeg_color_space = JCS_YCCK;
  const Bytes j = encode_jpeg(cmyk_patches(true), 32, 32, 4, JCS_CMYK, opt);
  expect_patches(decode_image_file(tmp.write("ycck.jpg", j)), "Adobe YCCK JPEG", 4);
}

TEST_F(ImageDecode, PlainCmykJpegWithoutAdobeMarker) {
  JpegOptions opt;
  opt.adobe_marker = false;
  const Bytes j = encode_jpeg(cmyk_patches(false), 32, 32, 4, JCS_CMYK, opt);
  ASSERT_EQ(std::search(j.begin(), j.end(), "Adobe", "Adobe" + 5), j.end());
  expect_patches(decode_image_file(tmp.write("cmyk_plain.jpg", j)),
                 "plain CMYK JPEG (no Adobe marker)", 3);
}

// ---- PNG ------------------------------------------------------------------------------------

TEST_F(ImageDecode, RgbAndRgbaPngExact) {
  const int w = 23, h = 17;
  const Bytes rgb = random_bytes(static_cast<size_t>(w) * h * 3, 1);
  EXPECT_EQ(
      decode_image_file(tmp.write("rgb.png", encode_png(rgb, w, h, PNG_COLOR_TYPE_RGB, 8))).pixels,
      rgb);
  PngOptions adam7;
  adam7.interlace = true;
  EXPECT_EQ(
      decode_image_file(tmp.write("adam7.png", encode_png(rgb, w, h, PNG_COLOR_TYPE_RGB, 8, adam7)))
          .pixels,
      rgb);
  // RGBA with every alpha including 0: the stored colour comes back, not composited.
  Bytes rgba;
  const Bytes alpha = random_bytes(static_cast<size_t>(w) * h, 2);
  for (size_t i = 0; i < alpha.size(); ++i) {
    rgba.insert(rgba.end(), rgb.begin() + 3 * i, rgb.begin() + 3 * i + 3);
    rgba.push_back(i % 5 == 0 ? 0 : alpha[i]);
  }
  const RgbImage img =
      decode_image_file(tmp.write("rgba.png", encode_png(rgba, w, h, PNG_COLOR_TYPE_RGBA, 8)));
  EXPECT_EQ(img.width, w);
  EXPECT_EQ(img.height, h);
  EXPECT_EQ(img.pixels, rgb);
}

TEST_F(ImageDecode, GreyPngsExact) {
  const int w = 19, h = 7;
  const Bytes grey = random_bytes(static_cast<size_t>(w) * h, 3);
  EXPECT_EQ(decode_image_file(tmp.write("grey.png", encode_png(grey, w, h, PNG_COLOR_TYPE_GRAY, 8)))
                .pixels,
            grey_to_rgb(grey));
  PngOptions trns;
  trns.trns_grey = grey[0];  // a transparent grey level is dropped like alpha
  EXPECT_EQ(decode_image_file(
                tmp.write("grey_trns.png", encode_png(grey, w, h, PNG_COLOR_TYPE_GRAY, 8, trns)))
                .pixels,
            grey_to_rgb(grey));
  Bytes ga;  // grey + alpha
  for (size_t i = 0; i < grey.size(); ++i)
    ga.insert(ga.end(), {grey[i], static_cast<unsigned char>(i * 37)});
  EXPECT_EQ(decode_image_file(
                tmp.write("grey_alpha.png", encode_png(ga, w, h, PNG_COLOR_TYPE_GRAY_ALPHA, 8)))
                .pixels,
            grey_to_rgb(grey));
  // 4-bit grey: two samples per byte, value v means v*17; 1-bit: 0 -> 0, 1 -> 255.
  Bytes g4_rows, g4_expected, g1_rows, g1_expected;
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; x += 2) {
      const int a = (x + y) % 16, b = x + 1 < w ? (3 * x + y) % 16 : 0;
      g4_rows.push_back(static_cast<unsigned char>(a << 4 | b));
      g4_expected.push_back(static_cast<unsigned char>(a * 17));
      if (x + 1 < w) g4_expected.push_back(static_cast<unsigned char>(b * 17));
    }
    for (int x0 = 0; x0 < w; x0 += 8) {
      unsigned char byte = 0;
      for (int x = x0; x < std::min(w, x0 + 8); ++x) {
        const int bit = (x * x + y) % 3 == 0;
        byte |= static_cast<unsigned char>(bit << (7 - (x - x0)));
        g1_expected.push_back(bit ? 255 : 0);
      }
      g1_rows.push_back(byte);
    }
  }
  EXPECT_EQ(
      decode_image_file(tmp.write("grey4.png", encode_png(g4_rows, w, h, PNG_COLOR_TYPE_GRAY, 4)))
          .pixels,
      grey_to_rgb(g4_expected));
  EXPECT_EQ(
      decode_image_file(tmp.write("grey1.png", encode_png(g1_rows, w, h, PNG_COLOR_TYPE_GRAY, 1)))
          .pixels,
      grey_to_rgb(g1_expected));
}

TEST_F(ImageDecode, PalettePngsExactWithTransparencyDropped) {
  const int w = 21, h = 9;
  PngOptions opt;
  for (int i = 0; i < 16; ++i)
    opt.palette.push_back({static_cast<png_byte>(i * 16), static_cast<png_byte>(255 - i * 7),
                           static_cast<png_byte>((i * 91) % 256)});
  opt.trns_palette = {0, 128, 255, 7};  // entries 0..3 partly transparent
  Bytes idx8, idx4, expected;
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const int i = (x * 5 + y * 3) % 16;
      idx8.push_back(static_cast<unsigned char>(i));
      expected.insert(expected.end(),
                      {opt.palette[i].red, opt.palette[i].green, opt.palette[i].blue});
    }
    for (int x = 0; x < w; x += 2)
      idx4.push_back(
          static_cast<unsigned char>(idx8[y * w + x] << 4 | (x + 1 < w ? idx8[y * w + x + 1] : 0)));
  }
  EXPECT_EQ(decode_image_file(
                tmp.write("pal8.png", encode_png(idx8, w, h, PNG_COLOR_TYPE_PALETTE, 8, opt)))
                .pixels,
            expected);
  EXPECT_EQ(decode_image_file(
                tmp.write("pal4.png", encode_png(idx4, w, h, PNG_COLOR_TYPE_PALETTE, 4, opt)))
                .pixels,
            expected);
}

// 16-bit samples keep their high byte (TF's decode_png to uint8): 0x12FF -> 0x12, where
// rounding would give 0x13.
TEST_F(ImageDecode, SixteenBitPngKeepsTheHighByte) {
  const int w = 5, h = 3;
  Bytes rgb16, rgba16, grey16, expected_rgb, expected_grey;
  for (int i = 0; i < w * h; ++i) {
    for (int c = 0; c < 3; ++c) {
      const int v = ((i * 40 + c * 70) % 256) << 8 | 0xFF;
      rgb16.insert(rgb16.end(),
                   {static_cast<unsigned char>(v >> 8), static_cast<unsigned char>(v & 255)});
      rgba16.insert(rgba16.end(),
                    {static_cast<unsigned char>(v >> 8), static_cast<unsigned char>(v & 255)});
      expected_rgb.push_back(static_cast<unsigned char>(v >> 8));
    }
    rgba16.insert(rgba16.end(), {0x80, 0x00});
    const int g = (i * 17 % 256) << 8 | 0x80;  // low byte 0x80: rounding would carry
    grey16.insert(grey16.end(), {static_cast<unsigned char>(g >> 8), 0x80});
    expected_grey.push_back(static_cast<unsigned char>(g >> 8));
  }
  EXPECT_EQ(
      decode_image_file(tmp.write("rgb16.png", encode_png(rgb16, w, h, PNG_COLOR_TYPE_RGB, 16)))
          .pixels,
      expected_rgb);
  EXPECT_EQ(
      decode_image_file(tmp.write("rgba16.png", encode_png(rgba16, w, h, PNG_COLOR_TYPE_RGBA, 16)))
          .pixels,
      expected_rgb);
  EXPECT_EQ(
      decode_image_file(tmp.write("grey16.png", encode_png(grey16, w, h, PNG_COLOR_TYPE_GRAY, 16)))
          .pixels,
      grey_to_rgb(expected_grey));
}

TEST_F(ImageDecode, FormatComesFromContentNotExtension) {
  const Bytes rgb = random_bytes(8 * 4 * 3, 4);
  EXPECT_EQ(
      decode_image_file(tmp.write("really_a_png.jpg", encode_png(rgb, 8, 4, PNG_COLOR_TYPE_RGB, 8)))
          .pixels,
      rgb);
  const RgbImage j = decode_image_file(
      tmp.write("really_a_jpeg.png", encode_jpeg(smooth_rgb(8, 4), 8, 4, 3, JCS_RGB)));
  EXPECT_EQ(j.width, 8);
  EXPECT_EQ(j.height, 4);
}

TEST(ImageExtension, KerasListMinusBmpAndGif) {
  for (const char* yes : {"a.jpg", "b.JPG", "c.jpeg", "d.JpEg", "e.png", "f.PNG", "dir/x.y.png"})
    EXPECT_TRUE(has_image_extension(yes)) << yes;
  for (const char* no : {"a.bmp", "b.gif", "c.jpg.txt", "jpg", "d.jpe", "e.webp", "f.png~", ""})
    EXPECT_FALSE(has_image_extension(no)) << no;
}

// ---- damaged files --------------------------------------------------------------------------

// Expects BadImageError whose message starts with "<path>: " and contains `reason`.
void expect_bad(const std::string& path, const std::string& reason) {
  try {
    const RgbImage img = decode_image_file(path);
    ADD_FAILURE() << path << " decoded (" << img.width << "x" << img.height << ") but should not";
  } catch (const BadImageError& e) {
    const std::string msg = e.what();
    std::cout << "  " << msg << "\n";
    EXPECT_EQ(msg.rfind(path + ": ", 0), 0u) << msg;
    EXPECT_NE(msg.find(reason), std::string::npos) << "expected '" << reason << "' in: " << msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << path << ": wrong exception type: " << e.what();
  }
}

TEST_F(ImageDecode, DamagedFilesThrowBadImageErrorNamingThePath) {
  const int w = 64, h = 64;
  const Bytes jpeg = encode_jpeg(random_bytes(w * h * 3, 5), w, h, 3, JCS_RGB, {90});
  const Bytes png = encode_png(random_bytes(w * h * 3, 6), w, h, PNG_COLOR_TYPE_RGB, 8);
  std::cout << "fixtures: 64x64 JPEG " << jpeg.size() << " bytes, 64x64 PNG " << png.size()
            << " bytes\n";

  expect_bad(tmp.write("empty.jpg", {}), "empty file");
  expect_bad(tmp.write("half.jpg", Bytes(jpeg.begin(), jpeg.begin() + jpeg.size() / 2)),
             "Premature end");
  expect_bad(tmp.write("no_eoi.jpg", Bytes(jpeg.begin(), jpeg.end() - 2)), "Premature end");
  expect_bad(tmp.write("half.png", Bytes(png.begin(), png.begin() + png.size() / 2)), "truncated");
  expect_bad(tmp.write("no_iend.png", Bytes(png.begin(), png.end() - 12)), "truncated");
  expect_bad(tmp.write("random.jpg", random_bytes(1000, 7)), "unknown format");
  Bytes fake_jpeg = random_bytes(1000, 8);
  fake_jpeg[0] = 0xFF, fake_jpeg[1] = 0xD8, fake_jpeg[2] = 0xFF;
  expect_bad(tmp.write("random_after_soi.jpg", fake_jpeg), "cannot decode JPEG");
  const std::string text = "this is not an image\n";
  expect_bad(tmp.write("text.png", Bytes(text.begin(), text.end())), "unknown format");
  const std::string gif = "GIF89a\x01\x00\x01\x00";
  expect_bad(tmp.write("a_gif.png", Bytes(gif.begin(), gif.end())), "GIF");

  // PNG headers that lie, with valid CRCs so only the size is wrong.
  const size_t ihdr = find(png, "IHDR");
  Bytes huge = png;
  put_be32(huge, ihdr + 4, 100000);
  put_be32(huge, ihdr + 8, 100000);
  fix_png_crc(huge, ihdr);
  expect_bad(tmp.write("ihdr_100000x100000.png", huge), "100000x100000");
  Bytes big = png;
  put_be32(big, ihdr + 4, 4000);
  put_be32(big, ihdr + 8, 3000);
  fix_png_crc(big, ihdr);
  expect_bad(tmp.write("ihdr_4000x3000.png", big), "compressed pixel data");
  Bytes taller = png;
  put_be32(taller, ihdr + 8, 80);
  fix_png_crc(taller, ihdr);
  expect_bad(tmp.write("ihdr_64x80.png", taller), "cannot decode PNG");

  // CRC errors in a critical (IDAT) and an ancillary (tEXt) chunk.
  Bytes bad_idat = png;
  bad_idat[find(png, "IDAT") + 40] ^= 0x01;
  expect_bad(tmp.write("crc_idat.png", bad_idat), "CRC error");
  PngOptions with_text;
  with_text.text = "hello";
  Bytes bad_text = encode_png(random_bytes(w * h * 3, 6), w, h, PNG_COLOR_TYPE_RGB, 8, with_text);
  bad_text[find(bad_text, "tEXt") + 6] ^= 0x01;
  expect_bad(tmp.write("crc_text.png", bad_text), "CRC error");

  // JPEG SOFs that lie: far more pixels than the data can hold (refused from the header),
  // a few more rows than coded (runs out of data), more than 2^28 pixels, and zero width.
  const size_t sof = find_sof(jpeg);  // FF C0, length(2), precision(1), height(2), width(2)
  Bytes sof_big = jpeg;
  put_be16(sof_big, sof + 5, 4000);
  put_be16(sof_big, sof + 7, 4000);
  expect_bad(tmp.write("sof_4000x4000.jpg", sof_big), "needs at least");
  Bytes sof_taller = jpeg;
  put_be16(sof_taller, sof + 5, 200);
  expect_bad(tmp.write("sof_64x200.jpg", sof_taller), "cannot decode JPEG");
  Bytes sof_huge = jpeg;
  put_be16(sof_huge, sof + 5, 30000);
  put_be16(sof_huge, sof + 7, 30000);
  expect_bad(tmp.write("sof_30000x30000.jpg", sof_huge), "30000x30000");
  Bytes sof_zero = jpeg;
  put_be16(sof_zero, sof + 7, 0);
  expect_bad(tmp.write("sof_width0.jpg", sof_zero), "cannot decode JPEG");
}

TEST_F(ImageDecode, IoProblemsAreNotBadImages) {
  EXPECT_THROW(
      {
        try {
          decode_image_file((tmp.path / "missing.jpg").string());
        } catch (const BadImageError&) {
          ADD_FAILURE() << "a missing file is not a bad image";
        } catch (const std::runtime_error& e) {
          std::cout << "  " << e.what() << "\n";
          throw;
        }
      },
      std::runtime_error);
  fs::create_directories(tmp.path / "dir.jpg");
  EXPECT_THROW(decode_image_file((tmp.path / "dir.jpg").string()), std::runtime_error);
}

// Every proper prefix of a valid file is truncated and must be refused; random byte changes
// must either decode or throw BadImageError (never crash, hang or throw anything else).
TEST(ImageDecodeRobustness, EveryPrefixAndRandomCorruption) {
  const int w = 40, h = 24;
  JpegOptions prog;
  prog.progressive = true;
  const std::vector<std::pair<std::string, Bytes>> files = {
      {"jpeg", encode_jpeg(smooth_rgb(w, h), w, h, 3, JCS_RGB)},
      {"progressive jpeg", encode_jpeg(smooth_rgb(w, h), w, h, 3, JCS_RGB, prog)},
      {"png", encode_png(random_bytes(w * h * 3, 9), w, h, PNG_COLOR_TYPE_RGB, 8)},
  };
  for (const auto& [kind, bytes] : files) {
    int accepted_prefixes = 0;
    for (size_t n = 0; n < bytes.size(); ++n) {
      try {
        decode_image_memory(bytes.data(), n, "prefix");
        ++accepted_prefixes;
      } catch (const BadImageError&) {
      }
    }
    EXPECT_EQ(accepted_prefixes, 0) << kind;
    std::mt19937 rng(11);
    int decoded = 0, refused = 0;
    for (int trial = 0; trial < 400; ++trial) {
      Bytes b = bytes;
      const int changes = 1 + static_cast<int>(rng() % 4);
      for (int c = 0; c < changes; ++c) b[rng() % b.size()] = static_cast<unsigned char>(rng());
      try {
        const RgbImage img = decode_image_memory(b.data(), b.size(), "mutant");
        EXPECT_EQ(img.pixels.size(), static_cast<size_t>(img.width) * img.height * 3);
        ++decoded;
      } catch (const BadImageError&) {
        ++refused;
      }
    }
    std::cout << kind << " (" << bytes.size() << " bytes): all " << bytes.size()
              << " proper prefixes refused; 400 mutants: " << decoded << " decoded, " << refused
              << " refused\n";
  }
}

// ---- the real photos ------------------------------------------------------------------------

TEST(ImageDecodeRealPhotos, EveryCatsDogsImageDecodes) {
  const fs::path root = PARAFINE_CATS_DOGS_DIR;
  if (!fs::exists(root)) GTEST_SKIP() << root << " not present";
  std::vector<std::string> paths;
  for (const char* split : {"train", "val"})
    for (const char* cls : {"cats", "dogs"})
      for (const std::string& p : test_util::sorted_class_files(root / split, cls))
        paths.push_back(p);
  std::sort(paths.begin(), paths.end());
  int min_w = 1 << 30, max_w = 0, min_h = 1 << 30, max_h = 0, failures = 0;
  double megapixels = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (const auto& p : paths) {
    try {
      const RgbImage img = decode_image_file(p);
      ASSERT_EQ(img.pixels.size(), static_cast<size_t>(img.width) * img.height * 3) << p;
      min_w = std::min(min_w, img.width), max_w = std::max(max_w, img.width);
      min_h = std::min(min_h, img.height), max_h = std::max(max_h, img.height);
      megapixels += img.width * static_cast<double>(img.height) / 1e6;
    } catch (const std::exception& e) {
      ADD_FAILURE() << e.what();
      ++failures;
    }
  }
  const double seconds = test_util::seconds_since(t0);
  std::cout << "decoded " << paths.size() - failures << " of " << paths.size() << " photos; width "
            << min_w << ".." << max_w << ", height " << min_h << ".." << max_h << ", " << megapixels
            << " MP in " << seconds << " s: " << paths.size() / seconds << " images/s, "
            << megapixels / seconds << " MP/s (one thread, information only)\n";
  EXPECT_EQ(paths.size(), 1400u) << "the seed data set has 1000 train + 400 val images";
  EXPECT_EQ(failures, 0);
}

}  // namespace
}  // namespace parafine
