// Resolving --weights imagenet|none|FILE (see weights_source.hpp).
#include "parafine/io/weights_source.hpp"

#include <sys/stat.h>

#include <cstdlib>
#include <stdexcept>

namespace parafine {

namespace {
bool is_file(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}
std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}
}  // namespace

std::vector<std::string> imagenet_search_dirs(const std::string& weights_dir) {
  std::vector<std::string> dirs;
  if (!weights_dir.empty()) dirs.push_back(weights_dir);
  if (!env("PARAFINE_WEIGHTS_DIR").empty()) dirs.push_back(env("PARAFINE_WEIGHTS_DIR"));
  if (!env("KERAS_HOME").empty()) dirs.push_back(env("KERAS_HOME") + "/models");
  if (!env("HOME").empty()) dirs.push_back(env("HOME") + "/.keras/models");
  return dirs;
}

std::string resolve_weights(const std::string& spec, const std::string& weights_dir) {
  if (spec == "none") return "";
  if (spec == "imagenet") {
    const auto dirs = imagenet_search_dirs(weights_dir);
    std::string looked;
    for (const auto& d : dirs) {
      if (is_file(d + "/" + kImagenetNotopFile)) return d + "/" + kImagenetNotopFile;
      looked += "\n  " + d + "/" + kImagenetNotopFile;
    }
    throw std::runtime_error(
        std::string("--weights imagenet: ") + kImagenetNotopFile +
        " not found; looked in:" + looked + "\nKeras downloads it from " + kImagenetNotopUrl +
        "\nPut it in one of those directories (e.g. ~/.keras/models, where Keras caches it), or "
        "pass --weights-dir DIR or --weights FILE.");
  }
  if (!is_file(spec))
    throw std::runtime_error("--weights: no such file '" + spec +
                             "' (give imagenet, none or the path of a Keras .h5 file)");
  return spec;
}

}  // namespace parafine
