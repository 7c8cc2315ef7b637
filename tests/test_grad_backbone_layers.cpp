// The weightless layers the other Keras applications add to ResNet50's, against values computed
// here in double from TensorFlow's definitions and against finite differences: ReLU with
// max_value (MobileNetV2's ReLU6), MaxPooling2D 'same', AveragePooling2D ('valid' and 'same',
// padded cells not counted), Concatenate (InceptionV3's mixedK) and GlobalMaxPooling2D.
// Last, a block of them inside a Model (Concatenate of four consumers of one conv).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "gradient_checker.hpp"
#include "parafine/layers/concatenate.hpp"
#include "parafine/layers/conv2d.hpp"
#include "parafine/layers/pooling.hpp"
#include "parafine/layers/simple_layers.hpp"
#include "parafine/model/model.hpp"

namespace parafine {
namespace {

using gradcheck::LayerFixture;
using gradcheck::Rng;

gradcheck::Options named(std::vector<std::string> names) {
  gradcheck::Options opt;
  opt.input_names = std::move(names);
  return opt;
}

// ---- Independent references (TensorFlow's definitions, in double) ----

// TF's pooling geometry on one axis: 'VALID' out = ceil((in - k + 1) / s); 'SAME' out =
// ceil(in / s), pad_total = max((out - 1) * s + k - in, 0), the smaller half before.
struct RefAxis {
  int out, before;
};
RefAxis ref_axis(int in, int k, int s, bool same) {
  if (!same) return {static_cast<int>(std::ceil((in - k + 1) / static_cast<double>(s))), 0};
  const int out = static_cast<int>(std::ceil(in / static_cast<double>(s)));
  const int total = std::max((out - 1) * s + k - in, 0);
  return {out, total / 2};
}

// Max or average pooling of x [n,h,w,c]; padded cells are -inf for max and not counted for
// average (TF AvgPool). Also returns, per output, the flat input index of the first maximum
// (window order: row, then column) for max.
struct RefPool {
  Shape shape;
  std::vector<double> y;
  std::vector<std::int64_t> argmax;
};
RefPool ref_pool(const Tensor& x, int k, int s, bool same, bool max) {
  const Shape& xs = x.shape();
  const int n = xs[0], h = xs[1], w = xs[2], c = xs[3];
  const RefAxis ah = ref_axis(h, k, s, same), aw = ref_axis(w, k, s, same);
  RefPool r;
  r.shape = Shape{n, ah.out, aw.out, c};
  for (int i = 0; i < n; ++i)
    for (int oy = 0; oy < ah.out; ++oy)
      for (int ox = 0; ox < aw.out; ++ox)
        for (int ch = 0; ch < c; ++ch) {
          double best = -std::numeric_limits<double>::infinity(), sum = 0.0;
          std::int64_t arg = -1;
          int count = 0;
          for (int a = 0; a < k; ++a)
            for (int b = 0; b < k; ++b) {
              const int iy = oy * s - ah.before + a, ix = ox * s - aw.before + b;
              if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;  // padding
              const std::int64_t idx = ((static_cast<std::int64_t>(i) * h + iy) * w + ix) * c + ch;
              const double v = x[static_cast<std::size_t>(idx)];
              ++count;
              sum += v;
              if (v > best) {
                best = v;
                arg = idx;
              }
            }
          r.y.push_back(max ? best : sum / count);
          r.argmax.push_back(arg);
        }
  return r;
}

// Max |got - want| / max(|want|, 1), printed with its tolerance and checked.
void expect_close(const char* what, const Tensor& got, const Shape& shape,
                  const std::vector<double>& want, double tolerance) {
  ASSERT_EQ(got.shape(), shape) << what << ": shape " << got.shape().str() << ", expected "
                                << shape.str();
  ASSERT_EQ(got.numel(), want.size());
  double worst = 0.0;
  std::size_t at = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double e = std::abs(got[i] - want[i]) / std::max(std::abs(want[i]), 1.0);
    if (!(e <= worst)) {
      worst = e;
      at = i;
    }
  }
  std::cout << "[forward] " << what << ": " << want.size() << " values, max scaled error " << worst
            << " (tolerance " << tolerance << ")" << std::endl;
  EXPECT_LE(worst, tolerance) << what << ": element " << at << " " << gradcheck::unravel(at, shape)
                              << " is " << got[at] << ", expected " << want[at];
}

// The message of the std::invalid_argument that fn throws ("" and a failure if none).
template <typename Fn>
std::string invalid_argument_of(Fn fn) {
  try {
    fn();
  } catch (const std::invalid_argument& e) {
    std::cout << "[shape error] " << e.what() << std::endl;
    return e.what();
  }
  ADD_FAILURE() << "no std::invalid_argument thrown";
  return "";
}

// ---- ReLU with max_value ----

TEST(ReLUMaxValue, ForwardAndGradientAtTheBoundsAsTensorFlow) {
  ReLU relu6("block_1_expand_relu", 6.0f);
  ReLU plain("conv1_relu");
  EXPECT_STREQ(relu6.type(), "ReLU");
  EXPECT_STREQ(plain.type(), "Activation");
  EXPECT_TRUE(is_plain_relu(plain));
  EXPECT_FALSE(is_plain_relu(relu6)) << "the Model must not fuse a ReLU6 as a plain ReLU";
  const std::vector<float> xs = {-3.0f,      -0.0f, 0.0f,       1e-30f, 2.5f,
                                 5.9999995f, 6.0f,  6.0000005f, 100.0f};
  Tensor x(Shape{1, 1, 1, static_cast<int>(xs.size())});
  std::copy(xs.begin(), xs.end(), x.data());
  relu6.infer_shape({x.shape()});
  Tensor y, dx, dy(x.shape());
  dy.fill(1.0f);
  relu6.forward({&x}, y, true);
  relu6.backward({&x}, y, dy, {&dx});
  // tf.nn.relu6 = min(max(x, 0), 6); Relu6Grad passes where 0 < y < 6 (strictly).
  std::vector<double> want_y, want_g;
  for (float v : xs) {
    const double d = v;
    want_y.push_back(std::min(std::max(d, 0.0), 6.0));
    want_g.push_back(d > 0.0 && d < 6.0 ? 1.0 : 0.0);
  }
  expect_close("ReLU6 forward", y, x.shape(), want_y, 0.0);
  expect_close("ReLU6 backward (0 < y < 6)", dx, x.shape(), want_g, 0.0);
  EXPECT_EQ(dx[2], 0.0f) << "gradient at x = 0";
  EXPECT_EQ(dx[6], 0.0f) << "gradient at x = 6";
  EXPECT_EQ(dx[5], 1.0f) << "gradient just below 6";
  EXPECT_FALSE(relu6.backward_reads_input_values());
  EXPECT_TRUE(relu6.backward_reads_output_values());
}

// Keras relu with max_value != 6: nn.relu then clip_by_value(0, m), whose gradient also passes
// at x == m; the layer must read x for it.
TEST(ReLUMaxValue, OtherMaxValueUsesClipByValueGradient) {
  ReLU relu("relu_m", 1.5f);
  const std::vector<float> xs = {-1.0f, 0.0f, 0.75f, 1.5f, 1.5000001f, 4.0f};
  Tensor x(Shape{1, 1, 2, 3});
  std::copy(xs.begin(), xs.end(), x.data());
  relu.infer_shape({x.shape()});
  Tensor y, dx, dy(x.shape());
  dy.fill(2.0f);
  relu.forward({&x}, y, true);
  relu.backward({&x}, y, dy, {&dx});
  std::vector<double> want_y, want_g;
  for (float v : xs) {
    want_y.push_back(std::min(std::max(static_cast<double>(v), 0.0), 1.5));
    want_g.push_back(v > 0.0f && v <= 1.5f ? 2.0 : 0.0);
  }
  expect_close("ReLU(1.5) forward", y, x.shape(), want_y, 0.0);
  expect_close("ReLU(1.5) backward (0 < x <= 1.5)", dx, x.shape(), want_g, 0.0);
  EXPECT_TRUE(relu.backward_reads_input_values());
}

// Kinks at 0 and at m: elements whose perturbation crosses either are skipped.
gradcheck::Signature clipped_relu_signature(float m) {
  return [m](const std::vector<const Tensor*>& in, const Tensor&) {
    std::vector<std::int64_t> s(in[0]->numel());
    for (std::size_t i = 0; i < s.size(); ++i) s[i] = ((*in[0])[i] > 0.0f) + 2 * ((*in[0])[i] < m);
    return s;
  };
}

TEST(ReLUMaxValue, GradientMatchesFiniteDifferences) {
  for (float m : {6.0f, 1.5f}) {
    Rng rng(61);
    ReLU relu("relu_max", m);
    Tensor x(Shape{2, 4, 5, 3});
    gradcheck::fill_uniform(x, -1.0, m + 1.0, rng);  // both sides of both kinks
    x[5] = 0.0004f;      // within h of the kink at 0: skipped, not compared
    x[7] = m - 0.0004f;  // within h of the kink at m
    LayerFixture fx(relu, {x.shape()}, rng);
    gradcheck::Options opt = named({"input"});
    opt.kink_signature = clipped_relu_signature(m);
    opt.max_elements = x.numel();
    const gradcheck::Report rep = gradcheck::check_gradients(relu, {&x}, opt);
    EXPECT_EQ(rep.failed(), 0u) << "max_value " << m;
    ASSERT_EQ(rep.tensors.size(), 1u);
    EXPECT_GE(rep.tensors[0].skipped, 2u) << "the elements at 0.0004 and m - 0.0004";
  }
}

TEST(ReLUMaxValue, NegativeMaxValueNamesTheLayer) {
  const std::string msg = invalid_argument_of([] { ReLU("bad_relu", -1.0f); });
  EXPECT_NE(msg.find("bad_relu"), std::string::npos) << msg;
  EXPECT_NE(msg.find("max_value"), std::string::npos) << msg;
}

// ---- MaxPooling2D 'same' ----

struct PoolCase {
  const char* name;
  int h, w, pool, stride;
  bool same;
};
void PrintTo(const PoolCase& c, std::ostream* os) {
  *os << c.name << ": " << c.h << "x" << c.w << " pool " << c.pool << " stride " << c.stride
      << (c.same ? " same" : " valid");
}
const PoolCase kPoolCases[] = {
    {"same_odd_3s2", 7, 7, 3, 2, true},    // pad_total 2: one each side
    {"same_even_3s2", 8, 8, 3, 2, true},   // pad_total 1: bottom/right only
    {"same_odd_2s2", 5, 7, 2, 2, true},    // VGG's window on odd sizes: pad after
    {"same_3s1", 6, 5, 3, 1, true},        // InceptionV3's branch pool
    {"same_tiny_3s2", 1, 2, 3, 2, true},   // windows larger than the image
    {"valid_3s2", 9, 8, 3, 2, false},      // ResNet50's pool1 (default padding)
    {"valid_2s2_odd", 7, 7, 2, 2, false},  // VGG: last row/column dropped
};
std::string case_name(const ::testing::TestParamInfo<PoolCase>& i) {
  return i.param.name;
}

class MaxPoolingSame : public ::testing::TestWithParam<PoolCase> {};

// Signed values: a padded cell taken as 0 would win the border windows whose values are all
// negative; TF treats padding as -inf.
TEST_P(MaxPoolingSame, ForwardMatchesTensorFlowDefinition) {
  const PoolCase& p = GetParam();
  Rng rng(62);
  Tensor x(Shape{2, p.h, p.w, 3});
  gradcheck::fill_uniform(x, -2.0, -0.5, rng);
  for (std::size_t i = 0; i < x.numel(); i += 5) x[i] = static_cast<float>(rng.uniform(-1, 1));
  MaxPooling2D pool("max_pool", p.pool, p.stride, p.same ? Padding::kSame : Padding::kValid);
  const Shape os = pool.infer_shape({x.shape()});
  Tensor y;
  pool.forward({&x}, y, true);
  const RefPool ref = ref_pool(x, p.pool, p.stride, p.same, true);
  expect_close(p.name, y, ref.shape, ref.y, 0.0);  // a max is exact
  EXPECT_EQ(os, ref.shape);
}

TEST_P(MaxPoolingSame, GradientMatchesFiniteDifferences) {
  const PoolCase& p = GetParam();
  Rng rng(63);
  Tensor x(Shape{2, p.h, p.w, 3});
  gradcheck::fill_distinct(x, -1.0, 10 * gradcheck::kDefaultStep, rng);  // no ties
  MaxPooling2D pool("max_pool", p.pool, p.stride, p.same ? Padding::kSame : Padding::kValid);
  LayerFixture fx(pool, {x.shape()}, rng);
  gradcheck::Options opt = named({"input"});
  const int k = p.pool, s = p.stride;
  const bool same = p.same;
  opt.kink_signature = [k, s, same](const std::vector<const Tensor*>& in, const Tensor&) {
    return ref_pool(*in[0], k, s, same, true).argmax;
  };
  opt.max_skipped_fraction = 0.0;  // ties are impossible by construction
  opt.max_elements = x.numel();
  EXPECT_EQ(gradcheck::check_gradients(pool, {&x}, opt).failed(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Cases, MaxPoolingSame, ::testing::ValuesIn(kPoolCases), case_name);

// ---- AveragePooling2D ----

class AveragePooling : public ::testing::TestWithParam<PoolCase> {};

TEST_P(AveragePooling, ForwardMatchesTensorFlowDefinition) {
  const PoolCase& p = GetParam();
  Rng rng(64);
  Tensor x(Shape{2, p.h, p.w, 4});
  gradcheck::fill_uniform(x, -1.0, 3.0, rng);
  AveragePooling2D pool("average_pooling2d", p.pool, p.stride,
                        p.same ? Padding::kSame : Padding::kValid);
  EXPECT_STREQ(pool.type(), "AveragePooling2D");
  pool.infer_shape({x.shape()});
  Tensor y;
  pool.forward({&x}, y, true);
  const RefPool ref = ref_pool(x, p.pool, p.stride, p.same, false);
  expect_close(p.name, y, ref.shape, ref.y, 1e-6);  // float sums of <= 9 values
}

// dx = dy / count, summed over windows: R scaled by pool^2 keeps the gradients O(1).
TEST_P(AveragePooling, GradientMatchesFiniteDifferences) {
  const PoolCase& p = GetParam();
  Rng rng(65);
  Tensor x(Shape{2, p.h, p.w, 3});
  gradcheck::fill_uniform(x, -1.0, 1.0, rng);
  AveragePooling2D pool("average_pooling2d", p.pool, p.stride,
                        p.same ? Padding::kSame : Padding::kValid);
  LayerFixture fx(pool, {x.shape()}, rng);
  gradcheck::Options opt = named({"input"});
  opt.upstream_scale = p.pool * p.pool;
  opt.max_elements = x.numel();
  EXPECT_EQ(gradcheck::check_gradients(pool, {&x}, opt).failed(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Cases, AveragePooling, ::testing::ValuesIn(kPoolCases), case_name);

// InceptionV3's 3x3 stride 1 'same' on a 4x4 image of ones times position: the corner windows
// hold 4 real cells, the edge ones 6, the inner ones 9 (written out, not from the reference).
TEST(AveragePoolingBorder, CornerAndEdgeWindowsAverageRealCellsOnly) {
  Tensor x(Shape{1, 4, 4, 1});
  for (int i = 0; i < 16; ++i) x[static_cast<std::size_t>(i)] = static_cast<float>(i);
  AveragePooling2D pool("average_pooling2d", 3, 1, Padding::kSame);
  pool.infer_shape({x.shape()});
  Tensor y;
  pool.forward({&x}, y, false);
  // x = [[0,1,2,3],[4,5,6,7],[8,9,10,11],[12,13,14,15]]
  const std::vector<double> want = {(0 + 1 + 4 + 5) / 4.0,
                                    (0 + 1 + 2 + 4 + 5 + 6) / 6.0,
                                    (1 + 2 + 3 + 5 + 6 + 7) / 6.0,
                                    (2 + 3 + 6 + 7) / 4.0,
                                    (0 + 1 + 4 + 5 + 8 + 9) / 6.0,
                                    (0 + 1 + 2 + 4 + 5 + 6 + 8 + 9 + 10) / 9.0,
                                    (1 + 2 + 3 + 5 + 6 + 7 + 9 + 10 + 11) / 9.0,
                                    (2 + 3 + 6 + 7 + 10 + 11) / 6.0,
                                    (4 + 5 + 8 + 9 + 12 + 13) / 6.0,
                                    (4 + 5 + 6 + 8 + 9 + 10 + 12 + 13 + 14) / 9.0,
                                    (5 + 6 + 7 + 9 + 10 + 11 + 13 + 14 + 15) / 9.0,
                                    (6 + 7 + 10 + 11 + 14 + 15) / 6.0,
                                    (8 + 9 + 12 + 13) / 4.0,
                                    (8 + 9 + 10 + 12 + 13 + 14) / 6.0,
                                    (9 + 10 + 11 + 13 + 14 + 15) / 6.0,
                                    (10 + 11 + 14 + 15) / 4.0};
  expect_close("3x3/1 same on 4x4 (counts 4, 6, 9)", y, x.shape(), want, 1e-6);
  // Backward of dy = 1: each cell gets sum over its windows of 1/count. Cell (0,0) lies in the
  // windows centred at (0,0) [4], (0,1) [6], (1,0) [6], (1,1) [9].
  Tensor dy(y.shape()), dx;
  dy.fill(1.0f);
  pool.backward({&x}, y, dy, {&dx});
  const double want00 = 1 / 4.0 + 2 / 6.0 + 1 / 9.0;
  std::cout << "[backward] cell (0,0): " << dx[0] << ", expected " << want00 << " (tolerance 1e-6)"
            << std::endl;
  EXPECT_NEAR(dx[0], want00, 1e-6);
}

// Stride 2 'same' on an even size puts the padding at the bottom/right only: the last window
// of 3x3/2 on 4 rows covers rows 2,3 (+1 padded), the first rows 0,1,2.
TEST(AveragePoolingBorder, Stride2SamePadsBottomRight) {
  Tensor x(Shape{1, 4, 1, 1});  // W = 1: every window has 1 real column
  for (int i = 0; i < 4; ++i) x[static_cast<std::size_t>(i)] = static_cast<float>(1 << i);
  AveragePooling2D pool("p", 3, 2, Padding::kSame);
  ASSERT_EQ(pool.infer_shape({x.shape()}), (Shape{1, 2, 1, 1}));
  Tensor y;
  pool.forward({&x}, y, false);
  expect_close("3x3/2 same on 4x1", y, Shape{1, 2, 1, 1}, {(1 + 2 + 4) / 3.0, (4 + 8) / 2.0}, 1e-6);
}

// The gradient check must be able to fail: AveragePooling2D 'same' backward that divides by
// the full window (count_include_pad, PyTorch's default) instead of the real cells.
TEST(AveragePoolingChecker, DetectsCountIncludePadGradient) {
  Rng rng(66);
  AveragePooling2D pool("pool_broken", 3, 1, Padding::kSame);
  gradcheck::CorruptedBackward bad(pool, [](Layer&, const std::vector<const Tensor*>& in,
                                            const Tensor& dout, const std::vector<Tensor*>& din) {
    const Shape& s = in[0]->shape();
    Tensor& dx = *din[0];
    dx.zero();
    for (int i = 0; i < s[0]; ++i)
      for (int r = 0; r < s[1]; ++r)
        for (int q = 0; q < s[2]; ++q)
          for (int c = 0; c < s[3]; ++c)
            for (int a = -1; a <= 1; ++a)
              for (int b = -1; b <= 1; ++b) {
                if (r + a < 0 || r + a >= s[1] || q + b < 0 || q + b >= s[2]) continue;
                dx[((static_cast<std::size_t>(i) * s[1] + r + a) * s[2] + q + b) * s[3] + c] +=
                    dout[((static_cast<std::size_t>(i) * s[1] + r) * s[2] + q) * s[3] + c] / 9.0f;
              }
  });
  Tensor x(Shape{1, 5, 5, 2});
  gradcheck::fill_uniform(x, -1.0, 1.0, rng);
  LayerFixture fx(bad, {x.shape()}, rng);
  gradcheck::Options opt = named({"input"});
  opt.upstream_scale = 9.0;
  opt.max_elements = x.numel();
  gradcheck::expect_check_fails([&] { gradcheck::check_gradients(bad, {&x}, opt); },
                                "gradient of input");
}

TEST(PoolingShapes, ErrorsNameTheLayer) {
  AveragePooling2D avg("avg_valid", 3, 2);
  std::string msg = invalid_argument_of([&] { avg.infer_shape({Shape{1, 2, 5, 3}}); });
  EXPECT_NE(msg.find("AveragePooling2D layer 'avg_valid'"), std::string::npos) << msg;
  MaxPooling2D mp("max_valid", 3, 2);
  msg = invalid_argument_of([&] { mp.infer_shape({Shape{1, 5, 2, 3}}); });
  EXPECT_NE(msg.find("MaxPooling2D layer 'max_valid'"), std::string::npos) << msg;
  // 'same' accepts any positive size, but not a rank-3 input.
  MaxPooling2D ms("max_same", 3, 2, Padding::kSame);
  EXPECT_EQ(ms.infer_shape({Shape{1, 2, 1, 3}}), (Shape{1, 1, 1, 3}));
  msg = invalid_argument_of([&] { ms.infer_shape({Shape{2, 5, 3}}); });
  EXPECT_NE(msg.find("MaxPooling2D layer 'max_same'"), std::string::npos) << msg;
  msg = invalid_argument_of([] { AveragePooling2D("avg_zero", 0, 1); });
  EXPECT_NE(msg.find("avg_zero"), std::string::npos) << msg;
  GlobalMaxPooling2D gmp("gmp");
  msg = invalid_argument_of([&] { gmp.infer_shape({Shape{2, 3}}); });
  EXPECT_NE(msg.find("GlobalMaxPooling2D layer 'gmp'"), std::string::npos) << msg;
}

// ---- Concatenate ----

TEST(Concatenate, ForwardInterleavesChannelsInInputOrder) {
  Rng rng(67);
  Concatenate cat("mixed0", 3);
  EXPECT_EQ(cat.num_inputs(), 3);
  EXPECT_STREQ(cat.type(), "Concatenate");
  Tensor a(Shape{2, 3, 2, 2}), b(Shape{2, 3, 2, 3}), c(Shape{2, 3, 2, 1});
  for (Tensor* t : {&a, &b, &c}) gradcheck::fill_uniform(*t, -1.0, 1.0, rng);
  const Shape os = cat.infer_shape({a.shape(), b.shape(), c.shape()});
  ASSERT_EQ(os, (Shape{2, 3, 2, 6}));
  Tensor y;
  cat.forward({&a, &b, &c}, y, true);
  std::vector<double> want;
  for (std::size_t row = 0; row < 12; ++row) {
    for (int k = 0; k < 2; ++k) want.push_back(a[row * 2 + k]);
    for (int k = 0; k < 3; ++k) want.push_back(b[row * 3 + k]);
    want.push_back(c[row]);
  }
  expect_close("Concatenate of 2+3+1 channels", y, os, want, 0.0);
}

TEST(Concatenate, GradientMatchesFiniteDifferences) {
  Rng rng(68);
  Concatenate cat("mixed1", 4);
  Tensor a(Shape{2, 3, 3, 2}), b(Shape{2, 3, 3, 1}), c(Shape{2, 3, 3, 3}), d(Shape{2, 3, 3, 2});
  for (Tensor* t : {&a, &b, &c, &d}) gradcheck::fill_uniform(*t, -1.0, 1.0, rng);
  LayerFixture fx(cat, {a.shape(), b.shape(), c.shape(), d.shape()}, rng);
  const gradcheck::Report rep =
      gradcheck::check_gradients(cat, {&a, &b, &c, &d}, named({"a", "b", "c", "d"}));
  EXPECT_EQ(rep.failed(), 0u);
  EXPECT_EQ(rep.tensors.size(), 4u);
  // A null din is skipped and the others still get their slices.
  Tensor y, db;
  cat.forward({&a, &b, &c, &d}, y, true);
  Tensor dy(y.shape());
  gradcheck::fill_uniform(dy, -1.0, 1.0, rng);
  cat.backward({&a, &b, &c, &d}, y, dy, {nullptr, &db, nullptr, nullptr});
  std::vector<double> want;
  for (std::size_t row = 0; row < 18; ++row) want.push_back(dy[row * 8 + 2]);
  expect_close("Concatenate split of input b only", db, b.shape(), want, 0.0);
}

TEST(Concatenate, ShapeErrorsNameTheLayer) {
  Concatenate cat("mixed2", 2);
  std::string msg = invalid_argument_of([&] {
    cat.infer_shape({Shape{2, 5, 5, 3}, Shape{2, 4, 5, 3}});
  });
  EXPECT_NE(msg.find("Concatenate layer 'mixed2'"), std::string::npos) << msg;
  msg = invalid_argument_of([&] { cat.infer_shape({Shape{2, 5, 5, 3}}); });
  EXPECT_NE(msg.find("Concatenate layer 'mixed2'"), std::string::npos) << msg;
  msg = invalid_argument_of([&] { cat.infer_shape({Shape{2, 5, 5, 3}, Shape{2, 5, 15}}); });
  EXPECT_NE(msg.find("Concatenate layer 'mixed2'"), std::string::npos) << msg;
  msg = invalid_argument_of([] { Concatenate("one_input", 1); });
  EXPECT_NE(msg.find("one_input"), std::string::npos) << msg;
}

// ---- GlobalMaxPooling2D ----

TEST(GlobalMaxPooling2D, ForwardAndTiesShareTheGradientAsReduceMax) {
  Rng rng(69);
  GlobalMaxPooling2D gmp("global_max_pooling2d");
  Tensor x(Shape{2, 3, 4, 5});
  gradcheck::fill_uniform(x, -3.0, -1.0, rng);
  x[(0 * 12 + 2) * 5 + 1] = 7.0f;  // image 0, channel 1: a tie of two maxima
  x[(0 * 12 + 9) * 5 + 1] = 7.0f;
  ASSERT_EQ(gmp.infer_shape({x.shape()}), (Shape{2, 5}));
  Tensor y;
  gmp.forward({&x}, y, true);
  std::vector<double> want(10, -std::numeric_limits<double>::infinity());
  for (int i = 0; i < 2; ++i)
    for (int p = 0; p < 12; ++p)
      for (int c = 0; c < 5; ++c)
        want[static_cast<std::size_t>(i * 5 + c)] =
            std::max<double>(want[static_cast<std::size_t>(i * 5 + c)],
                             x[(static_cast<std::size_t>(i) * 12 + p) * 5 + c]);
  expect_close("GlobalMaxPooling2D forward", y, Shape{2, 5}, want, 0.0);
  Tensor dy(y.shape()), dx;
  dy.fill(1.0f);
  gmp.backward({&x}, y, dy, {&dx});
  std::cout << "[backward] tied maxima get " << dx[(0 * 12 + 2) * 5 + 1] << " and "
            << dx[(0 * 12 + 9) * 5 + 1] << ", expected 0.5 each (exact)" << std::endl;
  EXPECT_EQ(dx[(0 * 12 + 2) * 5 + 1], 0.5f);
  EXPECT_EQ(dx[(0 * 12 + 9) * 5 + 1], 0.5f);
}

TEST(GlobalMaxPooling2D, GradientMatchesFiniteDifferences) {
  Rng rng(70);
  GlobalMaxPooling2D gmp("global_max_pooling2d");
  Tensor x(Shape{2, 3, 4, 5});
  gradcheck::fill_distinct(x, -1.0, 10 * gradcheck::kDefaultStep, rng);
  LayerFixture fx(gmp, {x.shape()}, rng);
  gradcheck::Options opt = named({"input"});
  opt.kink_signature = [](const std::vector<const Tensor*>& in, const Tensor&) {
    const Tensor& t = *in[0];
    std::vector<std::int64_t> arg(10, -1);
    for (std::size_t i = 0; i < 2; ++i)
      for (std::size_t p = 0; p < 12; ++p)
        for (std::size_t c = 0; c < 5; ++c) {
          const std::int64_t idx = static_cast<std::int64_t>((i * 12 + p) * 5 + c);
          std::int64_t& best = arg[i * 5 + c];
          if (best < 0 || t[static_cast<std::size_t>(idx)] > t[static_cast<std::size_t>(best)])
            best = idx;
        }
    return arg;
  };
  opt.max_skipped_fraction = 0.0;
  opt.max_elements = x.numel();
  EXPECT_EQ(gradcheck::check_gradients(gmp, {&x}, opt).failed(), 0u);
}

// ---- In a Model ----

// An InceptionV3-like block through the Model: conv -> {itself, AveragePooling2D 3x3/1 same,
// MaxPooling2D 3x3/1 same, ReLU6} -> Concatenate(4) -> GlobalMaxPooling2D. The conv's output
// feeds four consumers (their gradients must add up) and the pools/concat keep only shapes.
// The Model's conv gradients against central differences of L = sum(out * R) through
// Model::forward.
TEST(BackboneLayersInModel, ConcatenatedBranchesGradientMatchesFiniteDifferences) {
  Model m;
  const int in = m.add(std::make_unique<InputLayer>("input_1", Shape{7, 7, 2}));
  const int conv = m.add(std::make_unique<Conv2D>("conv2d", 3, 3, 1, Padding::kSame), {in});
  const int avg =
      m.add(std::make_unique<AveragePooling2D>("average_pooling2d", 3, 1, Padding::kSame), {conv});
  const int mp =
      m.add(std::make_unique<MaxPooling2D>("max_pooling2d", 3, 1, Padding::kSame), {conv});
  const int r6 = m.add(std::make_unique<ReLU>("re_lu", 6.0f), {conv});
  const int cat = m.add(std::make_unique<Concatenate>("mixed0", 4), {conv, avg, mp, r6});
  m.add(std::make_unique<GlobalMaxPooling2D>("global_max_pooling2d"), {cat});
  m.build();
  Rng rng(71);
  for (float& v : m.params()) v = static_cast<float>(rng.uniform(-1.5, 1.5));
  Tensor x(Shape{2, 7, 7, 2});
  gradcheck::fill_uniform(x, -2.0, 2.0, rng);
  const Tensor& y0 = m.forward(x, true);
  ASSERT_EQ(y0.shape(), (Shape{2, 12}));
  Tensor r(y0.shape());
  gradcheck::fill_uniform(r, -1.0, 1.0, rng);
  m.backward(r);
  const std::vector<float> analytic = m.grads();
  auto objective = [&] {
    const Tensor& y = m.forward(x, true);
    double l = 0.0;
    for (std::size_t i = 0; i < y.numel(); ++i) l += static_cast<double>(y[i]) * r[i];
    return l;
  };
  double worst = 0.0;
  std::size_t checked = 0;
  double max_grad = 0.0;
  for (const ParamRef& ref : m.param_refs()) {
    for (std::size_t k = 0; k < ref.shape.numel(); ++k) {
      float& w = m.params()[ref.offset + k];
      const float w0 = w;
      const float wp = w0 + 1e-3f, wm = w0 - 1e-3f;
      w = wp;
      const double lp = objective();
      m.params()[ref.offset + k] = wm;
      const double lm = objective();
      m.params()[ref.offset + k] = w0;
      const double numeric = (lp - lm) / (static_cast<double>(wp) - wm);
      const double a = analytic[ref.offset + k];
      const double err = std::abs(a - numeric) / std::max({std::abs(a), std::abs(numeric), 1.0});
      EXPECT_LE(err, gradcheck::kDefaultTolerance)
          << ref.name << "[" << k << "]: analytic " << a << ", numeric " << numeric;
      worst = std::max(worst, err);
      max_grad = std::max(max_grad, std::abs(a));
      ++checked;
    }
  }
  std::cout << "[model] conv2d kernel and bias through 4 branches + Concatenate + GMP: " << checked
            << " weights, max scaled error " << worst << " (max |grad| " << max_grad
            << ", tolerance " << gradcheck::kDefaultTolerance << ")" << std::endl;
  EXPECT_EQ(checked, 3u * 3 * 2 * 3 + 3);
  EXPECT_GT(max_grad, 0.1) << "a vacuous check";
}

}  // namespace
}  // namespace parafine
