// The --backbone options from the command line (issue 13): bad choices stop with exit 2 and a
// message naming the backbone and what was expected, before any data is read (--train names a
// path that does not exist, and the message must not be about it); inspect --backbone prints
// Keras's summary with Keras's include_top=False totals; demo trains each backbone.
#include <gtest/gtest.h>

#include <algorithm>
#include <iostream>
#include <string>

#include "run_binary.hpp"
#include "test_util.hpp"

namespace parafine {
namespace {

bool contains(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

struct BadChoice {
  std::string args, expected;
};

TEST(CliBackbones, BadChoicesStopBeforeTheData) {
  const std::vector<BadChoice> cases = {
      {"--backbone resnet18",
       "--backbone 'resnet18' is not a known backbone; known: resnet50, resnet101, resnet152, "
       "vgg16, vgg19, inception_v3, mobilenet_v2"},
      {"--backbone mobilenet_v2 --alpha 0.6",
       "--alpha for mobilenet_v2 must be one of 0.35, 0.5, 0.75, 1.0, 1.3, 1.4"},
      {"--backbone vgg16 --alpha 0.5",
       "--alpha is MobileNetV2's width multiplier; vgg16 takes none"},
      {"--backbone inception_v3 --image-size 74",
       "--image-size must be at least 75 for inception_v3"},
      {"--backbone vgg16 --image-size 31", "--image-size must be at least 32 for vgg16"},
      {"--backbone resnet101 --unfreeze-last 346",
       "--unfreeze-last must be between 0 and 345 (resnet101's base layers)"},
      {"--backbone vgg19 --unfreeze-from conv5_block3_1_conv",
       "--unfreeze-from: 'conv5_block3_1_conv' is not a base layer"},
      {"--backbone mobilenet_v2 --preprocess sepia",
       "--preprocess must be 'caffe', 'tf', 'torch', 'none' or 'rescale:F'"},
  };
  for (const BadChoice& c : cases) {
    const auto r = run_parafine("train --train /nonexistent/data " + c.args);
    std::cout << c.args << " -> exit " << r.exit_code << ": " << r.output;
    EXPECT_EQ(r.exit_code, 2) << c.args;
    EXPECT_TRUE(contains(r.output, c.expected)) << c.args << "\n" << r.output;
    EXPECT_FALSE(contains(r.output, "/nonexistent/data")) << c.args << ": the data was read first";
  }
}

TEST(CliBackbones, InspectPrintsKerasSummaryAndTotals) {
  struct Expect {
    std::string args, base;
  };
  const std::vector<Expect> cases = {
      {"--backbone vgg16", "Base (include_top=False): 19 layers, 14,714,688 params"},
      {"--backbone vgg19", "Base (include_top=False): 22 layers, 20,024,384 params"},
      {"--backbone resnet50", "Base (include_top=False): 175 layers, 23,587,712 params"},
      {"--backbone resnet101", "Base (include_top=False): 345 layers, 42,658,176 params"},
      {"--backbone resnet152", "Base (include_top=False): 515 layers, 58,370,944 params"},
      {"--backbone inception_v3", "Base (include_top=False): 311 layers, 21,802,784 params"},
      {"--backbone mobilenet_v2", "Base (include_top=False): 154 layers, 2,257,984 params"},
  };
  for (const Expect& e : cases) {
    const auto r = run_parafine("inspect " + e.args);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_TRUE(contains(r.output, e.base)) << e.args << "\n" << r.output.substr(0, 2000);
    EXPECT_TRUE(contains(r.output, "Total params: ")) << e.args;
    std::cout << e.args << ": " << r.output.substr(r.output.find("Base ("));
  }
  // The summary's rows: name (class), output shape, parameters, inbound layers.
  const auto vgg = run_parafine("inspect --backbone vgg16 --unfreeze-last 4");
  EXPECT_TRUE(contains(
      vgg.output,
      " block1_conv1 (Conv2D)              (None, 224, 224, 64)  1,792       ['input_1[0][0]']"))
      << vgg.output;
  EXPECT_TRUE(contains(vgg.output, "Trainable params: ")) << vgg.output;
  const auto inception = run_parafine("inspect --backbone inception_v3");
  EXPECT_TRUE(contains(inception.output, "(None, 8, 8, 2048)")) << inception.output.substr(0, 500);
}

// demo trains each backbone and saves it; predict recognises the saved backbone, its
// preprocessing and its minimum input size.
TEST(CliBackbones, DemoTrainsEachBackboneAndPredictRecognisesIt) {
  test_util::TempDir t("parafine_cli_bb");
  const std::string data = (t.path / "d32.h5").string();
  test_util::write_h5_images(data, 5, 32, 32, test_util::random_pixels(5 * 32 * 32 * 3, 1),
                             {0, 1, 0, 1, 0});
  for (const std::string b : {"vgg16", "inception_v3", "mobilenet_v2 --alpha 0.35"}) {
    const std::string model = (t.path / (b.substr(0, b.find(' ')) + ".h5")).string();
    const auto r = run_parafine("demo --backbone " + b +
                                " --train-samples 8 --val-samples 4 --batch-size 4"
                                " --phase1-epochs 1 --phase2-epochs 1 --classes 2 --threads 2"
                                " --save " +
                                model);
    EXPECT_EQ(r.exit_code, 0) << b << "\n" << r.output;
    EXPECT_TRUE(contains(r.output, "phase 2 epoch 1")) << b << "\n" << r.output;
    std::cout << b << ": " << r.output.substr(0, r.output.find('\n')) << "\n";
    const auto p = run_parafine("predict --model " + model + " --input " + data);
    std::cout << "predict " << b << " on 32x32 images: exit " << p.exit_code << "\n" << p.output;
    if (b == "inception_v3") {  // 32 is below its minimum, 75: exit 2 naming both
      EXPECT_EQ(p.exit_code, 2);
      EXPECT_TRUE(contains(p.output, "holds 32x32 images")) << p.output;
      EXPECT_TRUE(contains(p.output, "at least 75 for inception_v3")) << p.output;
      const auto resized =
          run_parafine("predict --model " + model + " --input " + data + " --image-size 75");
      EXPECT_EQ(resized.exit_code, 0) << resized.output;
    } else {
      EXPECT_EQ(p.exit_code, 0) << p.output;
      EXPECT_EQ(std::count(p.output.begin(), p.output.end(), '\n'), 6) << p.output;  // header + 5
    }
  }
}

}  // namespace
}  // namespace parafine
