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

ImagenetFile imagenet_notop_file(const NetworkConfig& net) {
  const std::string base = "https://storage.googleapis.com/tensorflow/keras-applications/";
  switch (net.backbone) {
    case Backbone::kResNet50:
    case Backbone::kResNet101:
    case Backbone::kResNet152: {
      const std::string name = std::string(backbone_info(net.backbone).name) +
                               "_weights_tf_dim_ordering_tf_kernels_notop.h5";
      return {name, base + "resnet/" + name};
    }
    case Backbone::kVGG16:
    case Backbone::kVGG19:
    case Backbone::kInceptionV3: {
      const std::string model = backbone_info(net.backbone).name;
      const std::string name = model + "_weights_tf_dim_ordering_tf_kernels_notop.h5";
      return {name, base + model + "/" + name};
    }
    case Backbone::kMobileNetV2:
      break;
  }
  const int rows = mobilenet_v2_weight_rows(net.image_size);
  const std::string name = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_" +
                           alpha_text(net.alpha) + "_" + std::to_string(rows) + "_no_top.h5";
  return {name, base + "mobilenet_v2/" + name};
}

std::vector<std::string> imagenet_search_dirs(const std::string& weights_dir) {
  std::vector<std::string> dirs;
  if (!weights_dir.empty()) dirs.push_back(weights_dir);
  if (!env("PARAFINE_WEIGHTS_DIR").empty()) dirs.push_back(env("PARAFINE_WEIGHTS_DIR"));
  if (!env("KERAS_HOME").empty()) dirs.push_back(env("KERAS_HOME") + "/models");
  if (!env("HOME").empty()) dirs.push_back(env("HOME") + "/.keras/models");
  return dirs;
}

std::string resolve_weights(const std::string& spec, const std::string& weights_dir,
                            const NetworkConfig& net) {
  if (spec == "none") return "";
  if (spec == "imagenet") {
    const ImagenetFile file = imagenet_notop_file(net);
    const auto dirs = imagenet_search_dirs(weights_dir);
    std::string looked;
    for (const auto& d : dirs) {
      if (is_file(d + "/" + file.name)) return d + "/" + file.name;
      looked += "\n  " + d + "/" + file.name;
    }
    throw std::runtime_error(
        "--weights imagenet: " + file.name + " (" + backbone_info(net.backbone).keras_name +
        "'s notop weights) not found; looked in:" + looked + "\nKeras downloads it from " +
        file.url +
        "\nPut it in one of those directories (e.g. ~/.keras/models, where Keras caches it), or "
        "pass --weights-dir DIR or --weights FILE.");
  }
  if (!is_file(spec))
    throw std::runtime_error("--weights: no such file '" + spec +
                             "' (give imagenet, none or the path of a Keras .h5 file)");
  return spec;
}

}  // namespace parafine
