// Feature ownership and per-batch routing (see feature_routing.hpp).
#include "parafine/cache/feature_routing.hpp"

#include <stdexcept>
#include <string>

#include "parafine/data/data_order.hpp"

namespace parafine {

FeatureOwnership::FeatureOwnership(int samples, int batch, int world, const std::string& data_name)
    : batch_(batch),
      world_(world),
      owned_count_(static_cast<std::size_t>(world > 0 ? world : 0), 0) {
  const ShardPlan unshuffled(samples, batch, world, 0, false, 0, data_name);  // validates
  owner_.assign(static_cast<std::size_t>(samples), -1);
  slot_.assign(static_cast<std::size_t>(samples), -1);
  for (int step = 0; step < unshuffled.steps(); ++step) {
    const Range g = unshuffled.global_range(step);
    for (int r = 0; r < world; ++r) {
      const Range s = rank_slice(g.size(), world, r);
      for (int i = g.begin + s.begin; i < g.begin + s.end; ++i) {
        owner_[static_cast<std::size_t>(i)] = r;
        slot_[static_cast<std::size_t>(i)] = owned_count_[static_cast<std::size_t>(r)]++;
      }
    }
  }
}

std::vector<std::vector<int>> FeatureOwnership::owned_batches(int rank) const {
  return ShardPlan(samples(), batch_, world_, rank, false, 0, "the cached data").local_batches(0);
}

BatchRoute route_batch(const FeatureOwnership& own, const std::vector<int>& global_batch,
                       int rank) {
  const int world = own.world();
  const int b = static_cast<int>(global_batch.size());
  BatchRoute route;
  route.send.resize(static_cast<std::size_t>(world));
  route.recv_count.assign(static_cast<std::size_t>(world), 0);
  for (int q = 0; q < world; ++q) {
    const Range s = rank_slice(b, world, q);
    for (int j = s.begin; j < s.end; ++j) {
      const int sample = global_batch[static_cast<std::size_t>(j)];
      if (sample < 0 || sample >= own.samples())
        throw std::out_of_range("route_batch: sample " + std::to_string(sample) +
                                " outside the cached data");
      const int from = own.owner(sample);
      if (from != q) route.any_remote = true;
      if (q == rank) {
        route.source.push_back(from);
        if (from != rank) ++route.recv_count[static_cast<std::size_t>(from)];
      } else if (from == rank) {
        route.send[static_cast<std::size_t>(q)].push_back(sample);
      }
    }
  }
  return route;
}

}  // namespace parafine
