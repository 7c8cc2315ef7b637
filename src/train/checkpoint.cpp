// Training checkpoints (see checkpoint.hpp).
#include "parafine/train/checkpoint.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <mutex>
#include <ostream>
#include <stdexcept>
#include <tuple>
#include <type_traits>

#include "parafine/core/atomic_file.hpp"
#include "parafine/data/sample_source.hpp"
#include "parafine/dist/comm.hpp"
#include "parafine/io/h5_tensors.hpp"

namespace fs = std::filesystem;

namespace parafine {

bool TrainPosition::operator<(const TrainPosition& o) const {
  return std::tie(phase, epoch, step) < std::tie(o.phase, o.epoch, o.step);
}

std::string checkpoint_name(const TrainPosition& p) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "ckpt-p%d-e%04d-s%07d.h5", p.phase, p.epoch, p.step);
  return buf;
}

namespace {

// A double as text that reads back to the same bits (std::to_string keeps 6 decimals).
std::string exact_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

Tensor as_tensor(const std::vector<float>& v) {
  Tensor t(Shape{static_cast<int>(std::max<std::size_t>(v.size(), 1))});
  std::copy(v.begin(), v.end(), t.data());
  if (v.empty()) t.resize(Shape{0});
  return t;
}

// A 64-bit checksum of a checkpoint's content (its root attributes and its four float blocks),
// stored as the attribute content_checksum, so that a bit flipped on disk after the write is
// found at --resume instead of silently changing the run. Each step is a bijection of the
// state for a given word, so any change of a single word changes the result.
class ContentChecksum {
 public:
  void add(const void* data, std::size_t bytes) {
    const auto* p = static_cast<const unsigned char*>(data);
    mix(bytes);
    for (; bytes >= 8; bytes -= 8, p += 8) {
      std::uint64_t w;
      std::memcpy(&w, p, 8);
      mix(w);
    }
    std::uint64_t tail = 0;
    if (bytes > 0) std::memcpy(&tail, p, bytes);  // (p may be null for an empty block)
    mix(tail);
  }
  void add(const std::string& text) { add(text.data(), text.size()); }
  void add(const std::vector<float>& v) { add(v.data(), v.size() * sizeof(float)); }
  std::string hex() const {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h_));
    return buf;
  }

 private:
  void mix(std::uint64_t w) {
    h_ ^= w;
    h_ = (h_ << 29) | (h_ >> 35);
    h_ *= 0x9E3779B97F4A7C15ull;
  }
  std::uint64_t h_ = 0x243F6A8885A308D3ull;
};

std::vector<float> read_floats(const H5File& f, const std::string& name, std::size_t expected) {
  f.check_stored_size(name);
  const auto dims = f.dataset_shape(name);
  std::size_t n = 1;
  for (auto d : dims) n *= static_cast<std::size_t>(d);
  if (n != expected)
    throw std::runtime_error(name + " holds " + std::to_string(n) + " values, the model needs " +
                             std::to_string(expected));
  if (n == 0) return {};
  const Tensor t = f.read_tensor(name);
  return std::vector<float>(t.data(), t.data() + n);
}

// A whole-number root attribute of a checkpoint, in [lo, hi].
long long integer_attribute(const H5File& f, const char* name, long long lo, long long hi) {
  const auto v = f.read_string_attribute("/", name);
  const std::string text = v.empty() ? std::string() : v[0];
  char* end = nullptr;
  errno = 0;
  const long long x = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE || x < lo || x > hi)
    throw std::runtime_error("attribute " + std::string(name) + " is '" + text.substr(0, 40) +
                             "', not a whole number in [" + std::to_string(lo) + ", " +
                             std::to_string(hi) + "] (damaged file?)");
  return x;
}

