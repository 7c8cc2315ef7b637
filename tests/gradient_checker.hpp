// Finite-difference gradient checker for parafine layers, in the style of Caffe's
// test_gradient_check_util.hpp, plus the helpers the per-layer gradient tests share.
//
// For a layer whose parameters are bound (LayerFixture does that), check_gradients():
//   1. runs forward at the given inputs and draws a fixed random upstream gradient R [out shape];
//   2. defines the scalar objective L = sum(out * R), accumulated in double, so that
//      dL/dout = R and layer.backward(in, out, R) must return dL/din and dL/dparam;
//   3. for every element of every input and every optimised parameter (or a seeded random
//      subset of at most Options::max_elements per tensor) compares the analytic gradient with
//      the central difference (L(x+h) - L(x-h)) / (2h), requiring
//          |analytic - numeric| <= tolerance * max(|analytic|, |numeric|, 1).
// Kinks are skipped as Caffe does: an optional signature of the layer's non-smooth structure
// (ReLU on/off pattern, max-pool argmax) is computed at x, x+h and x-h, and an element whose
// perturbation changes it is not compared. Skipping too much, or a gradient that is zero at
// every checked element, is itself a failure: such a check could not catch anything.
// Failures name the tensor, the element (flat and NHWC index), the analytic and numeric values;
// on success the max scaled error per tensor is printed and recorded as a test property.
#pragma once

#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <iomanip>
#include <iostream>
#include <limits>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "parafine/core/tensor.hpp"
#include "parafine/layers/layer.hpp"

namespace parafine::gradcheck {

// Tolerance on the scaled error |a - n| / max(|a|, |n|, 1) of float32 layers with h = 1e-3.
// The error measured is float32 rounding of the outputs divided by 2h: worst 1.1e-3 (Conv2D
// 7x7) and 9e-4 (BN, batch statistics) in these tests, 1.7e-3 over 30 seeds checking every
// element. 1e-2 leaves a 6x margin; a single element wrong by 2% of max(|g|, 1) fails
// (test_grad_conv2d's DetectsOneKernelGradientOffByTwiceTheTolerance).
constexpr double kDefaultTolerance = 1e-2;
constexpr double kDefaultStep = 1e-3;

// splitmix64: the same numbers with every standard library (std:: distributions differ).
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : s_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0,1)
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  std::size_t below(std::size_t n) { return static_cast<std::size_t>(next() % n); }

 private:
  std::uint64_t s_;
};

inline void fill_uniform(float* p, std::size_t n, double lo, double hi, Rng& rng) {
  for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<float>(rng.uniform(lo, hi));
}

inline void fill_uniform(Tensor& t, double lo, double hi, Rng& rng) {
  fill_uniform(t.data(), t.numel(), lo, hi, rng);
}

// A random permutation of lo, lo + spacing, lo + 2*spacing, ...: all values distinct and at
// least `spacing` apart, so a perturbation of h < spacing/2 can never create a max-pool tie.
inline void fill_distinct(Tensor& t, double lo, double spacing, Rng& rng) {
  const std::size_t n = t.numel();
  for (std::size_t i = 0; i < n; ++i) t[i] = static_cast<float>(lo + spacing * i);
  for (std::size_t i = n; i > 1; --i) std::swap(t[i - 1], t[rng.below(i)]);
}

// "[n,h,w,c]" for flat element i of a tensor of shape s.
inline std::string unravel(std::size_t i, const Shape& s) {
  std::vector<int> idx(static_cast<std::size_t>(s.rank()));
  for (int d = s.rank() - 1; d >= 0; --d) {
    idx[static_cast<std::size_t>(d)] = static_cast<int>(i % static_cast<std::size_t>(s[d]));
    i /= static_cast<std::size_t>(s[d]);
  }
  std::ostringstream os;
  os << '[';
  for (std::size_t d = 0; d < idx.size(); ++d) os << (d ? "," : "") << idx[d];
  os << ']';
  return os.str();
}

