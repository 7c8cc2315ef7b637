// Keras Activation layers: the factory, forward and backward (see activation_layer.hpp).
#include "parafine/layers/activation_layer.hpp"

#include <cmath>
#include <cstring>
#include <stdexcept>

#include "parafine/core/compute.hpp"
#include "parafine/layers/dense.hpp"  // softmax_rows

namespace parafine {

namespace {

constexpr const char* kSupported =
    "linear, relu, relu6, sigmoid, tanh, softmax, swish, silu, gelu, elu";

inline double sigmoid(double x) {
  return 1.0 / (1.0 + std::exp(-x));
}

// Element-wise forward of the smooth activations, in double, rounded once to float.
inline float apply(ElementwiseKind k, float xf) {
  const double x = xf;
  switch (k) {
    case ElementwiseKind::kLinear:
      return xf;
    case ElementwiseKind::kSigmoid:
      return static_cast<float>(sigmoid(x));
    case ElementwiseKind::kTanh:
      return static_cast<float>(std::tanh(x));
    case ElementwiseKind::kSilu:
      return static_cast<float>(x * sigmoid(x));
    case ElementwiseKind::kGelu:
      return static_cast<float>(0.5 * x * (1.0 + std::erf(x * M_SQRT1_2)));
    case ElementwiseKind::kElu:
      return xf > 0.0f ? xf : static_cast<float>(std::expm1(x));
    case ElementwiseKind::kSoftmax:
      break;  // not element-wise
  }
  return xf;
}

// dLoss/dx of one element from dy, the input x and the output y.
inline float derivative(ElementwiseKind k, float dy, float xf, float yf) {
  const double x = xf, y = yf;
  switch (k) {
    case ElementwiseKind::kSigmoid:
      return static_cast<float>(dy * y * (1.0 - y));
    case ElementwiseKind::kTanh:
      return static_cast<float>(dy * (1.0 - y * y));
    case ElementwiseKind::kSilu: {
      const double s = sigmoid(x);
      return static_cast<float>(dy * s * (1.0 + x * (1.0 - s)));
    }
    case ElementwiseKind::kGelu: {
      const double cdf = 0.5 * (1.0 + std::erf(x * M_SQRT1_2));
      const double pdf = std::exp(-0.5 * x * x) * (0.5 * M_2_SQRTPI * M_SQRT1_2);  // 1/sqrt(2pi)
      return static_cast<float>(dy * (cdf + x * pdf));
    }
    case ElementwiseKind::kElu:
      return yf < 0.0f ? static_cast<float>(dy * (y + 1.0)) : dy;
    case ElementwiseKind::kLinear:
    case ElementwiseKind::kSoftmax:
      break;
  }
  return dy;
}

}  // namespace

std::unique_ptr<Layer> make_activation(const std::string& name, const std::string& act) {
  if (act == "relu") return std::make_unique<ReLU>(name);
  if (act == "relu6") return std::make_unique<ReLU6Activation>(name);
  static const std::pair<const char*, ElementwiseKind> kinds[] = {
      {"linear", ElementwiseKind::kLinear}, {"sigmoid", ElementwiseKind::kSigmoid},
      {"tanh", ElementwiseKind::kTanh},     {"softmax", ElementwiseKind::kSoftmax},
      {"swish", ElementwiseKind::kSilu},    {"silu", ElementwiseKind::kSilu},
      {"gelu", ElementwiseKind::kGelu},     {"elu", ElementwiseKind::kElu}};
  for (const auto& [keras_name, kind] : kinds)
    if (act == keras_name) return std::make_unique<ElementwiseActivation>(name, kind);
  throw std::invalid_argument("Activation layer '" + name + "': activation '" + act +
                              "' is not supported (supported: " + kSupported + ")");
}

ElementwiseActivation::ElementwiseActivation(std::string name, ElementwiseKind kind)
    : Layer(std::move(name)), kind_(kind) {}

const char* ElementwiseActivation::activation_name() const {
  switch (kind_) {
    case ElementwiseKind::kLinear:
      return "linear";
    case ElementwiseKind::kSigmoid:
      return "sigmoid";
    case ElementwiseKind::kTanh:
      return "tanh";
    case ElementwiseKind::kSoftmax:
      return "softmax";
    case ElementwiseKind::kSilu:
      return "silu";
    case ElementwiseKind::kGelu:
      return "gelu";
    case ElementwiseKind::kElu:
      return "elu";
  }
  return "?";
}

void ElementwiseActivation::set_fused_with_loss(bool on) {
  if (on && kind_ != ElementwiseKind::kSigmoid && kind_ != ElementwiseKind::kSoftmax)
    fail(std::string("only a sigmoid or softmax can take its loss's gradient, not ") +
         activation_name());
  fused_with_loss_ = on;
}

bool ElementwiseActivation::backward_reads_input_values() const {
  return !fused_with_loss_ && (kind_ == ElementwiseKind::kSilu || kind_ == ElementwiseKind::kGelu);
}

bool ElementwiseActivation::backward_reads_output_values() const {
  return !fused_with_loss_ &&
         (kind_ == ElementwiseKind::kSigmoid || kind_ == ElementwiseKind::kTanh ||
          kind_ == ElementwiseKind::kSoftmax || kind_ == ElementwiseKind::kElu);
}

Shape ElementwiseActivation::infer_shape(const std::vector<Shape>& in) {
  expect_count(in, 1);
  if (in[0].rank() < 1) fail("expects an input [N,...], got a rank-0 shape");
  expect_input(in[0], in[0].rank());  // positive dims
  if (kind_ == ElementwiseKind::kSoftmax && in[0].rank() < 2)
    fail("softmax needs an input of rank 2 or more ([N,...,C]), got " + in[0].str());
  return in[0];
}

void ElementwiseActivation::forward(const std::vector<const Tensor*>& in, Tensor& out, bool) {
  const Shape& s = in[0]->shape();
  out.resize(s);
  const float* x = in[0]->data();
  float* y = out.data();
  if (kind_ == ElementwiseKind::kSoftmax) {  // [rows, C], a row at a time
    softmax_rows(x, static_cast<int>(s.rows()), s.channels(), y);
    return;
  }
  if (kind_ == ElementwiseKind::kLinear) {
    std::memcpy(y, x, sizeof(float) * out.numel());
    return;
  }
  const long n = static_cast<long>(out.numel());
  const ElementwiseKind k = kind_;
#pragma omp parallel for if (parallel_worth(1.0 * n * 16))
  for (long i = 0; i < n; ++i) y[i] = apply(k, x[i]);
}

void ElementwiseActivation::backward(const std::vector<const Tensor*>& in, const Tensor& out,
                                     const Tensor& dout, const std::vector<Tensor*>& din) {
  if (!din[0]) return;
  din[0]->resize(in[0]->shape());  // in[0] and out may be hollow when not read
  float* dx = din[0]->data();
  const float* dy = dout.data();
  const long n = static_cast<long>(dout.numel());
  if (fused_with_loss_ || kind_ == ElementwiseKind::kLinear) {
    std::memcpy(dx, dy, sizeof(float) * static_cast<std::size_t>(n));
    return;
  }
  if (kind_ == ElementwiseKind::kSoftmax) {
    softmax_backward(out, dout, *din[0]);
    return;
  }
  const bool reads_x = backward_reads_input_values();
  const float* x = reads_x ? in[0]->data() : nullptr;
  const float* y = reads_x ? nullptr : out.data();
  const ElementwiseKind k = kind_;
#pragma omp parallel for if (parallel_worth(1.0 * n * 16))
  for (long i = 0; i < n; ++i) dx[i] = derivative(k, dy[i], x ? x[i] : 0.0f, y ? y[i] : 0.0f);
}

// Per row of [rows, C]: dx = y * (dy - sum_c dy * y).
void ElementwiseActivation::softmax_backward(const Tensor& out, const Tensor& dout,
                                             Tensor& din) const {
  const std::size_t rows = out.shape().rows(), c = static_cast<std::size_t>(out.shape().channels());
  const float* y = out.data();
  const float* dy = dout.data();
  float* dx = din.data();
#pragma omp parallel for if (parallel_worth(1.0 * out.numel()))
  for (std::size_t r = 0; r < rows; ++r) {
    double dot = 0.0;
    for (std::size_t k = 0; k < c; ++k) dot += static_cast<double>(dy[r * c + k]) * y[r * c + k];
    for (std::size_t k = 0; k < c; ++k)
      dx[r * c + k] = static_cast<float>(y[r * c + k] * (dy[r * c + k] - dot));
  }
}

}  // namespace parafine
