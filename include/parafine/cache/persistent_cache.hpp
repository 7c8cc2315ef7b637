// The persistent feature cache (train --cache-dir DIR --cache-keep, `parafine cache`): a run's
// frozen-prefix features kept on disk under a key of everything they depend on, so a later run
// with the same key loads them instead of running the frozen network again.
//
// Key: a 32-hex-digit hash of a JSON object of readable components (stored in the manifest):
// format version; the model (backbone and alpha, or "model read from a file") and a hash of
// its architecture (layer names, types, inputs, output shapes) up to the deepest cached node;
// a hash of the weights those layers use (params and state, e.g. BN moving statistics, as they
// are when the cache is built, after the starting state is loaded); per data set (--train,
// --val) its identity (folder or HDF5 path), sample count and a hash of every sample's stored
// bytes in sample order (each rank hashes the samples it owns, rank 0 combines them); the
// preprocessing, image size, precision, cached node names, world size and global batch size
// (ownership and the build's batches depend on them: a reused cache gives bitwise the same
// run as the one that built it).
//
// Layout: DIR/parafine-cache/<key>/
//   train.rank<r>.bin, val.rank<r>.bin   rank r's records in slot order (feature_routing.hpp)
//   manifest.json                        written last; its presence says "complete"
// A .bin file is a 64-byte header ("PFCACHE1", format version, rank, world, records, nodes,
// value bytes (4 float32, 2 bfloat16), record bytes, the key's first 64 bits) then, per record
// (slot), the record at every cached node in node order followed by a 64-bit checksum of it.
// Every file is written under a temporary name (".tmp.<host>.<pid>"), fsynced and renamed; the
// manifest is renamed into place by rank 0 only after every rank reported its files written,
// so a crash, a full disk or two runs writing the same key never leave an entry that looks
// complete. A rebuild first removes the manifest. Loading: rank 0 checks the manifest (and
// broadcasts the verdict), each rank checks its own files (size, header, every checksum as the
// records go into its FeatureStores), the ranks agree, and all rebuild if any found a problem.
// Each rank only reads and writes its own files, so DIR may be node-local on a multi-node job
// (the manifest is then on rank 0's node).
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "parafine/cache/cache_plan.hpp"
#include "parafine/cache/feature_cache.hpp"
#include "parafine/data/prefetcher.hpp"
#include "parafine/data/preprocess.hpp"
#include "parafine/model/model.hpp"

namespace parafine {

// What an entry's key needs from the run besides the model and the data (the caller, train's
// training_caches.cpp, fills it from the run's options).
struct KeptCacheOptions {
  CacheOptions cache;  // dir and keep
  std::string model;   // "resnet50", "mobilenet_v2 alpha 0.35", "model read from a file (--init)"
  Preprocess preprocess;
  int image_size = 0, batch_size = 0, loader_threads = 1;
};

constexpr int kKeptCacheFormatVersion = 1;

// DIR/parafine-cache
std::string kept_cache_root(const std::string& dir);

// Collective: every rank calls it with the same caches (allocated, not built). Without
// options.cache.keep: builds them. With it: loads them from options.cache.dir's entry for this
// run's key when it is complete and checks out, else builds them and keeps them there (a
// failure to keep, e.g. a full disk, is a warning: training continues). Logs what it did:
// reuse (and the load time), or why it rebuilt, and the disk used.
void load_or_build_caches(Model& model, const std::vector<DatasetCache*>& caches,
                          const KeptCacheOptions& options, const PrefetchConfig& prefetch,
                          std::ostream& log);

// One entry of DIR/parafine-cache, for `parafine cache ls`.
struct KeptCacheEntry {
  std::string key, path;
  std::uintmax_t bytes = 0;                                    // every file in the entry
  bool complete = false;                                       // has a readable manifest
  std::string created, model, data, image_size, nodes, world;  // "?" when unknown
};
// Entries in key order; none when DIR has no parafine-cache. Only directories named like a
// key count as entries.
std::vector<KeptCacheEntry> list_kept_caches(const std::string& dir);
bool is_cache_key(const std::string& name);  // 32 lower-case hex digits

}  // namespace parafine
