// The persistent feature cache: key, entry files, loading with checks, keeping after a build,
// and listing entries (see persistent_cache.hpp for the key and the layout).
#include "parafine/cache/persistent_cache.hpp"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <dnnl.h>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iomanip>

#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <sstream>
#include <stdexcept>

#include "parafine/core/content_hash.hpp"
#include "parafine/core/out_of_memory.hpp"  // format_bytes
#include "parafine/core/parallel_for.hpp"
#include "parafine/core/precision.hpp"
#include "parafine/dist/comm.hpp"
#include "parafine/io/keras_config_writer.hpp"

namespace parafine {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

namespace {

constexpr char kMagic[8] = {'P', 'F', 'C', 'A', 'C', 'H', 'E', '1'};
constexpr std::size_t kHeaderBytes = 64;
constexpr char kManifest[] = "manifest.json";

struct FileHeader {  // the 64-byte header of a .bin file
  char magic[8];
  std::uint32_t version, rank, world, records, nodes, value_bytes;
  std::uint64_t record_bytes, key64;
  unsigned char pad[64 - 8 - 6 * 4 - 2 * 8];
};
static_assert(sizeof(FileHeader) == kHeaderBytes, "FileHeader must be 64 bytes");

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// "train" for "--train": the file name part of a data set.
std::string file_stem(const DatasetCache& cache) {
  std::string s = cache.name();
  s.erase(0, s.find_first_not_of('-'));
  return s;
}

std::string rank_file(const DatasetCache& cache, int rank) {
  return file_stem(cache) + ".rank" + std::to_string(rank) + ".bin";
}

std::string errno_text() {
  return std::strerror(errno);
}

std::string unique_suffix() {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  return ".tmp." + std::string(host) + "." + std::to_string(::getpid());
}

// The code that computes the features: this parafine binary's bytes, the oneDNN library's
// version and the instruction set its kernels use here (the same weights and pixels through
// another build, library or CPU may differ in the last bits, so such an entry is not reused).
std::string code_identity() {
  static const std::string identity = [] {
    ContentHasher exe;
    std::ifstream self("/proc/self/exe", std::ios::binary);
    std::vector<char> chunk(1 << 20);
    while (self.read(chunk.data(), static_cast<std::streamsize>(chunk.size())) || self.gcount() > 0)
      exe.update(chunk.data(), static_cast<std::size_t>(self.gcount()));
    const dnnl_version_t* v = dnnl_version();
    return "parafine " + hex64(exe.digest()) + ", oneDNN " + std::to_string(v->major) + "." +
           std::to_string(v->minor) + "." + std::to_string(v->patch) + " " + v->hash + ", ISA " +
           std::to_string(static_cast<int>(dnnl_get_effective_cpu_isa()));
  }();
  return identity;
}

// Every layer up to and including `deepest`: names, types, Keras configs (scale, activation,
// epsilon, padding, ...), inputs and output shapes (the architecture hash), and every weight
// they hold, params and state (the weights hash).
std::pair<std::uint64_t, std::uint64_t> model_hashes(const Model& model, int deepest) {
  ContentHasher arch, weights;
  for (int i = 0; i <= deepest; ++i) {
    arch.update(model.layer(i).name());
    arch.update(std::string(model.layer(i).type()));
    try {
      arch.update(keras3_layer_config(model.layer(i)).dump());
    } catch (const std::exception& e) {  // a layer with no Keras config: its type stands alone
      arch.update(std::string("no config: ") + e.what());
    }
    for (int in : model.inputs_of(i)) arch.update_u64(static_cast<std::uint64_t>(in));
    const Shape s = model.output_shape(i, 1);
    for (int d = 0; d < s.rank(); ++d) arch.update_u64(static_cast<std::uint64_t>(s[d]));
  }
  for (const ParamRef& r : model.param_refs()) {
    if (r.node > deepest) continue;
    weights.update(model.layer(r.node).name() + "/" + r.name);
    weights.update_u64(r.shape.numel());
    weights.update(model.data(r), r.shape.numel() * sizeof(float));
  }
  return {arch.digest(), weights.digest()};
}

// Collective: the hash of every sample's stored bytes in sample order; each rank hashes the
// samples it owns. nullopt when the source cannot hash its samples.
std::optional<std::string> data_hash(const DatasetCache& cache, int threads) {
  const FeatureOwnership& own = cache.ownership();
  std::vector<int> mine;
  for (const auto& batch : own.owned_batches(Comm::rank()))
    mine.insert(mine.end(), batch.begin(), batch.end());
  std::vector<std::uint64_t> hashes(mine.size());
  std::atomic<bool> unsupported{false};
  std::string error;
  try {
    parallel_for(std::max(1, threads), 0, static_cast<int>(mine.size()), 1, [&](int k) {
      const auto h = cache.data().content_hash(mine[static_cast<std::size_t>(k)]);
      if (!h) unsupported = true;  // the same for every sample of a source
      hashes[static_cast<std::size_t>(k)] = h.value_or(0);
    });
  } catch (const std::exception& e) {
    error = cache.name() + ": hashing the data for the kept cache: " + e.what();
  }
  agree_on_failure(!error.empty(), error);
  std::vector<int> flag{unsupported.load() ? 1 : 0};
  Comm::allreduce_max(flag);
  if (flag[0]) return std::nullopt;
  // [sample, hash] pairs of this rank, gathered at rank 0 and combined in sample order.
  std::vector<unsigned char> bytes(mine.size() * 12);
  for (std::size_t k = 0; k < mine.size(); ++k) {
    std::memcpy(&bytes[k * 12], &mine[k], 4);
    std::memcpy(&bytes[k * 12 + 4], &hashes[k], 8);
  }
  const std::vector<unsigned char> all = Comm::gather_to_root(bytes);
  std::string digest;
  if (Comm::is_root()) {
    std::vector<std::uint64_t> by_sample(static_cast<std::size_t>(own.samples()));
    std::vector<char> seen(by_sample.size(), 0);
    for (std::size_t k = 0; k + 12 <= all.size(); k += 12) {
      int sample = 0;
      std::memcpy(&sample, &all[k], 4);
      std::memcpy(&by_sample.at(static_cast<std::size_t>(sample)), &all[k + 4], 8);
      seen[static_cast<std::size_t>(sample)] = 1;
    }
    if (std::find(seen.begin(), seen.end(), 0) != seen.end())
      throw std::logic_error("kept cache: a sample of " + cache.name() + " was hashed by no rank");
    digest = hex64(content_hash(by_sample.data(), by_sample.size() * 8));
  }
  return Comm::broadcast(digest);
}

struct Key {
  std::string digest;  // 32 hex digits
  std::uint64_t key64 = 0;
  json components;
};

// Collective. nullopt (with `why`) when some data cannot be hashed.
std::optional<Key> make_key(const Model& model, const std::vector<DatasetCache*>& caches,
                            const KeptCacheOptions& c, std::string& why) {
  const std::vector<int>& nodes = caches.front()->nodes();
  const int deepest = *std::max_element(nodes.begin(), nodes.end());
  const auto [arch, weights] = model_hashes(model, deepest);
  json k;
  k["format_version"] = kKeptCacheFormatVersion;
  k["model"] = c.model;
  k["code"] = code_identity();
  k["architecture"] = hex64(arch);
  k["weights"] = hex64(weights);
  json data = json::array();
  for (const DatasetCache* cache : caches) {
    const auto hash = data_hash(*cache, c.loader_threads);
    if (!hash) {
      why = cache->name() + " (" + cache->data().identity() + ") cannot hash its samples";
      return std::nullopt;
    }
    data.push_back({{"set", cache->name()},
                    {"identity", cache->data().identity()},
                    {"samples", cache->data().size()},
                    {"content", *hash}});
  }
  k["data"] = data;
  k["preprocess"] = preprocess_name(c.preprocess);
  k["image_size"] = c.image_size;
  k["precision"] = precision_name(model.precision());
  json names = json::array();
  for (int n : nodes) names.push_back(model.layer(n).name());
  k["nodes"] = names;
  k["world"] = Comm::size();
  k["batch_size"] = c.batch_size;
  // Every replica holds the same weights, so every rank computes the same components; rank
  // 0's are used everywhere all the same, so all ranks always name the same entry.
  const std::string text = Comm::broadcast(k.dump());
  Key key;
  key.key64 = content_hash(text.data(), text.size(), 1);
  key.digest = hex64(key.key64) + hex64(content_hash(text.data(), text.size(), 2));
  key.components = json::parse(text);
  return key;
}

// ---- one rank's file --------------------------------------------------------------------

std::size_t record_bytes(const DatasetCache& cache) {
  std::size_t n = 0;
  for (int node : cache.nodes()) n += cache.store(node).record_bytes();
  return n;
}

std::uint64_t file_bytes(const DatasetCache& cache) {
  const std::uint64_t records =
      static_cast<std::uint64_t>(cache.ownership().owned_count(Comm::rank()));
  return kHeaderBytes + records * (record_bytes(cache) + 8);
}

FileHeader header_of(const DatasetCache& cache, std::uint64_t key64) {
  FileHeader h{};
  std::memcpy(h.magic, kMagic, 8);
  h.version = kKeptCacheFormatVersion;
  h.rank = static_cast<std::uint32_t>(Comm::rank());
  h.world = static_cast<std::uint32_t>(Comm::size());
  h.records = static_cast<std::uint32_t>(cache.ownership().owned_count(Comm::rank()));
  h.nodes = static_cast<std::uint32_t>(cache.nodes().size());
  h.value_bytes = cache.bfloat16() ? 2 : 4;
  h.record_bytes = record_bytes(cache);
  h.key64 = key64;
  return h;
}

// One record's values at every node as stored on disk (float32, or the upper 16 bits of
// bfloat16 values, which FeatureStore::get returns exactly) into `out`.
void pack_record(const DatasetCache& cache, int slot, std::vector<float>& floats,
                 unsigned char* out) {
  for (int node : cache.nodes()) {
    const FeatureStore& store = cache.store(node);
    floats.resize(store.record_floats());
    store.get(slot, floats.data());
    if (store.bfloat16()) {
      for (std::size_t k = 0; k < floats.size(); ++k) {
        std::uint32_t bits;
        std::memcpy(&bits, &floats[k], 4);
        const auto word = static_cast<std::uint16_t>(bits >> 16);
        std::memcpy(out + 2 * k, &word, 2);
      }
    } else {
      std::memcpy(out, floats.data(), floats.size() * 4);
    }
    out += store.record_bytes();
  }
}

void unpack_record(DatasetCache& cache, int slot, const unsigned char* in,
                   std::vector<float>& floats) {
  for (int node : cache.nodes()) {
    FeatureStore& store = cache.store(node);
    floats.resize(store.record_floats());
    if (store.bfloat16()) {
      for (std::size_t k = 0; k < floats.size(); ++k) {
        std::uint16_t word;
        std::memcpy(&word, in + 2 * k, 2);
        const std::uint32_t bits = static_cast<std::uint32_t>(word) << 16;
        std::memcpy(&floats[k], &bits, 4);
      }
    } else {
      std::memcpy(floats.data(), in, floats.size() * 4);
    }
    store.put(slot, floats.data());
    in += store.record_bytes();
  }
}

std::uint64_t record_checksum(const unsigned char* record, std::size_t bytes, int slot) {
  return content_hash(record, bytes, 0x5eed0000ull + static_cast<std::uint64_t>(slot));
}

// Fills the cache's stores from `path`; "" on success, else what is wrong with the file.
std::string load_file(DatasetCache& cache, const std::string& path, std::uint64_t key64) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return path + ": missing";
  const std::uint64_t want = file_bytes(cache);
  const std::uintmax_t have = fs::file_size(path, ec);
  if (ec) return path + ": cannot read its size: " + ec.message();
  if (have != want)
    return path + ": " + (have < want ? "truncated" : "too long") + " (" + std::to_string(have) +
           " bytes, " + std::to_string(want) + " expected)";
  std::ifstream in(path, std::ios::binary);
  if (!in) return path + ": cannot open it: " + errno_text();
  FileHeader h{}, expect = header_of(cache, key64);
  in.read(reinterpret_cast<char*>(&h), sizeof h);
  if (!in) return path + ": cannot read its header";
  if (std::memcmp(h.magic, kMagic, 8) != 0) return path + ": not a parafine cache file";
  if (h.version != expect.version || h.rank != expect.rank || h.world != expect.world ||
      h.records != expect.records || h.nodes != expect.nodes ||
      h.value_bytes != expect.value_bytes || h.record_bytes != expect.record_bytes ||
      h.key64 != expect.key64)
    return path + ": its header does not match this run (another rank, key or layout)";
  const std::size_t rb = record_bytes(cache);
  std::vector<unsigned char> record(rb + 8);
  std::vector<float> floats;
  for (int slot = 0; slot < static_cast<int>(h.records); ++slot) {
    in.read(reinterpret_cast<char*>(record.data()), static_cast<std::streamsize>(record.size()));
    if (!in) return path + ": cannot read record " + std::to_string(slot);
    std::uint64_t sum;
    std::memcpy(&sum, record.data() + rb, 8);
    if (sum != record_checksum(record.data(), rb, slot))
      return path + ": checksum mismatch in record " + std::to_string(slot) + " (byte offset " +
             std::to_string(kHeaderBytes + static_cast<std::uint64_t>(slot) * (rb + 8)) + ")";
    unpack_record(cache, slot, record.data(), floats);
  }
  return "";
}

// Writes the cache's records to `path` through a temporary file renamed into place. "" on
// success, else the error (the temporary file removed).
std::string write_file(const DatasetCache& cache, const std::string& path, std::uint64_t key64) {
  const std::string tmp = path + unique_suffix();
  const int fd = ::open(tmp.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) return tmp + ": cannot create it: " + errno_text();
  std::string error;
  auto put = [&](const void* data, std::size_t bytes) {
    const auto* p = static_cast<const char*>(data);
    while (bytes > 0 && error.empty()) {
      const ssize_t n = ::write(fd, p, bytes);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        error = tmp + ": write failed: " + errno_text();
        break;
      }
      p += n;
      bytes -= static_cast<std::size_t>(n);
    }
  };
  const std::uint64_t total = file_bytes(cache);
  const int reserved = ::posix_fallocate(fd, 0, static_cast<off_t>(total));
  if (reserved != 0 && reserved != EOPNOTSUPP && reserved != EINVAL)
    error = tmp + ": cannot reserve " + format_bytes(static_cast<double>(total)) + ": " +
            std::strerror(reserved);
  const FileHeader h = header_of(cache, key64);
  put(&h, sizeof h);
  const std::size_t rb = record_bytes(cache);
  std::vector<unsigned char> chunk;
  std::vector<float> floats;
  const int records = cache.ownership().owned_count(Comm::rank());
  for (int slot = 0; slot < records && error.empty(); ++slot) {
    const std::size_t at = chunk.size();
    chunk.resize(at + rb + 8);
    try {
      pack_record(cache, slot, floats, chunk.data() + at);
    } catch (const std::exception& e) {  // a spilled record that cannot be read back
      error = tmp + ": record " + std::to_string(slot) + ": " + e.what();
      break;
    }
    const std::uint64_t sum = record_checksum(chunk.data() + at, rb, slot);
    std::memcpy(chunk.data() + at + rb, &sum, 8);
    if (chunk.size() >= (4u << 20) || slot + 1 == records) {
      put(chunk.data(), chunk.size());
      chunk.clear();
    }
  }
  if (error.empty() && ::fsync(fd) != 0) error = tmp + ": fsync failed: " + errno_text();
  if (::close(fd) != 0 && error.empty()) error = tmp + ": close failed: " + errno_text();
  if (error.empty() && std::rename(tmp.c_str(), path.c_str()) != 0)
    error = "cannot rename " + tmp + " to " + path + ": " + errno_text();
  if (!error.empty()) ::unlink(tmp.c_str());
  return error;
}

