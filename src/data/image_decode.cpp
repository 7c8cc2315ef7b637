// JPEG (libjpeg-turbo) and PNG (libpng) decoding to 8-bit RGB [h,w,3]; see image_decode.hpp for
// the conventions. Both libraries report errors by longjmp. Every setjmp lives in a small
// "guarded" function whose frame holds no C++ object with a destructor, and nothing between it
// and the libraries' longjmp is C++ with destructors, so a jump never skips a destructor. The
// library state (and its memory) is owned by a RAII holder in the caller's frame.
#include "parafine/data/image_decode.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>

extern "C" {
#include <jerror.h>
#include <jpeglib.h>
#include <png.h>
}

namespace parafine {
namespace {

[[noreturn]] void bad(const std::string& name, const std::string& reason) {
  throw BadImageError(name + ": " + reason);
}

std::string dims(long long w, long long h) {
  return std::to_string(w) + "x" + std::to_string(h);
}

// Refuses sizes outside kMaxImageSide / kMaxImagePixels before anything is allocated.
void check_dimensions(const std::string& name, const char* format, long long w, long long h) {
  if (w <= 0 || h <= 0)
    bad(name, std::string(format) + " header claims an empty image " + dims(w, h));
  if (w > kMaxImageSide || h > kMaxImageSide || w * h > kMaxImagePixels)
    bad(name, std::string(format) + " header claims " + dims(w, h) +
                  " pixels; images above 65535 on a side or 2^28 pixels are refused (the header "
                  "is corrupt, or the image is too large: resize it)");
}

// ---------------------------------------------------------------------------------------------
// JPEG

constexpr int kMaxJpegScans = 1000;  // progressive files use ~10; bounds decode time on junk

struct JpegErrorMgr {
  jpeg_error_mgr mgr;  // first member: libjpeg hands back &mgr as cinfo->err
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

[[noreturn]] void jpeg_fail(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegErrorMgr*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

// Warnings that concern metadata only; the pixels are complete. Everything else (premature end
// of file or segment, bad entropy codes, lost restart markers, bad progression) is an error.
bool jpeg_warning_is_harmless(int code) {
  switch (code) {
    case JWRN_EXTRANEOUS_DATA:  // garbage between markers; TF and PIL accept these files
    case JWRN_JFIF_MAJOR:
    case JWRN_ADOBE_XFORM:
    case JWRN_NOT_SEQUENTIAL:
    case JWRN_BOGUS_ICC:
      return true;
    default:
      return false;
  }
}

// Replaces libjpeg's emit_message: level -1 is a warning, >= 0 are trace messages. Nothing is
// printed; harmful warnings become errors.
void jpeg_message(j_common_ptr cinfo, int level) {
  if (level >= 0) return;
  if (jpeg_warning_is_harmless(cinfo->err->msg_code)) {
    cinfo->err->num_warnings++;
    return;
  }
  jpeg_fail(cinfo);
}

void jpeg_progress(j_common_ptr cinfo) {
  auto* d = reinterpret_cast<j_decompress_ptr>(cinfo);
  if (d->input_scan_number > kMaxJpegScans) {
    auto* err = reinterpret_cast<JpegErrorMgr*>(cinfo->err);
    std::snprintf(err->message, sizeof err->message, "more than %d scans (corrupt file)",
                  kMaxJpegScans);
    std::longjmp(err->jump, 1);
  }
}

// Owns the decompressor; lives in the C++ frame above every setjmp.
struct JpegDecoder {
  jpeg_decompress_struct cinfo;
  JpegErrorMgr err;
  jpeg_progress_mgr progress;
  JpegDecoder() {
    std::memset(&cinfo, 0, sizeof cinfo);  // jpeg_destroy_decompress is a no-op on zeros
    cinfo.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = jpeg_fail;
    err.mgr.emit_message = jpeg_message;
    err.message[0] = '\0';
    std::memset(&progress, 0, sizeof progress);
    progress.progress_monitor = jpeg_progress;
  }
  ~JpegDecoder() { jpeg_destroy_decompress(&cinfo); }
  JpegDecoder(const JpegDecoder&) = delete;
  JpegDecoder& operator=(const JpegDecoder&) = delete;
};

// Guarded phases: return false with d->err.message set when libjpeg fails.
bool jpeg_guarded_header(JpegDecoder* d, const unsigned char* data, std::size_t size) {
  if (setjmp(d->err.jump)) return false;
  jpeg_create_decompress(&d->cinfo);
  d->cinfo.progress = &d->progress;
  jpeg_mem_src(&d->cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&d->cinfo, TRUE);
  return true;
}

bool jpeg_guarded_start(JpegDecoder* d) {
  if (setjmp(d->err.jump)) return false;
  jpeg_start_decompress(&d->cinfo);
  return true;
}

// CMYK row [w,4] -> RGB row [w,3]. Adobe files store inverted CMYK (0 = full ink).
void cmyk_to_rgb(const unsigned char* cmyk, unsigned char* rgb, int width, bool inverted) {
  for (int x = 0; x < width; ++x, cmyk += 4, rgb += 3) {
    const int c = cmyk[0], m = cmyk[1], y = cmyk[2], k = cmyk[3];
    if (inverted) {
      rgb[0] = static_cast<unsigned char>(c * k / 255);
      rgb[1] = static_cast<unsigned char>(m * k / 255);
      rgb[2] = static_cast<unsigned char>(y * k / 255);
    } else {
      rgb[0] = static_cast<unsigned char>((255 - c) * (255 - k) / 255);
      rgb[1] = static_cast<unsigned char>((255 - m) * (255 - k) / 255);
      rgb[2] = static_cast<unsigned char>((255 - y) * (255 - k) / 255);
    }
  }
}

// out: [output_height, output_width, 3]; cmyk_row: [output_width, 4] or null for RGB output.
bool jpeg_guarded_pixels(JpegDecoder* d, unsigned char* out, unsigned char* cmyk_row) {
  if (setjmp(d->err.jump)) return false;
  j_decompress_ptr c = &d->cinfo;
  const std::size_t stride = static_cast<std::size_t>(c->output_width) * 3;
  while (c->output_scanline < c->output_height) {
    unsigned char* rgb = out + c->output_scanline * stride;
    JSAMPROW row = cmyk_row ? cmyk_row : rgb;
    if (jpeg_read_scanlines(c, &row, 1) != 1) {
      std::snprintf(d->err.message, sizeof d->err.message, "no data for row %u of %u",
                    c->output_scanline, c->output_height);
      return false;
    }
    if (cmyk_row)
      cmyk_to_rgb(cmyk_row, rgb, static_cast<int>(c->output_width), c->saw_Adobe_marker);
  }
  jpeg_finish_decompress(c);  // reads through EOI: a missing tail is an error too
  return true;
}

RgbImage decode_jpeg(const unsigned char* data, std::size_t size, const std::string& name) {
  JpegDecoder d;
  auto fail = [&]() { bad(name, std::string("cannot decode JPEG: ") + d.err.message); };
  if (!jpeg_guarded_header(&d, data, size)) fail();
  jpeg_decompress_struct& c = d.cinfo;
  check_dimensions(name, "JPEG", c.image_width, c.image_height);
  // Huffman coding spends at least one bit per 8x8 block of the full-resolution component
  // (a DC code), so a header claiming more blocks than the file has bits is lying; refuse
  // before the decoder allocates coefficient buffers. Arithmetic coding has no such bound.
  if (!c.arith_code) {
    const long long blocks = ((c.image_width + 7LL) / 8) * ((c.image_height + 7LL) / 8);
    if (blocks > 8LL * static_cast<long long>(size))
      bad(name, "JPEG header claims " + dims(c.image_width, c.image_height) +
                    " pixels, which needs at least " + std::to_string((blocks + 7) / 8) +
                    " bytes of compressed data, but the file has " + std::to_string(size) +
                    " bytes (truncated, or a corrupt header)");
  }
  const bool cmyk = c.jpeg_color_space == JCS_CMYK || c.jpeg_color_space == JCS_YCCK;
  c.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;  // grey, YCbCr and RGB all convert to RGB
  c.dct_method = JDCT_IFAST;                      // tf.io.decode_image's choice
  c.do_fancy_upsampling = TRUE;
  if (!jpeg_guarded_start(&d)) fail();
  if (c.output_width != c.image_width || c.output_height != c.image_height ||
      c.output_components != (cmyk ? 4 : 3))
    bad(name, "cannot decode JPEG: unexpected output layout " +
                  dims(c.output_width, c.output_height) + "x" +
                  std::to_string(c.output_components));
  RgbImage img;
  img.width = static_cast<int>(c.output_width);
  img.height = static_cast<int>(c.output_height);
  img.pixels.resize(static_cast<std::size_t>(img.width) * img.height * 3);
  std::vector<unsigned char> cmyk_row(cmyk ? static_cast<std::size_t>(img.width) * 4 : 0);
  if (!jpeg_guarded_pixels(&d, img.pixels.data(), cmyk ? cmyk_row.data() : nullptr)) fail();
  return img;
}

// ---------------------------------------------------------------------------------------------
// PNG

struct PngDecoder {
  png_structp png = nullptr;
  png_infop info = nullptr;
  const unsigned char* data = nullptr;
  std::size_t size = 0, pos = 0;
  int passes = 1;
  char message[256] = {};
  ~PngDecoder() {
    if (png) png_destroy_read_struct(&png, info ? &info : nullptr, nullptr);
  }
};

void png_fail(png_structp png, png_const_charp msg) {
  auto* d = static_cast<PngDecoder*>(png_get_error_ptr(png));
  std::snprintf(d->message, sizeof d->message, "%s", msg);
  png_longjmp(png, 1);
}

// Warnings (e.g. "iCCP: known incorrect sRGB profile", benign errors such as extra compressed
// data after the last row) leave the pixels intact and are not printed.
void png_warn(png_structp, png_const_charp) {}

void png_read_mem(png_structp png, png_bytep out, png_size_t n) {
  auto* d = static_cast<PngDecoder*>(png_get_io_ptr(png));
  if (n > d->size - d->pos) png_error(png, "file ends early (truncated)");
  std::memcpy(out, d->data + d->pos, n);
  d->pos += n;
}

std::uint32_t be32(const unsigned char* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         p[3];
}

// Checks, from the raw bytes and before libpng allocates anything: IHDR's size against the limits
// and against the compressed data actually present, and that the chunk list is complete through
// IEND. CRCs and chunk contents are left to libpng.
void png_precheck(const unsigned char* data, std::size_t size, const std::string& name) {
  if (size < 33)
    bad(name, "truncated PNG: " + std::to_string(size) + " bytes, the header alone needs 33");
  if (be32(data + 8) != 13 || std::memcmp(data + 12, "IHDR", 4) != 0) return;
  const long long w = be32(data + 16), h = be32(data + 20);
  check_dimensions(name, "PNG", w, h);
  const int depth = data[24], color = data[25];
  const int channels = color == 0   ? 1
                       : color == 2 ? 3
                       : color == 3 ? 1
                       : color == 4 ? 2
                       : color == 6 ? 4
                                    : 0;
  if (channels == 0) return;
  // Deflate expands at most 1032:1 (two 1-bit codes per 258-byte match).
  const long long raw_bytes = w * h * channels * depth / 8;
  long long idat = 0;
  std::size_t pos = 8;
  for (;;) {
    if (pos + 12 > size)
      bad(name, "truncated PNG: the file ends after " + std::to_string(size) +
                    " bytes without an IEND chunk");
    const std::uint32_t len = be32(data + pos);
    std::string type(reinterpret_cast<const char*>(data + pos + 4), 4);
    for (char& ch : type)
      if (!std::isalpha(static_cast<unsigned char>(ch))) ch = '?';
    if (len > size - pos - 12)
      bad(name, "truncated or corrupt PNG: chunk '" + type + "' at byte " + std::to_string(pos) +
                    " claims " + std::to_string(len) + " bytes, but the file ends after " +
                    std::to_string(size));
    if (type == "IDAT") idat += len;
    if (type == "IEND") break;
    pos += 12 + static_cast<std::size_t>(len);
  }
  if (raw_bytes > 1032 * idat + 1024)
    bad(name, "PNG header claims " + dims(w, h) + " pixels (" + std::to_string(raw_bytes) +
                  " bytes), but the file holds only " + std::to_string(idat) +
                  " bytes of compressed pixel data (truncated, or a corrupt header)");
}

bool png_guarded_header(PngDecoder* d) {
  if (setjmp(png_jmpbuf(d->png))) return false;
  png_structp png = d->png;
  png_set_read_fn(png, d, png_read_mem);
  png_set_crc_action(png, PNG_CRC_ERROR_QUIT, PNG_CRC_ERROR_QUIT);  // any CRC error is fatal
  png_set_user_limits(png, kMaxImageSide, kMaxImageSide);
  png_read_info(png, d->info);
  const int color = png_get_color_type(png, d->info);
  const int depth = png_get_bit_depth(png, d->info);
  if (depth == 16) png_set_strip_16(png);  // high byte, as TF's decode_png for uint8
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if ((color & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, d->info, PNG_INFO_tRNS))
    png_set_strip_alpha(png);  // dropped, not composited
  if (!(color & PNG_COLOR_MASK_COLOR)) png_set_gray_to_rgb(png);
  d->passes = png_set_interlace_handling(png);
  png_read_update_info(png, d->info);
  return true;
}

// out: [h, w, 3]. Reads every pass, then the chunks after the image through IEND (CRCs checked).
bool png_guarded_pixels(PngDecoder* d, unsigned char* out, int height, std::size_t stride) {
  if (setjmp(png_jmpbuf(d->png))) return false;
  for (int pass = 0; pass < d->passes; ++pass)
    for (int y = 0; y < height; ++y) png_read_row(d->png, out + y * stride, nullptr);
  png_read_end(d->png, nullptr);
  return true;
}

RgbImage decode_png(const unsigned char* data, std::size_t size, const std::string& name) {
  png_precheck(data, size, name);
  PngDecoder d;
  d.data = data;
  d.size = size;
  d.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &d, png_fail, png_warn);
  if (d.png) d.info = png_create_info_struct(d.png);
  if (!d.png || !d.info) throw std::runtime_error(name + ": libpng could not allocate its state");
  auto fail = [&]() { bad(name, std::string("cannot decode PNG: ") + d.message); };
  if (!png_guarded_header(&d)) fail();
  RgbImage img;
  img.width = static_cast<int>(png_get_image_width(d.png, d.info));
  img.height = static_cast<int>(png_get_image_height(d.png, d.info));
  check_dimensions(name, "PNG", img.width, img.height);
  const std::size_t stride = static_cast<std::size_t>(img.width) * 3;
  if (png_get_channels(d.png, d.info) != 3 || png_get_bit_depth(d.png, d.info) != 8 ||
      png_get_rowbytes(d.png, d.info) != stride)
    bad(name, "cannot decode PNG: unexpected layout after conversion to 8-bit RGB");
  img.pixels.resize(stride * img.height);
  if (!png_guarded_pixels(&d, img.pixels.data(), img.height, stride)) fail();
  return img;
}

// ---------------------------------------------------------------------------------------------

bool starts_with(const unsigned char* data, std::size_t size, const char* magic, std::size_t n,
                 std::size_t at = 0) {
  return size >= at + n && std::memcmp(data + at, magic, n) == 0;
}

std::string first_bytes_hex(const unsigned char* data, std::size_t size) {
  std::string s;
  char buf[4];
  for (std::size_t i = 0; i < size && i < 8; ++i) {
    std::snprintf(buf, sizeof buf, i ? " %02x" : "%02x", data[i]);
    s += buf;
  }
  return s;
}

const char* file_kind(mode_t mode) {
  if (S_ISFIFO(mode)) return "FIFO (named pipe)";
  if (S_ISCHR(mode)) return "character device";
  if (S_ISBLK(mode)) return "block device";
  if (S_ISSOCK(mode)) return "socket";
  return "special file";
}

// Reads a regular file of at most kMaxImageFileBytes. O_NONBLOCK: opening a FIFO returns at once
// instead of waiting for a writer; fstat on the open descriptor then refuses anything that is
// not a regular file (devices such as /dev/zero never end), so nothing here blocks or reads
// without bound.
std::vector<unsigned char> read_whole_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(path + ": cannot open: " + std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0)
    throw std::runtime_error(path + ": cannot stat: " + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) throw std::runtime_error(path + ": is a directory, not an image file");
  if (!S_ISREG(st.st_mode))
    bad(path, std::string("not a regular file but a ") + file_kind(st.st_mode) +
                  "; only regular files are read as images (remove it from the folder)");
  const auto too_large = [&](long long size) {
    bad(path, std::to_string(size) + " bytes; image files above " +
                  std::to_string(kMaxImageFileBytes >> 20) +
                  " MiB are refused (resize or recompress it)");
  };
  if (st.st_size > kMaxImageFileBytes) too_large(st.st_size);
  // Up to one byte past the bound, so a file that grew since fstat is still refused.
  std::vector<unsigned char> bytes(static_cast<std::size_t>(st.st_size) + 1);
  std::size_t got = 0;
  for (;;) {
    if (got == bytes.size()) {
      if (static_cast<long long>(got) > kMaxImageFileBytes) too_large(static_cast<long long>(got));
      bytes.resize(std::min<std::size_t>(bytes.size() * 2 + 4096, kMaxImageFileBytes + 1));
    }
    const ssize_t n = ::read(fd, bytes.data() + got, bytes.size() - got);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(path + ": read error: " + std::strerror(errno));
    }
    got += static_cast<std::size_t>(n);
  }
  bytes.resize(got);
  return bytes;
}

}  // namespace

