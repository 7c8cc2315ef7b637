// The whole ResNet50 topology against an independent implementation: PyTorch in float64
// (tests/reference/make_resnet50_reference.py, run by CTest as a fixture) computes one
// training step's forward output, loss, trainable-suffix gradients and BN moving-statistic
// updates from the same weights; parafine (float32) must agree within stated tolerances.
//
// Two views of the same step:
//  - EndToEnd: from the images through all 175+3 layers. Forward and loss are tight. The
//    gradients are ill-conditioned here: float32 and float64 activations differ by ~1e-4
//    after ~45 frozen layers, a few ReLU inputs land on the other side of 0 (counted and
//    printed), and each flip moves a whole gradient element; the tolerance says so.
//  - Suffix: the reference's activation at the block boundary before the trainable suffix is
//    fed to Model::forward_from, so only the trainable part runs in float32, and gradients
//    must agree tightly.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <string>

#include "parafine/core/loss.hpp"
#include "parafine/io/h5_tensors.hpp"
#include "parafine/io/keras_weights.hpp"
#include "parafine/layers/dense.hpp"
#include "parafine/model/backbone.hpp"
#include "test_util.hpp"

namespace parafine {
namespace {

// What one view of the step must match: forward (logits, probabilities, base output), the loss,
// the updated moving statistics and the gradients (L2 per tensor).
struct Tolerances {
  double forward, loss, moving, grads;
};

struct Case {
  std::string name;  // fixture files ref_<name>_weights.h5 / ref_<name>_ref.h5
  NetworkConfig net;
  int unfreeze_last;
  Precision precision = Precision::kFloat32;
  Tolerances end_to_end{5e-4, 1e-4, 1e-4, 5e-2};
  Tolerances suffix{1e-5, 1e-5, 1e-5, 1e-4};
};

// gtest prints a failing case by its name instead of its bytes.
void PrintTo(const Case& c, std::ostream* os) {
  *os << c.name << " (" << backbone_info(c.net.backbone).name << ", " << c.net.image_size << "x"
      << c.net.image_size << ", unfreeze " << c.unfreeze_last << ")";
}

// VGG has no BatchNormalization and 13 / 16 convolutions: float32 stays close to float64 all
// the way (no moving statistics to check).
constexpr Tolerances kVggEndToEnd{2e-5, 1e-6, 1e-5, 1e-4};

std::string fixture(const Case& c, const char* kind) {
  return test_util::env_or("PARAFINE_REFERENCE_DIR", ".") + "/ref_" + c.name + "_" + kind + ".h5";
}

// max|a - r| / max(max|r|, floor): the worst element against the tensor's scale.
double scaled_error(const float* a, const std::vector<double>& r, double floor = 1e-6) {
  double diff = 0, ref = floor;
  for (std::size_t i = 0; i < r.size(); ++i) {
    diff = std::max(diff, std::abs(a[i] - r[i]));
    ref = std::max(ref, std::abs(r[i]));
  }
  return diff / ref;
}

// ||a - r||_2 / ||r||_2.
double l2_error(const float* a, const std::vector<double>& r) {
  double diff = 0, ref = 1e-30;
  for (std::size_t i = 0; i < r.size(); ++i) {
    diff += (a[i] - r[i]) * (a[i] - r[i]);
    ref += r[i] * r[i];
  }
  return std::sqrt(diff / ref);
}

// Elements where exactly one of two ReLU outputs is zero.
int relu_mask_flips(const float* a, const std::vector<double>& r) {
  int flips = 0;
  for (std::size_t i = 0; i < r.size(); ++i) flips += (a[i] == 0.0f) != (r[i] == 0.0);
  return flips;
}

// True when conv node i's only consumer is a BatchNormalization.
bool feeds_only_batch_norm(const Model& m, int i) {
  int consumers = 0, bn = 0;
  for (int j = i + 1; j < m.size(); ++j)
    for (int k : m.inputs_of(j))
      if (k == i) {
        ++consumers;
        bn += m.layer(j).type() == std::string("BatchNormalization");
      }
  return consumers == 1 && bn == 1;
}

class ResNet50Reference : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    ref_ = std::make_unique<H5File>(fixture(GetParam(), "ref"), H5File::Mode::kRead);
    model_ = build_network(GetParam().net);
    load_keras_weights(model_, fixture(GetParam(), "weights"), WeightScope::kFull);
    freeze_base(model_);
    unfreeze_last_base_layers(model_, GetParam().unfreeze_last);
    model_.set_precision(GetParam().precision);
    labels_ = ref_->read_ints("/labels");
  }

