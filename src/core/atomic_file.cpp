// Temporary file + fsync + rename publication (see atomic_file.hpp).
#include "parafine/core/atomic_file.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <utility>

namespace parafine {

namespace {

std::string directory_of(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// fsync of a file or directory; false (errno set) when it cannot be opened or synced.
bool sync_path(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), (directory ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  errno = err;
  return ok;
}

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "host";
  std::string h(name);
  for (char& c : h)
    if (c == '-' || c == '/') c = '_';  // '-' separates the name from the pid
  return h;
}

const char kTempTag[] = ".tmp-";

}  // namespace

int remove_abandoned_temp_files(const std::string& dir, const std::string& prefix) {
  const std::string here = host_name();
  int removed = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    const auto tag = name.rfind(kTempTag);
    if (name.compare(0, prefix.size(), prefix) != 0 || tag == std::string::npos) continue;
    const std::string owner = name.substr(tag + sizeof kTempTag - 1);  // "<host>-<pid>"
    const auto dash = owner.rfind('-');
    if (dash == std::string::npos || owner.substr(0, dash) != here) continue;
    char* end = nullptr;
    const long pid = std::strtol(owner.c_str() + dash + 1, &end, 10);
    if (pid <= 0 || *end != '\0' || pid == ::getpid()) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // still running
    if (std::filesystem::remove(entry.path(), ec)) ++removed;
  }
  return removed;
}

std::string human_bytes(std::uint64_t bytes) {
  char buf[32];
  if (bytes >= (1ull << 30))
    std::snprintf(buf, sizeof buf, "%.1f GB", bytes / double(1ull << 30));
  else if (bytes >= (1ull << 20))
    std::snprintf(buf, sizeof buf, "%.1f MB", bytes / double(1ull << 20));
  else if (bytes >= 1024)
    std::snprintf(buf, sizeof buf, "%.0f KB", bytes / 1024.0);
  else
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  return buf;
}

AtomicFile::AtomicFile(std::string target_path, std::string what, std::uint64_t expected_bytes)
    : target_path_(std::move(target_path)),
      temp_path_(target_path_ + kTempTag + host_name() + "-" + std::to_string(::getpid())),
      what_(std::move(what)),
      expected_bytes_(expected_bytes) {}

AtomicFile::~AtomicFile() {
  if (!committed_) discard();
}

void AtomicFile::discard() {
  std::remove(temp_path_.c_str());
}

std::string AtomicFile::failure(const std::string& reason) const {
  std::string m = "cannot write the " + what_ + " " + target_path_ + ": " + reason;
  const std::string dir = directory_of(target_path_);
  struct statvfs fs {};
  if (expected_bytes_ > 0) m += "; it needs about " + human_bytes(expected_bytes_);
  if (::statvfs(dir.c_str(), &fs) == 0)
    m += (expected_bytes_ > 0 ? ", " : "; ") +
         human_bytes(static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize) + " free in " + dir;
  return m + " (the previous " + what_ + ", if any, is left as it was)";
}

void AtomicFile::write(const std::function<void(const std::string& temp_path)>& fill) {
  try {
    fill(temp_path_);
  } catch (const std::exception& e) {
    discard();
    throw std::runtime_error(failure(e.what()));
  }
  commit();
}

void AtomicFile::commit() {
  if (!sync_path(temp_path_, false)) {
    const int err = errno;
    discard();
    throw std::runtime_error(failure(std::string("cannot sync it to disk: ") + std::strerror(err)));
  }
  if (std::rename(temp_path_.c_str(), target_path_.c_str()) != 0) {
    const int err = errno;
    discard();
    throw std::runtime_error(failure(std::string("cannot move it into place: ") +
                                     std::strerror(err) +
                                     " (is the directory writable and on one filesystem?)"));
  }
  committed_ = true;
  sync_path(directory_of(target_path_), true);  // the rename itself; best effort
}

}  // namespace parafine