// Owns what a Model would own for one layer: parameter values, parameter gradients (for the
// optimised ones) and the workspace. The constructor infers shapes and binds everything; the
// values start random (uniform in [lo, hi]), tests overwrite them as they need.
class LayerFixture {
 public:
  LayerFixture(Layer& layer, const std::vector<Shape>& in_shapes, Rng& rng, double lo = -1.0,
               double hi = 1.0)
      : layer_(layer) {
    out_shape = layer.infer_shape(in_shapes);
    specs = layer.param_specs();
    values.resize(specs.size());
    grads.resize(specs.size());
    for (std::size_t i = 0; i < specs.size(); ++i) {
      values[i].resize(specs[i].shape.numel());
      fill_uniform(values[i].data(), values[i].size(), lo, hi, rng);
      if (specs[i].optimised) grads[i].assign(specs[i].shape.numel(), 0.0f);
    }
    for (std::size_t i = 0; i < specs.size(); ++i)
      layer.bind_param(static_cast<int>(i), values[i].data(),
                       specs[i].optimised ? grads[i].data() : nullptr);
    layer.set_workspace(&workspace);
  }
  LayerFixture(const LayerFixture&) = delete;
  LayerFixture& operator=(const LayerFixture&) = delete;

  // Index of the parameter called `name` ("kernel", "gamma", ...); fails the test if absent.
  std::size_t index(const std::string& name) const {
    for (std::size_t i = 0; i < specs.size(); ++i)
      if (specs[i].name == name) return i;
    ADD_FAILURE() << layer_.type() << " layer '" << layer_.name() << "' has no parameter '" << name
                  << "'";
    return 0;
  }
  std::vector<float>& value(const std::string& name) { return values[index(name)]; }
  std::vector<float>& grad(const std::string& name) { return grads[index(name)]; }

  Shape out_shape;
  std::vector<ParamSpec> specs;
  std::vector<std::vector<float>> values;  // in param_specs() order
  std::vector<std::vector<float>> grads;   // empty for state (BN moving statistics)
  Workspace workspace;

 private:
  Layer& layer_;
};

// The non-smooth structure of a layer at one point; elements whose perturbation changes it
// are skipped. Empty function: the layer is smooth.
using Signature = std::function<std::vector<std::int64_t>(const std::vector<const Tensor*>& in,
                                                          const Tensor& out)>;

// ReLU-like outputs: which outputs are on the positive side of the kink.
inline Signature relu_signature() {
  return [](const std::vector<const Tensor*>&, const Tensor& out) {
    std::vector<std::int64_t> s(out.numel());
    for (std::size_t i = 0; i < out.numel(); ++i) s[i] = out[i] > 0.0f;
    return s;
  };
}

// Valid max pooling of in[0] [N,H,W,C]: the flat input index of each window's first maximum,
// computed here independently of the layer.
inline Signature max_pool_signature(int pool, int stride) {
  return [pool, stride](const std::vector<const Tensor*>& in, const Tensor&) {
    const Shape& s = in[0]->shape();
    const int n = s[0], h = s[1], w = s[2], c = s[3];
    const int ho = (h - pool) / stride + 1, wo = (w - pool) / stride + 1;
    std::vector<std::int64_t> arg;
    arg.reserve(static_cast<std::size_t>(n) * ho * wo * c);
    for (int i = 0; i < n; ++i)
      for (int r = 0; r < ho; ++r)
        for (int q = 0; q < wo; ++q)
          for (int ch = 0; ch < c; ++ch) {
            std::int64_t best = -1;
            for (int a = 0; a < pool; ++a)
              for (int b = 0; b < pool; ++b) {
                const std::int64_t idx =
                    ((static_cast<std::int64_t>(i) * h + r * stride + a) * w + q * stride + b) * c +
                    ch;
                if (best < 0 || (*in[0])[idx] > (*in[0])[best]) best = idx;
              }
            arg.push_back(best);
          }
    return arg;
  };
}

