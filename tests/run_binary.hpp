// Helpers for the CLI tests: run the parafine binary as a user would (through the shell) and
// read the CSV it writes. The test target defines PARAFINE_BINARY (see tests/CMakeLists.txt);
// everything else lives in test_util.hpp.
#pragma once

#include <string>

#include "test_util.hpp"

namespace parafine {

using test_util::CommandResult;
using test_util::read_csv;

// `args` are appended to the binary's path as shell words.
inline CommandResult run_parafine(const std::string& args) {
  return test_util::run_command(std::string(PARAFINE_BINARY) + " " + args);
}

}  // namespace parafine
