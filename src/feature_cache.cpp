// The frozen-prefix feature cache: what to cache, building it, routed cached batches (see
// feature_cache.hpp).
#include "parafine/feature_cache.hpp"

#include <algorithm>
#include <cstring>
#include <iomanip>
#include <ostream>
#include <sstream>
#include <stdexcept>

#include "parafine/comm.hpp"
#include "parafine/data_order.hpp"

namespace parafine {

namespace {

std::string node_text(const Model& model, int node) {
  Shape s = model.output_shape(node, 1);
  s.dims.erase(s.dims.begin());
  return model.layer(node).name() + " " + s.str();
}

}  // namespace

CacheMode parse_cache_mode(const std::string& name) {
  if (name == "auto") return CacheMode::kAuto;
  if (name == "off") return CacheMode::kOff;
  throw std::invalid_argument("--cache must be auto or off, got '" + name + "'");
}

int restart_node(const Model& model, int first_trainable) {
  for (int b = std::min(first_trainable, model.size()) - 1; b > 0; --b) {
    bool boundary = true;
    for (int j = b + 1; j < model.size() && boundary; ++j)
      for (int k : model.inputs_of(j)) boundary = boundary && k >= b;
    if (boundary) return b;
  }
  return 0;
}

double forward_flops_through(const Model& model, int node) {
  double flops = 0;
  for (const ParamRef& r : model.param_refs())
    if (r.node <= node && r.optimised && r.name == "kernel")
      flops += 2.0 * static_cast<double>(r.shape.numel()) * static_cast<double>(model.output_shape(r.node, 1).rows());
  return flops;
}

std::vector<int> CachePlan::nodes() const {
  std::vector<int> n;
  for (int node : {phase1_node, phase2_node})
    if (node >= 0 && std::find(n.begin(), n.end(), node) == n.end()) n.push_back(node);
  return n;
}

CachePlan plan_feature_cache(const Model& model, int phase2_first_trainable, bool need_phase1, bool need_phase2,
                             const CacheOptions& options, Augment augment) {
  CachePlan p;
  if (options.mode == CacheMode::kOff) {
    p.summary = "feature cache: off (--cache off): the frozen base runs for every sample in every epoch";
    return p;
  }
  if (augment != Augment::kNone) {
    p.summary = "feature cache: off: --augment changes the frozen base's input every epoch, so its output "
                "cannot be reused";
    return p;
  }
  if (need_phase1) p.phase1_node = restart_node(model, model.first_trainable_node());
  std::string phase2_reason;
  if (need_phase2) {
    const int cut = restart_node(model, phase2_first_trainable);
    const double share = forward_flops_through(model, cut) / forward_flops_through(model, model.size() - 1);
    std::ostringstream why;
    why << std::fixed << std::setprecision(0) << 100 * share << "% of the forward's FLOPs";
    if (share <= 0) {
      phase2_reason = "phase 2 trains every base layer with weights: there is no frozen computation to cache";
    } else if (share >= 0.10) {
      p.phase2_node = cut;
      phase2_reason = " (its frozen prefix is " + why.str() + ")";
    } else {
      phase2_reason = "phase 2's frozen prefix (up to " + model.layer(cut).name() + ") is only " + why.str() +
                      ", too little to be worth caching";
    }
  }
  if (p.phase1_node >= 0 && p.phase2_node >= 0) {
    p.summary = "feature cache: on: phase 1 trains from " + node_text(model, p.phase1_node) + ", phase 2 from " +
                node_text(model, p.phase2_node) + phase2_reason;
  } else if (p.phase1_node >= 0) {
    p.summary = "feature cache: phase 1 only (trains from " + node_text(model, p.phase1_node) + ")" +
                (need_phase2 ? ": " + phase2_reason : "");
  } else if (p.phase2_node >= 0) {
    p.summary = "feature cache: on: phase 2 trains from " + node_text(model, p.phase2_node) + phase2_reason;
  } else {
    p.summary = "feature cache: off: " + (need_phase2 ? phase2_reason : std::string("nothing left to train"));
  }
  return p;
}

DatasetCache::DatasetCache(const Model& model, const SampleSource& data, int batch, const std::vector<int>& nodes)
    : data_(&data), ownership_(data.size(), batch, Comm::size()), nodes_(nodes) {
  for (int node : nodes_) shapes_.push_back(model.output_shape(node, 1));
  stores_.resize(nodes_.size());
}

void DatasetCache::allocate(int node, CacheStorage& storage) {
  const auto it = std::find(nodes_.begin(), nodes_.end(), node);
  if (it == nodes_.end()) throw std::logic_error("DatasetCache::allocate: node not cached");
  const std::size_t k = static_cast<std::size_t>(it - nodes_.begin());
  stores_[k] = std::make_unique<FeatureStore>(storage, ownership_.owned_count(Comm::rank()), shapes_[k].numel());
}

const FeatureStore& DatasetCache::store(int node) const {
  const auto it = std::find(nodes_.begin(), nodes_.end(), node);
  if (it == nodes_.end() || !stores_[static_cast<std::size_t>(it - nodes_.begin())])
    throw std::logic_error("DatasetCache::store: node not cached");
  return *stores_[static_cast<std::size_t>(it - nodes_.begin())];
}

Shape DatasetCache::sample_shape(int node) const {
  const auto it = std::find(nodes_.begin(), nodes_.end(), node);
  if (it == nodes_.end()) throw std::logic_error("DatasetCache::sample_shape: node not cached");
  return shapes_[static_cast<std::size_t>(it - nodes_.begin())];
}

std::size_t DatasetCache::bytes_per_sample() const {
  std::size_t n = 0;
  for (const Shape& s : shapes_) n += s.numel() * sizeof(float);
  return n;
}

void DatasetCache::build(Model& model, const PrefetchConfig& prefetch, std::ostream* progress,
                         const std::string& name) {
  std::vector<std::vector<int>> batches = ownership_.owned_batches(Comm::rank());
  batches.erase(std::remove_if(batches.begin(), batches.end(), [](const auto& b) { return b.empty(); }),
                batches.end());
  PrefetchConfig p = prefetch;
  p.augment = Augment::kNone;
  BatchPrefetcher loader(*data_, batches, p);
  for (int node : nodes_) model.keep_output(node, true);
  const int total = ownership_.owned_count(Comm::rank());
  int done = 0, reported = 0;
  Batch batch;
  try {
    while (loader.next(batch)) {
      model.forward(batch.images, false);
      for (std::size_t k = 0; k < nodes_.size(); ++k) {
        if (!stores_[k]) continue;
        const Tensor& out = model.output(nodes_[k]);
        const std::size_t per = shapes_[k].numel();
        for (int j = 0; j < batch.size(); ++j)
          stores_[k]->put(ownership_.slot(batch.indices[static_cast<std::size_t>(j)]),
                          out.data() + static_cast<std::size_t>(j) * per);
      }
      done += batch.size();
      if (progress && (done - reported) * 4 >= total && done < total) {
        *progress << "  caching " << name << ": " << done << "/" << total << " samples (rank 0)" << std::endl;
        reported = done;
      }
    }
  } catch (...) {
    for (int node : nodes_) model.keep_output(node, false);
    throw;
  }
  for (int node : nodes_) model.keep_output(node, false);
}

CachedBatches::CachedBatches(const DatasetCache& cache, int node, int batch, std::vector<int> order, int first_step)
    : cache_(cache),
      store_(cache.store(node)),
      sample_shape_(cache.sample_shape(node)),
      batch_(batch),
      step_(first_step),
      first_step_(first_step),
      order_(std::move(order)) {
  if (static_cast<int>(order_.size()) != cache.ownership().samples())
    throw std::invalid_argument("CachedBatches: an order of " + std::to_string(order_.size()) + " samples for " +
                                std::to_string(cache.ownership().samples()) + " cached samples");
}

bool CachedBatches::next(Batch& out) {
  const int n = static_cast<int>(order_.size());
  const long long begin = static_cast<long long>(step_) * batch_;
  if (begin >= n) return false;
  const int end = static_cast<int>(std::min<long long>(n, begin + batch_));
  const std::vector<int> global(order_.begin() + begin, order_.begin() + end);
  const FeatureOwnership& own = cache_.ownership();
  const int rank = Comm::rank(), world = Comm::size();
  const BatchRoute route = route_batch(own, global, rank);
  const std::size_t rf = store_.record_floats();

  // Records other ranks need from this one, in their slice order; records this rank needs.
  std::vector<int> send_counts(static_cast<std::size_t>(world)), recv_offset(static_cast<std::size_t>(world));
  std::size_t sends = 0, recvs = 0;
  for (int q = 0; q < world; ++q) {
    send_counts[static_cast<std::size_t>(q)] = static_cast<int>(route.send[static_cast<std::size_t>(q)].size());
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
    Comm::alltoall_records(send_.data(), send_counts, recv_.data(), route.recv_count, rf);
  }

  const Range mine = rank_slice(end - static_cast<int>(begin), world, rank);
  Shape shape = sample_shape_;
  shape.dims[0] = mine.size();
  out.images.resize(shape);
  out.labels.resize(static_cast<std::size_t>(mine.size()));
  out.indices.resize(static_cast<std::size_t>(mine.size()));
  for (int j = 0; j < mine.size(); ++j) {
    const int sample = global[static_cast<std::size_t>(mine.begin + j)];
    const int from = route.source[static_cast<std::size_t>(j)];
    float* dst = out.images.data() + static_cast<std::size_t>(j) * rf;
    if (from == rank) {
      store_.get(own.slot(sample), dst);
    } else {
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