Checkpoint read_checkpoint(const std::string& path, const Model& model) {
  H5File f(path, H5File::Mode::kRead);
  auto attr = [&](const char* name) { return f.read_string_attribute("/", name).at(0); };
  auto number = [&](const char* name, long long lo, long long hi) {
    return integer_attribute(f, name, lo, hi);
  };
  constexpr long long kIntMax = std::numeric_limits<int>::max();
  Checkpoint c;
  c.path = path;
  c.position.phase = static_cast<int>(number("phase", 1, 2));
  c.position.epoch = static_cast<int>(number("epoch", 1, kIntMax));
  c.position.step = static_cast<int>(number("step", 0, kIntMax));
  c.position.partial.count = static_cast<int>(number("partial_count", 0, kIntMax));
  c.position.partial.correct =
      static_cast<int>(number("partial_correct", 0, c.position.partial.count));
  c.position.partial.loss_sum = std::strtod(attr("partial_loss_sum").c_str(), nullptr);
  if (!std::isfinite(c.position.partial.loss_sum) || c.position.partial.loss_sum < 0)
    throw std::runtime_error("attribute partial_loss_sum is not a finite loss (damaged file?)");
  // The weighted accuracy sums (--class-weight); checkpoints written before them hold an
  // unweighted run's sums, where they equal correct and count.
  const bool weighted_sums = f.has_attribute("/", "partial_weight_sum");
  c.position.partial.weighted_correct =
      weighted_sums ? std::strtod(attr("partial_weighted_correct").c_str(), nullptr)
                    : c.position.partial.correct;
  c.position.partial.weight_sum = weighted_sums
                                      ? std::strtod(attr("partial_weight_sum").c_str(), nullptr)
                                      : c.position.partial.count;
  if (!std::isfinite(c.position.partial.weight_sum) || c.position.partial.weight_sum < 0 ||
      !(c.position.partial.weighted_correct >= 0 &&
        c.position.partial.weighted_correct <= c.position.partial.weight_sum * (1 + 1e-9)))
    throw std::runtime_error(
        "attributes partial_weighted_correct/partial_weight_sum are not weight sums (damaged "
        "file?)");
  c.adam_t = static_cast<long>(number("adam_t", 0, std::numeric_limits<long>::max()));
  const std::string seed = attr("seed");
  char* seed_end = nullptr;
  c.position.seed = std::strtoull(seed.c_str(), &seed_end, 10);
  if (seed.empty() || *seed_end != '\0')
    throw std::runtime_error("attribute seed is '" + seed.substr(0, 40) +
                             "', not a whole number (damaged file?)");
  c.position.batch_size = static_cast<int>(number("batch_size", 0, kIntMax));
  c.position.samples = static_cast<int>(number("train_samples", 0, kIntMax));
  if (f.has_attribute("/", "run_options")) c.run_options = attr("run_options");
  c.params = read_floats(f, "/params", model.params().size());
  c.state = read_floats(f, "/state", model.state().size());
  const std::size_t moments = f.dataset_shape("/adam_m").empty()
                                  ? 0
                                  : static_cast<std::size_t>(f.dataset_shape("/adam_m")[0]);
  c.adam_m = read_floats(f, "/adam_m", moments);
  c.adam_v = read_floats(f, "/adam_v", moments);
  if (f.has_attribute("/", "callbacks")) {  // runs with callbacks (issue 15)
    c.callbacks.state = attr("callbacks");
    const auto best = [&](const char* name, std::size_t model_size) {
      const auto dims = f.dataset_shape(name);
      const std::size_t n = dims.empty() ? 0 : static_cast<std::size_t>(dims[0]);
      return read_floats(f, name, n == 0 ? 0 : model_size);
    };
    c.callbacks.best_params = best("/best_params", model.params().size());
    c.callbacks.best_state = best("/best_state", model.state().size());
  }
  if (f.has_attribute("/", "content_checksum")) {  // checkpoints before issue 11 have none
    ContentChecksum checksum;
    for (const char* name :
         {"phase", "epoch", "step", "adam_t", "partial_loss_sum", "partial_correct",
          "partial_count", "partial_weighted_correct", "partial_weight_sum", "seed", "batch_size",
          "train_samples", "run_options"})
      if (weighted_sums || std::string(name).rfind("partial_weight", 0) != 0)
        checksum.add(std::string(name) + "=" + attr(name));
    for (const auto* block : {&c.params, &c.state, &c.adam_m, &c.adam_v}) checksum.add(*block);
    if (f.has_attribute("/", "callbacks")) {
      checksum.add(std::string("callbacks=") + c.callbacks.state);
      checksum.add(c.callbacks.best_params);
      checksum.add(c.callbacks.best_state);
    }
    if (checksum.hex() != attr("content_checksum"))
      throw std::runtime_error("its content does not match the checksum written with it (" +
                               checksum.hex() + " instead of " +
                               attr("content_checksum").substr(0, 16) +
                               "): damaged on disk after it was written");
  }
  return c;
}

