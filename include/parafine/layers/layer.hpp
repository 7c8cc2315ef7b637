// The layer interface: shape inference, forward, backward, and named parameter slots that
// the Model binds to views into its one parameter block (cf. mlpack's aliasing).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "parafine/core/tensor.hpp"

namespace parafine {

// One weight variable as Keras names it ("kernel", "bias", "gamma", "beta", "moving_mean",
// "moving_variance"). Optimised weights get gradients; state (BN moving statistics) does not.
struct ParamSpec {
  std::string name;
  Shape shape;
  bool optimised;
};

// Scratch memory shared by all layers of a model: a holds im2col columns or oneDNN's
// scratchpad, b the kernels reordered into the layout a oneDNN convolution prefers, c a
// kernel rounded to bfloat16 (mixed_bfloat16). Also the per-sample keys of the next forward.
struct Workspace {
  std::vector<float> a, b, c;
  // [N]: one key per sample of the batch the next forward runs (Model::set_sample_keys), e.g.
  // the sample's index in the data set and epoch. A Dropout draws sample i's mask from key i,
  // so a mask does not depend on the sample's position in the batch or on the rank count.
  std::vector<std::uint64_t> sample_keys;
  float* get_c(std::size_t n) {
    if (c.size() < n) c.resize(n);
    return c.data();
  }
  float* get_a(std::size_t n) {
    if (a.size() < n) a.resize(n);
    return a.data();
  }
  float* get_b(std::size_t n) {
    if (b.size() < n) b.resize(n);
    return b.data();
  }
};

// Per-thread double accumulators for the OpenMP reductions of a layer, kept across steps so
// a step does not allocate them: slice(t) is thread t's `width` doubles (slices lie on separate
// cache lines). prepare() sizes it for the threads a parallel region opened next may have.
class ThreadSums {
 public:
  void prepare(int width);
  // Throws std::logic_error for a thread beyond what prepare() provided for.
  double* slice(int thread);

 private:
  std::vector<double> buf_;
  std::size_t stride_ = 0;
  int threads_ = 0;
};

class Layer {
 public:
  explicit Layer(std::string name) : name_(std::move(name)) {}
  virtual ~Layer() = default;

  const std::string& name() const { return name_; }
  virtual const char* type() const = 0;  // Keras class name, e.g. "Conv2D"
  virtual int num_inputs() const { return 1; }

  // Keras layer.trainable. A frozen layer gets no weight gradients; a frozen BatchNormalization
  // also runs in inference mode.
  bool trainable = true;

  // Output shape for these input shapes (batch dim included). Throws std::invalid_argument
  // naming this layer when the inputs do not fit. Also fixes the parameter shapes.
  virtual Shape infer_shape(const std::vector<Shape>& in) = 0;

  virtual std::vector<ParamSpec> param_specs() const { return {}; }
  bool has_params() const { return !param_specs().empty(); }
  // Binds parameter i (in param_specs() order) to storage owned by the Model; grad may be null.
  void bind_param(int i, float* value, float* grad);
  float* param(int i) const { return values_.at(static_cast<size_t>(i)); }
  float* grad(int i) const { return grads_.at(static_cast<size_t>(i)); }

  // training: the step trains the model (trainable BN uses batch statistics). out is resized.
  virtual void forward(const std::vector<const Tensor*>& in, Tensor& out, bool training) = 0;

  // dout is dLoss/dout. din[i] is null when input i needs no gradient, else it is resized and
  // overwritten with dLoss/din[i]. Weight gradients are overwritten only when trainable.
  virtual void backward(const std::vector<const Tensor*>& in, const Tensor& out, const Tensor& dout,
                        const std::vector<Tensor*>& din) = 0;

  // What backward reads. A Model drops (hollows out, keeping the shape) an output in a training
  // step once no backward will read its values: neither the layer's own (output) nor any
  // consumer's (input). Conservative defaults; a layer that overrides them must not read
  // the values it disclaims (shapes stay readable).
  virtual bool backward_reads_input_values() const { return true; }
  virtual bool backward_reads_output_values() const { return true; }

  void set_workspace(Workspace* ws) { ws_ = ws; }

  // mixed_bfloat16 (core/precision.hpp): a layer with weights it multiplies by (Conv2D, Dense)
  // then computes with them rounded to bfloat16, as Keras's autocast variables do; the Model
  // rounds every layer's outputs and input gradients, and these layers' weight gradients once
  // they are summed over the ranks (Model::finish_gradients).
  void set_bfloat16_compute(bool on) { bfloat16_compute_ = on; }
  bool bfloat16_compute() const { return bfloat16_compute_; }
  // Under mixed_bfloat16, whether forward's output already holds bfloat16 values (the layer
  // rounds it, or the operation is exact on bfloat16 inputs), so the Model need not round it.
  virtual bool output_is_bfloat16() const { return false; }
  // Whether the layer multiplies by its weights (Conv2D, DepthwiseConv2D, Dense): under
  // mixed_bfloat16 it computes with bfloat16 copies of them, and their gradients are bfloat16.
  virtual bool multiplies_by_weights() const { return false; }

 protected:
  [[noreturn]] void fail(const std::string& what) const;  // throws naming type and layer
  void expect_inputs(const std::vector<Shape>& in, int count, int rank) const;
  // The two halves of expect_inputs: the input count, and one input's rank and dims.
  void expect_count(const std::vector<Shape>& in, int count) const;
  void expect_input(const Shape& s, int rank) const;

  std::vector<float*> values_;
  std::vector<float*> grads_;
  Workspace* ws_ = nullptr;
  bool bfloat16_compute_ = false;

 private:
  std::string name_;
};

}  // namespace parafine
