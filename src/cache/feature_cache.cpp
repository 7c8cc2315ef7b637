// One data set's feature cache: building it and reading routed batches (see feature_cache.hpp).
#include "parafine/cache/feature_cache.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <iomanip>
#include <ostream>
#include <sstream>
#include <stdexcept>

#include "parafine/data/data_order.hpp"
#include "parafine/dist/comm.hpp"

namespace parafine {

DatasetCache::DatasetCache(const Model& model, const SampleSource& data, int batch,
                           const std::vector<int>& nodes, const std::string& name)
    : data_(&data), name_(name), ownership_(data.size(), batch, Comm::size(), name), nodes_(nodes) {
  for (int node : nodes_) shapes_.push_back(model.output_shape(node, 1));
  stores_.resize(nodes_.size());
  bfloat16_ = model.precision() == Precision::kMixedBfloat16;
}

std::size_t DatasetCache::index_of(int node) const {
  const auto it = std::find(nodes_.begin(), nodes_.end(), node);
  if (it == nodes_.end())
    throw std::logic_error("DatasetCache: node " + std::to_string(node) + " is not cached");
  return static_cast<std::size_t>(it - nodes_.begin());
}

void DatasetCache::allocate(int node, CacheStorage& storage) {
  const std::size_t k = index_of(node);
  stores_[k] = std::make_unique<FeatureStore>(storage, ownership_.owned_count(Comm::rank()),
                                              shapes_[k].numel(), bfloat16_);
}

const FeatureStore& DatasetCache::store(int node) const {
  const std::size_t k = index_of(node);
  if (!stores_[k])
    throw std::logic_error("DatasetCache::store: node " + std::to_string(node) + " not allocated");
  return *stores_[k];
}

FeatureStore& DatasetCache::store(int node) {
  return const_cast<FeatureStore&>(static_cast<const DatasetCache&>(*this).store(node));
}

Shape DatasetCache::sample_shape(int node) const {
  return shapes_[index_of(node)];
}

std::size_t DatasetCache::bytes_per_sample() const {
  std::size_t n = 0;
  for (const Shape& s : shapes_) n += s.numel() * (bfloat16_ ? 2 : sizeof(float));
  return n;
}

namespace {

// Makes forward keep the outputs of `nodes` while it lives; restores the caller's choice after.
class KeepOutputs {
 public:
  KeepOutputs(Model& model, const std::vector<int>& nodes) : model_(model), nodes_(nodes) {
    for (int node : nodes_) {
      before_.push_back(model_.keeps_output(node));
      model_.keep_output(node, true);
    }
  }
  ~KeepOutputs() {
    for (std::size_t k = 0; k < nodes_.size(); ++k) model_.keep_output(nodes_[k], before_[k]);
  }
  KeepOutputs(const KeepOutputs&) = delete;
  KeepOutputs& operator=(const KeepOutputs&) = delete;

