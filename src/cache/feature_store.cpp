// Cached feature records in memory and in an unlinked spill file (see feature_store.hpp).
#include "parafine/cache/feature_store.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>
#include <stdexcept>

#include "parafine/core/bfloat16.hpp"

namespace parafine {

namespace {

std::string errno_text(int e) {
  return std::strerror(e);
}

}  // namespace

CacheStorage::CacheStorage(std::size_t memory_budget, std::string spill_dir)
    : budget_(memory_budget), dir_(std::move(spill_dir)) {}

CacheStorage::~CacheStorage() {
  if (fd_ >= 0) ::close(fd_);
}

void CacheStorage::use_memory(std::size_t bytes) {
  if (bytes > memory_left()) throw std::logic_error("CacheStorage::use_memory beyond the budget");
  used_ += bytes;
}

std::uint64_t CacheStorage::reserve_spill(std::uint64_t bytes) {
  const std::string advice =
      ": point --cache-dir at a disk with room, raise --cache-mem, or use --cache off";
  if (fd_ < 0) {
    if (dir_.empty()) {
      std::error_code ec;
      dir_ = std::filesystem::temp_directory_path(ec).string();
      if (ec)
        throw std::runtime_error(
            "the feature cache must spill to disk beyond --cache-mem, but there is no usable "
            "temporary directory (" +
            ec.message() + "): give --cache-dir");
    }
    std::string templ = dir_ + "/parafine-cache-XXXXXX";
    fd_ = ::mkostemp(templ.data(), O_CLOEXEC);
    if (fd_ < 0)
      throw std::runtime_error("--cache-dir " + dir_ +
                               ": cannot create the feature-cache spill file (" +
                               errno_text(errno) + ")" + advice);
    path_ = templ;
    ::unlink(templ.c_str());  // nameless from now on: freed when the process ends
    struct statfs kind {};
    tmpfs_ = ::fstatfs(fd_, &kind) == 0 && kind.f_type == TMPFS_MAGIC;
  }
  struct statvfs fs {};
  if (::fstatvfs(fd_, &fs) == 0) {
    const double free_bytes = static_cast<double>(fs.f_bavail) * static_cast<double>(fs.f_frsize);
    if (static_cast<double>(bytes) > free_bytes)
      throw std::runtime_error("--cache-dir " + dir_ + " has " + format_bytes(free_bytes) +
                               " free, the feature cache needs " +
                               format_bytes(static_cast<double>(bytes)) + " more there" + advice);
  }
  const std::uint64_t offset = spill_size_;
  if (bytes > 0) {
    const int e = ::posix_fallocate(fd_, static_cast<off_t>(offset), static_cast<off_t>(bytes));
    if (e != 0)
      throw std::runtime_error("--cache-dir " + dir_ + ": cannot reserve " +
                               format_bytes(static_cast<double>(bytes)) +
                               " for the feature cache (" + errno_text(e) + ")" + advice);
  }
  spill_size_ += bytes;
  return offset;
}

namespace {

// Repeats io(done, count, file_offset) -- a pread or pwrite of `count` bytes at byte `done` of
// the caller's buffer -- until all `bytes` moved (both may move fewer bytes than asked).
// at_zero: what a call that moved nothing means.
template <class Io>
void transfer_all(Io io, std::size_t bytes, std::uint64_t offset, const char* doing,
                  const char* at_zero, const std::string& dir) {
  std::size_t done = 0;
  while (done < bytes) {
    const ssize_t n = io(done, bytes - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      throw std::runtime_error("--cache-dir " + dir + ": " + doing +
                               " the feature-cache spill file failed (" +
                               (n < 0 ? errno_text(errno) : std::string(at_zero)) + ")");
    done += static_cast<std::size_t>(n);
  }
}

}  // namespace

void CacheStorage::write(std::uint64_t offset, const void* data, std::size_t bytes) {
  const char* src = static_cast<const char*>(data);
  transfer_all([&](std::size_t at, std::size_t count,
                   off_t where) { return ::pwrite(fd_, src + at, count, where); },
               bytes, offset, "writing", "no byte written", dir_);
}

void CacheStorage::read(std::uint64_t offset, void* data, std::size_t bytes) const {
  char* dst = static_cast<char*>(data);
  transfer_all([&](std::size_t at, std::size_t count,
                   off_t where) { return ::pread(fd_, dst + at, count, where); },
               bytes, offset, "reading", "unexpected end of file", dir_);
}

FeatureStore::FeatureStore(CacheStorage& storage, int records, std::size_t record_floats,
                           bool bfloat16)
    : storage_(&storage),
      records_(records),
      record_floats_(record_floats),
      value_bytes_(bfloat16 ? sizeof(std::uint16_t) : sizeof(float)) {
  if (records < 0 || record_floats == 0)
    throw std::invalid_argument("FeatureStore: bad record layout");
  const std::size_t bytes = record_bytes();
  in_memory_ = static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(records),
                                                      storage.memory_left() / bytes));
  try {
    memory_.resize(static_cast<std::size_t>(in_memory_) * bytes);
    if (bfloat16 && in_memory_ < records) words_.resize(record_floats);
  } catch (const std::bad_alloc&) {
    throw std::runtime_error(
        "cannot allocate " + format_bytes(static_cast<double>(in_memory_) * bytes) +
        " for the feature cache: lower --cache-mem (it is more than this machine can give)");
  }
  storage.use_memory(static_cast<std::size_t>(in_memory_) * bytes);
  const std::uint64_t spilled = static_cast<std::uint64_t>(records - in_memory_) * bytes;
  if (spilled > 0) spill_offset_ = storage.reserve_spill(spilled);
}

