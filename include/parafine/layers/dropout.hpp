// Keras Dropout (keras/src/layers/regularization/dropout.py): inverted dropout. In training,
// each element is kept with probability 1 - rate and kept values are scaled by 1/(1 - rate)
// (TensorFlow's stateless_dropout: y = (x * scale) * keep, scale = float32(1 / (1 - rate)));
// in inference it is the identity. Keras's own random numbers are backend-specific and cannot
// be matched; parafine draws its masks with this exact rule instead:
//
//   splitmix64(x): z = x + 0x9E3779B97F4A7C15; z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
//                  z = (z ^ (z >> 27)) * 0x94D049BB133111EB; return z ^ (z >> 31)  (uint64)
//   fnv1a64(bytes): h = 0xcbf29ce484222325; for each byte b: h ^= b; h *= 0x100000001b3
//   seed_value = (config seed, or 0) ^ (splitmix64(run seed) when set_run_seed was called)
//   stream     = splitmix64(seed_value ^ fnv1a64(layer name))
//   element j (flat index within one sample, 0 .. H*W*C-1) of the sample with key k:
//     bits = splitmix64(splitmix64(stream ^ k) ^ j);  u = (bits >> 11) * 2^-53
//     kept iff u >= rate
//
// The keys are the Workspace's sample_keys (Model::set_sample_keys), one per sample: a
// sample's mask depends on (seed, layer name, key) only, never on its position in the batch or
// on the number of ranks. A training forward of an active Dropout throws std::logic_error
// unless there is exactly one key per sample. Backward: dx = (dy * scale) * keep.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "parafine/layers/layer.hpp"

namespace parafine {

class Dropout : public Layer {
 public:
  // rate in [0, 1), else std::invalid_argument naming the layer. seed: Keras's `seed` (None: 0).
  Dropout(std::string name, float rate, std::optional<std::uint64_t> seed = std::nullopt);
  const char* type() const override { return "Dropout"; }
  float rate() const { return rate_; }
  const std::optional<std::uint64_t>& seed() const { return seed_; }

  // The trainer's --seed, mixed into the layer's seed (replaces an earlier run seed).
  void set_run_seed(std::uint64_t s);
  // A Dropout inside a nested model called with training=False: always the identity.
  void set_inference_only(bool on) { inference_only_ = on; }
  bool inference_only() const { return inference_only_; }
  // Whether a training forward drops anything (rate > 0 and not inference-only).
  bool active() const { return rate_ > 0.0f && !inference_only_; }

  // Whether element j of the sample with key k is kept (the rule above; for tests and tools).
  bool keeps(std::uint64_t key, std::uint64_t j) const;

  bool output_is_bfloat16() const override { return !active(); }  // then a copy
  bool backward_reads_input_values() const override { return false; }
  bool backward_reads_output_values() const override { return false; }
  Shape infer_shape(const std::vector<Shape>& in) override;  // {s} -> s
  void forward(const std::vector<const Tensor*>& in, Tensor& out, bool training) override;
  void backward(const std::vector<const Tensor*>& in, const Tensor& out, const Tensor& dout,
                const std::vector<Tensor*>& din) override;

 private:
  float scale() const;  // 1/(1 - rate) in float32 (rounded to bfloat16 under mixed_bfloat16)
  void update_stream();

  float rate_;
  std::optional<std::uint64_t> seed_;
  std::optional<std::uint64_t> run_seed_;
  bool inference_only_ = false;
  std::uint64_t stream_ = 0;
  bool dropped_ = false;            // the last forward applied a mask (backward then does too)
  std::vector<std::uint8_t> keep_;  // [N * per-sample elements] of the last dropping forward
};

// The mixing functions of the rule above.
std::uint64_t splitmix64(std::uint64_t x);
std::uint64_t fnv1a64(const std::string& bytes);

}  // namespace parafine
