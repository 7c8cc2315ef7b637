// Reading and writing Keras 3 `.keras` zip archives with libzip (see keras_archive.hpp).
#include "parafine/io/keras_archive.hpp"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <zip.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "parafine/core/atomic_file.hpp"

namespace parafine {

TempFile::~TempFile() {
  if (!path_.empty()) ::unlink(path_.c_str());
}

namespace {

const char kConfig[] = "config.json";      // saving_lib._CONFIG_FILENAME
const char kMetadata[] = "metadata.json";  // saving_lib._METADATA_FILENAME
const char kWeightsH5[] = "model.weights.h5";
const char kWeightsNpz[] = "model.weights.npz";

std::string zip_error_text(int code) {
  zip_error_t e;
  zip_error_init_with_code(&e, code);
  std::string s = zip_error_strerror(&e);
  zip_error_fini(&e);
  return s;
}

// An archive open for reading; closed (discarded) on destruction.
struct ZipReader {
  zip_t* za = nullptr;
  ~ZipReader() {
    if (za) zip_discard(za);
  }
};

std::string member_list(const std::vector<std::string>& members) {
  std::string s;
  for (std::size_t i = 0; i < members.size() && i < 20; ++i) s += (i ? ", " : "") + members[i];
  if (members.size() > 20) s += ", ... (" + std::to_string(members.size()) + " in all)";
  return members.empty() ? "none" : s;
}

zip_stat_t stat_member(zip_t* za, const std::string& path, const std::string& name) {
  zip_stat_t st;
  zip_stat_init(&st);
  if (zip_stat(za, name.c_str(), 0, &st) != 0 || !(st.valid & ZIP_STAT_SIZE) ||
      !(st.valid & ZIP_STAT_COMP_SIZE))
    throw std::runtime_error(path + ": cannot read the entry of " + name + " in the archive (" +
                             zip_strerror(za) + ")");
  return st;
}

// Keras's bomb rule (saving_lib._reject_zip_bomb): a member declaring more than `floor` bytes
// and more than 100x what it stores is refused before anything is read.
void reject_bomb(const std::string& path, const std::string& name, const zip_stat_t& st,
                 unsigned long long floor) {
  if (st.size > floor && st.size > kKerasArchiveMaxExpansion * st.comp_size)
    throw std::runtime_error(path + ": archive member " + name + " declares " +
                             human_bytes(st.size) + " but stores only " +
                             human_bytes(st.comp_size) +
                             "; refusing a potential decompression bomb");
}

// Streams a member to `sink` in 1 MiB pieces; throws naming the member when the data is
// damaged (CRC, inflate errors) or longer than its entry declares.
template <class Sink>
void read_member(zip_t* za, const std::string& path, const std::string& name, const zip_stat_t& st,
                 Sink sink) {
  zip_file_t* zf = zip_fopen(za, name.c_str(), 0);
  if (!zf)
    throw std::runtime_error(path + ": cannot open archive member " + name + " (" +
                             zip_strerror(za) + ")");
  std::vector<char> buf(1 << 20);
  zip_uint64_t total = 0;
  for (;;) {
    const zip_int64_t n = zip_fread(zf, buf.data(), buf.size());
    if (n < 0) {
      const std::string why = zip_file_strerror(zf);
      zip_fclose(zf);
      throw std::runtime_error(path + ": archive member " + name + " is damaged (" + why + ")");
    }
    if (n == 0) break;
    total += static_cast<zip_uint64_t>(n);
    if (total > st.size) {
      zip_fclose(zf);
      throw std::runtime_error(path + ": archive member " + name + " holds more than the " +
                               std::to_string(st.size) + " bytes its entry declares (damaged)");
    }
    sink(buf.data(), static_cast<std::size_t>(n));
  }
  zip_fclose(zf);
  if (total != st.size)
    throw std::runtime_error(path + ": archive member " + name + " holds " + std::to_string(total) +
                             " bytes, its entry declares " + std::to_string(st.size) +
                             " (truncated archive?)");
}

std::string read_json_member(zip_t* za, const std::string& path, const std::string& name) {
  const zip_stat_t st = stat_member(za, path, name);
  reject_bomb(path, name, st, kKerasArchiveBombFloorBytes);
  if (st.size > kKerasArchiveJsonMaxBytes)
    throw std::runtime_error(path + ": archive member " + name + " is " + human_bytes(st.size) +
                             ", more than the " + human_bytes(kKerasArchiveJsonMaxBytes) +
                             " a Keras model's JSON could need; refusing to read it");
  std::string out;
  out.reserve(static_cast<std::size_t>(st.size));
  read_member(za, path, name, st, [&](const char* p, std::size_t n) { out.append(p, n); });
  return out;
}

// Whether the file starts with a zip local file header ("PK\3\4").
bool starts_like_zip(const std::string& path) {
  char head[4] = {};
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const ssize_t n = ::read(fd, head, sizeof head);
  ::close(fd);
  return n == 4 && std::memcmp(head, "PK\3\4", 4) == 0;
}

std::string temp_dir() {
  const char* t = std::getenv("TMPDIR");
  return t && *t ? t : "/tmp";
}

std::shared_ptr<TempFile> extract_weights(zip_t* za, const std::string& path) {
  const zip_stat_t st = stat_member(za, path, kWeightsH5);
  reject_bomb(path, kWeightsH5, st, kKerasArchiveBombFloorBytes);
  const std::string dir = temp_dir();
  struct statvfs vfs {};
  if (::statvfs(dir.c_str(), &vfs) == 0) {
    const unsigned long long avail = static_cast<unsigned long long>(vfs.f_bavail) *
                                     static_cast<unsigned long long>(vfs.f_frsize);
    if (avail < st.size)
      throw std::runtime_error(path + ": extracting " + kWeightsH5 + " needs " +
                               human_bytes(st.size) + " in " + dir + ", which has " +
                               human_bytes(avail) + " free (set TMPDIR to a larger directory)");
  }
  std::string tmpl = dir + "/parafine-keras-weights-XXXXXX.h5";
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  const int fd = ::mkstemps(name.data(), 3);
  if (fd < 0)
    throw std::runtime_error(path + ": cannot create a temporary file in " + dir + " to extract " +
                             kWeightsH5 + " (" + std::strerror(errno) + ")");
  auto file = std::make_shared<TempFile>(name.data());
  try {
    read_member(za, path, kWeightsH5, st, [&](const char* p, std::size_t n) {
      while (n > 0) {
        const ssize_t w = ::write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0)
          throw std::runtime_error(path + ": cannot write the extracted " + kWeightsH5 + " to " +
                                   file->path() + " (" + std::strerror(errno) + ")");
        p += w;
        n -= static_cast<std::size_t>(w);
      }
    });
  } catch (...) {
    ::close(fd);
    throw;
  }
  if (::close(fd) != 0)
    throw std::runtime_error(path + ": cannot write the extracted " + std::string(kWeightsH5) +
                             " to " + file->path() + " (" + std::strerror(errno) + ")");
  return file;
}

}  // namespace