void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

std::string now_utc() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

// Collective: whether every rank passed `ok`; rank 0 gets every failing rank's message.
bool all_ok(const std::string& my_error, std::vector<std::string>& errors) {
  std::vector<int> flag{my_error.empty() ? 0 : 1};
  Comm::allreduce_max(flag);
  if (!flag[0]) return true;
  std::string mine = my_error.empty()
                         ? std::string()
                         : "rank " + std::to_string(Comm::rank()) + ": " + my_error + "\n";
  const std::vector<unsigned char> all =
      Comm::gather_to_root(std::vector<unsigned char>(mine.begin(), mine.end()));
  std::istringstream lines(std::string(all.begin(), all.end()));
  for (std::string line; std::getline(lines, line);)
    if (!line.empty()) errors.push_back(line);
  return false;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& l : lines) out += (out.empty() ? "" : "; ") + l;
  return out;
}

// Before the build: --cache-dir must have room for every rank's files of the entry (summed over
// ranks: on a shared filesystem they all land in one place), else every rank stops with a
// usage error (exit 2) before any training, instead of keeping nothing after the build.
void check_room_to_keep(const std::vector<DatasetCache*>& caches, const std::string& dir) {
  std::vector<double> needed{0};
  for (const DatasetCache* cache : caches) needed[0] += static_cast<double>(file_bytes(*cache));
  Comm::allreduce_sum(needed);
  struct statvfs fs {};
  std::string error;
  if (::statvfs(dir.c_str(), &fs) == 0) {
    const double free_bytes = static_cast<double>(fs.f_bavail) * static_cast<double>(fs.f_frsize);
    if (free_bytes < needed[0])
      error = "--cache-dir " + dir + " has " + format_bytes(free_bytes) +
              " free, the kept feature cache needs " + format_bytes(needed[0]) +
              ": free some space (parafine cache rm), give another --cache-dir, or drop "
              "--cache-keep (nothing was trained)";
  }
  std::vector<std::string> errors;
  if (!all_ok(error, errors))
    throw std::invalid_argument(Comm::is_root() ? joined(errors)
                                : error.empty()
                                    ? "--cache-dir: another rank's has no room for the kept "
                                      "feature cache (rank 0 says which)"
                                    : error);
}

