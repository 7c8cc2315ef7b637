// Who stores which sample's cached features, and how the features of one global batch move
// between ranks so each rank gets exactly its usual slice (DESIGN.md §2 and §5). Pure integer
// arithmetic, like data_order.hpp: tests play every rank in one process.
//
// Ownership: sample i is stored by the rank that reads it when the data is NOT shuffled, i.e.
// rank r owns its ShardPlan(shuffle=false) slices of every global batch. So ranks own equal
// shares (within one sample per step), an unshuffled epoch or an evaluation needs no routing at
// all, and a shuffled epoch moves about (R-1)/R of each batch.
// Routing: for global batch g (sample ids in epoch order), rank q's slice is the usual
// rank_slice of g; every sample of it comes from its owner. The sender lists each
// destination's samples in the destination's slice order, so the receiver can place records
// without an index exchange. Data order and per-rank balance are exactly those of an uncached
// run: caching never changes which samples form a batch or which rank computes them.
#pragma once

#include <string>
#include <vector>

namespace parafine {

class FeatureOwnership {
 public:
  // samples N, global batch B, world size R, with the ShardPlan preconditions (N >= R, B >= R);
  // a violation throws std::invalid_argument naming `data_name` ("--train", ...).
  FeatureOwnership(int samples, int batch, int world,
                   const std::string& data_name = "the cached data");

  int samples() const { return static_cast<int>(owner_.size()); }
  int world() const { return world_; }
  int owner(int sample) const { return owner_.at(static_cast<std::size_t>(sample)); }
  // Index of `sample` among its owner's samples (the record number in the owner's store).
  int slot(int sample) const { return slot_.at(static_cast<std::size_t>(sample)); }
  // How many samples rank r owns.
  int owned_count(int rank) const { return owned_count_.at(static_cast<std::size_t>(rank)); }
  // Rank r's samples in unshuffled step order (slot order): [steps][local b], the batches an
  // evaluation or the cache build runs through.
  std::vector<std::vector<int>> owned_batches(int rank) const;

 private:
  int batch_, world_;
  std::vector<int> owner_, slot_;  // [N]
  std::vector<int> owned_count_;   // [R]
};

// How one global batch's records move, seen from one rank.
struct BatchRoute {
  std::vector<std::vector<int>>
      send;                     // [R]: samples this rank owns that rank q needs, in q's slice order
  std::vector<int> source;      // [local b]: owner of each sample of this rank's slice
  std::vector<int> recv_count;  // [R]: records arriving from each rank (0 for this rank itself)
  bool any_remote = false;      // some rank (any, not only this one) needs another's record
};

// `global_batch`: the sample ids of one global batch in epoch order (ShardPlan::global_batch).
BatchRoute route_batch(const FeatureOwnership& ownership, const std::vector<int>& global_batch,
                       int rank);

}  // namespace parafine
