// BatchNormalization over the last (channel) axis, with Keras semantics:
//   inference (frozen layer, or not training): y = gamma * (x - moving_mean) / sqrt(moving_var +
//   eps) + beta training (trainable layer in a training step): batch mean and biased batch variance
//   over all rows [N*H*W]; moving stats updated as moving = momentum*moving + (1-momentum)*batch,
//   the variance fed to the moving average Bessel-corrected (n/(n-1)) as TF's fused kernel does.
// scale=false (Keras `scale=False`, as InceptionV3 uses it): no gamma variable; gamma is 1 in
// every formula, and the weights are [beta, moving_mean, moving_variance] as in Keras files.
#pragma once

#include <functional>

#include "parafine/layers/layer.hpp"

namespace parafine {

class BatchNormalization : public Layer {
 public:
  // Sums over rows that a distributed run reduces across ranks before use (sync BN). The
  // vector holds per-channel sums followed by a row count; the hook sums it in place.
  using SumReducer = std::function<void(std::vector<double>&)>;

  explicit BatchNormalization(std::string name, float epsilon = 1.001e-5f, float momentum = 0.99f,
                              bool scale = true);
  const char* type() const override { return "BatchNormalization"; }
  bool backward_reads_output_values() const override { return false; }  // x and the statistics
  // mixed_bfloat16: float32 arithmetic, the output cast to bfloat16 in the same pass.
  bool output_is_bfloat16() const override { return bfloat16_compute_; }

  Shape infer_shape(const std::vector<Shape>& in) override;
  // gamma (only when scale), beta (optimised); moving_mean, moving_variance (state)
  std::vector<ParamSpec> param_specs() const override;
  bool scale() const { return scale_; }
  float epsilon() const { return eps_; }
  float momentum() const { return momentum_; }
  void forward(const std::vector<const Tensor*>& in, Tensor& out, bool training) override;
  // forward, then the ReLU that follows, in the same pass: out = max(BN(x), 0). The statistics
  // (and their update) are forward's; how the Model runs a BN whose output only a ReLU reads.
  void forward_relu(const Tensor& x, Tensor& out, bool training);
  void backward(const std::vector<const Tensor*>& in, const Tensor& out, const Tensor& dout,
                const std::vector<Tensor*>& din) override;

  // True when forward(training) uses batch statistics: Keras runs a frozen BN in inference mode.
  bool uses_batch_statistics(bool training) const {
    return training && trainable && !inference_only_ && !called_in_inference_;
  }
  // --bn-mode frozen: inference mode even when trainable (gamma/beta still train).
  void set_inference_only(bool on) { inference_only_ = on; }
  // Inside a model called with training=False (Keras's transfer-learning guide,
  // base(x, training=False)): inference mode always, whatever --bn-mode says.
  void set_called_in_inference(bool on) { called_in_inference_ = on; }
  bool called_in_inference() const { return called_in_inference_; }
  // Calibration: forward normalises with the batch statistics and stores them (biased
  // variance) as the moving statistics. Used to give a randomly initialised base sane scales.
  void set_calibrating(bool c) { calibrating_ = c; }
  void set_sum_reducer(SumReducer r) { reduce_ = std::move(r); }
  bool calibrating() const { return calibrating_; }
  // Rows of the last forward on this rank (0 for a rank with no samples in the step).
  std::size_t last_rows() const { return last_rows_; }
  // Inference mode as y = x * scale + shift per channel ([C] each), for folding into a conv.
  void inference_affine(float* scale, float* shift) const;

 private:
  Shape infer_one(const Shape& in);  // infer_shape for the one input, without a vector
  // Parameter slots: gamma is slot 0 only when scale_; without it the others move up by one.
  int beta_slot() const { return scale_ ? 1 : 0; }
  const float* gamma() const { return scale_ ? param(0) : ones_.data(); }

  float eps_, momentum_;
  bool scale_;
  std::vector<float> ones_;  // [C] of 1.0f: gamma when !scale_ (so y is bit-identical to gamma=1)
  int channels_ = 0;
  bool calibrating_ = false;
  bool inference_only_ = false;
  bool called_in_inference_ = false;
  std::size_t last_rows_ = 0;
  bool last_used_batch_stats_ = false;
  SumReducer reduce_;
  void forward_impl(const Tensor& x, Tensor& out, bool training, bool relu);
  std::vector<float> mean_, inv_std_;          // [C] statistics used by the last forward
  std::vector<double> sums_;                   // scratch for the reductions [2C+1]
  std::vector<float> shift_;                   // [C] where the one-pass sums are centred
  ThreadSums thread_sums_;                     // their per-thread partial sums
  std::vector<float> dx_a_, dx_b_, dx_scale_;  // backward's per-channel terms [C]
};

}  // namespace parafine
