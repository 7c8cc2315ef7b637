// keras.applications.vgg16 VGG16 / vgg19 VGG19 (include_top=False, pooling=None): five blocks
// of 3x3 'same' Conv2D (bias, activation='relu') named block{B}_conv{K}, each closed by a 2x2
// stride-2 MaxPooling2D block{B}_pool (see backbone_builders.hpp).
#include <stdexcept>
#include <string>

#include "backbone_builders.hpp"
#include "parafine/layers/conv2d.hpp"
#include "parafine/layers/simple_layers.hpp"

namespace parafine {

int add_vgg_base(Model& m, const NetworkConfig& c, int depth) {
  // Convolutions per block; the filters per block are 64, 128, 256, 512, 512 in both.
  int convs[5];
  switch (depth) {
    case 16:
      convs[0] = 2, convs[1] = 2, convs[2] = 3, convs[3] = 3, convs[4] = 3;
      break;
    case 19:
      convs[0] = 2, convs[1] = 2, convs[2] = 4, convs[3] = 4, convs[4] = 4;
      break;
    default:
      throw std::logic_error("no VGG of depth " + std::to_string(depth));
  }
  const int filters[5] = {64, 128, 256, 512, 512};
  // [S,S,C] -> block1 [S,S,64] -> ... -> block5_pool [S/32,S/32,512] (each pool floors).
  int x =
      m.add(std::make_unique<InputLayer>("input_1", Shape{c.image_size, c.image_size, c.channels}));
  for (int b = 0; b < 5; ++b) {
    const std::string block = "block" + std::to_string(b + 1);
    for (int k = 1; k <= convs[b]; ++k)
      x = m.add(std::make_unique<Conv2D>(block + "_conv" + std::to_string(k), filters[b], 3, 1,
                                         Padding::kSame, /*use_bias=*/true, ConvActivation::kRelu),
                {x});
    x = m.add(std::make_unique<MaxPooling2D>(block + "_pool", 2, 2), {x});
  }
  return x;
}

}  // namespace parafine
