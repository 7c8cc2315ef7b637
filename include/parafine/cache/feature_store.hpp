// Where one rank keeps its cached features: fixed-size records (one sample's activation at a
// cache node) in memory up to a budget (--cache-mem), the rest in a spill file (--cache-dir)
// read back with pread on demand.
//
// The spill file is created with mkstemp and unlinked at once: it has no name while it is in
// use, so the operating system frees it when the process ends, however it ends (normal exit,
// exception, MPI_Abort, a signal) and no stale cache is left behind. Its space is reserved
// with posix_fallocate when records are allocated, so a full disk is reported before training
// starts, never half-way through an epoch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "parafine/core/out_of_memory.hpp"  // format_bytes

namespace parafine {

// One rank's memory budget and spill file, shared by all of its FeatureStores.
class CacheStorage {
 public:
  // memory_budget: bytes the stores may keep in memory; spill_dir: where the spill file goes
  // (created only when the budget is exceeded; "" = the system temporary directory).
  CacheStorage(std::size_t memory_budget, std::string spill_dir);
  ~CacheStorage();
  CacheStorage(const CacheStorage&) = delete;
  CacheStorage& operator=(const CacheStorage&) = delete;

  std::size_t memory_left() const { return budget_ - used_; }
  void use_memory(std::size_t bytes);  // at most memory_left()
  // Reserves `bytes` at the end of the spill file (creating it); returns their offset.
  // Throws, naming --cache-dir and what to do, when the file cannot be created or the disk
  // lacks the space.
  std::uint64_t reserve_spill(std::uint64_t bytes);
  void write(std::uint64_t offset, const void* data, std::size_t bytes);
  void read(std::uint64_t offset, void* data, std::size_t bytes) const;

  std::size_t memory_budget() const { return budget_; }
  std::size_t memory_used() const { return used_; }
  std::uint64_t spill_bytes() const { return spill_size_; }
  const std::string& spill_path() const { return path_; }  // "" until something spills
  bool spill_in_memory_fs() const { return tmpfs_; }       // tmpfs: the "disk" is RAM too

 private:
  std::size_t budget_, used_ = 0;
  std::string dir_, path_;
  int fd_ = -1;
  bool tmpfs_ = false;
  std::uint64_t spill_size_ = 0;
};

// `records` records of `record_floats` values: the first ones in memory as far as the budget
// allows (whole records), the rest in the spill file. put/get copy one record; one thread.
// bfloat16: each value is kept in 16 bits (half the memory and disk): for features computed
// under mixed_bfloat16, which are bfloat16 values already, so get() returns exactly what put()
// was given; anything else is rounded to bfloat16.
class FeatureStore {
 public:
  FeatureStore(CacheStorage& storage, int records, std::size_t record_floats,
               bool bfloat16 = false);

  int records() const { return records_; }
  std::size_t record_floats() const { return record_floats_; }
  std::size_t record_bytes() const { return record_floats_ * value_bytes_; }
  bool bfloat16() const { return value_bytes_ == 2; }
  int records_in_memory() const { return in_memory_; }
  void put(int record, const float* src);
  void get(int record, float* dst) const;

 private:
  CacheStorage* storage_;
  int records_;
  std::size_t record_floats_;
  std::size_t value_bytes_;  // 4 (float32) or 2 (bfloat16)
  int in_memory_;
  std::vector<unsigned char> memory_;         // [in_memory, record_bytes()]
  mutable std::vector<std::uint16_t> words_;  // one spilled bfloat16 record in transit
  std::uint64_t spill_offset_ = 0;
};

double physical_memory_bytes();  // this node's RAM

// The default --cache-mem: half of the memory available on this node now (MemAvailable, else
// the physical memory) divided by the ranks sharing the node.
std::size_t default_cache_budget(int ranks_on_node);

// "8G", "512M", "1.5GiB", "100000" (bytes), "0" -> bytes; K/M/G/T are powers of 1024, an
// optional B or iB may follow. Throws std::invalid_argument naming `option` for anything else
// (and for more than 2^62 bytes).
std::size_t parse_byte_size(const std::string& text, const std::string& option);

}  // namespace parafine
