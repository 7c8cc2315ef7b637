// HDF5 image dataset writer (see h5_dataset_writer.hpp). Every rank decodes a contiguous share
// of each block of images; rank 0 gathers the block and writes it. Each step is collective, so
// an error on any rank ends every rank with the first failing rank's message.
#include "parafine/data/h5_dataset_writer.hpp"

#include <algorithm>
#include <cmath>
#include <memory>
#include <ostream>
#include <stdexcept>

#include "parafine/core/atomic_file.hpp"
#include "parafine/core/parallel_for.hpp"
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
  parallel_for(threads, begin, end, 1, [&](int i) {
    thread_local std::vector<float> rgb;
    rgb.resize(per);
    source.load(i, image_size, rgb.data());
    unsigned char* dst = out.data() + per * (i - begin);
    for (std::size_t k = 0; k < per; ++k)
      dst[k] = static_cast<unsigned char>(std::lround(std::clamp(rgb[k], 0.0f, 255.0f)));
  });
}

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

// Rank 0's output: the temporary HDF5 file with its chunked `images` dataset [N,S,S,3].
class ImageDatasetFile {
 public:
  ImageDatasetFile(const std::string& path, int samples, int image_size)
      : out_(path, "converted dataset",
             static_cast<std::uint64_t>(samples) * image_size * image_size * 3 + 8ull * samples),
        file_(std::make_unique<H5File>(out_.temp_path(), H5File::Mode::kTruncate)) {
    const hsize_t dims[4] = {static_cast<hsize_t>(samples), static_cast<hsize_t>(image_size),
                             static_cast<hsize_t>(image_size), 3};
    const hsize_t chunk[4] = {1, dims[1], dims[2], 3};  // one image per chunk
    space_ = H5Screate_simple(4, dims, nullptr);
    const hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 4, chunk);
    images_ =
        H5Dcreate2(file_->id(), "/images", H5T_STD_U8LE, space_, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    if (images_ < 0) {
      close_datasets();
      throw std::runtime_error(out_.temp_path() + ": cannot create the images dataset");
    }
  }
  ~ImageDatasetFile() { close_datasets(); }

  // Images [begin, begin+count) from `pixels` uint8 [count,S,S,3].
  void write_images(int begin, int count, int image_size, const unsigned char* pixels) {
    const hsize_t start[4] = {static_cast<hsize_t>(begin), 0, 0, 0};
    const hsize_t size[4] = {static_cast<hsize_t>(count), static_cast<hsize_t>(image_size),
                             static_cast<hsize_t>(image_size), 3};
    H5Sselect_hyperslab(space_, H5S_SELECT_SET, start, nullptr, size, nullptr);
    const hid_t mem = H5Screate_simple(4, size, nullptr);
    const herr_t status = H5Dwrite(images_, H5T_NATIVE_UCHAR, mem, space_, H5P_DEFAULT, pixels);
    H5Sclose(mem);
    if (status < 0)
      throw std::runtime_error(out_.failure("HDF5 could not write images " +
                                            std::to_string(begin) + ".." +
                                            std::to_string(begin + count - 1)));
  }

  // Writes the labels and class names, closes the file and renames it into place.
  // Every result is checked: HDF5 writes buffered image chunks only when the dataset and the
  // file close, so a full disk may show only there.
  void finish(const SampleSource& source) {
    try {
      std::vector<long long> labels(static_cast<size_t>(source.size()));
      for (int i = 0; i < source.size(); ++i) labels[static_cast<size_t>(i)] = source.label(i);
      file_->write_int64("/labels", labels);
      if (!source.class_names().empty())
        file_->write_string_list_attribute("/", "class_names", source.class_names());
      if (!close_datasets())
        throw std::runtime_error("HDF5 could not write the buffered images (disk full, or a file "
                                 "size limit?)");
      file_->close();
    } catch (const std::runtime_error& e) {
      throw std::runtime_error(out_.failure(e.what()));
    }
    out_.commit();
  }

 private:
  // False when HDF5 could not write the images' buffered chunks.
  bool close_datasets() {
    const bool ok = images_ < 0 || H5Dclose(images_) >= 0;
    if (space_ >= 0) H5Sclose(space_);
    images_ = space_ = -1;
    return ok;
  }

  AtomicFile out_;  // declared first: destroyed (temporary removed) after the file is closed
  std::unique_ptr<H5File> file_;
  hid_t space_ = -1, images_ = -1;
};

}  // namespace

void write_image_dataset(const SampleSource& source, const std::string& path, int image_size,
                         int threads, std::ostream* log) {
  if (image_size < 1) throw std::invalid_argument("--image-size must be positive");
  const int n = source.size(), ranks = Comm::size(), rank = Comm::rank();
  const bool root = rank == 0;
  std::unique_ptr<ImageDatasetFile> file;  // rank 0 writes; every rank decodes its share
  collectively([&] {
    if (root) file = std::make_unique<ImageDatasetFile>(path, n, image_size);
  });
  const std::size_t per = static_cast<std::size_t>(image_size) * image_size * 3;
  // Images per round (each rank decodes a contiguous share); a round stays under 1 GiB so
  // the gather to rank 0 fits MPI's int counts.
  const int block = static_cast<int>(
      std::max<std::size_t>(1, std::min<std::size_t>(64 * ranks, (std::size_t(1) << 30) / per)));
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
      if (all.size() != per * (e - b))
        throw std::logic_error("convert: gathered the wrong number of pixels");
      file->write_images(b, e - b, image_size, all.data());
      if (log && (e == n || e / block % 4 == 0))
        *log << "converted " << e << "/" << n << " images" << std::endl;
    });
  }
  collectively([&] {
    if (root) file->finish(source);
  });
}

}  // namespace parafine