  const Dense& head() const { return static_cast<const Dense&>(model_.layer(model_.size() - 1)); }

  void check_logits_and_loss(const std::string& view, double forward_tol, double loss_tol) {
    const double logit_err = scaled_error(head().logits().data(), ref_->read_doubles("/logits"));
    const double prob_err =
        scaled_error(model_.output(model_.size() - 1).data(), ref_->read_doubles("/probs"));
    std::cout << view << " logits " << logit_err << ", probs " << prob_err << " (tol "
              << forward_tol << ")\n";
    EXPECT_LT(logit_err, forward_tol);
    EXPECT_LT(prob_err, forward_tol);
    const int batch = static_cast<int>(labels_.size());
    const LossResult loss = softmax_cross_entropy(head().logits(), labels_, batch, &dlogits_);
    const double ref_loss = ref_->read_doubles("/loss")[0];
    const double err =
        std::abs(loss.loss_sum / batch - ref_loss) / std::max(1.0, std::abs(ref_loss));
    std::cout << view << " loss " << loss.loss_sum / batch << " vs reference " << ref_loss
              << ": error " << err << " (tol " << loss_tol << ")\n";
    EXPECT_LT(err, loss_tol);
  }

  // Backward, then every optimised weight of every trainable layer against the reference.
  void check_gradients(const std::string& view, double tol) {
    model_.backward(dlogits_);
    model_.finish_gradients();  // as the trainer does before the optimizer
    const auto trainable = ref_->read_string_attribute("/", "trainable_layers");
    ASSERT_EQ(trainable.size(), static_cast<size_t>(GetParam().unfreeze_last + 3));
    int checked = 0;
    double worst = 0;
    for (const ParamRef& r : model_.param_refs()) {
      if (!r.optimised) continue;
      const std::string& layer = model_.layer(r.node).name();
      const bool is_trainable =
          std::find(trainable.begin(), trainable.end(), layer) != trainable.end();
      ASSERT_EQ(model_.layer(r.node).trainable, is_trainable) << layer;
      if (!is_trainable) {
        EXPECT_GE(r.offset, model_.grads().size())
            << layer << " is frozen but inside the gradient range";
        continue;
      }
      const std::vector<double> g = ref_->read_doubles("/grads/" + layer + "/" + r.name);
      ASSERT_EQ(g.size(), r.shape.numel()) << layer << "/" << r.name;
      const float* mine = model_.grads().data() + r.offset;
      ++checked;
      if (r.name == "bias" && feeds_only_batch_norm(model_, r.node)) {
        // Mathematically zero (the batch mean removes it); kept exactly zero. (Under
        // mixed_bfloat16 the reference's is rounding noise: the bias is added, and rounded, in
        // bfloat16 before the batch mean is taken.)
        double ref_max = 0;
        for (double v : g) ref_max = std::max(ref_max, std::abs(v));
        for (std::size_t i = 0; i < g.size(); ++i)
          ASSERT_EQ(mine[i], 0.0f) << layer << "/bias[" << i << "]";
        std::cout << view << " " << layer << "/bias gradient exactly 0 (reference max |g| "
                  << ref_max << ")\n";
        continue;
      }
      double ref_max = 0, mine_max = 0;
      for (std::size_t i = 0; i < g.size(); ++i) {
        ref_max = std::max(ref_max, std::abs(g[i]));
        mine_max = std::max(mine_max, static_cast<double>(std::abs(mine[i])));
      }
      if (ref_max < 1e-12) {
        // Mathematically zero, and rounding noise in the reference too: a BN's beta whose
        // per-channel shift the next batch-statistics BN removes (MobileNetV2's
        // block_16_project_BN -> Conv_1 -> Conv_1_bn). Then only noise is allowed here.
        std::cout << view << " " << layer << "/" << r.name
                  << " gradient is zero (reference max |g| " << ref_max << ", here " << mine_max
                  << ", tol 1e-5)\n";
        EXPECT_LT(mine_max, 1e-5) << layer << "/" << r.name;
        continue;
      }
      const double err = l2_error(mine, g);
      worst = std::max(worst, err);
      EXPECT_LT(err, tol) << layer << "/" << r.name;
      std::cout << view << " grad " << layer << "/" << r.name << ": L2 " << err
                << ", worst element " << scaled_error(mine, g) << "\n";
    }
    std::cout << view << " " << checked << " gradient tensors, worst L2 error " << worst << " (tol "
              << tol << ")\n";
    EXPECT_GE(checked, 4);
  }