KerasArchive read_keras_archive(const std::string& path) {
  KerasArchive out;
  out.path = path;
  int err = 0;
  ZipReader r;
  r.za = zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &err);
  if (!r.za) {
    if (err == ZIP_ER_NOENT || err == ZIP_ER_OPEN)
      throw std::runtime_error(path + ": cannot open (" + zip_error_text(err) + ")");
    if (err == ZIP_ER_NOZIP && !starts_like_zip(path))
      throw std::runtime_error(path + ": not a zip archive, so not a Keras .keras file");
    if (err == ZIP_ER_NOZIP)  // a local header but no central directory: cut short
      throw std::runtime_error(path +
                               ": a truncated or damaged zip archive (no central "
                               "directory at its end); copy the .keras file again");
    throw std::runtime_error(path + ": a damaged zip archive (" + zip_error_text(err) +
                             "; truncated or corrupted .keras file?)");
  }
  const zip_int64_t n = zip_get_num_entries(r.za, 0);
  for (zip_int64_t i = 0; i < n; ++i) {
    const char* name = zip_get_name(r.za, static_cast<zip_uint64_t>(i), 0);
    out.members.push_back(name ? name : "");
  }
  auto has = [&](const char* m) { return zip_name_locate(r.za, m, 0) >= 0; };
  if (!has(kConfig))
    throw std::runtime_error(path + ": no " + std::string(kConfig) + " in the archive (members: " +
                             member_list(out.members) + "); not a Keras .keras model file");
  out.config_json = read_json_member(r.za, path, kConfig);
  if (has(kMetadata)) out.metadata_json = read_json_member(r.za, path, kMetadata);
  if (has(kWeightsH5)) {
    out.weights = extract_weights(r.za, path);
  } else if (has(kWeightsNpz)) {
    throw std::runtime_error(path + ": the weights are stored as " + std::string(kWeightsNpz) +
                             " (saved with weights_format=\"npz\"); parafine reads the h5 "
                             "weights format only: re-save with model.save(path) (the default "
                             "weights_format=\"h5\")");
  } else {
    throw std::runtime_error(path + ": no " + std::string(kWeightsH5) +
                             " in the archive (members: " + member_list(out.members) + ")");
  }
  return out;
}

namespace {

void add_member(zip_t* za, const std::string& name, zip_source_t* src) {
  if (!src) throw std::runtime_error(std::string("cannot read the data of ") + name);
  const zip_int64_t idx = zip_file_add(za, name.c_str(), src, ZIP_FL_ENC_UTF_8);
  if (idx < 0) {
    zip_source_free(src);
    throw std::runtime_error("cannot add " + name + " (" + zip_strerror(za) + ")");
  }
  if (zip_set_file_compression(za, static_cast<zip_uint64_t>(idx), ZIP_CM_STORE, 0) != 0)
    throw std::runtime_error("cannot store " + name + " uncompressed (" + zip_strerror(za) + ")");
}

}  // namespace

void write_keras_archive(const std::string& path, const std::string& config_json,
                         const std::string& metadata_json, const std::string& weights_h5_path) {
  if (::access(weights_h5_path.c_str(), R_OK) != 0)
    throw std::runtime_error(path + ": cannot read the weights file " + weights_h5_path + " (" +
                             std::strerror(errno) + ")");
  AtomicFile out(path, "Keras archive");
  out.write([&](const std::string& temp_path) {
    int err = 0;
    zip_t* za = zip_open(temp_path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
    if (!za)
      throw std::runtime_error("cannot create the zip archive (" + zip_error_text(err) + ")");
    try {
      // saving_lib._save_model_to_fileobj's order: metadata.json, config.json, weights.
      add_member(za, kMetadata,
                 zip_source_buffer(za, metadata_json.data(), metadata_json.size(), 0));
      add_member(za, kConfig, zip_source_buffer(za, config_json.data(), config_json.size(), 0));
      add_member(za, kWeightsH5, zip_source_file(za, weights_h5_path.c_str(), 0, 0));
    } catch (...) {
      zip_discard(za);
      throw;
    }
    if (zip_close(za) != 0) {
      const std::string why = zip_strerror(za);
      zip_discard(za);
      throw std::runtime_error("cannot write the zip archive (" + why + ")");
    }
  });
}

}  // namespace parafine
