// Helpers shared by the unit tests (header-only, test use only): a private temporary directory,
// fixture paths from the environment, a class folder's files in Keras order, small
// generated data (random pixels, small HDF5 image files), the independent reference reader of
// HDF5 image batches that H5Source and the prefetcher are compared against, a Keras-initialised
// ResNet50, a tiny training run's config, float comparisons, an exception's message, running a
// shell command, reading a CSV, and timing. Helpers for one test only stay in that test.
#pragma once

#include <stdlib.h>  // mkdtemp
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "parafine/core/rng.hpp"
#include "parafine/core/tensor.hpp"
#include "parafine/data/h5_dataset.hpp"
#include "parafine/data/preprocess.hpp"
#include "parafine/data/sample_source.hpp"  // hdf5_mutex
#include "parafine/data/synthetic_data.hpp"
#include "parafine/io/h5_tensors.hpp"
#include "parafine/model/backbone.hpp"
#include "parafine/model/initializers.hpp"
#include "parafine/train/train_config.hpp"

namespace parafine {
namespace test_util {

// ---- files ----------------------------------------------------------------------------------

// A private temporary directory (mkdtemp: a new one for every instance, so tests running at
// the same time never share it), removed with everything in it at the end of its scope.
// A whole file's bytes ("" when it cannot be read), and writing bytes back (for patching a
// file as damage would).
inline std::string bytes_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

struct TempDir {
  std::filesystem::path path;

  explicit TempDir(const std::string& prefix = "parafine_test") {
    std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "_XXXXXX")).string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed for " + tmpl);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // The full path of `rel` inside the directory (nothing is created).
  std::string file(const std::filesystem::path& rel) const { return (path / rel).string(); }
  // Writes `bytes` to `rel` (creating its folders) and returns the full path.
  std::string write(const std::filesystem::path& rel,
                    const std::vector<unsigned char>& bytes) const {
    const std::filesystem::path p = path / rel;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
    return p.string();
  }
  // Writes a placeholder file "x" to `rel` (creating its folders) and returns the full path.
  std::string touch(const std::filesystem::path& rel) const { return write(rel, {'x'}); }
};

// The environment variable `name` (CTest sets fixture directories this way), or `fallback`
// when it is unset or empty.
inline std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

// The files of one class folder, sorted by name in byte order (Python's sorted(), so Keras'
// order within a class), as "<dir>/<cls>/<name>".
inline std::vector<std::string> sorted_class_files(const std::filesystem::path& dir,
                                                   const std::string& cls) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir / cls))
    names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  for (auto& n : names) n = (dir / cls / n).string();
  return names;
}

// ---- small data -----------------------------------------------------------------------------

// n bytes of seeded noise: the low byte of each SplitMix64 draw.
inline std::vector<unsigned char> random_pixels(std::size_t n, std::uint64_t seed) {
  SplitMix64 rng(seed);
  std::vector<unsigned char> px(n);
  for (auto& p : px) p = static_cast<unsigned char>(rng.next() & 255);
  return px;
}

// Writes an HDF5 image dataset as `parafine convert` lays one out: uint8 `images` [N,H,W,3]
// (pixels holds N*H*W*3 bytes), int64 `labels` [N] unless labels is empty, and the
// `class_names` attribute unless class_names is empty. Replaces any file at `path`.
inline void write_h5_images(const std::string& path, int n, int h, int w,
                            const std::vector<unsigned char>& pixels,
                            const std::vector<long long>& labels,
                            const std::vector<std::string>& class_names = {}) {
  if (pixels.size() != static_cast<std::size_t>(n) * h * w * 3)
    throw std::invalid_argument("write_h5_images: pixels is not N*H*W*3 bytes");
  H5File f(path, H5File::Mode::kTruncate);
  f.write_uint8("/images",
                {static_cast<hsize_t>(n), static_cast<hsize_t>(h), static_cast<hsize_t>(w), 3},
                pixels.data());
  if (!labels.empty()) f.write_int64("/labels", labels);
  if (!class_names.empty()) f.write_string_list_attribute("/", "class_names", class_names);
}

