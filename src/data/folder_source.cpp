// Image-folder samples with bad files decided up front, and the source factory (see
// folder_source.hpp).
#include "parafine/data/folder_source.hpp"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <ostream>
#include <stdexcept>
#include <utility>

#include "parafine/core/content_hash.hpp"
#include "parafine/core/parallel_for.hpp"
#include "parafine/data/image_decode.hpp"
#include "parafine/dist/comm.hpp"

namespace parafine {

BadImagePolicy parse_bad_image_policy(const std::string& name) {
  if (name == "skip") return BadImagePolicy::kSkip;
  if (name == "fail") return BadImagePolicy::kFail;
  throw std::invalid_argument("--on-bad-image must be 'skip' or 'fail', got '" + name + "'");
}

namespace {

// Which files of a list fail to decode, the same on every rank. Under mpirun each rank
// checks every R-th file (on `threads` threads) and the verdicts are combined, so every rank
// keeps the same list (labels never shift, ranks never disagree). reasons[i] is this rank's
// message for a file it found bad ("" for files it did not check or that decode).
struct DecodeVerdicts {
  std::vector<int> bad;              // [N] 1 = does not decode (found by some rank)
  std::vector<std::string> reasons;  // [N]
};

DecodeVerdicts check_every_file(const std::vector<std::string>& files, int threads) {
  const int n = static_cast<int>(files.size());
  DecodeVerdicts v;
  v.bad.assign(static_cast<size_t>(n), 0);
  v.reasons.resize(static_cast<size_t>(n));
  parallel_for(threads, Comm::rank(), n, Comm::size(), [&](int i) {
    try {
      decode_image_file(files[static_cast<size_t>(i)]);
    } catch (const std::exception& e) {
      v.reasons[static_cast<size_t>(i)] = e.what();
      v.bad[static_cast<size_t>(i)] = 1;
    }
  });
  Comm::allreduce_max(v.bad);
  return v;
}

// The message for bad file i: this rank's, else decode it again here (another rank's verdict).
const std::string& reason_of(const std::vector<std::string>& files, DecodeVerdicts& v, int i) {
  std::string& r = v.reasons[static_cast<size_t>(i)];
  if (r.empty()) {
    try {
      decode_image_file(files[static_cast<size_t>(i)]);
      r = files[static_cast<size_t>(i)] + ": could not be decoded on another rank";
    } catch (const std::exception& e) {
      r = e.what();
    }
  }
  return r;
}

}  // namespace

std::vector<int> FolderSource::keep_decodable(const std::string& what,
                                              const std::vector<std::string>& files,
                                              const std::vector<int>& labels, BadImagePolicy policy,
                                              int threads, std::ostream* log) {
  const int n = static_cast<int>(files.size());
  DecodeVerdicts verdicts = check_every_file(files, threads);
  std::vector<int> per_class(class_names_.size(), 0);
  for (int i = 0; i < n; ++i) {
    const std::string& file = files[static_cast<size_t>(i)];
    if (verdicts.bad[static_cast<size_t>(i)]) {
      if (policy == BadImagePolicy::kFail)
        throw std::runtime_error(reason_of(files, verdicts, i) +
                                 " (--on-bad-image fail; use skip to leave such files out)");
      // The first few reasons are shown, so they are made exact on every rank; later ones may
      // have been found by another rank.
      const std::string& found_here = verdicts.reasons[static_cast<size_t>(i)];
      skipped_.push_back({file, skipped_.size() < 5  ? reason_of(files, verdicts, i)
                                : found_here.empty() ? file + ": found bad by another rank"
                                                     : found_here});
      continue;
    }
    files_.push_back(file);
    labels_.push_back(labels[static_cast<size_t>(i)]);
    ++per_class[static_cast<size_t>(labels[static_cast<size_t>(i)])];
  }
  if (log && Comm::is_root() && !skipped_.empty()) {
    for (std::size_t k = 0; k < skipped_.size() && k < 5; ++k)
      *log << "skipping bad image: " << skipped_[k].reason << "\n";
    *log << what << ": skipped " << skipped_.size() << " bad image(s) of " << n << std::endl;
  }
  return per_class;
}

FolderSource::FolderSource(const std::string& dir, BadImagePolicy policy, int threads,
                           std::ostream* log)
    : FolderSource(dir, scan_image_folder(dir), policy, threads, log) {}

FolderSource::FolderSource(const std::string& dir, ImageFolder folder, BadImagePolicy policy,
                           int threads, std::ostream* log)
    : origin_(dir) {
  class_names_ = std::move(folder.class_names);
  ignored_ = std::move(folder.ignored);
  const std::vector<int> per_class =
      keep_decodable(dir, folder.files, folder.labels, policy, threads, log);
  for (std::size_t c = 0; c < per_class.size(); ++c)
    if (per_class[c] == 0)
      throw std::runtime_error(dir + "/" + class_names_[c] +
                               ": no readable images left after skipping " +
                               std::to_string(skipped_.size()) + " bad file(s)");
}

FolderSource::FolderSource(const std::string& what, const std::vector<std::string>& files,
                           const std::vector<int>& labels, std::vector<std::string> class_names,
                           BadImagePolicy policy, int threads, std::ostream* log)
    : origin_(what), class_names_(std::move(class_names)) {
  if (files.size() != labels.size())
    throw std::invalid_argument(what + ": " + std::to_string(files.size()) + " files but " +
                                std::to_string(labels.size()) + " labels");
  for (std::size_t i = 0; i < labels.size(); ++i)
    if (labels[i] < 0 || labels[i] >= static_cast<int>(class_names_.size()))
      throw std::invalid_argument(what + ": label " + std::to_string(labels[i]) + " of " +
                                  files[i] + " is outside the " +
                                  std::to_string(class_names_.size()) + " classes");
  keep_decodable(what, files, labels, policy, threads, log);
  if (files_.empty())
    throw std::runtime_error(what + ": no readable images left after skipping " +
                             std::to_string(skipped_.size()) + " bad file(s)");
}

std::optional<std::uint64_t> FolderSource::content_hash(int i) const {
  const std::string& path = files_.at(static_cast<size_t>(i));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open it to hash its bytes");
  ContentHasher h;
  // The class folder and file name, not the path as spelled (data/ and ./data/ are one folder).
  const std::filesystem::path p(path);
  h.update((p.parent_path().filename() / p.filename()).string());
  std::vector<char> chunk(1 << 16);
  while (in) {
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    h.update(chunk.data(), static_cast<std::size_t>(in.gcount()));
  }
  if (in.bad()) throw std::runtime_error(path + ": cannot read it to hash its bytes");
  return h.digest();
}

std::string FolderSource::identity() const {
  std::error_code ec;
  const bool dir = std::filesystem::is_directory(origin_, ec);  // else a list's description
  const std::filesystem::path absolute = std::filesystem::absolute(origin_, ec);
  return "image folder " + (!dir || ec ? origin_ : absolute.lexically_normal().string()) + " (" +
         std::to_string(files_.size()) + " files)";
}

void FolderSource::load(int i, int image_size, float* out) const {
  const RgbImage img = decode_image_file(files_.at(static_cast<size_t>(i)));
  rgb_to_floats(img.pixels.data(), img.height, img.width, image_size, out);
}

std::unique_ptr<SampleSource> open_sample_source(const std::string& path, const std::string& option,
                                                 const SourceOptions& options) {
  struct stat st {};
  if (path.empty())
    throw std::invalid_argument(option + " is required (an image folder or an HDF5 dataset)");
  if (::stat(path.c_str(), &st) != 0)
    throw std::runtime_error(option + " " + path + ": no such file or directory");
  if (S_ISDIR(st.st_mode))
    return std::make_unique<FolderSource>(path, options.on_bad_image, options.threads, options.log);
  if (!S_ISREG(st.st_mode))  // a FIFO or device: opening it as HDF5 would block or never end
    throw std::runtime_error(option + " " + path +
                             ": not a regular file or a directory (give an image folder or an "
                             "HDF5 dataset)");
  return std::make_unique<H5Source>(path);
}

}  // namespace parafine
