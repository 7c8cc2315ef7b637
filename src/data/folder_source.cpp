// Image-folder samples with bad files decided up front, and the source factory (see
// folder_source.hpp).
#include "parafine/data/folder_source.hpp"

#include <sys/stat.h>

#include <atomic>
#include <ostream>
#include <stdexcept>
#include <thread>

#include "parafine/dist/comm.hpp"
#include "parafine/data/image_decode.hpp"

namespace parafine {

BadImagePolicy parse_bad_image_policy(const std::string& name) {
  if (name == "skip") return BadImagePolicy::kSkip;
  if (name == "fail") return BadImagePolicy::kFail;
  throw std::invalid_argument("--on-bad-image must be 'skip' or 'fail', got '" + name + "'");
}

FolderSource::FolderSource(const std::string& dir, BadImagePolicy policy, int threads, std::ostream* log) {
  const ImageFolder folder = scan_image_folder(dir);
  class_names_ = folder.class_names;
  ignored_ = folder.ignored;
  const int n = static_cast<int>(folder.files.size());
  // Under mpirun each rank checks every R-th file; the verdicts are combined, so every rank
  // keeps the same list (labels never shift, ranks never disagree).
  const int ranks = Comm::size(), rank = Comm::rank();
  std::vector<std::string> reasons(static_cast<size_t>(n));  // "" = decodes (or not checked here)
  std::vector<int> bad(static_cast<size_t>(n), 0);
  std::atomic<int> next{rank};
  auto work = [&] {
    for (int i = next.fetch_add(ranks); i < n; i = next.fetch_add(ranks)) {
      try {
        decode_image_file(folder.files[static_cast<size_t>(i)]);
      } catch (const std::exception& e) {
        reasons[static_cast<size_t>(i)] = e.what();
        bad[static_cast<size_t>(i)] = 1;
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < std::max(1, threads); ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  Comm::allreduce_max(bad);
  auto reason_of = [&](int i) {  // another rank's verdict: decode again here for the message
    std::string& r = reasons[static_cast<size_t>(i)];
    if (r.empty()) {
      try {
        decode_image_file(folder.files[static_cast<size_t>(i)]);
        r = folder.files[static_cast<size_t>(i)] + ": could not be decoded on another rank";
      } catch (const std::exception& e) {
        r = e.what();
      }
    }
    return r;
  };

  std::vector<int> per_class(class_names_.size(), 0);
  for (int i = 0; i < n; ++i) {
    if (bad[static_cast<size_t>(i)]) {
      if (policy == BadImagePolicy::kFail)
        throw std::runtime_error(reason_of(i) + " (--on-bad-image fail; use skip to leave such files out)");
      // The first few reasons are shown, so they are made exact on every rank; later ones may
      // have been found by another rank.
      const std::string& found_here = reasons[static_cast<size_t>(i)];
      skipped_.push_back({folder.files[static_cast<size_t>(i)],
                          skipped_.size() < 5    ? reason_of(i)
                          : found_here.empty() ? folder.files[static_cast<size_t>(i)] + ": found bad by another rank"
                                               : found_here});
      continue;
    }
    files_.push_back(folder.files[static_cast<size_t>(i)]);
    labels_.push_back(folder.labels[static_cast<size_t>(i)]);
    ++per_class[static_cast<size_t>(folder.labels[static_cast<size_t>(i)])];
  }
  if (log && Comm::is_root() && !skipped_.empty()) {
    for (std::size_t k = 0; k < skipped_.size() && k < 5; ++k) *log << "skipping bad image: " << skipped_[k].reason << "\n";
    *log << dir << ": skipped " << skipped_.size() << " bad image(s) of " << n << std::endl;
  }
  for (std::size_t c = 0; c < per_class.size(); ++c)
    if (per_class[c] == 0)
      throw std::runtime_error(dir + "/" + class_names_[c] + ": no readable images left after skipping " +
                               std::to_string(skipped_.size()) + " bad file(s)");
}

void FolderSource::load(int i, int image_size, float* out) const {
  const RgbImage img = decode_image_file(files_.at(static_cast<size_t>(i)));
  rgb_to_floats(img.pixels.data(), img.height, img.width, image_size, out);
}

std::unique_ptr<SampleSource> open_sample_source(const std::string& path, const std::string& option,
                                                 const SourceOptions& options) {
  struct stat st {};
  if (path.empty()) throw std::invalid_argument(option + " is required (an image folder or an HDF5 dataset)");
  if (::stat(path.c_str(), &st) != 0)
    throw std::runtime_error(option + " " + path + ": no such file or directory");
  if (S_ISDIR(st.st_mode))
    return std::make_unique<FolderSource>(path, options.on_bad_image, options.threads, options.log);
  return std::make_unique<H5Source>(path);
}

}  // namespace parafine
