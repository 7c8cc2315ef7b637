// Recognising a keras.applications network in a weight file (see backbone_of_file.hpp).
#include "parafine/io/backbone_of_file.hpp"

#include <cmath>
#include <regex>
#include <stdexcept>

namespace parafine {

namespace {

// Dimension `dim` of layer's kernel (or depthwise_kernel), or -1.
int kernel_dim(const StoredLayer* l, int dim) {
  if (!l) return -1;
  for (const auto& w : l->weights)
    if ((w.var == "kernel" || w.var == "depthwise_kernel") &&
        static_cast<int>(w.shape.size()) > dim)
      return w.shape[static_cast<size_t>(dim)];
  return -1;
}

// The largest K of any "<prefix>K_" layer name, or 0.
int largest_block(const KerasWeightFile& file, const std::string& prefix) {
  int most = 0;
  for (const StoredLayer& l : file.layers)
    if (l.name.compare(0, prefix.size(), prefix) == 0) {
      std::size_t used = 0;
      try {
        const int k = std::stoi(l.name.substr(prefix.size()), &used);
        if (l.name.size() > prefix.size() + used && l.name[prefix.size() + used] == '_')
          most = std::max(most, k);
      } catch (const std::exception&) {
      }
    }
  return most;
}

// InceptionV3 has 94 convolutions and 94 BatchNormalizations, auto-named conv2d[_N] and
// batch_normalization[_N] (0- or 1-based by Keras generation), and no other weighted layer.
bool looks_like_inception_v3(const KerasWeightFile& file) {
  static const std::regex conv("conv2d(_[0-9]+)?"), bn("batch_normalization(_[0-9]+)?");
  int convs = 0, bns = 0;
  for (const StoredLayer& l : file.layers) {
    convs += std::regex_match(l.name, conv);
    bns += std::regex_match(l.name, bn);
  }
  return convs == 94 && bns == 94;
}

}  // namespace

std::optional<FileBackbone> backbone_of_file(const KerasWeightFile& file) {
  FileBackbone b{Backbone::kResNet50};
  if (const StoredLayer* conv1 = file.find("conv1_conv")) {
    const int blocks3 = largest_block(file, "conv3_block"),
              blocks4 = largest_block(file, "conv4_block");
    if (blocks3 == 4 && blocks4 == 6)
      b.backbone = Backbone::kResNet50;
    else if (blocks3 == 4 && blocks4 == 23)
      b.backbone = Backbone::kResNet101;
    else if (blocks3 == 8 && blocks4 == 36)
      b.backbone = Backbone::kResNet152;
    else
      return std::nullopt;
    b.width = kernel_dim(conv1, 3);
    b.channels = kernel_dim(conv1, 2);
    return b;
  }
  if (const StoredLayer* first = file.find("block1_conv1")) {
    b.backbone = file.find("block5_conv4") ? Backbone::kVGG19 : Backbone::kVGG16;
    b.channels = kernel_dim(first, 2);
    return b;
  }
  if (const StoredLayer* first = file.find("Conv1")) {
    b.backbone = Backbone::kMobileNetV2;
    b.channels = kernel_dim(first, 2);
    // The last block's projection has make_divisible(320 alpha) filters: distinct per alpha.
    const int last = kernel_dim(file.find("block_16_project"), 3);
    for (float a : kMobileNetV2Alphas)
      if (make_divisible(static_cast<int>(320 * static_cast<double>(a)), 8) == last) b.alpha = a;
    return b;
  }
  if (looks_like_inception_v3(file)) {
    b.backbone = Backbone::kInceptionV3;
    // The stem conv: conv2d in tf.keras's naming, conv2d_1 in the released file's.
    b.channels = kernel_dim(file.find("conv2d") ? file.find("conv2d") : file.find("conv2d_1"), 2);
    return b;
  }
  return std::nullopt;
}

NetworkConfig network_config_of(const KerasWeightFile& file, int image_size) {
  const std::optional<FileBackbone> b = backbone_of_file(file);
  if (!b) {
    std::string known;
    for (const BackboneInfo& i : backbones())
      known += (known.empty() ? "" : ", ") + std::string(i.name);
    throw std::runtime_error(file.path +
                             ": its layers are not those of a backbone parafine builds (" + known +
                             "), so this is not a full model file written by --save");
  }
  NetworkConfig c;
  c.backbone = b->backbone;
  c.alpha = b->alpha;
  c.width = b->width;
  c.channels = b->channels;
  c.image_size = image_size > 0 ? image_size : backbone_info(b->backbone).default_size;
  const auto head_dim = [&](const char* layer) {
    const int d = kernel_dim(file.find(layer), 1);
    if (d < 0)
      throw std::runtime_error(file.path + ": no '" + layer + "' kernel: it holds a " +
                               backbone_info(b->backbone).keras_name +
                               " base without the head, not a full model file (base + head) "
                               "written by --save or Keras; give it as --weights");
    return d;
  };
  c.head_units = head_dim("dense");
  c.classes = head_dim("dense_1");
  // Shapes a damaged file might claim but no model parafine builds has: the limits of train's
  // --head-units and of a dataset's classes, and 16x ResNet50's width.
  auto check = [&](const char* what, int value, int most) {
    if (value < 1 || value > most)
      throw std::runtime_error(file.path + ": the weights give " + what + " = " +
                               std::to_string(value) + ", outside 1.." + std::to_string(most) +
                               " (damaged file?)");
  };
  check("the conv1 width", c.width, 1024);
  check("the input channels", c.channels, 4);
  check("the dense head units", c.head_units, 65536);
  check("the classes", c.classes, 100000);
  return c;
}

}  // namespace parafine