std::vector<std::pair<TrainPosition, fs::path>> list_checkpoints(const std::string& dir) {
  std::vector<std::pair<TrainPosition, fs::path>> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    TrainPosition p;
    const std::string name = entry.path().filename().string();
    if (std::sscanf(name.c_str(), "ckpt-p%d-e%d-s%d.h5", &p.phase, &p.epoch, &p.step) == 3 &&
        name.size() > 3 && name.substr(name.size() - 3) == ".h5")
      found.emplace_back(p, entry.path());
  }
  std::sort(found.begin(), found.end(),
            [](const auto& a, const auto& b) { return b.first < a.first; });  // newest first
  return found;
}

}  // namespace

bool has_checkpoints(const std::string& dir) {
  return !list_checkpoints(dir).empty();
}

void save_checkpoint(const std::string& dir, const Model& model, const Adam* adam,
                     const TrainPosition& p, int keep, const std::string& run_options,
                     const CallbackCheckpoint* callbacks) {
  if (callbacks && callbacks->state.empty()) callbacks = nullptr;
  fs::create_directories(dir);
  remove_abandoned_temp_files(dir, "ckpt-");  // left by a run killed while writing
  const fs::path final_path = fs::path(dir) / checkpoint_name(p);
  const std::size_t floats =
      model.params().size() + model.state().size() + (adam ? 2 * adam->m_values().size() : 0) +
      (callbacks ? callbacks->best_params.size() + callbacks->best_state.size() : 0);
  AtomicFile out(final_path.string(), "checkpoint", floats * sizeof(float));
  // Loader threads may be reading an HDF5 dataset right now; the HDF5 library need not be
  // thread-safe (see sample_source.hpp).
  std::lock_guard<std::mutex> hdf5_lock(hdf5_mutex());
  out.write([&](const std::string& temp_path) {
    H5File f(temp_path, H5File::Mode::kTruncate);
    f.write_string_scalar_attribute("/", "parafine_checkpoint", "1");
    f.write_tensor("/params", as_tensor(model.params()));
    f.write_tensor("/state", as_tensor(model.state()));
    f.write_tensor("/adam_m", as_tensor(adam ? adam->m_values() : std::vector<float>{}));
    f.write_tensor("/adam_v", as_tensor(adam ? adam->v_values() : std::vector<float>{}));
    const std::vector<std::pair<const char*, std::string>> attrs = {
        {"phase", std::to_string(p.phase)},
        {"epoch", std::to_string(p.epoch)},
        {"step", std::to_string(p.step)},
        {"adam_t", std::to_string(adam ? adam->iterations() : 0)},
        {"partial_loss_sum", exact_text(p.partial.loss_sum)},
        {"partial_correct", std::to_string(p.partial.correct)},
        {"partial_count", std::to_string(p.partial.count)},
        {"partial_weighted_correct", exact_text(p.partial.weighted_correct)},
        {"partial_weight_sum", exact_text(p.partial.weight_sum)},
        {"seed", std::to_string(p.seed)},
        {"batch_size", std::to_string(p.batch_size)},
        {"train_samples", std::to_string(p.samples)},
        {"run_options", run_options}};
    ContentChecksum checksum;
    for (const auto& [k, v] : attrs) {
      f.write_string_scalar_attribute("/", k, v);
      checksum.add(std::string(k) + "=" + v);
    }
    for (const auto* block : {&model.params(), &model.state(), adam ? &adam->m_values() : nullptr,
                              adam ? &adam->v_values() : nullptr})
      checksum.add(block ? *block : std::vector<float>{});
    if (callbacks) {
      f.write_string_scalar_attribute("/", "callbacks", callbacks->state);
      f.write_tensor("/best_params", as_tensor(callbacks->best_params));
      f.write_tensor("/best_state", as_tensor(callbacks->best_state));
      checksum.add("callbacks=" + callbacks->state);
      checksum.add(callbacks->best_params);
      checksum.add(callbacks->best_state);
    }
    f.write_string_scalar_attribute("/", "content_checksum", checksum.hex());
    f.close();  // checked: everything reached the file before it is published
  });
  const auto all = list_checkpoints(dir);
  for (std::size_t i = static_cast<std::size_t>(std::max(keep, 1)); i < all.size(); ++i)
    fs::remove(all[i].second);
}