// Rank 0: "" when the entry's manifest is present and matches `key`, else why not.
std::string check_manifest(const std::string& entry, const Key& key) {
  const std::string path = entry + "/" + kManifest;
  std::error_code ec;
  if (!fs::exists(entry, ec)) return "no kept entry";
  if (!fs::exists(path, ec)) return "the kept entry is incomplete (no " + path + ")";
  try {
    std::ifstream in(path);
    const json m = json::parse(in);
    if (m.at("key").get<std::string>() != key.digest || !m.at("complete").get<bool>() ||
        m.at("components") != key.components)
      return path + " does not match this run's key";
  } catch (const std::exception& e) {
    return path + " is damaged (" + e.what() + ")";
  }
  return "";
}

// Collective: writes every rank's files and then rank 0's manifest. Returns the bytes kept
// (over all ranks), or throws std::runtime_error with what went wrong (nothing is left).
double keep_entry(const std::vector<DatasetCache*>& caches, const std::string& entry,
                  const Key& key) {
  std::string error;
  std::error_code ec;
  fs::create_directories(entry, ec);  // every rank: DIR may be node-local
  if (ec) error = "cannot create " + entry + ": " + ec.message();
  if (Comm::is_root() && error.empty()) {  // a rebuilt entry is incomplete until it is kept
    fs::remove(entry + "/" + kManifest, ec);
    if (ec) error = "cannot remove the old " + entry + "/" + kManifest + ": " + ec.message();
  }
  std::vector<std::string> errors;
  if (!all_ok(error, errors)) throw std::runtime_error(joined(errors));
  double bytes = 0;
  std::vector<std::string> written;
  for (const DatasetCache* cache : caches) {
    if (!error.empty()) break;
    const std::string path = entry + "/" + rank_file(*cache, Comm::rank());
    error = write_file(*cache, path, key.key64);
    if (error.empty()) {
      written.push_back(path);
      bytes += static_cast<double>(file_bytes(*cache));
    }
  }
  if (error.empty()) fsync_dir(entry);
  const auto undo = [&] {  // this rank's files, and the entry's directory once it is empty
    for (const std::string& p : written) ::unlink(p.c_str());
    std::vector<int> barrier{0};
    Comm::allreduce_max(barrier);
    if (Comm::is_root()) {  // each fails, harmlessly, unless the directory is empty
      ::rmdir(entry.c_str());
      ::rmdir(fs::path(entry).parent_path().c_str());
    }
  };
  if (!all_ok(error, errors)) {
    undo();
    throw std::runtime_error(joined(errors));
  }
  std::vector<double> total{bytes};
  Comm::allreduce_sum(total);
  if (Comm::is_root()) {
    json m;
    m["key"] = key.digest;
    m["complete"] = true;
    m["created"] = now_utc();
    m["bytes"] = total[0];
    m["components"] = key.components;
    const std::string path = entry + "/" + kManifest, tmp = path + unique_suffix();
    std::ofstream out(tmp);
    out << m.dump(2) << "\n";
    out.flush();
    if (!out) error = tmp + ": cannot write the manifest";
    out.close();
    if (error.empty()) {
      const int fd = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0 || ::fsync(fd) != 0) error = tmp + ": fsync failed: " + errno_text();
      if (fd >= 0) ::close(fd);
    }
    if (error.empty() && std::rename(tmp.c_str(), path.c_str()) != 0)
      error = "cannot rename " + tmp + " to " + path + ": " + errno_text();
    if (!error.empty()) ::unlink(tmp.c_str());
    fsync_dir(entry);
  }
  if (!all_ok(error, errors)) {
    undo();
    throw std::runtime_error(joined(errors));
  }
  return total[0];
}

}  // namespace

