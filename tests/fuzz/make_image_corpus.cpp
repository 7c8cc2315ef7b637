// fuzz_make_image_corpus DIR: writes the JPEG/PNG seeds of the fuzz target's `image` parser
// with libjpeg and libpng through tests/image_writers.hpp (python3-pil is not installed). The
// CTest fixture fuzz_corpus runs it into build/tests/fuzz-corpus/image/ before each fuzz run,
// so no image is tracked in git. Deterministic: the same files on every run. Small images
// (16x12), so mutations land in headers and entropy data alike.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

#include "image_writers.hpp"

namespace fs = std::filesystem;
using namespace parafine::test_images;

namespace {

constexpr int kWidth = 16, kHeight = 12;

void save(const fs::path& dir, const std::string& name, const Bytes& bytes) {
  std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  if (!out.flush()) throw std::runtime_error((dir / name).string() + ": cannot write");
  std::cout << name << ": " << bytes.size() << " bytes\n";
}

// Raw PNG rows of `rgb` [h,w,3] as `channels` samples per pixel of `depth` bits: grey from
// the green channel, alpha from the red one (255 - red for RGBA), 16-bit samples as
// value * 257 big-endian.
Bytes png_rows(const Bytes& rgb, int channels, int depth) {
  Bytes rows;
  for (std::size_t px = 0; px < rgb.size() / 3; ++px) {
    const unsigned char* p = &rgb[3 * px];
    const unsigned char colour[4] = {p[0], p[1], p[2], static_cast<unsigned char>(255 - p[0])};
    const unsigned char grey_alpha[2] = {p[1], p[0]};
    for (int c = 0; c < channels; ++c) {
      const unsigned char v = channels <= 2 ? grey_alpha[c] : colour[c];
      rows.push_back(v);
      if (depth == 16) rows.push_back(v);
    }
  }
  return rows;
}

void write_jpegs(const fs::path& dir, const Bytes& rgb) {
  save(dir, "baseline.jpg", encode_jpeg(rgb, kWidth, kHeight, 3, JCS_RGB, {90}));
  JpegOptions progressive{85};
  progressive.progressive = true;
  save(dir, "progressive.jpg", encode_jpeg(rgb, kWidth, kHeight, 3, JCS_RGB, progressive));
  Bytes grey(rgb.size() / 3);
  for (std::size_t i = 0; i < grey.size(); ++i) grey[i] = rgb[3 * i + 1];
  save(dir, "grey.jpg", encode_jpeg(grey, kWidth, kHeight, 1, JCS_GRAYSCALE, {90}));
  JpegOptions restarts{90};
  restarts.restart_interval = 1;  // 48x32 is 3x2 MCUs of 16x16 (4:2:0): five RSTn markers
  save(dir, "restart_markers.jpg", encode_jpeg(smooth_rgb(48, 32), 48, 32, 3, JCS_RGB, restarts));
  Bytes cmyk;
  for (std::size_t i = 0; i < rgb.size(); i += 3)
    cmyk.insert(cmyk.end(), {rgb[i], rgb[i + 1], rgb[i + 2], static_cast<unsigned char>(i)});
  save(dir, "cmyk_adobe.jpg", encode_jpeg(cmyk, kWidth, kHeight, 4, JCS_CMYK, {90}));
}

void write_pngs(const fs::path& dir, const Bytes& rgb) {
  save(dir, "rgb.png", encode_png(png_rows(rgb, 3, 8), kWidth, kHeight, PNG_COLOR_TYPE_RGB, 8));
  save(dir, "rgb16.png", encode_png(png_rows(rgb, 3, 16), kWidth, kHeight, PNG_COLOR_TYPE_RGB, 16));
  save(dir, "grey_alpha.png",
       encode_png(png_rows(rgb, 2, 8), kWidth, kHeight, PNG_COLOR_TYPE_GRAY_ALPHA, 8));
  save(dir, "rgba.png", encode_png(png_rows(rgb, 4, 8), kWidth, kHeight, PNG_COLOR_TYPE_RGBA, 8));
  PngOptions interlaced;
  interlaced.interlace = true;
  save(dir, "interlaced.png",
       encode_png(png_rows(rgb, 3, 8), kWidth, kHeight, PNG_COLOR_TYPE_RGB, 8, interlaced));
  PngOptions palette;
  for (int i = 0; i < 16; ++i)
    palette.palette.push_back(png_color{static_cast<png_byte>(16 * i),
                                        static_cast<png_byte>(255 - 16 * i),
                                        static_cast<png_byte>(i * 7)});
  palette.trns_palette = {0, 128, 255};
  Bytes indices;  // 4-bit indices, two per byte
  for (int y = 0; y < kHeight; ++y)
    for (int x = 0; x < kWidth; x += 2)
      indices.push_back(static_cast<unsigned char>(((x + y) % 16) << 4 | ((x + y + 1) % 16)));
  save(dir, "palette_4bit_trns.png",
       encode_png(indices, kWidth, kHeight, PNG_COLOR_TYPE_PALETTE, 4, palette));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: fuzz_make_image_corpus DIR\n";
    return 2;
  }
  const fs::path dir = argv[1];
  fs::create_directories(dir);
  const Bytes rgb = smooth_rgb(kWidth, kHeight);
  write_jpegs(dir, rgb);
  write_pngs(dir, rgb);
  return ::testing::Test::HasFailure() ? 1 : 0;
}
