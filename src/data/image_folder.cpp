// Image-folder listing with Keras' class and file order; see image_folder.hpp.
#include "parafine/data/image_folder.hpp"

#include <algorithm>
#include <filesystem>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "parafine/data/image_decode.hpp"

namespace parafine {
namespace {

namespace fs = std::filesystem;

bool hidden(const fs::path& p) {
  const std::string name = p.filename().string();
  return !name.empty() && name[0] == '.';
}

[[noreturn]] void fail(const std::string& message) {
  throw std::runtime_error(message);
}

// Non-hidden entries of one directory; iteration errors (permissions, races) name the path.
std::vector<fs::directory_entry> list_dir(const fs::path& dir) {
  std::vector<fs::directory_entry> entries;
  std::error_code ec;
  fs::directory_iterator it(dir, ec), end;
  for (; !ec && it != end; it.increment(ec))
    if (!hidden(it->path())) entries.push_back(*it);
  if (ec) fail(dir.string() + ": cannot list the directory: " + ec.message());
  return entries;
}

bool is_dir(const fs::directory_entry& e) {  // follows symlinks; a dangling link is not a dir
  std::error_code ec;
  return e.is_directory(ec);
}

bool is_symlink(const fs::directory_entry& e) {
  std::error_code ec;
  return e.is_symlink(ec);
}

// True for an entry that exists but is not a regular file after following symlinks: a FIFO, a
// device (a symlink to /dev/zero), a socket. Such entries are never images (reading a FIFO
// blocks, a device may never end). An entry that cannot be stat'ed (a dangling symlink) is not
// special: it stays a candidate, and decoding reports why it cannot be opened.
bool is_special(const fs::directory_entry& e) {
  std::error_code ec;
  const fs::file_status st = e.status(ec);
  return !ec && fs::exists(st) && !fs::is_regular_file(st) && !fs::is_directory(st);
}

// Appends the images below class folder `root` in Keras order; returns how many.
int scan_class(const fs::path& root, int label, ImageFolder& out) {
  // All directories of the tree (not through symlinks), sorted by path like sorted(os.walk(...)).
  std::vector<fs::path> dirs{root};
  for (std::size_t i = 0; i < dirs.size(); ++i)
    for (const auto& e : list_dir(dirs[i]))
      if (is_dir(e) && !is_symlink(e)) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end(),
            [](const fs::path& a, const fs::path& b) { return a.string() < b.string(); });
  int count = 0;
  for (const auto& d : dirs) {
    std::vector<std::pair<std::string, bool>> names;  // (name, is a FIFO/device/socket)
    for (const auto& e : list_dir(d)) {
      if (!is_dir(e))
        names.emplace_back(e.path().filename().string(), is_special(e));
      else if (is_symlink(e))
        out.ignored.push_back(e.path().string());  // symlinked sub-directory: not followed
    }
    std::sort(names.begin(), names.end());
    for (const auto& [name, special] : names) {
      const std::string path = (d / name).string();
      if (!special && has_image_extension(name)) {
        out.files.push_back(path);
        out.labels.push_back(label);
        ++count;
      } else {
        out.ignored.push_back(path);
      }
    }
  }
  return count;
}

}  // namespace

ImageFolder scan_image_folder(const std::string& dir) {
  const fs::path root(dir);
  std::error_code ec;
  const fs::file_status st = fs::status(root, ec);
  if (!fs::exists(st))
    fail(dir + ": no such directory (an image folder needs one sub-folder per class, e.g. " + dir +
         "/cats/*.jpg and " + dir + "/dogs/*.jpg)");
  if (!fs::is_directory(st))
    fail(dir +
         ": not a directory (give an image folder with one sub-folder per class, or an "
         "HDF5 dataset)");

  ImageFolder out;
  int top_level_images = 0;
  for (const auto& e : list_dir(root)) {
    if (is_dir(e)) {
      out.class_names.push_back(e.path().filename().string());
    } else {
      out.ignored.push_back(e.path().string());
      top_level_images += !is_special(e) && has_image_extension(e.path().filename().string());
    }
  }
  std::sort(out.class_names.begin(), out.class_names.end());
  if (out.class_names.empty()) {
    if (top_level_images > 0)
      fail(dir + ": holds " + std::to_string(top_level_images) +
           " images but no class sub-folders; labels come from sub-folder names, so move the "
           "images into one sub-folder per class (" +
           dir + "/<class>/<image>)");
    fail(dir + ": has no class sub-folders (an image folder needs one sub-folder per class, e.g. " +
         dir + "/cats/*.jpg and " + dir + "/dogs/*.jpg)");
  }

  std::vector<int> counts;
  for (std::size_t c = 0; c < out.class_names.size(); ++c)
    counts.push_back(scan_class(root / out.class_names[c], static_cast<int>(c), out));

  if (out.files.empty()) {
    std::string names;
    for (const auto& n : out.class_names) names += (names.empty() ? "" : ", ") + n;
    fail(dir + ": no .jpg/.jpeg/.png images in any of its " +
         std::to_string(out.class_names.size()) + " class folders (" + names + ")");
  }
  for (std::size_t c = 0; c < counts.size(); ++c)
    if (counts[c] == 0)
      fail((root / out.class_names[c]).string() + ": class folder '" + out.class_names[c] +
           "' has no .jpg/.jpeg/.png images; add images or remove the folder (every sub-folder "
           "of " +
           dir + " is a class)");
  return out;
}

}  // namespace parafine