Checkpoint load_latest_checkpoint(const std::string& dir, const Model& model, std::ostream& log) {
  const auto all = list_checkpoints(dir);
  if (all.empty())
    throw std::invalid_argument("--resume: no checkpoint (ckpt-*.h5) in --checkpoint-dir " + dir);
  for (const auto& [position, path] : all) {
    try {
      Checkpoint c;
      parse_untrusted_hdf5(path.string(), "parafine checkpoint",
                           [&] { c = read_checkpoint(path.string(), model); });
      return c;
    } catch (const std::exception& e) {
      log << "skipping checkpoint " << path.string() << ": " << e.what() << std::endl;
    }
  }
  throw std::runtime_error("--resume: no readable checkpoint in " + dir + " (all " +
                           std::to_string(all.size()) + " are damaged or from another model)");
}

void broadcast_checkpoint(Checkpoint& ck) {
  if (Comm::size() == 1) return;
  static_assert(std::is_trivially_copyable_v<TrainPosition>, "TrainPosition is broadcast as bytes");
  Comm::broadcast_bytes(&ck.position, sizeof ck.position);  // the 64-bit seed exactly
  std::uint64_t sizes[2] = {static_cast<std::uint64_t>(ck.adam_t), ck.adam_m.size()};
  Comm::broadcast_bytes(sizes, sizeof sizes);
  ck.adam_t = static_cast<long>(sizes[0]);
  ck.adam_m.resize(sizes[1]);
  ck.adam_v.resize(sizes[1]);
  Comm::broadcast(ck.adam_m.data(), ck.adam_m.size());
  Comm::broadcast(ck.adam_v.data(), ck.adam_v.size());
  ck.path = Comm::broadcast(ck.path);
  ck.run_options = Comm::broadcast(ck.run_options);
  ck.callbacks.state = Comm::broadcast(ck.callbacks.state);
  for (auto* block : {&ck.callbacks.best_params, &ck.callbacks.best_state}) {
    std::uint64_t n = block->size();
    Comm::broadcast_bytes(&n, sizeof n);
    block->resize(n);
    Comm::broadcast(block->data(), block->size());
  }
}

CheckpointDirLock::CheckpointDirLock(const std::string& dir) {
  fs::create_directories(dir);
  const std::string path = (fs::path(dir) / ".parafine.lock").string();
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw std::runtime_error("--checkpoint-dir " + dir + ": cannot create " + path + ": " +
                             std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    char owner[256] = {};
    const ssize_t n = ::pread(fd_, owner, sizeof owner - 1, 0);
    ::close(fd_);
    fd_ = -1;
    throw std::runtime_error("--checkpoint-dir " + dir + " is in use by another run (" +
                             std::string(owner, n > 0 ? static_cast<std::size_t>(n) : 0) +
                             "); give each run its own checkpoint directory");
  }
  char host[128] = {};
  ::gethostname(host, sizeof host - 1);
  const std::string me = "host " + std::string(host) + ", pid " + std::to_string(::getpid());
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, me.data(), me.size(), 0) < 0) {
    // The lock holds without the note; the note only helps the message above.
  }
}

CheckpointDirLock::~CheckpointDirLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock
}

}  // namespace parafine