  void check_moving_statistics(const std::string& view, double tol) {
    for (const std::string& layer : ref_->read_string_attribute("/", "trainable_layers")) {
      if (model_.layer(model_.index_of(layer)).type() != std::string("BatchNormalization"))
        continue;
      for (const char* var : {"moving_mean", "moving_variance"}) {
        const double err = scaled_error(model_.data(model_.find_param(layer, var)),
                                        ref_->read_doubles("/moving/" + layer + "/" + var));
        std::cout << view << " " << layer << "/" << var << " after the update: " << err << " (tol "
                  << tol << ")\n";
        EXPECT_LT(err, tol) << layer << "/" << var;
      }
    }
  }

  std::unique_ptr<H5File> ref_;
  Model model_;
  std::vector<int> labels_;
  Tensor dlogits_;
};

TEST_P(ResNet50Reference, EndToEnd) {
  const std::string view = "[" + GetParam().name + " end-to-end]";
  const Tolerances& tol = GetParam().end_to_end;
  // The base output: no backward reads VGG's block5_pool, and a Concatenate's (InceptionV3)
  // does not keep its output: kept for the comparison.
  model_.keep_output(model_.base_layers() - 1);
  model_.forward(ref_->read_tensor("/input"), true);
  const double kForwardTol = tol.forward;
  const auto ref_base = ref_->read_doubles("/base_output");
  const float* base = model_.output(model_.base_layers() - 1).data();
  const double base_err = scaled_error(base, ref_base);
  const double pooled_err =
      scaled_error(model_.output(model_.base_layers()).data(), ref_->read_doubles("/pooled"));
  std::cout << view << " base_output " << base_err << ", pooled " << pooled_err << " (tol "
            << kForwardTol << "); base output (ReLU) elements on the other side of 0: "
            << relu_mask_flips(base, ref_base) << " of " << ref_base.size() << "\n";
  EXPECT_LT(base_err, kForwardTol);
  EXPECT_LT(pooled_err, kForwardTol);
  check_logits_and_loss(view, kForwardTol, tol.loss);
  check_moving_statistics(view, tol.moving);
  check_gradients(view, tol.grads);
}

TEST_P(ResNet50Reference, TrainableSuffix) {
  const std::string view = "[" + GetParam().name + " suffix]";
  const std::string boundary = ref_->read_string_attribute("/", "boundary_layer").at(0);
  std::cout << view << " runs from " << boundary << "\n";
  model_.forward_from(model_.index_of(boundary), ref_->read_tensor("/boundary"), true);
  const Tolerances& tol = GetParam().suffix;
  check_logits_and_loss(view, tol.forward, tol.loss);
  check_moving_statistics(view, tol.moving);
  check_gradients(view, tol.grads);
}

// The issue-12 target for mixed_bfloat16: inference predictions within 1e-2 of float32's, on
// the well-conditioned network (a seeded random network without the tame BN scaling is chaotic:
// there bfloat16 and float32 give unrelated outputs, in PyTorch as here).
TEST(MixedBfloat16, PredictionsWithinOneHundredthOfFloat32) {
  const Case tame{"tame", {64, 3, 32, 16, 3}, 10};
  H5File ref(fixture(tame, "ref"), H5File::Mode::kRead);
  const Tensor images = ref.read_tensor("/input");
  std::vector<float> probs[2];
  for (const Precision p : {Precision::kFloat32, Precision::kMixedBfloat16}) {
    Model m = build_network(tame.net);
    load_keras_weights(m, fixture(tame, "weights"), WeightScope::kFull);
    freeze_base(m);
    m.set_precision(p);
    const Tensor& y = m.forward(images, false);
    probs[p == Precision::kMixedBfloat16].assign(y.data(), y.data() + y.numel());
  }
  double worst = 0;
  for (std::size_t i = 0; i < probs[0].size(); ++i)
    worst = std::max(worst, static_cast<double>(std::abs(probs[0][i] - probs[1][i])));
  std::cout << "mixed_bfloat16 vs float32 predictions: max |difference| " << worst << " over "
            << probs[0].size() << " probabilities (tol 1e-2)\n";
  EXPECT_LT(worst, 1e-2);
  EXPECT_GT(worst, 1e-5) << "the bfloat16 policy changed nothing: is it applied?";
}

