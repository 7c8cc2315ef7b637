// Samples from an image folder (one sub-folder per class, see image_folder.hpp), and the
// factory that opens --train/--val/--input/--data PATH as a folder or an HDF5 dataset.
//
// Bad images are decided once, before any sharding: the constructor decodes every file (on
// `threads` threads) and, with --on-bad-image skip, drops the ones that fail, so labels never
// shift and every rank sees the same sample list; with fail it throws naming the file.
#pragma once

#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "parafine/data/image_folder.hpp"
#include "parafine/data/sample_source.hpp"

namespace parafine {

enum class BadImagePolicy { kSkip, kFail };
BadImagePolicy parse_bad_image_policy(
    const std::string& name);  // "skip" | "fail", else throws naming --on-bad-image

struct BadImage {
  std::string path, reason;
};

class FolderSource : public SampleSource {
 public:
  // Throws std::runtime_error for a folder scan_image_folder rejects, a bad image under
  // kFail (naming it), or when skipping leaves a class (or everything) without images.
  // `log` (may be null) gets the first few skipped files and the total.
  FolderSource(const std::string& dir, BadImagePolicy policy, int threads, std::ostream* log);
  // The same from `dir`'s listing, already made (scan_image_folder(dir)): a caller can look at
  // its class names before any image is decoded.
  FolderSource(const std::string& dir, ImageFolder folder, BadImagePolicy policy, int threads,
               std::ostream* log);
  // An explicit file list, e.g. one subset of Keras's validation split (validation_split.hpp):
  // files [N] paths with labels [N] in [0, C) and class_names [C]. Bad images are decided as
  // above, after the list was made (so the list stays the caller's); a class may have no file
  // (Keras keeps an empty class as a class). `what` names the list in messages ("--train DIR
  // (training subset)"). Throws std::invalid_argument for mismatched lengths or a label
  // outside [0, C), std::runtime_error when no readable file is left.
  FolderSource(const std::string& what, const std::vector<std::string>& files,
               const std::vector<int>& labels, std::vector<std::string> class_names,
               BadImagePolicy policy, int threads, std::ostream* log);

  int size() const override { return static_cast<int>(files_.size()); }
  int classes() const override { return static_cast<int>(class_names_.size()); }
  const std::vector<std::string>& class_names() const override { return class_names_; }
  int label(int i) const override { return labels_.at(static_cast<size_t>(i)); }
  void load(int i, int image_size, float* out) const override;  // decode + bilinear resize
  std::string sample_name(int i) const override { return files_.at(static_cast<size_t>(i)); }
  std::optional<std::uint64_t> content_hash(int i) const override;  // path and file bytes
  std::string identity() const override;

  const std::vector<BadImage>& skipped() const { return skipped_; }
  const std::vector<std::string>& ignored() const { return ignored_; }

 private:
  // Keeps the files of `files` [N] that decode (all, or throws, under kFail) with their labels;
  // logs the skipped ones. Returns how many were kept per class.
  std::vector<int> keep_decodable(const std::string& what, const std::vector<std::string>& files,
                                  const std::vector<int>& labels, BadImagePolicy policy,
                                  int threads, std::ostream* log);

  std::string origin_;  // the folder, or the list's `what`
  std::vector<std::string> class_names_, files_, ignored_;
  std::vector<int> labels_;
  std::vector<BadImage> skipped_;
};

struct SourceOptions {
  BadImagePolicy on_bad_image = BadImagePolicy::kSkip;
  int threads = 2;
  std::ostream* log = nullptr;
};

// A directory opens as a FolderSource, a regular file (or a symlink to one) as an H5Source (HDF5
// dataset); anything else (a FIFO, a device) is refused without being opened. `option` names
// the command-line option in errors ("--train").
std::unique_ptr<SampleSource> open_sample_source(const std::string& path, const std::string& option,
                                                 const SourceOptions& options);

}  // namespace parafine
