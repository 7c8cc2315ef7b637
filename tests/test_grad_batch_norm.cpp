// BatchNormalization against finite differences in its three modes (frozen: inference even in
// a training step; trainable but not training: inference; trainable and training: batch
// statistics), and its forward and moving-average update against formulas evaluated in double.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iostream>
#include <vector>

#include "gradient_checker.hpp"
#include "parafine/layers/batch_norm.hpp"

namespace parafine {
namespace {

using gradcheck::LayerFixture;
using gradcheck::Rng;

constexpr float kEps = 1.001e-5f;
constexpr float kMomentum = 0.99f;

// x[r, c] = mu_c + sd_c * U[-1, 1]: channels with different means and scales, so centring and
// normalisation both matter.
Tensor make_input(const Shape& s, Rng& rng) {
  Tensor x(s);
  const int c = s.channels();
  std::vector<double> mu(c), sd(c);
  for (int k = 0; k < c; ++k) {
    mu[k] = rng.uniform(-2.0, 2.0);
    sd[k] = rng.uniform(0.5, 2.0);
  }
  for (std::size_t i = 0; i < x.numel(); ++i)
    x[i] = static_cast<float>(mu[i % c] + sd[i % c] * rng.uniform(-1.0, 1.0));
  return x;
}

// gamma in [0.5, 1.5], beta in [-1, 1], moving mean in [-1, 1], moving variance in [0.5, 2].
void init_params(LayerFixture& fx, Rng& rng) {
  gradcheck::fill_uniform(fx.value("gamma").data(), fx.value("gamma").size(), 0.5, 1.5, rng);
  gradcheck::fill_uniform(fx.value("beta").data(), fx.value("beta").size(), -1.0, 1.0, rng);
  gradcheck::fill_uniform(fx.value("moving_mean").data(), fx.value("moving_mean").size(), -1.0, 1.0,
                          rng);
  gradcheck::fill_uniform(fx.value("moving_variance").data(), fx.value("moving_variance").size(),
                          0.5, 2.0, rng);
}

// Per-channel mean and biased variance of x over all rows, in double.
void batch_stats(const Tensor& x, std::vector<double>& mean, std::vector<double>& var) {
  const int c = x.shape().channels();
  const std::size_t rows = x.shape().rows();
  mean.assign(c, 0.0);
  var.assign(c, 0.0);
  for (std::size_t r = 0; r < rows; ++r)
    for (int k = 0; k < c; ++k) mean[k] += x[r * c + k];
  for (int k = 0; k < c; ++k) mean[k] /= static_cast<double>(rows);
  for (std::size_t r = 0; r < rows; ++r)
    for (int k = 0; k < c; ++k) var[k] += (x[r * c + k] - mean[k]) * (x[r * c + k] - mean[k]);
  for (int k = 0; k < c; ++k) var[k] /= static_cast<double>(rows);
}

// Largest |y - gamma*(x-mean)/sqrt(var+eps) - beta| / (|gamma*xhat| + |beta| + 1e-3).
double max_normalise_error(const Tensor& x, const Tensor& y, const std::vector<double>& mean,
                           const std::vector<double>& var, const std::vector<float>& gamma,
                           const std::vector<float>& beta) {
  const int c = x.shape().channels();
  double worst = 0.0;
  for (std::size_t i = 0; i < x.numel(); ++i) {
    const int k = static_cast<int>(i % c);
    const double t = gamma[k] * (x[i] - mean[k]) / std::sqrt(var[k] + static_cast<double>(kEps));
    worst =
        std::max(worst, std::abs(y[i] - (t + beta[k])) / (std::abs(t) + std::abs(beta[k]) + 1e-3));
  }
  return worst;
}

gradcheck::Options bn_options(bool training) {
  gradcheck::Options opt;
  opt.training = training;
  opt.input_names = {"input"};
  return opt;
}

struct BnCase {
  const char* name;
  Shape shape;
};

void PrintTo(const BnCase& c, std::ostream* os) {
  *os << c.name << " " << c.shape.str();
}

class BatchNormGrad : public ::testing::TestWithParam<BnCase> {};

TEST_P(BatchNormGrad, FrozenLayerInTrainingStepRunsInference) {
  Rng rng(11);
  BatchNormalization bn("bn_frozen", kEps, kMomentum);
  bn.trainable = false;
  Tensor x = make_input(GetParam().shape, rng);
  LayerFixture fx(bn, {x.shape()}, rng);
  init_params(fx, rng);
  const float sentinel = 12345.0f;
  for (auto& g : fx.grads) std::fill(g.begin(), g.end(), sentinel);

  const gradcheck::Report rep = gradcheck::check_gradients(bn, {&x}, bn_options(true));
  EXPECT_EQ(rep.failed(), 0u);
  ASSERT_EQ(rep.tensors.size(), 1u) << "a frozen layer has no weight gradients to check";
  for (const char* p : {"gamma", "beta"})
    for (float g : fx.grad(p)) ASSERT_EQ(g, sentinel) << "frozen BN wrote a " << p << " gradient";
}

TEST_P(BatchNormGrad, TrainableLayerOutsideTrainingRunsInference) {
  Rng rng(12);
  BatchNormalization bn("bn_inference", kEps, kMomentum);
  Tensor x = make_input(GetParam().shape, rng);
  LayerFixture fx(bn, {x.shape()}, rng);
  init_params(fx, rng);
  const gradcheck::Report rep = gradcheck::check_gradients(bn, {&x}, bn_options(false));
  EXPECT_EQ(rep.failed(), 0u);
  EXPECT_EQ(rep.tensors.size(), 3u);  // input, gamma, beta
}

TEST_P(BatchNormGrad, TrainingUsesBatchStatistics) {
  Rng rng(13);
  BatchNormalization bn("bn_training", kEps, kMomentum);
  Tensor x = make_input(GetParam().shape, rng);
  LayerFixture fx(bn, {x.shape()}, rng);
  init_params(fx, rng);
  const gradcheck::Report rep = gradcheck::check_gradients(bn, {&x}, bn_options(true));
  EXPECT_EQ(rep.failed(), 0u);
  EXPECT_EQ(rep.tensors.size(), 3u);  // input, gamma, beta
}

INSTANTIATE_TEST_SUITE_P(Shapes, BatchNormGrad,
                         ::testing::Values(BnCase{"n2_h3_w3_c4", Shape{2, 3, 3, 4}},
                                           BnCase{"n3_h5_w4_c3", Shape{3, 5, 4, 3}},
                                           BnCase{"features_n6_c5", Shape{6, 5}}),
                         [](const ::testing::TestParamInfo<BnCase>& i) { return i.param.name; });

// One training forward: the output is normalised with the batch mean and biased variance, and
// moving_mean = 0.99*m0 + 0.01*mean, moving_variance = 0.99*v0 + 0.01*var*n/(n-1).
TEST(BatchNormForward, TrainingUpdatesMovingAverages) {
  Rng rng(21);
  BatchNormalization bn("bn_update", kEps, kMomentum);
  Tensor x = make_input(Shape{2, 3, 3, 4}, rng);  // n = 18 rows: Bessel's factor is 18/17
  for (std::size_t i = 0; i < x.numel(); ++i) x[i] *= 3.0f;  // batch variance 0.75..12
  LayerFixture fx(bn, {x.shape()}, rng);
  init_params(fx, rng);
  const std::vector<float> m0 = fx.value("moving_mean"), v0 = fx.value("moving_variance");
  Tensor y;
  bn.forward({&x}, y, /*training=*/true);

  std::vector<double> mean, var;
  batch_stats(x, mean, var);
  const double n = static_cast<double>(x.shape().rows());
  const double out_err = max_normalise_error(x, y, mean, var, fx.value("gamma"), fx.value("beta"));
  constexpr double kOutTol = 1e-5;
  EXPECT_LE(out_err, kOutTol) << "training output is not normalised with the batch statistics";

  // Float32 arithmetic on the update: a few ulps of its terms. Missing Bessel's correction
  // would be off by 0.01*var/(n-1), checked below to be far above this tolerance.
  constexpr double kTol = 1e-6;
  double worst_mean = 0.0, worst_var = 0.0;
  for (int k = 0; k < 4; ++k) {
    const double want_m = 0.99 * m0[k] + 0.01 * mean[k];
    const double want_v = 0.99 * v0[k] + 0.01 * var[k] * n / (n - 1);
    const double scale_m = 0.99 * std::abs(m0[k]) + 0.01 * std::abs(mean[k]);
    const double scale_v = 0.99 * v0[k] + 0.01 * var[k] * n / (n - 1);
    const double em = std::abs(fx.value("moving_mean")[k] - want_m) / scale_m;
    const double ev = std::abs(fx.value("moving_variance")[k] - want_v) / scale_v;
    worst_mean = std::max(worst_mean, em);
    worst_var = std::max(worst_var, ev);
    EXPECT_LE(em, kTol) << "moving_mean[" << k << "] = " << fx.value("moving_mean")[k]
                        << ", expected " << want_m << " (m0 " << m0[k] << ", batch mean " << mean[k]
                        << ")";
    EXPECT_LE(ev, kTol) << "moving_variance[" << k << "] = " << fx.value("moving_variance")[k]
                        << ", expected " << want_v << " (v0 " << v0[k] << ", biased var " << var[k]
                        << ", n " << n << ")";
    ASSERT_GT(0.01 * var[k] / (n - 1) / scale_v, 10 * kTol)
        << "test too weak to tell the Bessel-corrected update from the biased one";
  }
  std::cout << "[forward] BN training output max scaled error " << out_err << " (tolerance "
            << kOutTol << "); moving_mean max relative error " << worst_mean << ", moving_variance "
            << worst_var << " (tolerance " << kTol << ")" << std::endl;
}

// The batch statistics are summed in one pass, centred on the moving mean: a batch whose mean
// lies far from it (moving mean 0, batch mean 1000, standard deviation 0.05: a shift of 2e4
// standard deviations) must still be normalised by its own variance, not by cancellation noise.
TEST(BatchNormForward, BatchVarianceSurvivesAMeanFarFromTheMovingMean) {
  Rng rng(23);
  BatchNormalization bn("bn_far", kEps, kMomentum);
  Tensor x(Shape{4, 5, 5, 3});
  for (std::size_t i = 0; i < x.numel(); ++i)
    x[i] = static_cast<float>(1000.0 + 0.05 * rng.uniform(-1.0, 1.0) * (1 + i % 3));
  LayerFixture fx(bn, {x.shape()}, rng);
  init_params(fx, rng);
  for (float& m : fx.value("moving_mean")) m = 0.0f;
  Tensor y;
  bn.forward({&x}, y, /*training=*/true);
  std::vector<double> mean, var;
  batch_stats(x, mean, var);
  const double err = max_normalise_error(x, y, mean, var, fx.value("gamma"), fx.value("beta"));
  std::cout << "batch mean ~1000, moving mean 0, batch std 0.03-0.09: output max scaled error "
            << err << " (tol 1e-3; float32 inputs near 1000 carry 6e-5 of their own)\n";
  EXPECT_LE(err, 1e-3);
}

// Keras: a BN layer with trainable=False runs in inference mode even inside fit(): moving
// statistics normalise, and they are not updated (bit for bit).
TEST(BatchNormForward, FrozenLayerUsesAndKeepsMovingStatistics) {
  Rng rng(22);
  BatchNormalization bn("bn_frozen_fwd", kEps, kMomentum);
  bn.trainable = false;
  Tensor x = make_input(Shape{2, 4, 3, 5}, rng);
  LayerFixture fx(bn, {x.shape()}, rng);
  init_params(fx, rng);
  const std::vector<float> m0 = fx.value("moving_mean"), v0 = fx.value("moving_variance");
  Tensor y;
  bn.forward({&x}, y, /*training=*/true);

  EXPECT_EQ(0, std::memcmp(m0.data(), fx.value("moving_mean").data(), m0.size() * sizeof(float)))
      << "frozen BN changed moving_mean";
  EXPECT_EQ(0,
            std::memcmp(v0.data(), fx.value("moving_variance").data(), v0.size() * sizeof(float)))
      << "frozen BN changed moving_variance";
  const std::vector<double> mean(m0.begin(), m0.end()), var(v0.begin(), v0.end());
  const double err = max_normalise_error(x, y, mean, var, fx.value("gamma"), fx.value("beta"));
  constexpr double kTol = 1e-5;
  EXPECT_LE(err, kTol) << "frozen BN output is not normalised with the moving statistics";
  std::cout << "[forward] frozen BN output max scaled error " << err << " (tolerance " << kTol
            << "); moving statistics bit-identical" << std::endl;
}

// The check must be able to fail: treating the batch statistics as constants in backward
// (dx = gamma/std * dy, the inference formula) is the classic BN bug.
TEST(BatchNormGradChecker, DetectsBatchStatisticsTreatedAsConstants) {
  Rng rng(31);
  BatchNormalization bn("bn_broken", kEps, kMomentum);
  gradcheck::CorruptedBackward bad(bn, [](Layer& inner, const std::vector<const Tensor*>& in,
                                          const Tensor& dout, const std::vector<Tensor*>& din) {
    std::vector<double> mean, var;
    batch_stats(*in[0], mean, var);
    const int c = in[0]->shape().channels();
    for (std::size_t i = 0; i < dout.numel(); ++i)
      (*din[0])[i] = static_cast<float>(inner.param(0)[i % c] * dout[i] /
                                        std::sqrt(var[i % c] + static_cast<double>(kEps)));
  });
  Tensor x = make_input(Shape{2, 3, 3, 4}, rng);
  LayerFixture fx(bad, {x.shape()}, rng);
  init_params(fx, rng);
  gradcheck::expect_check_fails([&] { gradcheck::check_gradients(bad, {&x}, bn_options(true)); },
                                "gradient of input");
}

// scale=False (Keras `scale=False`, InceptionV3): no gamma variable, gamma is 1 everywhere.
// Weights are [beta, moving_mean, moving_variance] as in Keras's files.
TEST(BatchNormNoScale, ParamSpecsOmitGamma) {
  BatchNormalization bn("batch_normalization", 1e-3f, 0.99f, /*scale=*/false);
  EXPECT_FALSE(bn.scale());
  bn.infer_shape({Shape{2, 3, 3, 6}});
  const std::vector<ParamSpec> specs = bn.param_specs();
  ASSERT_EQ(specs.size(), 3u);
  const char* names[] = {"beta", "moving_mean", "moving_variance"};
  const bool optimised[] = {true, false, false};
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(specs[i].name, names[i]);
    EXPECT_EQ(specs[i].shape, (Shape{6}));
    EXPECT_EQ(specs[i].optimised, optimised[i]) << names[i];
  }
}

// Copies beta and the moving statistics of `from` (no gamma) into `to` (gamma set to 1).
void copy_to_gamma_one(LayerFixture& from, LayerFixture& to) {
  std::fill(to.value("gamma").begin(), to.value("gamma").end(), 1.0f);
  for (const char* p : {"beta", "moving_mean", "moving_variance"}) to.value(p) = from.value(p);
}

std::size_t count_different_bits(const Tensor& a, const Tensor& b) {
  std::size_t differ = 0;
  for (std::size_t i = 0; i < a.numel(); ++i)
    if (std::memcmp(a.data() + i, b.data() + i, sizeof(float)) != 0) ++differ;
  return differ;
}

// Forward (inference, training with the moving-average update, the fused ReLU, bfloat16),
// inference_affine and backward all equal the scale=True layer with gamma = 1, bit for bit.
TEST(BatchNormNoScale, EqualsGammaOneBitwise) {
  for (const bool bf16 : {false, true})
    for (const bool training : {false, true})
      for (const bool relu : {false, true}) {
        Rng rng(41);
        BatchNormalization noscale("bn_noscale", 1e-3f, 0.99f, false);
        BatchNormalization ones("bn_gamma_one", 1e-3f, 0.99f, true);
        noscale.set_bfloat16_compute(bf16);
        ones.set_bfloat16_compute(bf16);
        Tensor x = make_input(Shape{2, 4, 3, 5}, rng);
        LayerFixture fa(noscale, {x.shape()}, rng);
        LayerFixture fb(ones, {x.shape()}, rng);
        gradcheck::fill_uniform(fa.value("beta").data(), 5, -1.0, 1.0, rng);
        gradcheck::fill_uniform(fa.value("moving_mean").data(), 5, -1.0, 1.0, rng);
        gradcheck::fill_uniform(fa.value("moving_variance").data(), 5, 0.5, 2.0, rng);
        copy_to_gamma_one(fa, fb);
        Tensor ya, yb;
        if (relu) {
          noscale.forward_relu(x, ya, training);
          ones.forward_relu(x, yb, training);
        } else {
          noscale.forward({&x}, ya, training);
          ones.forward({&x}, yb, training);
        }
        const std::string what = std::string(bf16 ? "bfloat16 " : "float32 ") +
                                 (training ? "training" : "inference") + (relu ? " +relu" : "");
        ASSERT_EQ(ya.shape(), yb.shape());
        const std::size_t differ = count_different_bits(ya, yb);
        std::size_t state_differ = 0;
        for (const char* p : {"moving_mean", "moving_variance"})
          state_differ += std::memcmp(fa.value(p).data(), fb.value(p).data(), 5 * sizeof(float));
        Tensor dy(ya.shape()), dxa, dxb;
        gradcheck::fill_uniform(dy, -1.0, 1.0, rng);
        noscale.backward({&x}, ya, dy, {&dxa});
        ones.backward({&x}, yb, dy, {&dxb});
        const std::size_t dx_differ = count_different_bits(dxa, dxb);
        const bool dbeta_same =
            std::memcmp(fa.grad("beta").data(), fb.grad("beta").data(), 5 * sizeof(float)) == 0;
        std::cout << "[bitwise] scale=False vs gamma=1, " << what << ": " << differ << " of "
                  << ya.numel() << " outputs differ, moving statistics "
                  << (state_differ ? "differ" : "identical") << ", " << dx_differ
                  << " input gradients differ, beta gradient "
                  << (dbeta_same ? "identical" : "differs") << " (tolerance: 0 bits)" << std::endl;
        EXPECT_EQ(differ, 0u) << what;
        EXPECT_EQ(state_differ, 0u) << what;
        EXPECT_EQ(dx_differ, 0u) << what;
        EXPECT_TRUE(dbeta_same) << what;
      }
  // inference_affine: scale = 1/sqrt(var+eps), shift = beta - mean*scale.
  Rng rng(42);
  BatchNormalization noscale("bn_noscale_affine", 1e-3f, 0.99f, false);
  BatchNormalization ones("bn_gamma_one_affine", 1e-3f, 0.99f, true);
  LayerFixture fa(noscale, {Shape{1, 2, 2, 7}}, rng, 0.5, 2.0);
  LayerFixture fb(ones, {Shape{1, 2, 2, 7}}, rng);
  copy_to_gamma_one(fa, fb);
  std::vector<float> sa(7), ha(7), sb(7), hb(7);
  noscale.inference_affine(sa.data(), ha.data());
  ones.inference_affine(sb.data(), hb.data());
  EXPECT_EQ(0, std::memcmp(sa.data(), sb.data(), 7 * sizeof(float))) << "inference_affine scale";
  EXPECT_EQ(0, std::memcmp(ha.data(), hb.data(), 7 * sizeof(float))) << "inference_affine shift";
  for (int k = 0; k < 7; ++k) {
    const double want = 1.0 / std::sqrt(static_cast<double>(fa.value("moving_variance")[k]) + 1e-3);
    EXPECT_LE(std::abs(sa[k] - want) / want, 1e-6) << "scale[" << k << "]";
  }
}

TEST(BatchNormNoScale, TrainingGradientsMatchFiniteDifferences) {
  for (const Shape& s : {Shape{2, 3, 3, 4}, Shape{3, 5, 4, 3}, Shape{6, 5}}) {
    Rng rng(43);
    BatchNormalization bn("bn_noscale_training", 1e-3f, 0.99f, false);
    Tensor x = make_input(s, rng);
    LayerFixture fx(bn, {x.shape()}, rng);
    gradcheck::fill_uniform(fx.value("moving_variance").data(), s.channels(), 0.5, 2.0, rng);
    const gradcheck::Report rep = gradcheck::check_gradients(bn, {&x}, bn_options(true));
    EXPECT_EQ(rep.failed(), 0u) << s.str();
    ASSERT_EQ(rep.tensors.size(), 2u) << "input and beta only";
    EXPECT_EQ(rep.tensors[1].name, "beta");
  }
}

TEST(BatchNormNoScale, InferenceGradientsMatchFiniteDifferences) {
  Rng rng(44);
  BatchNormalization bn("bn_noscale_inference", 1e-3f, 0.99f, false);
  Tensor x = make_input(Shape{2, 3, 3, 4}, rng);
  LayerFixture fx(bn, {x.shape()}, rng);
  gradcheck::fill_uniform(fx.value("moving_variance").data(), 4, 0.5, 2.0, rng);
  const gradcheck::Report rep = gradcheck::check_gradients(bn, {&x}, bn_options(false));
  EXPECT_EQ(rep.failed(), 0u);
  EXPECT_EQ(rep.tensors.size(), 2u);
}

}  // namespace
}  // namespace parafine
