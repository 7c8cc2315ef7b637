#!/usr/bin/env python3
"""References for parafine's NumpyRandomState and Keras validation split (issue 15).

  keras_validation_split.py numpy SEED [N ...]
      numpy's own RandomState(SEED): prints "key <pos> <624 words>" (get_state()), then
      "raw <1300 first 32-bit outputs>" (enough to cross a state refill), then for each N
      "shuffle N <RandomState(SEED).shuffle(list(range(N)))>", then "interval MAX <50 draws>" of
      random_interval (64-bit path included) from a fresh RandomState(SEED) per MAX.
  keras_validation_split.py split DIR FRACTION SEED
      what keras.utils.image_dataset_from_directory(DIR, validation_split=FRACTION,
      subset="both", seed=SEED, shuffle=True) puts in each subset: lines
      "train<TAB>label<TAB>relative path" then "val<TAB>...", in Keras's order, paths relative
      to DIR. Written from keras/src/utils/dataset_utils.py and image_dataset_utils.py (Keras 3,
      keras-team/keras HEAD); Keras itself is not imported (not installed here).
"""
import os
import sys

import numpy as np

# keras/src/utils/image_dataset_utils.py line 25.
ALLOWLIST_FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")


def iter_valid_files(directory, follow_links, formats):
    # dataset_utils.py iter_valid_files (lines 838-852).
    if not follow_links:
        walk = os.walk(directory)
    else:
        walk = os.walk(directory, followlinks=follow_links)
    for root, _, files in sorted(walk, key=lambda x: x[0]):
        for fname in sorted(files):
            if fname.lower().endswith(formats):
                yield root, fname


def index_subdirectory(directory, class_indices, follow_links, formats):
    # dataset_utils.py index_subdirectory (lines 855-889).
    dirname = os.path.basename(directory)
    labels, filenames = [], []
    for root, fname in iter_valid_files(directory, follow_links, formats):
        labels.append(class_indices[dirname])
        absolute_path = os.path.join(root, fname)
        filenames.append(os.path.join(dirname, os.path.relpath(absolute_path, directory)))
    return filenames, labels


def index_directory(directory, formats, shuffle, seed, follow_links=False):
    # dataset_utils.py index_directory (lines 687-835), labels="inferred", class_names=None.
    subdirs = []
    for subdir in sorted(os.listdir(directory)):
        if os.path.isdir(os.path.join(directory, subdir)):
            if not subdir.startswith("."):
                if subdir.endswith("/"):
                    subdir = subdir[:-1]
                subdirs.append(subdir)
    class_names = subdirs
    class_indices = dict(zip(class_names, range(len(class_names))))
    filenames, labels_list = [], []
    for dirpath in (os.path.join(directory, subdir) for subdir in subdirs):
        partial_filenames, partial_labels = index_subdirectory(
            dirpath, class_indices, follow_links, formats)
        labels_list.append(partial_labels)
        filenames += partial_filenames
    i = 0
    labels = np.zeros((len(filenames),), dtype="int32")
    for partial_labels in labels_list:
        labels[i: i + len(partial_labels)] = partial_labels
        i += len(partial_labels)
    # Paths kept relative to `directory` here (Keras joins them to it; the order is the same).
    file_paths = list(filenames)
    if shuffle:
        rng = np.random.RandomState(seed)
        rng.shuffle(file_paths)
        rng = np.random.RandomState(seed)
        rng.shuffle(labels)
    return file_paths, labels, class_names


def get_training_or_validation_split(samples, labels, validation_split, subset):
    # dataset_utils.py get_training_or_validation_split (lines 892-926).
    num_val_samples = int(validation_split * len(samples))
    num_train_samples = len(samples) - num_val_samples
    if subset == "training":
        return samples[:num_train_samples], labels[:num_train_samples]
    return samples[num_train_samples:], labels[num_train_samples:]


def split_main(directory, fraction, seed):
    # image_dataset_utils.py image_dataset_from_directory, subset="both" (lines 260-300).
    paths, labels, _ = index_directory(directory, ALLOWLIST_FORMATS, True, seed)
    out = sys.stdout
    for name, subset in (("train", "training"), ("val", "validation")):
        p, l = get_training_or_validation_split(paths, labels, fraction, subset)
        for path, label in zip(p, l):
            out.write(f"{name}\t{int(label)}\t{path}\n")


def random_interval_draws(seed, max_value, count):
    """numpy/random/src/distributions/distributions.c random_interval, transliterated, on the
    raw outputs of numpy's own RandomState(seed) bit generator (random_raw = mt19937_next32);
    next_uint64 for MT19937 is (next32 << 32) | next32 (mt19937.h mt19937_next64)."""
    bitgen = np.random.RandomState(seed)._bit_generator
    next32 = lambda: int(bitgen.random_raw())
    mask = max_value
    for shift in (1, 2, 4, 8, 16, 32):
        mask |= mask >> shift
    out = []
    for _ in range(count):
        if max_value == 0:
            out.append(0)
            continue
        while True:
            if max_value <= 0xFFFFFFFF:
                value = next32() & mask
            else:
                hi = next32()
                value = ((hi << 32) | next32()) & mask
            if value <= max_value:
                break
        out.append(value)
    return out


def numpy_main(seed, sizes):
    state = np.random.RandomState(seed).get_state()
    print("key", state[2], " ".join(str(int(k)) for k in state[1]))
    raw = np.random.RandomState(seed).randint(0, 2**32, size=1300, dtype=np.uint64)
    print("raw", " ".join(str(int(r)) for r in raw))
    for n in sizes:
        x = list(range(n))
        np.random.RandomState(seed).shuffle(x)
        print("shuffle", n, " ".join(map(str, x)))
    for max_value in (5, 2**32 - 1, 2**32, 3 * 2**33 + 7, 2**64 - 1):
        draws = random_interval_draws(seed, max_value, 50)
        print("interval", max_value, " ".join(map(str, draws)))


if __name__ == "__main__":
    if sys.argv[1] == "numpy":
        numpy_main(int(sys.argv[2]), [int(n) for n in sys.argv[3:]])
    elif sys.argv[1] == "split":
        split_main(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit("usage: keras_validation_split.py numpy SEED [N ...] | split DIR FRACTION SEED")
