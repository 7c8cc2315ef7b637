// Listing an image folder (DESIGN.md §4): one sub-folder per class, classes sorted by name give
// the label indices, as keras.utils.image_dataset_from_directory(labels='inferred') does. Only
// names and file types are examined here; decoding is image_decode.hpp's job.
#pragma once

#include <string>
#include <vector>

namespace parafine {

struct ImageFolder {
  std::vector<std::string> class_names;  // [C] sorted in byte order (Python's sorted())
  std::vector<std::string> files;        // [N] paths, "<dir>/<class>/<relative path>"
  std::vector<int> labels;               // [N] index into class_names; non-decreasing
  std::vector<std::string> ignored;      // paths not used: other extensions, top-level files
};

// Scans `dir` the way Keras' index_directory does:
// - every non-hidden sub-directory of `dir` is a class (symlinks to directories count); files
//   directly in `dir` are ignored (listed in `ignored`);
// - each class folder is walked recursively; directories are visited in byte order of their path
//   and the files of each directory in byte order of their name (Keras sorts os.walk by root,
//   then the file names), so "a.png" < "a/x.png" < "a b/y.png". Symlinked sub-directories inside
//   a class are not followed (no cycles) and are listed in `ignored`;
// - files accepted by has_image_extension (.jpg .jpeg .png, any case) are samples; everything
//   else (including .bmp/.gif, which Keras would take but parafine cannot decode) is `ignored`;
// - only regular files (or symlinks to them) can be samples: a FIFO, a device (e.g. a symlink to
//   /dev/zero) or a socket is `ignored` whatever its name, so nothing blocks or reads forever;
//   a dangling symlink with an image name stays a sample and fails to decode (reported);
// - names starting with '.' (.DS_Store, .ipynb_checkpoints, ...) are skipped silently.
// Throws std::runtime_error naming the path and the fix when `dir` is missing or not a directory,
// has no class sub-folders (e.g. a folder of images), when no class holds an image, or when a
// class folder holds none (named).
ImageFolder scan_image_folder(const std::string& dir);

}  // namespace parafine
