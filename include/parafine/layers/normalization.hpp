// Keras Normalization (keras/src/layers/preprocessing/normalization.py), axis=-1 only, as an
// inference-only preprocessing stage:
//   y = (x - mean) / max(sqrt(variance), epsilon),   epsilon = backend.epsilon() = 1e-7,
// mean and variance per channel (the last axis, C).
// Where mean and variance come from, as Keras:
//  - given to the constructor (Keras's `mean=`, `variance=` config; a scalar is broadcast to
//    every channel): constants of the config, no weights;
//  - otherwise (an adapted layer) they are state variables, in Keras's order "mean" [C],
//    "variance" [C] (then "count", an int64 scalar that call() never reads: it is not exposed
//    here, so a loader must skip it and a writer must add it, Keras checks the count of
//    variables), initialised to 0 and 1 and loaded from a weight file.
// Backward (for a model whose trainable part starts before it): dx = dy / max(sqrt(var), eps);
// no weight gradients. invert=True is refused. Under mixed_bfloat16 the steps round as
// TensorFlow's bfloat16 ops do: mean, variance, x - mean, sqrt, the maximum and the quotient.
#pragma once

#include <optional>
#include <vector>

#include "parafine/layers/layer.hpp"

namespace parafine {

class Normalization : public Layer {
 public:
  static constexpr float kEpsilon = 1e-7f;  // keras.backend.epsilon()

  // Adapted: mean and variance are state variables (param_specs()).
  explicit Normalization(std::string name, bool invert = false);
  // Constants: each of size 1 (broadcast) or C. Throws naming the layer when sizes differ.
  Normalization(std::string name, std::vector<float> mean, std::vector<float> variance,
                bool invert = false);
  const char* type() const override { return "Normalization"; }
  bool adapted() const { return !const_mean_; }
  // The constructor's mean and variance (empty when adapted).
  std::vector<float> constant_mean() const { return const_mean_.value_or(std::vector<float>{}); }
  std::vector<float> constant_variance() const {
    return const_variance_.value_or(std::vector<float>{});
  }

  bool backward_reads_input_values() const override { return false; }
  bool backward_reads_output_values() const override { return false; }
  Shape infer_shape(const std::vector<Shape>& in) override;  // {[N,...,C]} -> same
  // Adapted: mean [C], variance [C], both state (not optimised).
  std::vector<ParamSpec> param_specs() const override;
  void forward(const std::vector<const Tensor*>& in, Tensor& out, bool training) override;
  void backward(const std::vector<const Tensor*>& in, const Tensor& out, const Tensor& dout,
                const std::vector<Tensor*>& din) override;

 private:
  void prepare();  // fills mean_ and inv_denominator_ / denominator_ for the current weights

  std::optional<std::vector<float>> const_mean_, const_variance_;
  int channels_ = 0;
  std::vector<float> mean_, denominator_;  // [C]: mean, max(sqrt(var), eps) as used
};

}  // namespace parafine
