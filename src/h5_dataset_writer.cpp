// HDF5 image dataset writer (see h5_dataset_writer.hpp).
#include "parafine/h5_dataset_writer.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <cmath>
#include <cstdio>
#include <ostream>
#include <stdexcept>
#include <thread>

#include "parafine/h5_tensors.hpp"

namespace parafine {

namespace {

// Decodes samples [begin,end) into uint8 [end-begin,S,S,3] on `threads` threads; the first
// error is rethrown.
void decode_range(const SampleSource& source, int begin, int end, int image_size, int threads,
                  std::vector<unsigned char>& out) {
  const std::size_t per = static_cast<std::size_t>(image_size) * image_size * 3;
  out.resize(per * (end - begin));
  std::atomic<int> next{begin};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto work = [&] {
    std::vector<float> rgb(per);
    for (int i = next++; i < end; i = next++) {
      try {
        source.load(i, image_size, rgb.data());
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        return;
      }
      unsigned char* dst = out.data() + per * (i - begin);
      for (std::size_t k = 0; k < per; ++k) dst[k] = static_cast<unsigned char>(std::lround(std::clamp(rgb[k], 0.0f, 255.0f)));
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < std::max(1, threads); ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace

void write_image_dataset(const SampleSource& source, const std::string& path, int image_size, int threads,
                         std::ostream* log) {
  if (image_size < 1) throw std::invalid_argument("--image-size must be positive");
  const int n = source.size();
  const std::string tmp = path + ".tmp" + std::to_string(::getpid());
  try {
    H5File f(tmp, H5File::Mode::kTruncate);
    const hsize_t dims[4] = {static_cast<hsize_t>(n), static_cast<hsize_t>(image_size),
                             static_cast<hsize_t>(image_size), 3};
    const hsize_t chunk[4] = {1, dims[1], dims[2], 3};
    const hid_t space = H5Screate_simple(4, dims, nullptr);
    const hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 4, chunk);
    const hid_t images = H5Dcreate2(f.id(), "/images", H5T_STD_U8LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    if (images < 0) {
      H5Sclose(space);
      throw std::runtime_error(tmp + ": cannot create the images dataset");
    }
    std::vector<unsigned char> pixels;
    const int block = 64;  // images decoded and written per round
    herr_t status = 0;
    for (int b = 0; b < n && status >= 0; b += block) {
      const int e = std::min(n, b + block);
      try {
        decode_range(source, b, e, image_size, threads, pixels);
      } catch (...) {
        H5Dclose(images);
        H5Sclose(space);
        throw;
      }
      const hsize_t start[4] = {static_cast<hsize_t>(b), 0, 0, 0};
      const hsize_t count[4] = {static_cast<hsize_t>(e - b), dims[1], dims[2], 3};
      H5Sselect_hyperslab(space, H5S_SELECT_SET, start, nullptr, count, nullptr);
      const hid_t mem = H5Screate_simple(4, count, nullptr);
      status = H5Dwrite(images, H5T_NATIVE_UCHAR, mem, space, H5P_DEFAULT, pixels.data());
      H5Sclose(mem);
      if (log && (e == n || e / block % 4 == 0)) *log << "converted " << e << "/" << n << " images" << std::endl;
    }
    H5Dclose(images);
    H5Sclose(space);
    if (status < 0) throw std::runtime_error(tmp + ": cannot write images (disk full?)");
    std::vector<long long> labels(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) labels[static_cast<size_t>(i)] = source.label(i);
    f.write_int64("/labels", labels);
    if (!source.class_names().empty()) f.write_string_list_attribute("/", "class_names", source.class_names());
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw std::runtime_error("cannot move the converted dataset into place at " + path);
  }
}

}  // namespace parafine