 private:
  Model& model_;
  std::vector<int> nodes_;
  std::vector<bool> before_;
};

}  // namespace

void DatasetCache::build(Model& model, const PrefetchConfig& prefetch, std::ostream* progress) {
  std::vector<std::vector<int>> batches = ownership_.owned_batches(Comm::rank());
  batches.erase(
      std::remove_if(batches.begin(), batches.end(), [](const auto& b) { return b.empty(); }),
      batches.end());
  PrefetchConfig p = prefetch;
  p.augment = AugmentSpec{};
  BatchPrefetcher loader(*data_, batches, p);
  const KeepOutputs keep(model, nodes_);
  const int total = ownership_.owned_count(Comm::rank());
  int done = 0, reported = 0;
  Batch batch;
  while (loader.next(batch)) {
    model.forward(batch.images, false);
    for (std::size_t k = 0; k < nodes_.size(); ++k) {
      if (!stores_[k]) throw std::logic_error("DatasetCache::build before allocate");
      const Tensor& out = model.output(nodes_[k]);  // [b, ...]
      const std::size_t per = shapes_[k].numel();
      for (int j = 0; j < batch.size(); ++j)
        stores_[k]->put(ownership_.slot(batch.indices[static_cast<std::size_t>(j)]),
                        out.data() + static_cast<std::size_t>(j) * per);
    }
    done += batch.size();
    if (progress && (done - reported) * 4 >= total && done < total) {
      *progress << "  caching " << name_ << ": " << done << "/" << total << " samples (rank 0)"
                << std::endl;
      reported = done;
    }
  }
}

CachedBatches::CachedBatches(const DatasetCache& cache, int node, int batch, std::vector<int> order,
                             int first_step)
    : cache_(cache),
      store_(cache.store(node)),
      sample_shape_(cache.sample_shape(node)),
      batch_(batch),
      step_(first_step),
      first_step_(first_step),
      order_(std::move(order)) {
  if (static_cast<int>(order_.size()) != cache.ownership().samples())
    throw std::invalid_argument("CachedBatches: an order of " + std::to_string(order_.size()) +
                                " samples for " + std::to_string(cache.ownership().samples()) +
                                " cached samples");
}

bool CachedBatches::next(Batch& out) {
  const int n = static_cast<int>(order_.size());
  const long long begin = static_cast<long long>(step_) * batch_;
  if (begin >= n) return false;
  const int end = static_cast<int>(std::min<long long>(n, begin + batch_));
  const std::vector<int> global(order_.begin() + begin, order_.begin() + end);  // [b] sample ids
  const FeatureOwnership& own = cache_.ownership();
  const int rank = Comm::rank(), world = Comm::size();
  const BatchRoute route = route_batch(own, global, rank);
  const std::size_t rf = store_.record_floats();

  // Records other ranks need from this one (in their slice order), and where the records
  // from each rank start in recv_.
  std::vector<int> send_counts(static_cast<std::size_t>(world)),
      recv_offset(static_cast<std::size_t>(world));
  std::size_t sends = 0, recvs = 0;
  for (int q = 0; q < world; ++q) {
    send_counts[static_cast<std::size_t>(q)] =
        static_cast<int>(route.send[static_cast<std::size_t>(q)].size());
    recv_offset[static_cast<std::size_t>(q)] = static_cast<int>(recvs);
    sends += route.send[static_cast<std::size_t>(q)].size();
    recvs += static_cast<std::size_t>(route.recv_count[static_cast<std::size_t>(q)]);
  }
  if (route.any_remote) {
    send_.resize(sends * rf);
    recv_.resize(recvs * rf);
    std::size_t k = 0;
    for (const auto& to_q : route.send)
      for (int sample : to_q) store_.get(own.slot(sample), send_.data() + (k++) * rf);
    const auto t = std::chrono::steady_clock::now();
    Comm::alltoall_records(send_.data(), send_counts, recv_.data(), route.recv_count, rf);
    exchange_seconds_ +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  }

  const Range mine = rank_slice(end - static_cast<int>(begin), world, rank);
  Shape shape = sample_shape_;
  shape.set(0, mine.size());
  out.images.resize(shape);
  out.labels.resize(static_cast<std::size_t>(mine.size()));
  out.indices.resize(static_cast<std::size_t>(mine.size()));
  for (int j = 0; j < mine.size(); ++j) {
    const int sample = global[static_cast<std::size_t>(mine.begin + j)];
    const int from = route.source[static_cast<std::size_t>(j)];
    float* dst = out.images.data() + static_cast<std::size_t>(j) * rf;
    if (from == rank) {
      store_.get(own.slot(sample), dst);
    } else {  // records from one sender arrive in this rank's slice order
      const int k = recv_offset[static_cast<std::size_t>(from)]++;
      std::memcpy(dst, recv_.data() + static_cast<std::size_t>(k) * rf, rf * sizeof(float));
    }
    out.labels[static_cast<std::size_t>(j)] = cache_.data().label(sample);
    out.indices[static_cast<std::size_t>(j)] = sample;
  }
  out.step = step_ - first_step_;
  ++step_;
  return true;
}

}  // namespace parafine
