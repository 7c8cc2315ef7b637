// Keras 3 `.keras` archives (keras/src/saving/saving_lib.py, save_model / load_model): a zip
// holding
//   metadata.json     {"keras_version": ..., "date_saved": ...}     (written first)
//   config.json       the serialized model (serialize_keras_object) (written second)
//   model.weights.h5  the variables, in the Keras 3 `vars` layout (keras3_weights_file.hpp)
//   assets/...        per-layer assets (ignored here)
// Keras writes every member ZIP_STORED (zipfile.ZipFile's default). A model saved with
// weights_format="npz" has model.weights.npz instead: parafine refuses it with a message.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace parafine {

// A file that is removed when the last owner goes away (the extracted weights).
class TempFile {
 public:
  explicit TempFile(std::string path) : path_(std::move(path)) {}
  ~TempFile();
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct KerasArchive {
  std::string path;                   // the .keras file
  std::string config_json;            // config.json, as stored
  std::string metadata_json;          // metadata.json, "" when the archive has none
  std::vector<std::string> members;   // every member name, in archive order
  std::shared_ptr<TempFile> weights;  // model.weights.h5 extracted to a private temp file
  const std::string& weights_h5_path() const { return weights->path(); }
};

// Bounds on what an archive may declare (Keras's _reject_zip_bomb / _reject_zip_extract_bomb
// idea: a member that both exceeds a floor and expands more than 100x its stored size is a
// bomb). config.json and metadata.json are read into memory and are also capped outright.
constexpr unsigned long long kKerasArchiveJsonMaxBytes = 256ull << 20;    // 256 MiB
constexpr unsigned long long kKerasArchiveBombFloorBytes = 256ull << 20;  // Keras: 1 << 28
constexpr unsigned long long kKerasArchiveMaxExpansion = 100;             // Keras: 100

// Reads config.json (required), metadata.json (optional) and extracts model.weights.h5 into
// a private temporary file under $TMPDIR (or /tmp), removed when the returned archive (and
// every copy of its `weights` pointer) is gone. Throws std::runtime_error naming the file and
// the member: not a zip archive, a damaged / truncated archive, no config.json (the members
// are listed), npz weights, no weights member, a bomb or an oversized member, no room to
// extract.
KerasArchive read_keras_archive(const std::string& path);

// Writes a .keras archive: metadata.json, config.json, model.weights.h5 (the file at
// weights_h5_path), in Keras's order, all ZIP_STORED, through AtomicFile (temp + rename: a
// failure leaves no partial file, and an existing file untouched).
void write_keras_archive(const std::string& path, const std::string& config_json,
                         const std::string& metadata_json, const std::string& weights_h5_path);

}  // namespace parafine