RgbImage decode_image_memory(const unsigned char* data, std::size_t size, const std::string& name) {
  if (size == 0) bad(name, "empty file (0 bytes)");
  static const char kPng[] = "\x89PNG\r\n\x1a\n";
  if (starts_with(data, size, "\xFF\xD8\xFF", 3)) return decode_jpeg(data, size, name);
  if (starts_with(data, size, kPng, 8)) return decode_png(data, size, name);
  if (size < 8 && (std::memcmp(data, kPng, size) == 0 ||
                   std::memcmp(data, "\xFF\xD8\xFF", std::min<std::size_t>(size, 3)) == 0))
    bad(name, "truncated: only " + std::to_string(size) + " bytes");
  const char* other = nullptr;
  if (starts_with(data, size, "GIF8", 4))
    other = "GIF";
  else if (starts_with(data, size, "BM", 2))
    other = "BMP";
  else if (starts_with(data, size, "RIFF", 4) && starts_with(data, size, "WEBP", 4, 8))
    other = "WebP";
  else if (starts_with(data, size, "II*\0", 4) || starts_with(data, size, "MM\0*", 4))
    other = "TIFF";
  else if (starts_with(data, size, "ftyp", 4, 4))
    other = "HEIF/AVIF";
  if (other)
    bad(name, std::string("looks like a ") + other +
                  " image; only JPEG and PNG are supported (convert it, or remove it)");
  bad(name, "unknown format: not a JPEG or PNG (first bytes " + first_bytes_hex(data, size) + ")");
}

RgbImage decode_image_file(const std::string& path) {
  const std::vector<unsigned char> bytes = read_whole_file(path);
  return decode_image_memory(bytes.data(), bytes.size(), path);
}

bool has_image_extension(const std::string& filename) {
  auto ends_with = [&](const char* ext) {
    const std::size_t n = std::strlen(ext);
    if (filename.size() < n) return false;
    for (std::size_t i = 0; i < n; ++i) {
      char ch = filename[filename.size() - n + i];
      if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
      if (ch != ext[i]) return false;
    }
    return true;
  };
  return ends_with(".jpg") || ends_with(".jpeg") || ends_with(".png");
}

}  // namespace parafine
