// Publishing a file only when it is complete: the writer fills a temporary file beside the
// target ("<target>.tmp-<host>-<pid>", same directory so the rename is atomic), and commit() syncs
// it to disk and renames it into place. Until then the target is untouched, so a failure, a full
// disk or a crash never leaves a truncated model, checkpoint, dataset or prediction file
// behind, and a previous file survives.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace parafine {

class AtomicFile {
 public:
  // `what` names the file in messages ("checkpoint", "saved model", ...); `expected_bytes`
  // (0 = unknown) is about how large it will be, for the message when space runs out.
  AtomicFile(std::string target_path, std::string what, std::uint64_t expected_bytes = 0);
  ~AtomicFile();  // removes the temporary file unless commit() succeeded
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  const std::string& temp_path() const { return temp_path_; }
  const std::string& target_path() const { return target_path_; }

  // Runs fill(temp_path()) and commits. Any exception from fill becomes a std::runtime_error
  // from failure(): the temporary file is removed and the target left as it was.
  void write(const std::function<void(const std::string& temp_path)>& fill);
  // Syncs the temporary file's data to disk (fsync), renames it onto the target and syncs the
  // directory. Throws std::runtime_error (via failure()) when any of it fails.
  void commit();
  // Removes the temporary file now (e.g. on every rank before a collective write starts).
  void discard();
  // The message for a failed write: which file, why, about how much space it needed and how
  // much the directory has, and that the previous file is untouched.
  std::string failure(const std::string& reason) const;

 private:
  std::string target_path_, temp_path_, what_;
  std::uint64_t expected_bytes_;
  bool committed_ = false;
};

// Removes the temporary files of AtomicFiles in `dir` whose names start with `prefix` and
// whose process is gone (killed while writing: SIGKILL, or SIGTERM under mpirun, run no
// destructor): only those written on this host by a process id that no longer exists, so a
// live writer's file, or another host's on a shared filesystem, is never touched. Returns the
// number removed.
int remove_abandoned_temp_files(const std::string& dir, const std::string& prefix);

// "1.3 MB", "512 KB", "17 B".
std::string human_bytes(std::uint64_t bytes);

}  // namespace parafine
