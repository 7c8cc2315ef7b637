// Where the Keras-container tests (test_keras_archive, test_keras3_weights_file,
// test_keras_file_nested) find their fixtures and the script that writes and checks them: the
// CTest fixture keras3_container_fixtures passes the paths in the environment.
#pragma once

#include <string>

#include "test_util.hpp"

namespace parafine {
namespace keras3_fixtures {

inline std::string fixture(const std::string& name) {
  return test_util::env_or("PARAFINE_KERAS3_FIXTURES", "keras3_fixtures") + "/" + name;
}
inline std::string python() {
  return test_util::env_or("PARAFINE_REFERENCE_PYTHON", "/usr/bin/python3");
}
inline std::string script() {
  return test_util::env_or("PARAFINE_KERAS3_FIXTURE_SCRIPT",
                           "tests/reference/make_keras3_container_fixtures.py");
}

}  // namespace keras3_fixtures
}  // namespace parafine
