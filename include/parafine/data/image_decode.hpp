// Decoding JPEG and PNG files into 8-bit RGB (DESIGN.md §4, image folders), as Keras'
// image_dataset_from_directory does through tf.io.decode_image(channels=3): grey is replicated,
// alpha is dropped (not composited onto a background), palette and 16-bit PNGs become 8-bit RGB,
// CMYK/YCCK JPEGs are converted to RGB. Damaged files raise BadImageError, never crash or exit.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

namespace parafine {

// One decoded image: pixels [height, width, 3] uint8 RGB, row-major, no padding.
struct RgbImage {
  int height = 0, width = 0;
  std::vector<unsigned char> pixels;  // [h, w, 3]
};

// A file that is not a readable JPEG/PNG: empty, unknown format, truncated, corrupt, or a header
// that lies about its size. what() is "<path>: <reason>".
class BadImageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Largest image accepted: each side at most 65535 and at most 2^28 pixels (768 MiB of RGB).
// Larger headers are refused before any pixel memory is allocated.
constexpr int kMaxImageSide = 65535;
constexpr long long kMaxImagePixels = 1LL << 28;

// Largest image file read: 256 MiB. A JPEG or PNG of the largest accepted image is far smaller;
// the bound stops a huge or endless file from being read into memory.
constexpr long long kMaxImageFileBytes = 256LL << 20;

// Reads and decodes `path`. The format is chosen by content (magic bytes), not by extension, so
// a PNG named .jpg decodes. Throws BadImageError ("<path>: <reason>") for bad content and
// std::runtime_error when the file cannot be opened or read (an I/O problem, not a bad image).
// Only regular files are read (symlinks to them are fine): a FIFO, device or socket is a
// BadImageError ("not a regular file but a FIFO (named pipe); ..."), found without blocking, and
// so is a file above kMaxImageFileBytes ("<n> bytes; image files above 256 MiB are refused").
//
// Conventions (chosen to match tf.io.decode_image(channels=3) in TensorFlow 2.x):
// - JPEG: libjpeg-turbo, integer-fast IDCT (TF's default dct_method), fancy upsampling. Any
//   libjpeg warning that means pixel data is missing or corrupt (premature end of file or data
//   segment, bad Huffman/arithmetic code, lost restart marker, inconsistent progression) is an
//   error. Warnings about metadata only (extraneous bytes between markers, unknown JFIF
//   revision, unknown Adobe transform, bad ICC marker, non-standard SOS of a sequential file)
//   are ignored, as TF and PIL ignore them.
// - CMYK/YCCK JPEG: with an Adobe APP14 marker the data is inverted CMYK (Photoshop,
//   ImageMagick): R = C*K/255; without it, plain CMYK: R = (255-C)*(255-K)/255 (integer division,
//   same for G/M and B/Y), as TF does.
// - PNG: 16-bit samples keep their HIGH byte (png_set_strip_16, as TF; not rounded), so 0x12FF
//   becomes 0x12. Grey of 1/2/4/8/16 bits is expanded and replicated to R=G=B. tRNS and alpha
//   channels are discarded; the colour under a transparent pixel is returned as stored. Gamma
//   and ICC chunks are not applied. Any CRC error (critical or ancillary chunk) is an error, and
//   the file must be complete through IEND.
RgbImage decode_image_file(const std::string& path);

// Same as decode_image_file for bytes already in memory; `name` prefixes error messages.
RgbImage decode_image_memory(const unsigned char* data, std::size_t size, const std::string& name);

// True when `filename` ends in .jpg, .jpeg or .png, ignoring case. That is Keras'
// image_dataset_from_directory allow-list (.bmp .gif .jpeg .jpg .png) minus BMP and GIF, which
// parafine does not decode; such files are reported as ignored by scan_image_folder.
bool has_image_extension(const std::string& filename);

}  // namespace parafine