// The independent reference for what H5Source (and the prefetcher over it) delivers: samples
// [begin, end) of the HDF5 image dataset at `path`, read with ONE hyperslab through a handle of
// its own, each copied when stored at image_size x image_size, else resize_bilinear, then
// preprocessed: floats [end-begin, image_size, image_size, 3]. (The library reads one sample
// per hyperslab and converts with rgb_to_floats + prepare_sample; this is the batch path it
// replaced, formerly H5ImageDataset::read_batch.) Holds hdf5_mutex() while it calls HDF5, so
// a prefetcher may be reading the file at the same time.
inline Tensor read_h5_batch(const std::string& path, int begin, int end, int image_size,
                            Preprocess preprocess) {
  std::vector<unsigned char> raw;
  int h = 0, w = 0;
  {
    std::lock_guard<std::mutex> lock(hdf5_mutex());
    const H5File file(path, H5File::Mode::kRead);
    const std::vector<hsize_t> dims = file.dataset_shape("/images");
    if (dims.size() != 4 || dims[3] != 3)
      throw std::runtime_error(path + ": 'images' is not [N,H,W,3]");
    const int n = static_cast<int>(dims[0]);
    h = static_cast<int>(dims[1]);
    w = static_cast<int>(dims[2]);
    if (begin < 0 || end > n || begin >= end)
      throw std::out_of_range(path + ": batch [" + std::to_string(begin) + "," +
                              std::to_string(end) + ") outside the " + std::to_string(n) +
                              " samples");
    const hsize_t start[4] = {static_cast<hsize_t>(begin), 0, 0, 0};
    const hsize_t count[4] = {static_cast<hsize_t>(end - begin), dims[1], dims[2], 3};
    raw.resize(static_cast<std::size_t>(end - begin) * h * w * 3);
    const hid_t d = H5Dopen2(file.id(), "/images", H5P_DEFAULT);
    const hid_t fspace = H5Dget_space(d);
    H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, nullptr, count, nullptr);
    const hid_t mspace = H5Screate_simple(4, count, nullptr);
    const herr_t status = H5Dread(d, H5T_NATIVE_UCHAR, mspace, fspace, H5P_DEFAULT, raw.data());
    H5Sclose(mspace);
    H5Sclose(fspace);
    H5Dclose(d);
    if (status < 0)
      throw std::runtime_error(path + ": cannot read images " + std::to_string(begin) + ".." +
                               std::to_string(end - 1));
  }
  const int count = end - begin;
  Tensor images(Shape{count, image_size, image_size, 3});
  const std::size_t per = static_cast<std::size_t>(h) * w * 3;
  const std::size_t out_per = static_cast<std::size_t>(image_size) * image_size * 3;
  std::vector<float> rgb(out_per);
  for (int i = 0; i < count; ++i) {
    const unsigned char* src = raw.data() + per * i;
    if (h == image_size && w == image_size)
      for (std::size_t k = 0; k < out_per; ++k) rgb[k] = src[k];
    else
      resize_bilinear(src, h, w, rgb.data(), image_size, image_size);
    float* dst = images.data() + out_per * i;
    if (preprocess == Preprocess::kCaffe)
      for (std::size_t p = 0; p < out_per; p += 3) caffe_preprocess(rgb.data() + p, dst + p);
    else
      std::copy(rgb.begin(), rgb.end(), dst);
  }
  return images;
}

// ---- models ---------------------------------------------------------------------------------

// build_network(config) with Keras' default initialisation drawn from `seed`.
inline Model keras_initialized_resnet50(const NetworkConfig& config, std::uint64_t seed) {
  Model m = build_network(config);
  keras_initialize(m, seed);
  return m;
}

// A tiny two-phase run: 32x32 images, global batch 4, the given epochs per phase (everything
// else TrainConfig's defaults).
inline TrainConfig tiny_run(int phase1_epochs, int phase2_epochs) {
  TrainConfig c;
  c.image_size = 32;
  c.batch_size = 4;
  c.phase1_epochs = phase1_epochs;
  c.phase2_epochs = phase2_epochs;
  return c;
}

