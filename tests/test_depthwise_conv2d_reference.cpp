// DepthwiseConv2D against an independent float64 PyTorch implementation
// (tests/reference/make_depthwise_reference.py: F.conv2d with groups=C on explicitly
// TF-'same'-padded input): forward output, and the input, depthwise_kernel and bias gradients
// of L = sum(y * R). The fixture files are written at test time (CTest fixture
// depthwise_reference) into $PARAFINE_DEPTHWISE_REFERENCE_DIR.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "gradient_checker.hpp"
#include "parafine/layers/depthwise_conv2d.hpp"

namespace parafine {
namespace {

struct RefCase {
  int n, h, w, c, k, stride, same, mult, bias, ho, wo;
  std::vector<float> x, kernel, b, r;
  std::vector<double> y, dx, dkernel, db;
};

template <typename T>
std::vector<T> read(std::ifstream& f, std::size_t count, const std::string& what) {
  std::vector<T> v(count);
  f.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(count * sizeof(T)));
  if (!f) ADD_FAILURE() << "reference file ends inside " << what;
  return v;
}

RefCase load(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  RefCase rc{};
  if (!f) {
    ADD_FAILURE() << "cannot open " << path;
    return rc;
  }
  const std::vector<std::int32_t> hdr = read<std::int32_t>(f, 11, "the header");
  int* fields[] = {&rc.n,    &rc.h,    &rc.w,    &rc.c,  &rc.k, &rc.stride,
                   &rc.same, &rc.mult, &rc.bias, &rc.ho, &rc.wo};
  for (int i = 0; i < 11; ++i) *fields[i] = hdr[static_cast<std::size_t>(i)];
  const std::size_t nx = static_cast<std::size_t>(rc.n) * rc.h * rc.w * rc.c;
  const std::size_t co = static_cast<std::size_t>(rc.c) * rc.mult;
  const std::size_t nk = static_cast<std::size_t>(rc.k) * rc.k * co;
  const std::size_t ny = static_cast<std::size_t>(rc.n) * rc.ho * rc.wo * co;
  rc.x = read<float>(f, nx, "x");
  rc.kernel = read<float>(f, nk, "kernel");
  if (rc.bias) rc.b = read<float>(f, co, "bias");
  rc.r = read<float>(f, ny, "R");
  rc.y = read<double>(f, ny, "y");
  rc.dx = read<double>(f, nx, "dx");
  rc.dkernel = read<double>(f, nk, "dkernel");
  if (rc.bias) rc.db = read<double>(f, co, "dbias");
  return rc;
}

// max |got - want| / max(max |want|, 1) over a tensor, printed with its tolerance.
double compare(const std::string& who, const char* what, const float* got,
               const std::vector<double>& want, double tol) {
  double peak = 1.0, worst = 0.0;
  for (double v : want) peak = std::max(peak, std::abs(v));
  std::size_t worst_i = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double e = std::abs(got[i] - want[i]) / peak;
    if (e > worst) worst = e, worst_i = i;
  }
  std::cout << "[pytorch] " << who << " " << what << ": max |parafine - torch| / max(|torch|, 1) "
            << worst << " (tolerance " << tol << ", " << want.size() << " values)" << std::endl;
  EXPECT_LE(worst, tol) << who << " " << what << " element " << worst_i << ": parafine "
                        << got[worst_i] << ", torch " << want[worst_i];
  return worst;
}

TEST(DepthwiseConv2DReference, MatchesPyTorchFloat64) {
  const char* dir = std::getenv("PARAFINE_DEPTHWISE_REFERENCE_DIR");
  ASSERT_NE(dir, nullptr) << "PARAFINE_DEPTHWISE_REFERENCE_DIR is not set (run through ctest)";
  std::ifstream list(std::string(dir) + "/cases.txt");
  ASSERT_TRUE(list) << "no cases.txt in " << dir;
  std::string name;
  int cases = 0;
  while (std::getline(list, name)) {
    if (name.empty()) continue;
    ++cases;
    const RefCase rc = load(std::string(dir) + "/" + name + ".bin");
    ASSERT_FALSE(rc.y.empty()) << name;
    DepthwiseConv2D dw("dw_" + name, rc.k, rc.stride, rc.same ? Padding::kSame : Padding::kValid,
                       rc.bias != 0, rc.mult);
    Tensor x(Shape{rc.n, rc.h, rc.w, rc.c});
    std::copy(rc.x.begin(), rc.x.end(), x.data());
    gradcheck::Rng rng(1);
    gradcheck::LayerFixture fx(dw, {x.shape()}, rng);
    ASSERT_EQ(fx.out_shape, (Shape{rc.n, rc.ho, rc.wo, rc.c * rc.mult})) << name;
    fx.value("depthwise_kernel") = rc.kernel;
    if (rc.bias) fx.value("bias") = rc.b;
    Tensor y, dx, dy(fx.out_shape);
    dw.forward({&x}, y, true);
    std::copy(rc.r.begin(), rc.r.end(), dy.data());
    dw.backward({&x}, y, dy, {&dx});
    // float32 sums of at most 9 (forward, dx) or N*Ho*Wo (kernel, bias; in double) products
    // of values in [-1, 1]: errors ~1e-7 of the peak; a wrong tap or channel is ~1e-1.
    constexpr double kTol = 1e-5;
    compare(name, "y", y.data(), rc.y, kTol);
    compare(name, "dx", dx.data(), rc.dx, kTol);
    compare(name, "ddepthwise_kernel", fx.grad("depthwise_kernel").data(), rc.dkernel, kTol);
    if (rc.bias) compare(name, "dbias", fx.grad("bias").data(), rc.db, kTol);
  }
  EXPECT_GE(cases, 7) << "fewer reference cases than make_depthwise_reference.py writes";
}

}  // namespace
}  // namespace parafine
