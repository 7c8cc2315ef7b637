// Keras's validation split of an image folder, file for file: what
// keras.utils.image_dataset_from_directory(dir, validation_split=F, subset="both", seed=S,
// shuffle=True) puts in its training and validation datasets (keras/src/utils/dataset_utils.py:
// index_directory, iter_valid_files, index_subdirectory, get_training_or_validation_split).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace parafine {

// A folder listed as Keras's index_directory(labels="inferred", follow_links=False,
// formats=ALLOWLIST_FORMATS) lists it, before the shuffle.
struct KerasFolderIndex {
  std::vector<std::string> class_names;  // [C] sorted(os.listdir(dir)), directories not "."-led
  std::vector<std::string> files;        // [N] "<class>/<path in class>", Keras's order
  std::vector<int> labels;               // [N] index into class_names
};

// Lists `dir` exactly as Keras does (this differs from scan_image_folder): classes are the
// sub-directories (symlinks to directories count) not starting with '.'; each class is walked
// with os.walk(followlinks=False) -- hidden sub-directories are walked, symlinked ones are not;
// the walk's directories are sorted by path (byte order) and each one's files by name; a file
// counts when its name, lower-cased, ends with .bmp .gif .jpeg .jpg or .png (hidden files,
// FIFOs and dangling symlinks included -- whatever os.walk calls a non-directory); classes are
// concatenated in class order. Throws std::runtime_error naming `dir` when it is not a directory.
KerasFolderIndex keras_index_directory(const std::string& dir);

struct LabeledFile {
  std::string path;  // as given (e.g. "<class>/<path in class>")
  int label;
};

struct ValidationSplit {
  std::vector<LabeledFile> training;    // Keras's order (the shuffled order), first part
  std::vector<LabeledFile> validation;  // the last int(fraction * N) shuffled samples
};

// Keras's own argument checks of a split: fraction in (0, 1) and a seed numpy's RandomState
// takes (0..2**32-1); throws std::invalid_argument naming --validation-split or --seed.
void check_keras_split_arguments(double fraction, std::int64_t seed);

// files/labels [N] in Keras's listing order (keras_index_directory). Shuffles both with
// np.random.RandomState(seed).shuffle, then num_val = int(fraction * N): the first N - num_val go
// to training, the rest to validation. Throws std::invalid_argument naming --validation-split
// when fraction is not in (0, 1) or a subset would be empty, naming --seed when seed is outside
// [0, 2**32 - 1], and when files and labels differ in length. Keras itself (dataset_utils.py
// check_validation_split_arg, image_dataset_utils.py) requires a seed with validation_split and
// shuffle, a fraction in (0, 1), and raises "No training/validation images found" on an empty
// subset: the same cases.
ValidationSplit keras_validation_split(const std::vector<std::string>& files,
                                       const std::vector<int>& labels, double fraction,
                                       std::int64_t seed);

}  // namespace parafine
