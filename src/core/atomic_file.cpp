// Temporary file + rename publication (see atomic_file.hpp).
#include "parafine/core/atomic_file.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace parafine {

AtomicFile::AtomicFile(std::string target_path, std::string what)
    : target_path_(std::move(target_path)),
      temp_path_(target_path_ + ".tmp" + std::to_string(::getpid())),
      what_(std::move(what)) {}

AtomicFile::~AtomicFile() {
  if (!committed_) discard();
}

void AtomicFile::discard() {
  std::remove(temp_path_.c_str());
}

void AtomicFile::commit() {
  if (std::rename(temp_path_.c_str(), target_path_.c_str()) != 0) {
    const int err = errno;
    discard();
    throw std::runtime_error("cannot move the " + what_ + " into place at " + target_path_ + " (" +
                             std::strerror(err) +
                             "; is the directory writable and on the same filesystem?)");
  }
  committed_ = true;
}

}  // namespace parafine