struct Options {
  bool training = true;        // passed to forward
  double step = kDefaultStep;  // h
  double tolerance = kDefaultTolerance;
  std::size_t max_elements = 200;        // per tensor; larger tensors get a seeded random subset
  std::uint64_t seed = 0x5EED;           // R and the subsets
  double upstream_scale = 1.0;           // R ~ U[-s, s]; chosen so gradients are O(1) and the
                                         // floor of 1 in the scale does not make the check absolute
  double max_skipped_fraction = 0.1;     // more skipped kinks than this fails the check
  Signature kink_signature;              // empty: smooth layer
  std::vector<std::string> input_names;  // default "input0", "input1", ...
  int max_reported_failures = 5;         // per tensor; the rest are counted
};

struct TensorResult {
  std::string name;
  std::size_t numel = 0, checked = 0, skipped = 0, failed = 0;
  double max_scaled_error = 0.0;
  double max_abs_analytic = 0.0, max_abs_numeric = 0.0;
};

struct Report {
  std::vector<TensorResult> tensors;
  std::size_t failed() const {
    std::size_t f = 0;
    for (const auto& t : tensors) f += t.failed;
    return f;
  }
  double max_scaled_error() const {
    double e = 0.0;
    for (const auto& t : tensors) e = std::max(e, t.max_scaled_error);
    return e;
  }
  const TensorResult* find(const std::string& name) const {
    for (const auto& t : tensors)
      if (t.name == name) return &t;
    return nullptr;
  }
};

namespace detail {

inline double objective(Layer& layer, const std::vector<const Tensor*>& in, Tensor& out,
                        const Tensor& r, bool training) {
  layer.forward(in, out, training);
  EXPECT_TRUE(out.shape() == r.shape())
      << "output shape changed under perturbation: " << out.shape().str() << " vs "
      << r.shape().str();
  double l = 0.0;
  for (std::size_t i = 0; i < r.numel(); ++i)
    l += static_cast<double>(out[i]) * static_cast<double>(r[i]);
  return l;
}

// All of 0..n-1 when n <= k, else k distinct indices drawn with the seeded generator, sorted.
inline std::vector<std::size_t> pick_elements(std::size_t n, std::size_t k, Rng& rng) {
  std::vector<std::size_t> idx(n);
  for (std::size_t i = 0; i < n; ++i) idx[i] = i;
  if (n <= k) return idx;
  for (std::size_t i = 0; i < k; ++i) std::swap(idx[i], idx[i + rng.below(n - i)]);
  idx.resize(k);
  std::sort(idx.begin(), idx.end());
  return idx;
}

}  // namespace detail

