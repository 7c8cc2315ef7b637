// Runs the parafine binary as a user would (through the shell), for the CLI tests. The test
// target defines PARAFINE_BINARY (see tests/CMakeLists.txt).
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace parafine {

struct CommandResult {
  int exit_code;       // -1 when the process did not exit normally
  std::string output;  // stdout and stderr
};

// `args` are appended to the binary's path as shell words.
inline CommandResult run_parafine(const std::string& args) {
  const std::string cmd = std::string(PARAFINE_BINARY) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

}  // namespace parafine
