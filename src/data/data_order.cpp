// Epoch order and per-rank sharding of global batches (see data_order.hpp).
#include "parafine/data/data_order.hpp"

#include <algorithm>
#include <stdexcept>

#include "parafine/core/rng.hpp"

namespace parafine {

std::vector<int> epoch_order(int samples, bool shuffle, std::uint64_t seed, int epoch_index) {
  std::vector<int> order(static_cast<size_t>(samples));
  for (int i = 0; i < samples; ++i) order[static_cast<size_t>(i)] = i;
  if (!shuffle) return order;
  SplitMix64 rng(hash_string("epoch" + std::to_string(epoch_index), seed));
  for (int i = samples - 1; i > 0; --i) {  // Fisher-Yates
    const int j = static_cast<int>(rng.next() % static_cast<std::uint64_t>(i + 1));
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  return order;
}

int steps_per_epoch(int samples, int batch) {
  if (batch < 1)
    throw std::invalid_argument("--batch-size must be at least 1, got " + std::to_string(batch));
  if (samples < 0)
    throw std::invalid_argument("sample count must be >= 0, got " + std::to_string(samples));
  return samples / batch + (samples % batch != 0 ? 1 : 0);
}

Range rank_slice(int batch_samples, int world, int rank) {
  if (world < 1 || rank < 0 || rank >= world)
    throw std::invalid_argument("rank " + std::to_string(rank) + " is outside [0, " +
                                std::to_string(world) + ")");
  // 64-bit products: batch_samples * world may exceed int for huge batches.
  const long long b = batch_samples, R = world, r = rank;
  return Range{static_cast<int>(r * b / R), static_cast<int>((r + 1) * b / R)};
}

ShardPlan::ShardPlan(int samples, int batch, int world, int rank, bool shuffle, std::uint64_t seed,
                     const std::string& data_name)
    : samples_(samples), batch_(batch), world_(world), rank_(rank), shuffle_(shuffle), seed_(seed) {
  const std::string N = std::to_string(samples), B = std::to_string(batch),
                    R = std::to_string(world);
  if (world < 1) throw std::invalid_argument("the number of ranks must be at least 1, got " + R);
  if (rank < 0 || rank >= world)
    throw std::invalid_argument("rank " + std::to_string(rank) + " is outside [0, " + R + ")");
  if (batch < 1) throw std::invalid_argument("--batch-size must be at least 1, got " + B);
  if (samples < 0) throw std::invalid_argument(data_name + ": sample count must be >= 0, got " + N);
  if (samples == 0)
    throw std::invalid_argument(data_name +
                                " has no samples (N = 0): check the path and that it holds images");
  if (samples < world)
    throw std::invalid_argument(
        data_name + ": fewer samples (" + N + ") than ranks (" + R +
        "): every rank needs at least one sample; lower the rank count to at most " + N +
        " or add samples");
  if (batch < world)
    throw std::invalid_argument(
        "--batch-size " + B + " is smaller than the number of ranks (" + R +
        "): --batch-size is the global batch, split over the ranks, and every rank "
        "needs at least one sample of it; use --batch-size >= " +
        R + " or fewer ranks");
  steps_ = steps_per_epoch(samples, batch);
}

Range ShardPlan::global_range(int step) const {
  if (step < 0 || step >= steps_)
    throw std::out_of_range("step " + std::to_string(step) + " is outside the " +
                            std::to_string(steps_) + " steps of an epoch");
  const int begin = static_cast<int>(static_cast<long long>(step) * batch_);
  return Range{begin, std::min(samples_, begin + batch_)};
}

Range ShardPlan::local_range(int step) const {
  const Range g = global_range(step);
  const Range s = rank_slice(g.size(), world_, rank_);
  return Range{g.begin + s.begin, g.begin + s.end};
}

std::vector<int> ShardPlan::order(int epoch) const {
  return epoch_order(samples_, shuffle_, seed_, epoch);
}

std::vector<int> ShardPlan::global_batch(int epoch, int step) const {
  const std::vector<int> o = order(epoch);
  const Range g = global_range(step);
  return std::vector<int>(o.begin() + g.begin, o.begin() + g.end);
}

std::vector<std::vector<int>> ShardPlan::local_batches(int epoch) const {
  return local_batches(order(epoch));
}

std::vector<std::vector<int>> ShardPlan::local_batches(const std::vector<int>& order) const {
  if (static_cast<int>(order.size()) != samples_)
    throw std::invalid_argument("an epoch order of " + std::to_string(order.size()) +
                                " samples for a plan of " + std::to_string(samples_));
  std::vector<std::vector<int>> out(static_cast<size_t>(steps_));
  for (int k = 0; k < steps_; ++k) {
    const Range l = local_range(k);
    out[static_cast<size_t>(k)].assign(order.begin() + l.begin, order.begin() + l.end);
  }
  return out;
}

}  // namespace parafine