// Checks dL/din for every input (inputs are perturbed in place and restored) and dL/dparam
// for every optimised parameter of a trainable layer (a frozen layer produces no weight
// gradients by contract; BN moving statistics are state and never checked).
inline Report check_gradients(Layer& layer, const std::vector<Tensor*>& inputs,
                              const Options& opt = Options()) {
  Report report;
  Rng rng(opt.seed);
  std::vector<const Tensor*> in(inputs.begin(), inputs.end());
  const std::vector<ParamSpec> specs = layer.param_specs();
  const std::string who = std::string(layer.type()) + " '" + layer.name() + "'";

  // Analytic gradients at x. Backward must run right after the forward at x: layers keep
  // what backward needs (BN statistics, max-pool argmax) from their last forward.
  Tensor out, r;
  layer.forward(in, out, opt.training);
  r.resize(out.shape());
  fill_uniform(r, -opt.upstream_scale, opt.upstream_scale, rng);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<Tensor> din(inputs.size());
  std::vector<Tensor*> din_ptr;
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    din[k].resize(inputs[k]->shape());
    din[k].fill(nan);  // anything backward fails to write shows up as a non-finite gradient
    din_ptr.push_back(&din[k]);
  }
  struct Target {
    std::string name;
    float* x;
    Shape shape;
    std::vector<float> analytic;
  };
  std::vector<Target> targets;
  std::vector<std::size_t> param_targets;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    float* g = layer.grad(static_cast<int>(i));
    if (!specs[i].optimised || !layer.trainable || g == nullptr) continue;
    std::fill(g, g + specs[i].shape.numel(), nan);
    param_targets.push_back(i);
  }
  layer.backward(in, out, r, din_ptr);
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    const std::string name =
        k < opt.input_names.size() ? opt.input_names[k] : "input" + std::to_string(k);
    EXPECT_TRUE(din[k].shape() == inputs[k]->shape())
        << who << ": gradient of " << name << " has shape " << din[k].shape().str() << ", input "
        << inputs[k]->shape().str();
    targets.push_back({name, inputs[k]->data(), inputs[k]->shape(),
                       std::vector<float>(din[k].data(), din[k].data() + din[k].numel())});
  }
  for (std::size_t i : param_targets) {
    const float* g = layer.grad(static_cast<int>(i));
    targets.push_back({specs[i].name, layer.param(static_cast<int>(i)), specs[i].shape,
                       std::vector<float>(g, g + specs[i].shape.numel())});
  }

  const std::vector<std::int64_t> sig0 =
      opt.kink_signature ? opt.kink_signature(in, out) : std::vector<std::int64_t>();
  Tensor scratch;
  for (Target& t : targets) {
    TensorResult res;
    res.name = t.name;
    res.numel = t.shape.numel();
    for (std::size_t e : detail::pick_elements(res.numel, opt.max_elements, rng)) {
      const float x0 = t.x[e];
      const float xp = static_cast<float>(x0 + opt.step);
      const float xm = static_cast<float>(x0 - opt.step);
      t.x[e] = xp;
      const double lp = detail::objective(layer, in, scratch, r, opt.training);
      const bool kink_p = opt.kink_signature && opt.kink_signature(in, scratch) != sig0;
      t.x[e] = xm;
      const double lm = detail::objective(layer, in, scratch, r, opt.training);
      const bool kink_m = opt.kink_signature && opt.kink_signature(in, scratch) != sig0;
      t.x[e] = x0;
      if (kink_p || kink_m) {
        ++res.skipped;
        continue;
      }
      // Divide by the step actually taken: x0 +- h is rounded to float.
      const double numeric = (lp - lm) / (static_cast<double>(xp) - static_cast<double>(xm));
      const double analytic = t.analytic[e];
      const double scale = std::max({std::abs(analytic), std::abs(numeric), 1.0});
      const double err = std::abs(analytic - numeric) / scale;
      ++res.checked;
      res.max_abs_analytic = std::max(res.max_abs_analytic, std::abs(analytic));
      res.max_abs_numeric = std::max(res.max_abs_numeric, std::abs(numeric));
      const bool ok = std::isfinite(analytic) && std::isfinite(numeric) && err <= opt.tolerance;
      if (std::isfinite(err)) res.max_scaled_error = std::max(res.max_scaled_error, err);
      if (!ok) {
        ++res.failed;
        if (std::isnan(err)) res.max_scaled_error = std::numeric_limits<double>::infinity();
        if (static_cast<int>(res.failed) <= opt.max_reported_failures)
          ADD_FAILURE() << who << ": gradient of " << t.name << " element " << e << " "
                        << unravel(e, t.shape) << ": analytic " << std::setprecision(8) << analytic
                        << ", numeric " << numeric << ", scaled error " << err << " > tolerance "
                        << opt.tolerance;
      }
    }
    if (res.failed > static_cast<std::size_t>(opt.max_reported_failures))
      ADD_FAILURE() << who << ": gradient of " << t.name << ": " << res.failed << " of "
                    << res.checked << " checked elements exceed tolerance " << opt.tolerance
                    << " (first " << opt.max_reported_failures << " shown)";
    const std::size_t tried = res.checked + res.skipped;
    if (tried > 0 && static_cast<double>(res.skipped) > opt.max_skipped_fraction * tried)
      ADD_FAILURE() << who << ": gradient of " << t.name << ": " << res.skipped << " of " << tried
                    << " elements skipped at kinks (limit " << opt.max_skipped_fraction
                    << "); the check would be vacuous";
    if (res.checked > 0 && res.max_abs_analytic == 0.0 && res.max_abs_numeric == 0.0)
      ADD_FAILURE() << who << ": gradient of " << t.name << " is zero at all " << res.checked
                    << " checked elements; the check would be vacuous";
    std::cout << "[gradcheck] " << who << (opt.training ? " training" : " inference") << " "
              << std::left << std::setw(16) << t.name << std::right << " checked " << res.checked
              << "/" << res.numel << " skipped " << res.skipped << "  max scaled error "
              << std::scientific << std::setprecision(2) << res.max_scaled_error << "  (max |grad| "
              << res.max_abs_analytic << ", tolerance " << opt.tolerance << ")" << std::defaultfloat
              << std::endl;
    std::ostringstream v;
    v << res.max_scaled_error;
    ::testing::Test::RecordProperty("max_scaled_error_" + layer.name() + "_" + t.name, v.str());
    report.tensors.push_back(res);
  }
  return report;
}