// ---- comparisons ----------------------------------------------------------------------------

// max |a[i] - b[i]| over n floats (the difference taken in float, as the tests always did).
inline double max_abs_diff(const float* a, const float* b, std::size_t n) {
  double worst = 0;
  for (std::size_t i = 0; i < n; ++i)
    worst = std::max(worst, static_cast<double>(std::fabs(a[i] - b[i])));
  return worst;
}
// The same over two vectors, which must have the same size (else infinity).
inline double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  return max_abs_diff(a.data(), b.data(), a.size());
}

// Elements whose bit patterns differ (so -0.0 vs 0.0 and NaN payloads count).
inline std::size_t bit_diffs(const float* a, const float* b, std::size_t n) {
  std::size_t d = 0;
  for (std::size_t i = 0; i < n; ++i) d += std::memcmp(a + i, b + i, sizeof(float)) != 0;
  return d;
}
// The same over two vectors; a size mismatch counts as the larger size.
inline std::size_t bit_diffs(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return std::max(a.size(), b.size());
  return bit_diffs(a.data(), b.data(), a.size());
}

// ---- errors, commands, timing ---------------------------------------------------------------

// The message of the E that f() throws, or "" when f returns normally. Exceptions of other
// types propagate (and fail the test).
template <class E, class F>
std::string error_message(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "";
}

struct CommandResult {
  int exit_code;       // -1 when the process did not exit normally
  std::string output;  // stdout and stderr
};

// Runs `command` through the shell, capturing stdout and stderr.
inline CommandResult run_command(const std::string& command) {
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  if (!p) return {-1, "popen failed: " + command};
  std::string out;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// Rows of a comma-separated file, split at every comma (no unquoting).
inline std::vector<std::vector<std::string>> read_csv(const std::string& file) {
  std::ifstream in(file);
  std::vector<std::vector<std::string>> rows;
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> cells;
    std::stringstream ss(line);
    for (std::string cell; std::getline(ss, cell, ',');) cells.push_back(cell);
    rows.push_back(cells);
  }
  return rows;
}

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// make_synthetic_source's images as one batch [N,S,S,3], caffe-preprocessed as the prefetcher
// does it, with their labels.
struct SyntheticBatch {
  Tensor images;
  std::vector<int> labels;
  int size() const { return static_cast<int>(labels.size()); }
};
inline SyntheticBatch synthetic_batch(int samples, int image_size, int classes,
                                      std::uint64_t seed) {
  const InMemorySource source = make_synthetic_source(samples, image_size, classes, seed);
  SyntheticBatch b;
  b.images.resize(Shape{samples, image_size, image_size, 3});
  const std::size_t per = static_cast<std::size_t>(image_size) * image_size * 3;
  for (int i = 0; i < samples; ++i) {
    source.load(i, image_size, b.images.data() + per * i);
    prepare_sample(b.images.data() + per * i, image_size, false, Preprocess::kCaffe);
    b.labels.push_back(source.label(i));
  }
  return b;
}

// Records of CSV text as RFC 4180 has them: a field in double quotes may hold commas, line
// breaks and doubled quotes (""), which are unquoted here; records end at \n or \r\n.
inline std::vector<std::vector<std::string>> parse_csv_rfc4180(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char ch = text[i];
    if (quoted) {
      if (ch != '"') {
        field += ch;
      } else if (i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else {
        quoted = false;
      }
    } else if (ch == '"') {
      quoted = true;
    } else if (ch == ',') {
      row.push_back(field);
      field.clear();
    } else if (ch == '\n') {
      row.push_back(field);
      rows.push_back(row);
      row.clear();
      field.clear();
    } else if (ch != '\r') {
      field += ch;
    }
  }
  if (!field.empty() || !row.empty()) {  // a last record without a line break
    row.push_back(field);
    rows.push_back(row);
  }
  return rows;
}

// The RFC 4180 records of a CSV file (parse_csv_rfc4180).
inline std::vector<std::vector<std::string>> read_csv_rfc4180(const std::string& file) {
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  return parse_csv_rfc4180(text.str());
}

}  // namespace test_util
}  // namespace parafine
