// Publishing a file only when it is complete: the writer fills a temporary file beside the
// target ("<target>.tmp<pid>", same directory so the rename is atomic), and commit() renames it
// into place. Until then the target is untouched, so a failure or a crash never leaves a
// truncated model, checkpoint, dataset or prediction file behind, and a previous file survives.
#pragma once

#include <string>

namespace parafine {

class AtomicFile {
 public:
  // `what` names the file in messages ("checkpoint", "saved model", ...).
  AtomicFile(std::string target_path, std::string what);
  ~AtomicFile();  // removes the temporary file unless commit() succeeded
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  const std::string& temp_path() const { return temp_path_; }
  const std::string& target_path() const { return target_path_; }
  // Renames the temporary file onto the target. Throws std::runtime_error naming both (and
  // removes the temporary file) when the rename fails.
  void commit();
  // Removes the temporary file now (e.g. on every rank before a collective write starts).
  void discard();

 private:
  std::string target_path_, temp_path_, what_;
  bool committed_ = false;
};

}  // namespace parafine
