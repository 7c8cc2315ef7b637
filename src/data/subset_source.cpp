// A subset of a sample source, and Keras's validation split of sample indices (see
// subset_source.hpp).
#include "parafine/data/subset_source.hpp"

#include <stdexcept>
#include <utility>

#include "parafine/core/content_hash.hpp"
#include "parafine/core/numpy_random_state.hpp"
#include "parafine/data/validation_split.hpp"

namespace parafine {

SubsetSource::SubsetSource(std::shared_ptr<const SampleSource> whole, std::vector<int> indices)
    : whole_(std::move(whole)), indices_(std::move(indices)) {
  if (!whole_) throw std::invalid_argument("SubsetSource: no source to take a subset of");
  for (const int i : indices_)
    if (i < 0 || i >= whole_->size())
      throw std::out_of_range("subset: sample " + std::to_string(i) + " is outside the " +
                              std::to_string(whole_->size()) + " samples of the whole source");
}

int SubsetSource::index(int i) const {
  if (i < 0 || i >= size())
    throw std::out_of_range("subset: sample " + std::to_string(i) + " is outside its " +
                            std::to_string(size()) + " samples");
  return indices_[static_cast<std::size_t>(i)];
}

std::string SubsetSource::identity() const {
  const std::uint64_t which =
      parafine::content_hash(indices_.data(), indices_.size() * sizeof(int));
  return whole_->identity() + " (subset of " + std::to_string(indices_.size()) + " samples, " +
         hex64(which) + ")";
}

IndexSplit keras_index_split(int n, double fraction, std::int64_t seed) {
  check_keras_split_arguments(fraction, seed);
  if (n < 0) throw std::invalid_argument("keras_index_split: " + std::to_string(n) + " samples");
  // num_val_samples = int(validation_split * len(samples)): a double product, truncated.
  const int num_val = static_cast<int>(fraction * static_cast<double>(n));
  const int num_train = n - num_val;
  if (num_val == 0 || num_train == 0)
    throw std::invalid_argument(
        "--validation-split " + std::to_string(fraction) + " of " + std::to_string(n) +
        " samples leaves the " + (num_val == 0 ? "validation" : "training") +
        " subset empty (Keras takes int(fraction * N) = " + std::to_string(num_val) +
        " samples for validation)");
  NumpyRandomState rng(seed);
  const std::vector<std::size_t> perm = rng.shuffled_indices(static_cast<std::size_t>(n));
  IndexSplit split;
  for (int k = 0; k < n; ++k)
    (k < num_train ? split.training : split.validation)
        .push_back(static_cast<int>(perm[static_cast<std::size_t>(k)]));
  return split;
}

}  // namespace parafine
