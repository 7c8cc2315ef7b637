// Image-folder samples with bad files decided up front, and the source factory (see
// folder_source.hpp).
#include "parafine/folder_source.hpp"

#include <sys/stat.h>

#include <atomic>
#include <ostream>
#include <stdexcept>
#include <thread>

#include "parafine/image_decode.hpp"

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
  std::vector<std::string> reasons(static_cast<size_t>(n));  // "" = decodes
  std::atomic<int> next{0};
  auto work = [&] {
    for (int i = next++; i < n; i = next++) {
      try {
        decode_image_file(folder.files[static_cast<size_t>(i)]);
      } catch (const std::exception& e) {
        reasons[static_cast<size_t>(i)] = e.what();
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < std::max(1, threads); ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();

  std::vector<int> per_class(class_names_.size(), 0);
  for (int i = 0; i < n; ++i) {
    const std::string& reason = reasons[static_cast<size_t>(i)];
    if (!reason.empty()) {
      if (policy == BadImagePolicy::kFail)
        throw std::runtime_error(reason + " (--on-bad-image fail; use skip to leave such files out)");
      skipped_.push_back({folder.files[static_cast<size_t>(i)], reason});
      continue;
    }
    files_.push_back(folder.files[static_cast<size_t>(i)]);
    labels_.push_back(folder.labels[static_cast<size_t>(i)]);
    ++per_class[static_cast<size_t>(folder.labels[static_cast<size_t>(i)])];
  }
  if (log && !skipped_.empty()) {
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