// MobileNetV2 (make_mobilenet_v2_reference.py): alpha 1.0 at 32, alpha 0.35 at 33 (odd sizes:
// correct_pad's symmetric pads; a cut through block_13, so trainable depthwise layers) and
// the real network at 224 (batch 1); 3 classes, a head of 32 units (64 at 224).
// End to end at 32x32 the last blocks are 1x1 over 3 images, which amplifies rounding:
// measured, alpha 1.0's base output is 6e-4 (im2col) to 2.1e-3 (oneDNN) from float64 and its
// loss 3.5e-5 to 1.1e-4, where at 224 both are ~4e-5 and 2e-6: looser end-to-end tolerances
// below 224. The suffix view keeps the default (tight) ones.
Case mobilenet_v2_case(const std::string& name, int size, float alpha, int unfreeze_last) {
  Case c{name, {size, 3, size == 224 ? 64 : 32}, unfreeze_last};
  c.net.backbone = Backbone::kMobileNetV2;
  c.net.alpha = alpha;
  if (size < 224) c.end_to_end = {5e-3, 1e-3, 1e-3, 5e-2};
  return c;
}

INSTANTIATE_TEST_SUITE_P(
    Topologies, ResNet50Reference,
    ::testing::Values(
        Case{"small", {64, 3, 32, 16, 3}, 10},        // default unfreeze, narrow
        Case{"cut_in_conv4", {64, 4, 16, 8, 3}, 40},  // backward into conv4_block6
        Case{"full224", {224, 3, 1024, 64, 3}, 10},   // the real network
        // Each block's last BN scaled by 0.1 (a well-conditioned network, as a
        // trained one is), in float32 and in mixed_bfloat16 against a float64
        // reference that rounds where Keras's policy rounds.
        Case{"tame", {64, 3, 32, 16, 3}, 10},
        // Measured: end to end, base output 0.017 and gradients 0.21 from the
        // reference (rounding decisions that fall the other way early on, grown
        // through 50 layers), where float32 is 0.048 and 0.33 from it; the suffix
        // agrees to 1e-7 on oneDNN (most tensors bitwise) and 1.6e-5 on im2col
        // (sums in another order round a few values to the next bfloat16), where
        // float32 is 1e-2 to 0.3 away.
        Case{"tame_bf16",
             {64, 3, 32, 16, 3},
             10,
             Precision::kMixedBfloat16,
             {0.05, 5e-3, 1e-3, 0.5},
             {1e-5, 1e-5, 1e-5, 1e-4}},
        // The other backbones (tests/reference/make_vgg_reference.py and
        // make_resnet50_reference.py --depth 101): VGG16 and VGG19 training steps
        // at 32x32 (block5 and the head trainable, or only block5's last conv),
        // VGG16 at its default 224x224 (batch 1), a narrow ResNet101 (each block's
        // last BN gamma scaled by 0.1 as in "tame": through 33 blocks a seeded
        // random one is chaotic, float32 against float64 measured 1.9 apart).
        // Measured end to end (oneDNN): VGG forward <= 3e-6, loss <= 3e-8,
        // gradients <= 2.1e-6; ResNet101 base output 1.4e-4, loss 1.1e-5,
        // gradients 7.5e-4.
        Case{"vgg16", {32, 3, 32, 64, 3, Backbone::kVGG16}, 4, Precision::kFloat32, kVggEndToEnd},
        Case{"vgg16_unfreeze2",
             {32, 3, 32, 64, 3, Backbone::kVGG16},
             2,
             Precision::kFloat32,
             kVggEndToEnd},
        Case{"vgg19", {32, 3, 32, 64, 3, Backbone::kVGG19}, 4, Precision::kFloat32, kVggEndToEnd},
        Case{"vgg16_224",
             {224, 3, 32, 64, 3, Backbone::kVGG16},
             2,
             Precision::kFloat32,
             kVggEndToEnd},
        // VGG16 under mixed_bfloat16 (the conv's bfloat16 result, the bfloat16 bias add, then
        // the ReLU). Measured: end to end base output 3.8e-3 (oneDNN) / 7.6e-3 (im2col), loss
        // 1.2e-5 / 2.5e-4, gradients 0.13 / 0.044 (13 layers of rounding decisions); the
        // suffix agrees bitwise on oneDNN but for 2.2e-5 in block5_conv1's kernel gradient,
        // and to 3.9e-4 on im2col (sums in another order round to the neighbouring bfloat16).
        Case{"vgg16_bf16",
             {32, 3, 32, 64, 3, Backbone::kVGG16},
             4,
             Precision::kMixedBfloat16,
             {2e-2, 1e-3, 1e-3, 0.3},
             {1e-5, 1e-5, 1e-5, 2e-3}},
        Case{"resnet101",
             {32, 3, 16, 8, 3, Backbone::kResNet101},
             10,
             Precision::kFloat32,
             {5e-4, 1e-4, 1e-4, 5e-3}},
        // ResNet152 narrow at 32x32 (tame as ResNet101), and every backbone's default size
        // not covered above (batch 1; the suffix's training step comes with it). Measured end
        // to end: resnet152 base output 5.1e-4 (oneDNN) / 6.3e-4 (im2col), loss 7.4e-5,
        // gradients 2.2e-3 / 2.1e-2 (50 blocks on 1x1 maps grow float32's rounding; on im2col
        // one base-output ReLU lands on the other side of 0, moving a gradient row: the
        // default 5e-2 of ResNet50's end-to-end view), where the same networks at 224 agree
        // to 4e-6, 6e-7 and 8e-6; the suffixes to 4e-6.
        Case{"resnet152",
             {32, 3, 16, 8, 3, Backbone::kResNet152},
             10,
             Precision::kFloat32,
             {2e-3, 2e-4, 1e-4, 5e-2}},
        Case{"resnet101_224", {224, 3, 32, 64, 3, Backbone::kResNet101}, 10},
        Case{"resnet152_224", {224, 3, 32, 64, 3, Backbone::kResNet152}, 10},
        Case{"vgg19_224",
             {224, 3, 32, 64, 3, Backbone::kVGG19},
             2,
             Precision::kFloat32,
             kVggEndToEnd},
        // InceptionV3 (make_inception_v3_reference.py): at Keras's minimum size,
        // with a cut inside mixed9's block (base.layers[-40:]), at the default.
        // End to end, float32 PyTorch is itself 8.7e-4, 7.7e-4 and 3.9e-4 from
        // the float64 reference at mixed10 (1x1 and 2x2 maps at 75 and 115:
        // few values per BN channel); parafine measured up to 1.4e-3 there and
        // 3.2e-3 pooled (inception_cut, oneDNN).
        Case{"inception75", {75, 3, 16, 64, 3, Backbone::kInceptionV3}, 10,
             Precision::kFloat32, {1e-2, 1e-4, 1e-4, 5e-2}},
        Case{"inception_cut", {115, 4, 16, 64, 3, Backbone::kInceptionV3}, 40,
             Precision::kFloat32, {1e-2, 1e-4, 1e-4, 5e-2}},
        Case{"inception299", {299, 3, 32, 64, 3, Backbone::kInceptionV3}, 10,
             Precision::kFloat32, {5e-3, 1e-4, 1e-4, 5e-2}}),
    [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

INSTANTIATE_TEST_SUITE_P(MobileNetV2, ResNet50Reference,
                         ::testing::Values(mobilenet_v2_case("mnv2_small", 32, 1.0f, 10),
                                           mobilenet_v2_case("mnv2_035_cut30", 33, 0.35f, 30),
                                           mobilenet_v2_case("mnv2_full224", 224, 1.0f, 10)),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace parafine