// Runs fn with gtest failures intercepted and checks that it failed at least once with a
// message containing `expected` (the checker's self-test: it must be able to fail). Returns
// the number of failures intercepted.
inline std::size_t expect_check_fails(const std::function<void()>& fn,
                                      const std::string& expected) {
  ::testing::TestPartResultArray results;
  {
    ::testing::ScopedFakeTestPartResultReporter intercept(
        ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &results);
    fn();
  }
  bool found = false;
  for (int i = 0; i < results.size(); ++i)
    if (std::string(results.GetTestPartResult(i).message()).find(expected) != std::string::npos)
      found = true;
  EXPECT_GT(results.size(), 0) << "the corrupted gradient was not detected";
  EXPECT_TRUE(found) << "no failure message mentions '" << expected << "'";
  std::cout << "[gradcheck] corrupted gradient detected: " << results.size() << " failure(s)";
  if (results.size() > 0) std::cout << "; first: " << results.GetTestPartResult(0).message();
  std::cout << std::endl;
  return static_cast<std::size_t>(results.size());
}

// A layer whose backward is the wrapped layer's, then corrupted by `corrupt` (which may edit
// the input gradients and the wrapped layer's parameter gradients). Used to show that a check
// fails when a gradient is wrong. Parameters bound to this wrapper are forwarded to `inner`.
class CorruptedBackward : public Layer {
 public:
  using Corruption = std::function<void(Layer& inner, const std::vector<const Tensor*>& in,
                                        const Tensor& dout, const std::vector<Tensor*>& din)>;
  CorruptedBackward(Layer& inner, Corruption corrupt)
      : Layer(inner.name()), inner_(inner), corrupt_(std::move(corrupt)) {}
  const char* type() const override { return inner_.type(); }
  int num_inputs() const override { return inner_.num_inputs(); }
  Shape infer_shape(const std::vector<Shape>& in) override { return inner_.infer_shape(in); }
  std::vector<ParamSpec> param_specs() const override { return inner_.param_specs(); }
  void forward(const std::vector<const Tensor*>& in, Tensor& out, bool training) override {
    sync();
    inner_.forward(in, out, training);
  }
  void backward(const std::vector<const Tensor*>& in, const Tensor& out, const Tensor& dout,
                const std::vector<Tensor*>& din) override {
    sync();
    inner_.backward(in, out, dout, din);
    corrupt_(inner_, in, dout, din);
  }

 private:
  void sync() {
    inner_.trainable = trainable;
    inner_.set_workspace(ws_);
    for (std::size_t i = 0; i < values_.size(); ++i)
      inner_.bind_param(static_cast<int>(i), values_[i], grads_[i]);
  }
  Layer& inner_;
  Corruption corrupt_;
};

}  // namespace parafine::gradcheck
