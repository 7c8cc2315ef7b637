// --weights imagenet|none|FILE resolution: the Keras cache directories in order, and an error
// that says where Keras downloads the file from and where to put it.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "parafine/io/weights_source.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;

namespace parafine {
namespace {

using test_util::TempDir;

TEST(WeightsSource, NoneMeansRandomInit) {
  EXPECT_EQ(resolve_weights("none"), "");
}

TEST(WeightsSource, ImagenetSearchOrder) {
  TempDir t("parafine_ws");
  setenv("HOME", (t.path / "home").c_str(), 1);
  setenv("KERAS_HOME", (t.path / "keras").c_str(), 1);
  unsetenv("PARAFINE_WEIGHTS_DIR");
  t.touch(fs::path("home/.keras/models") / imagenet_notop_file({}).name);
  EXPECT_EQ(resolve_weights("imagenet"),
            (t.path / "home/.keras/models" / imagenet_notop_file({}).name).string());
  t.touch(fs::path("keras/models") / imagenet_notop_file({}).name);
  EXPECT_EQ(resolve_weights("imagenet"),
            (t.path / "keras/models" / imagenet_notop_file({}).name).string());
  t.touch(fs::path("explicit") / imagenet_notop_file({}).name);
  EXPECT_EQ(resolve_weights("imagenet", (t.path / "explicit").string()),
            (t.path / "explicit" / imagenet_notop_file({}).name).string());
}

TEST(WeightsSource, MissingImagenetSaysWhereToGetIt) {
  TempDir t("parafine_ws");
  setenv("HOME", (t.path / "home").c_str(), 1);
  unsetenv("KERAS_HOME");
  unsetenv("PARAFINE_WEIGHTS_DIR");
  try {
    resolve_weights("imagenet");
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    std::cout << msg << "\n";
    EXPECT_NE(msg.find(imagenet_notop_file({}).url), std::string::npos);
    EXPECT_NE(msg.find((t.path / "home/.keras/models").string()), std::string::npos);
  }
}

// The names and addresses of keras.applications' include_top=False downloads (resnet.py,
// vgg16.py, vgg19.py, inception_v3.py, mobilenet_v2.py).
TEST(WeightsSource, EachBackboneHasKerasNotopFile) {
  const std::string base = "https://storage.googleapis.com/tensorflow/keras-applications/";
  struct Expect {
    NetworkConfig net;
    std::string name, url_dir;
  };
  auto net = [](Backbone b, float alpha = 1.0f, int size = 224) {
    NetworkConfig c;
    c.backbone = b;
    c.alpha = alpha;
    c.image_size = size;
    return c;
  };
  const std::vector<Expect> expected = {
      {net(Backbone::kResNet50), "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", "resnet/"},
      {net(Backbone::kResNet101), "resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5",
       "resnet/"},
      {net(Backbone::kResNet152), "resnet152_weights_tf_dim_ordering_tf_kernels_notop.h5",
       "resnet/"},
      {net(Backbone::kVGG16), "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", "vgg16/"},
      {net(Backbone::kVGG19), "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5", "vgg19/"},
      {net(Backbone::kInceptionV3, 1.0f, 299),
       "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5", "inception_v3/"},
      {net(Backbone::kMobileNetV2),
       "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5", "mobilenet_v2/"},
      {net(Backbone::kMobileNetV2, 0.35f, 96),
       "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5", "mobilenet_v2/"},
      {net(Backbone::kMobileNetV2, 1.3f, 100),  // not a size Keras has: 224's file
       "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.3_224_no_top.h5", "mobilenet_v2/"},
  };
  for (const Expect& e : expected) {
    const ImagenetFile f = imagenet_notop_file(e.net);
    EXPECT_EQ(f.name, e.name);
    EXPECT_EQ(f.url, base + e.url_dir + e.name);
  }
}

TEST(WeightsSource, MissingFileIsNamed) {
  try {
    resolve_weights("/nonexistent/w.h5");
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/w.h5"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace parafine
