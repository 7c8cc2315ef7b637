// Keras's folder listing and validation split (see validation_split.hpp).
#include "parafine/data/validation_split.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <stdexcept>
#include <system_error>

#include "parafine/core/numpy_random_state.hpp"

namespace parafine {

namespace fs = std::filesystem;

namespace {

// fname.lower().endswith(ALLOWLIST_FORMATS) (image_dataset_utils.py), ASCII lower-casing.
bool has_keras_image_extension(const std::string& name) {
  std::string lower = name;
  for (char& c : lower)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  for (const char* ext : {".bmp", ".gif", ".jpeg", ".jpg", ".png"}) {
    const std::string e(ext);
    if (lower.size() >= e.size() && lower.compare(lower.size() - e.size(), e.size(), e) == 0)
      return true;
  }
  return false;
}

// os.path.isdir: follows symlinks, false on any error.
bool is_dir_following(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

// os.walk(class_dir, followlinks=False) as (relative dir, file names) pairs; relative dir "" is
// the class folder itself. os.walk's scandir classes an entry as a directory when is_dir()
// (following symlinks) is true; it descends only into those that are not symlinks.
void walk(const fs::path& root, const std::string& rel,
          std::vector<std::pair<std::string, std::vector<std::string>>>& out) {
  std::vector<std::string> files, subdirs;
  std::error_code ec;
  fs::directory_iterator it(rel.empty() ? root : root / rel, ec), end;
  if (ec) return;  // os.walk ignores unreadable directories
  for (; it != end; it.increment(ec)) {
    if (ec) break;
    const std::string name = it->path().filename().string();
    if (is_dir_following(it->path())) {
      std::error_code lec;
      if (!fs::is_symlink(it->symlink_status(lec))) subdirs.push_back(name);
    } else {
      files.push_back(name);
    }
  }
  out.emplace_back(rel, std::move(files));
  for (const std::string& d : subdirs) walk(root, rel.empty() ? d : rel + "/" + d, out);
}

}  // namespace

KerasFolderIndex keras_index_directory(const std::string& dir) {
  if (!is_dir_following(dir))
    throw std::runtime_error("keras_index_directory: '" + dir + "' is not a directory");
  KerasFolderIndex index;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name[0] != '.' && is_dir_following(it->path())) index.class_names.push_back(name);
  }
  std::sort(index.class_names.begin(), index.class_names.end());
  for (std::size_t c = 0; c < index.class_names.size(); ++c) {
    const std::string& cls = index.class_names[c];
    std::vector<std::pair<std::string, std::vector<std::string>>> dirs;
    walk(fs::path(dir) / cls, "", dirs);
    // sorted(walk, key=root): roots share the class prefix, so the relative paths' byte order.
    std::sort(dirs.begin(), dirs.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto& [rel, names] : dirs) {
      std::sort(names.begin(), names.end());
      for (const std::string& name : names) {
        if (!has_keras_image_extension(name)) continue;
        index.files.push_back(cls + "/" + (rel.empty() ? name : rel + "/" + name));
        index.labels.push_back(static_cast<int>(c));
      }
    }
  }
  return index;
}

void check_keras_split_arguments(double fraction, std::int64_t seed) {
  if (!(fraction > 0.0 && fraction < 1.0))
    throw std::invalid_argument("--validation-split " + std::to_string(fraction) +
                                ": the fraction must be in (0, 1)");
  if (seed < 0 || seed > 0xffffffffLL)
    throw std::invalid_argument("--seed " + std::to_string(seed) +
                                ": --validation-split needs a seed in [0, 2**32 - 1] "
                                "(numpy's RandomState range)");
}

ValidationSplit keras_validation_split(const std::vector<std::string>& files,
                                       const std::vector<int>& labels, double fraction,
                                       std::int64_t seed) {
  check_keras_split_arguments(fraction, seed);
  if (files.size() != labels.size())
    throw std::invalid_argument("keras_validation_split: " + std::to_string(files.size()) +
                                " files but " + std::to_string(labels.size()) + " labels");
  const std::size_t n = files.size();
  // num_val_samples = int(validation_split * len(samples)): a double product, truncated.
  const std::size_t num_val = static_cast<std::size_t>(fraction * static_cast<double>(n));
  const std::size_t num_train = n - num_val;
  if (num_val == 0 || num_train == 0)
    throw std::invalid_argument(
        "--validation-split " + std::to_string(fraction) + " of " + std::to_string(n) +
        " images leaves the " + (num_val == 0 ? "validation" : "training") +
        " subset empty (Keras takes int(fraction * N) = " + std::to_string(num_val) +
        " images for validation)");
  // Keras shuffles paths and labels with two RandomState(seed): the same permutation.
  NumpyRandomState rng(seed);
  const std::vector<std::size_t> perm = rng.shuffled_indices(n);
  ValidationSplit split;
  split.training.reserve(num_train);
  split.validation.reserve(num_val);
  for (std::size_t k = 0; k < n; ++k) {
    LabeledFile f{files[perm[k]], labels[perm[k]]};
    (k < num_train ? split.training : split.validation).push_back(std::move(f));
  }
  return split;
}

}  // namespace parafine