std::string kept_cache_root(const std::string& dir) {
  return dir + "/parafine-cache";
}

bool is_cache_key(const std::string& name) {
  return name.size() == 32 && std::all_of(name.begin(), name.end(), [](char ch) {
           return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f');
         });
}

void load_or_build_caches(Model& model, const std::vector<DatasetCache*>& caches,
                          const KeptCacheOptions& c, const PrefetchConfig& prefetch,
                          std::ostream& log) {
  std::ostream* progress = Comm::is_root() ? &log : nullptr;
  const auto build_all = [&] {
    for (DatasetCache* cache : caches) cache->build(model, prefetch, progress);
  };
  if (!c.cache.keep || caches.empty()) return build_all();

  auto start = std::chrono::steady_clock::now();
  std::string why;
  const std::optional<Key> key = make_key(model, caches, c, why);
  if (!key) {
    log << "warning: feature cache: not kept: " << why << std::endl;
    return build_all();
  }
  const std::string entry = kept_cache_root(c.cache.dir) + "/" + key->digest;
  const double key_seconds = seconds_since(start);

  // Rank 0 judges the manifest; every rank then checks its own files.
  const std::string verdict = Comm::broadcast(Comm::is_root() ? check_manifest(entry, *key) : "");
  if (verdict.empty()) {
    start = std::chrono::steady_clock::now();
    std::string error;
    try {
      for (DatasetCache* cache : caches) {
        error = load_file(*cache, entry + "/" + rank_file(*cache, Comm::rank()), key->key64);
        if (!error.empty()) break;
      }
    } catch (const std::exception& e) {  // e.g. the spill file; the ranks must still agree
      error = std::string("loading failed: ") + e.what();
    }
    std::vector<std::string> errors;
    if (all_ok(error, errors)) {
      std::vector<double> bytes{0};
      for (const DatasetCache* cache : caches) bytes[0] += static_cast<double>(file_bytes(*cache));
      Comm::allreduce_sum(bytes);
      log << "feature cache: reused kept entry " << key->digest << " in "
          << kept_cache_root(c.cache.dir) << ": skipped the build; loaded and checked "
          << format_bytes(bytes[0]) << " in " << std::fixed << std::setprecision(2)
          << seconds_since(start) << "s (key in " << key_seconds << "s)" << std::endl;
      return;
    }
    log << "feature cache: kept entry " << key->digest
        << " is damaged, rebuilding it: " << joined(errors) << std::endl;
  } else {
    log << "feature cache: " << verdict << " for key " << key->digest << " in "
        << kept_cache_root(c.cache.dir) << ": building (key in " << std::fixed
        << std::setprecision(2) << key_seconds << "s)" << std::endl;
  }

  check_room_to_keep(caches, c.cache.dir);
  build_all();
  start = std::chrono::steady_clock::now();
  try {
    const double bytes = keep_entry(caches, entry, *key);
    log << "feature cache: kept as " << key->digest << " in " << kept_cache_root(c.cache.dir)
        << ": " << format_bytes(bytes) << " on disk over " << Comm::size()
        << " rank(s), written in " << std::fixed << std::setprecision(2) << seconds_since(start)
        << "s" << std::endl;
  } catch (const std::runtime_error& e) {
    log << "warning: feature cache: could not keep the features in --cache-dir " << c.cache.dir
        << " (" << e.what() << "); nothing was left there, training continues without keeping them"
        << std::endl;
  }
}

