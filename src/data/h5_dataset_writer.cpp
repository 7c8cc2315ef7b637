// HDF5 image dataset writer (see h5_dataset_writer.hpp).
#include "parafine/data/h5_dataset_writer.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <cmath>
#include <cstdio>
#include <ostream>
#include <stdexcept>
#include <thread>

#include "parafine/dist/comm.hpp"
#include "parafine/io/h5_tensors.hpp"

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

namespace {

// Runs `step`, then makes every rank agree on whether any rank's step threw.
template <typename F>
void collectively(F&& step) {
  bool failed = false;
  std::string message;
  try {
    step();
  } catch (const std::exception& e) {
    failed = true;
    message = e.what();
  }
  agree_on_failure(failed, message);
}

}  // namespace

void write_image_dataset(const SampleSource& source, const std::string& path, int image_size, int threads,
                         std::ostream* log) {
  if (image_size < 1) throw std::invalid_argument("--image-size must be positive");
  const int n = source.size(), ranks = Comm::size(), rank = Comm::rank();
  const bool root = rank == 0;
  const std::string tmp = path + ".tmp" + std::to_string(::getpid());
  const hsize_t dims[4] = {static_cast<hsize_t>(n), static_cast<hsize_t>(image_size), static_cast<hsize_t>(image_size), 3};
  std::unique_ptr<H5File> file;  // rank 0 writes; other ranks decode their share of each block
  hid_t space = -1, images = -1;
  auto close_all = [&] {
    if (images >= 0) H5Dclose(images);
    if (space >= 0) H5Sclose(space);
    images = space = -1;
    file.reset();
  };
  auto abandon = [&] {
    close_all();
    if (root) std::remove(tmp.c_str());
  };
  try {
    collectively([&] {
      if (!root) return;
      file = std::make_unique<H5File>(tmp, H5File::Mode::kTruncate);
      const hsize_t chunk[4] = {1, dims[1], dims[2], 3};
      space = H5Screate_simple(4, dims, nullptr);
      const hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
      H5Pset_chunk(dcpl, 4, chunk);
      images = H5Dcreate2(file->id(), "/images", H5T_STD_U8LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
      H5Pclose(dcpl);
      if (images < 0) throw std::runtime_error(tmp + ": cannot create the images dataset");
    });
    const std::size_t per = static_cast<std::size_t>(image_size) * image_size * 3;
    // Images per round (each rank decodes a contiguous share); a round stays under 1 GiB so
    // the gather to rank 0 fits MPI's int counts.
    const int block = static_cast<int>(std::max<std::size_t>(1, std::min<std::size_t>(64 * ranks, (std::size_t(1) << 30) / per)));
    std::vector<unsigned char> pixels;
    for (int b = 0; b < n; b += block) {
      const int e = std::min(n, b + block);
      const int mine_begin = b + static_cast<int>(static_cast<long>(e - b) * rank / ranks);
      const int mine_end = b + static_cast<int>(static_cast<long>(e - b) * (rank + 1) / ranks);
      collectively([&] { decode_range(source, mine_begin, mine_end, image_size, threads, pixels); });
      if (mine_begin == mine_end) pixels.clear();
      const std::vector<unsigned char> all = Comm::gather_to_root(pixels);
      collectively([&] {
        if (!root) return;
        if (all.size() != per * (e - b)) throw std::logic_error("convert: gathered the wrong number of pixels");
        const hsize_t start[4] = {static_cast<hsize_t>(b), 0, 0, 0};
        const hsize_t count[4] = {static_cast<hsize_t>(e - b), dims[1], dims[2], 3};
        H5Sselect_hyperslab(space, H5S_SELECT_SET, start, nullptr, count, nullptr);
        const hid_t mem = H5Screate_simple(4, count, nullptr);
        const herr_t status = H5Dwrite(images, H5T_NATIVE_UCHAR, mem, space, H5P_DEFAULT, all.data());
        H5Sclose(mem);
        if (status < 0) throw std::runtime_error(tmp + ": cannot write images (disk full?)");
        if (log && (e == n || e / block % 4 == 0)) *log << "converted " << e << "/" << n << " images" << std::endl;
      });
    }
    collectively([&] {
      if (!root) return;
      std::vector<long long> labels(static_cast<size_t>(n));
      for (int i = 0; i < n; ++i) labels[static_cast<size_t>(i)] = source.label(i);
      file->write_int64("/labels", labels);
      if (!source.class_names().empty()) file->write_string_list_attribute("/", "class_names", source.class_names());
      close_all();
      if (std::rename(tmp.c_str(), path.c_str()) != 0)
        throw std::runtime_error("cannot move the converted dataset into place at " + path);
    });
  } catch (...) {
    abandon();
    throw;
  }
}

}  // namespace parafine