void FeatureStore::put(int record, const float* src) {
  if (record < 0 || record >= records_)
    throw std::out_of_range("FeatureStore::put: record " + std::to_string(record));
  const std::size_t bytes = record_bytes();
  if (record < in_memory_) {
    unsigned char* dst = memory_.data() + static_cast<std::size_t>(record) * bytes;
    if (bfloat16())
      to_bfloat16_words(src, record_floats_, reinterpret_cast<std::uint16_t*>(dst));
    else
      std::memcpy(dst, src, bytes);
    return;
  }
  const std::uint64_t at = spill_offset_ + static_cast<std::uint64_t>(record - in_memory_) * bytes;
  if (bfloat16()) {
    to_bfloat16_words(src, record_floats_, words_.data());
    storage_->write(at, words_.data(), bytes);
  } else {
    storage_->write(at, src, bytes);
  }
}

void FeatureStore::get(int record, float* dst) const {
  if (record < 0 || record >= records_)
    throw std::out_of_range("FeatureStore::get: record " + std::to_string(record));
  const std::size_t bytes = record_bytes();
  if (record < in_memory_) {
    const unsigned char* src = memory_.data() + static_cast<std::size_t>(record) * bytes;
    if (bfloat16())
      from_bfloat16_words(reinterpret_cast<const std::uint16_t*>(src), record_floats_, dst);
    else
      std::memcpy(dst, src, bytes);
    return;
  }
  const std::uint64_t at = spill_offset_ + static_cast<std::uint64_t>(record - in_memory_) * bytes;
  if (bfloat16()) {
    storage_->read(at, words_.data(), bytes);
    from_bfloat16_words(words_.data(), record_floats_, dst);
  } else {
    storage_->read(at, dst, bytes);
  }
}

double physical_memory_bytes() {
  return static_cast<double>(::sysconf(_SC_PHYS_PAGES)) *
         static_cast<double>(::sysconf(_SC_PAGESIZE));
}

std::size_t default_cache_budget(int ranks_on_node) {
  double available = 0;
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  double kib = 0;
  std::string unit;
  while (meminfo >> key >> kib >> unit)
    if (key == "MemAvailable:") available = kib * 1024.0;
  if (available <= 0) available = physical_memory_bytes();
  return static_cast<std::size_t>(available / 2 / std::max(1, ranks_on_node));
}

std::size_t parse_byte_size(const std::string& text, const std::string& option) {
  const std::string bad = option +
                          " must be a size like 8G, 512M or 0 (bytes; K/M/G/T = 1024^1..4), got '" +
                          text + "'";
  std::size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    throw std::invalid_argument(bad);
  }
  std::string unit = text.substr(used);
  for (char& ch : unit) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  const std::string prefixes = "KMGT";
  double scale = 1;
  if (!unit.empty() && unit != "B") {
    const std::size_t p = prefixes.find(unit[0]);
    const std::string suffix = unit.substr(1);
    if (p == std::string::npos || !(suffix.empty() || suffix == "B" || suffix == "IB"))
      throw std::invalid_argument(bad);
    scale = std::pow(1024.0, static_cast<double>(p + 1));
  }
  if (!std::isfinite(value) || value < 0 || value * scale > 4.6e18)
    throw std::invalid_argument(bad);
  return static_cast<std::size_t>(value * scale);
}

}  // namespace parafine
