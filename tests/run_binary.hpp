// Helpers for the CLI tests: run the parafine binary as a user would (through the shell) and
// read the CSV it writes. The test target defines PARAFINE_BINARY (see tests/CMakeLists.txt).
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

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

// Rows of a comma-separated file (no quoting: parafine writes none).
inline std::vector<std::vector<std::string>> read_csv(const std::string& file) {
  std::ifstream in(file);
  std::vector<std::vector<std::string>> rows;
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> cells;
    std::stringstream ss(line);
    for (std::string cell; std::getline(ss, cell, ',');) cells.push_back(cell);
    rows.push_back(cells);
  }
  return rows;
}

}  // namespace parafine