std::vector<KeptCacheEntry> list_kept_caches(const std::string& dir) {
  std::vector<KeptCacheEntry> out;
  const std::string root = kept_cache_root(dir);
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return out;
  fs::directory_iterator entries(root, ec);
  if (ec) throw std::invalid_argument(root + ": cannot list it: " + ec.message());
  for (const fs::directory_entry& d : entries) {
    const std::string name = d.path().filename().string();
    if (!is_cache_key(name) || !d.is_directory(ec) || d.is_symlink(ec)) continue;
    KeptCacheEntry e;
    e.key = name;
    e.path = d.path().string();
    e.created = e.model = e.data = e.image_size = e.nodes = e.world = "?";
    for (const fs::directory_entry& f : fs::recursive_directory_iterator(d.path(), ec))
      if (f.is_regular_file(ec)) {
        const std::uintmax_t size = f.file_size(ec);  // a file renamed away meanwhile: skipped
        if (!ec) e.bytes += size;
      }
    try {
      std::ifstream in(e.path + "/" + kManifest);
      if (in) {
        const json m = json::parse(in);
        const json& k = m.at("components");
        e.complete = m.at("complete").get<bool>() && m.at("key").get<std::string>() == name;
        e.created = m.at("created").get<std::string>();
        e.model = k.at("model").get<std::string>();
        e.data.clear();
        for (const json& set : k.at("data"))
          e.data += (e.data.empty() ? "" : ", ") + set.at("set").get<std::string>() + " " +
                    set.at("identity").get<std::string>();
        e.image_size = std::to_string(k.at("image_size").get<int>());
        e.nodes.clear();
        for (const json& n : k.at("nodes"))
          e.nodes += (e.nodes.empty() ? "" : ",") + n.get<std::string>();
        e.world = std::to_string(k.at("world").get<int>());
      }
    } catch (const std::exception&) {
      e.complete = false;  // a damaged manifest: listed as incomplete
    }
    out.push_back(std::move(e));
  }
  std::sort(out.begin(), out.end(),
            [](const KeptCacheEntry& a, const KeptCacheEntry& b) { return a.key < b.key; });
  return out;
}

}  // namespace parafine
