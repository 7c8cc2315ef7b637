// A SampleSource that is a subset of another (an index list into it), and Keras's validation
// split of a source's sample indices: what --validation-split does to an HDF5 --train, the
// algorithm of image_dataset_from_directory (validation_split.hpp) applied to indices 0..N-1.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "parafine/data/sample_source.hpp"

namespace parafine {

class SubsetSource : public SampleSource {
 public:
  // Sample k of the subset is sample indices[k] of `whole` (which may be shared by several
  // subsets: its load() is thread-safe). Throws std::out_of_range for an index outside
  // [0, whole->size()).
  SubsetSource(std::shared_ptr<const SampleSource> whole, std::vector<int> indices);

  int size() const override { return static_cast<int>(indices_.size()); }
  int classes() const override { return whole_->classes(); }
  const std::vector<std::string>& class_names() const override { return whole_->class_names(); }
  int label(int i) const override { return whole_->label(index(i)); }
  void load(int i, int image_size, float* out) const override {
    whole_->load(index(i), image_size, out);
  }
  std::string sample_name(int i) const override { return whole_->sample_name(index(i)); }
  std::optional<std::uint64_t> content_hash(int i) const override {
    return whole_->content_hash(index(i));
  }
  std::string identity() const override;  // the whole's, and which subset

  const std::vector<int>& indices() const { return indices_; }

 private:
  int index(int i) const;  // indices_[i], or throws std::out_of_range naming i
  std::shared_ptr<const SampleSource> whole_;
  std::vector<int> indices_;  // [n] into whole_
};

struct IndexSplit {
  std::vector<int> training;    // the first N - int(fraction * N) shuffled indices
  std::vector<int> validation;  // the last int(fraction * N)
};

// Indices 0..n-1 shuffled with np.random.RandomState(seed).shuffle (as Keras shuffles its file
// paths and labels), then num_val = int(fraction * n) of them, the last ones, for validation.
// Throws std::invalid_argument naming --validation-split when fraction is not in (0, 1) or a
// subset would be empty, naming --seed when seed is outside [0, 2**32 - 1] (the same cases as
// keras_validation_split).
IndexSplit keras_index_split(int n, double fraction, std::int64_t seed);

}  // namespace parafine
