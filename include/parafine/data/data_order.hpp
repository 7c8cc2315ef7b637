// Data order and sharding (DESIGN.md §2): which samples form global batch k of an epoch, and
// which contiguous slice of it each rank reads. Pure integer arithmetic on (samples N, global
// batch B, world size R, rank r, shuffle, seed, epoch): rank and world size are plain integers
// here, so tests can play every rank in one process and MPI stays out of this file.
//
// The contract:
// - An epoch is steps_per_epoch(N, B) = ceil(N/B) global batches. Batch k holds positions
//   [kB, min(N, kB+B)) of epoch_order(N, shuffle, seed, epoch): with shuffle false that is
//   samples kB..kB+B-1 in file order; the last batch is partial (b = N - kB), never dropped.
// - With shuffling the order is a permutation that depends only on (seed, epoch), never on R,
//   the rank or thread timing, so the trajectory does not depend on the number of ranks.
// - Rank r reads slice [r*b/R, (r+1)*b/R) of a batch of b samples (integer division): slices
//   are contiguous, disjoint, in rank order, and differ in size by at most one. Concatenating
//   the slices of ranks 0..R-1 gives the global batch.
// - Every rank runs the same number of steps. B >= R is required, so each rank has at least one
//   sample in every full batch; only the last, partial batch can leave a rank with 0 samples
//   (when b < R). Such a rank MUST still take part in that step: it joins every collective
//   (sync-BN statistics with count 0, the gradient allreduce with a zero gradient, the
//   loss/accuracy sums with count 0) and applies the same Adam step. The gradient is divided
//   by the global count b, never by a local count, so an empty rank contributes nothing.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace parafine {

// Sample order of one epoch: identity without shuffling, else a Fisher-Yates permutation whose
// random stream is seeded from (seed, epoch_index) only. [samples] sample indices.
std::vector<int> epoch_order(int samples, bool shuffle, std::uint64_t seed, int epoch_index);

// Number of global batches in an epoch: ceil(samples / batch), the last one possibly partial.
// Throws std::invalid_argument for samples < 0 or batch < 1.
int steps_per_epoch(int samples, int batch);

// A half-open range [begin, end) of positions (in the epoch order, or inside a batch).
struct Range {
  int begin = 0, end = 0;
  int size() const { return end - begin; }
  bool operator==(const Range& o) const { return begin == o.begin && end == o.end; }
};

// Rank r's share of a batch of b samples when split over R ranks: [r*b/R, (r+1)*b/R).
Range rank_slice(int batch_samples, int world, int rank);

// The sharding of one data set for one rank. The constructor validates and throws
// std::invalid_argument with a message naming the option and what to do:
//   N == 0, N < R, B < 1, B < R, R < 1, rank outside [0, R).
// `data_name` names the data set in those messages ("--train", "--val", ...).
class ShardPlan {
 public:
  ShardPlan(int samples, int batch, int world, int rank, bool shuffle, std::uint64_t seed,
            const std::string& data_name = "the dataset");

  int samples() const { return samples_; }
  int batch() const { return batch_; }
  int world() const { return world_; }
  int rank() const { return rank_; }
  bool shuffle() const { return shuffle_; }
  std::uint64_t seed() const { return seed_; }

  // Same for every rank: ceil(N/B).
  int steps() const { return steps_; }
  // Positions of global batch `step` in the epoch order: [step*B, min(N, step*B+B)).
  Range global_range(int step) const;
  // This rank's positions of global batch `step` (a sub-range of global_range(step)); may be
  // empty in the last batch only.
  Range local_range(int step) const;

  // The epoch's sample order (see epoch_order); [N].
  std::vector<int> order(int epoch) const;
  // Sample indices of global batch `step` of `epoch`; [b].
  std::vector<int> global_batch(int epoch, int step) const;
  // This rank's sample indices for every step of `epoch`: [steps][local b], local b >= 0.
  // This is what BatchPrefetcher consumes.
  std::vector<std::vector<int>> local_batches(int epoch) const;
  // Same, slicing a precomputed order ([N], e.g. shared by the train loop).
  std::vector<std::vector<int>> local_batches(const std::vector<int>& order) const;

 private:
  int samples_, batch_, world_, rank_;
  bool shuffle_;
  std::uint64_t seed_;
  int steps_;
};

}  // namespace parafine
