// A Keras functional model as a list of layers in Keras's layer order (a topological order),
// each fed by earlier nodes. The Model owns:
//  - one block of optimised weights (kernels, biases, gamma, beta), laid out from the LAST layer
//    to the first, so the trainable suffix of the network is a leading range of the block and
//    its gradients / Adam moments are contiguous;
//  - one block of state (BatchNormalization moving statistics);
//  - the activations, recycled through a buffer pool.
// Forward keeps only what backward needs: nodes below the earliest trainable layer (the
// frozen prefix) release their outputs as soon as their consumers have run, and backward
// stops at the earliest trainable layer.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "parafine/core/precision.hpp"
#include "parafine/core/tensor.hpp"
#include "parafine/layers/layer.hpp"

namespace parafine {

// Where one weight variable lives.
struct ParamRef {
  int node;          // layer index
  int index;         // position in the layer's param_specs()
  std::string name;  // Keras variable name, e.g. "kernel"
  Shape shape;
  bool optimised;      // true: in params(); false: in state()
  std::size_t offset;  // into params() or state()
};

class Model {
 public:
  Model();
  ~Model();
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;

  // Adds a layer fed by the outputs of earlier nodes; returns its node index. The first layer
  // must be an InputLayer.
  int add(std::unique_ptr<Layer> layer, std::vector<int> inputs = {});
  // Infers every shape (naming the layer on a mismatch) and allocates the weight blocks.
  void build();

  int size() const { return static_cast<int>(nodes_.size()); }
  Layer& layer(int i) { return *nodes_.at(static_cast<size_t>(i)).layer; }
  const Layer& layer(int i) const { return *nodes_.at(static_cast<size_t>(i)).layer; }
  const std::vector<int>& inputs_of(int i) const {
    return nodes_.at(static_cast<size_t>(i)).inputs;
  }
  int index_of(const std::string& name) const;  // -1 when absent
  // Nodes [base_begin(), base_end()) are the pretrained base (Keras's base.layers,
  // model/backbone.hpp): the first n nodes of a backbone + head, a nested base model's nodes in
  // a model read from a Keras config (io/model_from_config.hpp). 0 layers (the default) for a
  // model without one.
  void set_base_layers(int n) { set_base_range(0, n); }
  void set_base_range(int begin, int count) {
    base_begin_ = begin;
    base_layers_ = count;
  }
  int base_layers() const { return base_layers_; }
  int base_begin() const { return base_begin_; }
  int base_end() const { return base_begin_ + base_layers_; }
  Shape sample_input_shape() const;  // [H,W,C]
  Shape output_shape(int node, int batch) const;
  // About the most bytes of layer outputs (and, training, their gradients) that a forward
  // (and backward) of `batch` images holds at once under the current freezing: forward's
  // releases simulated, backward's transient gradients at the widest trainable layer. For
  // out-of-memory checks and messages.
  double step_bytes(int batch, bool training) const;

  // Weights. Layers hold pointers into these blocks: change values, never sizes (set_weights
  // copies a whole saved block in after checking its size). The frozen prefix keeps its
  // kernels with the BatchNormalization folded in (and in oneDNN's layout) from one forward to
  // the next: every non-const access below marks all weights as changed, so change weights
  // through a reference taken after the last forward, never one kept from before it.
  std::vector<float>& params() {
    ++weights_generation_;
    return params_;
  }
  const std::vector<float>& params() const { return params_; }
  std::vector<float>& state() {
    ++weights_generation_;
    return state_;
  }
  const std::vector<float>& state() const { return state_; }
  // params()[0, trainable_size()) for an optimizer step: marks only the trainable layers'
  // weights as changed, so the frozen prefix's folded kernels stay valid.
  float* trainable_params() {
    ++trainable_generation_;
    return params_.data();
  }
  // A trainable layer's variable (e.g. a BN moving statistic averaged over ranks), marking only
  // the trainable layers' weights as changed. Throws std::logic_error for a layer before the
  // first trainable one.
  float* trainable_data(const ParamRef& r);
  const std::vector<ParamRef>& param_refs() const { return refs_; }
  // Throws std::invalid_argument when a block has another size than the model's.
  void set_weights(const std::vector<float>& params, const std::vector<float>& state);
  // The variable `var` of layer `layer_name`; throws naming both when absent.
  const ParamRef& find_param(const std::string& layer_name, const std::string& var) const;
  float* data(const ParamRef& r) {
    ++weights_generation_;
    return (r.optimised ? params_.data() : state_.data()) + r.offset;
  }
  const float* data(const ParamRef& r) const {
    return (r.optimised ? params_.data() : state_.data()) + r.offset;
  }

  // Training. The trainable range is params()[0, trainable_size()): every optimised weight of
  // the earliest trainable layer with weights and of all layers after it. Frozen layers inside
  // that range get zero gradients.
  int first_trainable_node() const;  // size() when nothing is trainable
  std::size_t trainable_size() const;
  std::vector<float>& grads() { return grads_; }  // [trainable_size()], filled by backward

  // x [N,H,W,C] -> output of the last layer. training: trainable BN layers use batch
  // statistics and activations needed by backward are kept.
  const Tensor& forward(const Tensor& x, bool training);
  // Runs only the layers after `node`, with `activation` as node's output: a block boundary
  // (e.g. conv5_block2_out) where no later layer reads anything earlier. Throws when a later
  // layer does, or when a trainable layer lies at or before `node` (training).
  const Tensor& forward_from(int node, const Tensor& activation, bool training);
  // One key per sample of the next forward's batch ([N], copied): what a training Dropout
  // draws each sample's mask from (layers/dropout.hpp). Set before every training forward of a
  // model with an active Dropout; a Dropout throws std::logic_error when the count is not N.
  void set_sample_keys(const std::vector<std::uint64_t>& keys);
  // dlogits: dLoss/d(last layer's pre-softmax output) [N,C]. Must follow forward(x, true).
  // grads_ready(n), when given, is called as backward finishes layers: grads()[0, n) are then
  // final (weights are laid out last layer first, so the finished range grows from 0). It is
  // how gradient buckets start their allreduce while backward goes on.
  void backward(const Tensor& dlogits, const std::function<void(std::size_t)>& grads_ready = {});
  // After backward and the sum over ranks, before the optimizer: under mixed_bfloat16 the
  // gradients of the weights a layer multiplies by (Conv2D, DepthwiseConv2D, Dense), which Keras
  // computes in bfloat16 for the whole batch, are rounded to bfloat16 (here, of the global batch:
  // the same at any rank count). BatchNormalization's stay float32. Nothing under float32.
  void finish_gradients();
  // The output of node i from the last forward; throws if it was released (frozen prefix).
  const Tensor& output(int node) const;
  // Makes forward keep node i's output even in the frozen prefix (e.g. for feature caching).
  void keep_output(int node, bool keep = true);
  bool keeps_output(int node) const { return user_keep_.at(static_cast<size_t>(node)); }

  // float32 (the default) or Keras's mixed_bfloat16 policy (core/precision.hpp): the Model
  // then rounds every layer's output but the last (the softmax stays float32) and every
  // gradient between layers to bfloat16, and tells the layers to compute with bfloat16 weights.
  void set_precision(Precision p);
  Precision precision() const { return precision_; }

  // Sets every BatchNormalization's moving statistics to the statistics of this batch, layer
  // by layer (each layer sees inputs normalised by the already calibrated ones before it).
  void calibrate_batch_norm(const Tensor& x);

  // Floats currently held by activations and the pool (for memory reports and tests).
  std::size_t activation_floats() const;

 private:
  struct Node {
    std::unique_ptr<Layer> layer;
    std::vector<int> inputs;
    std::vector<int> consumers;
    Shape sample_shape;          // output shape with N=1
    bool has_params = false;     // the layer has weights (of either kind)
    bool has_optimised = false;  // ... and some of them are optimised
  };
  // Fusions, planned per forward. In the frozen prefix a conv whose only consumer is an
  // inference-mode BN runs with the BN folded into its weights, then, when they follow, the
  // residual Add (the conv accumulates into the shortcut's buffer, when nothing else reads it
  // later) and the ReLU (plain, or with a max_value such as MobileNetV2's ReLU6: clamped
  // after the conv). A frozen DepthwiseConv2D likewise runs with its inference BN folded in
  // and the ReLU that follows clamped in the same pass (no Add). Anywhere, a BN or an Add whose
  // values only the plain ReLU after it reads runs with that ReLU as one pass, and keeps only
  // its shape (a hollow tensor, as a dropped output). Skipped nodes produce no output of their
  // own.
  enum class Fused { kNone, kConvChain, kDepthwiseChain, kAddRelu, kBnRelu, kSkipped };
  struct Fusion {
    Fused kind = Fused::kNone;
    int bn = -1;        // kConvChain: the folded BatchNormalization
    int add = -1;       // kConvChain: the residual Add it feeds, or -1
    int shortcut = -1;  // ... and that Add's other input, whose buffer the result is added into
    int end = -1;       // the node whose output the fused computation writes
    bool relu = false;
    std::optional<float> relu_max;  // the fused ReLU's max_value (kConvChain, kDepthwiseChain)
  };
  // A fused conv's folded bias, and the weight generations and stamp its folded kernel was
  // made under.
  struct Folded {
    std::uint64_t stamp = 0, weights_generation = 0, trainable_generation = 0;
    std::vector<float> scale, bias;  // [Cout]: BN's gamma / sqrt(var + eps); the folded bias
    std::vector<float> kernel;       // kDepthwiseChain: the folded depthwise kernel [KH,KW,C,M]
  };
  void plan_fusions();
  void run_fused(int i, const std::vector<const Tensor*>& ins, bool training);
  int residual_shortcut(int add, int bn, int head) const;
  const Folded& fold(int conv_node);
  const float* fold_kernel(int conv_node);
  std::uint64_t kernel_stamp(int conv_node);
  void plan(bool training);
  // Which outputs a forward keeps for backward (or the caller), and which of those it drops
  // once their consumers ran (no backward reads their values), for a given first trainable node.
  void plan_outputs(bool training, int cut, std::vector<bool>& keep, std::vector<bool>& drop) const;
  const Tensor& run(int first, const Tensor& given, bool training);
  void bind_gradients();
  void release(Tensor& t) { pool_.release(t.take_storage()); }

  std::vector<Node> nodes_;
  int base_begin_ = 0, base_layers_ = 0;
  std::vector<ParamRef> refs_;
  std::vector<float> params_, state_, grads_;
  std::unique_ptr<Workspace> workspace_;
  BufferPool pool_;
  std::vector<Tensor> outputs_, node_grads_;
  std::vector<bool> keep_, user_keep_;
  std::vector<bool> drop_values_;  // kept for its shape only: no backward reads its values
  // [size()+1] per-sample floats: the largest buffer request still to come (see plan()), so
  // the pool may give a request a buffer that no later one needs (BufferPool::acquire).
  std::vector<std::size_t> later_;
  std::size_t batch_ = 0;  // the current pass's batch size
  int cut_ = 0;            // backward visits nodes >= cut_
  std::vector<Fusion> fusion_;
  std::vector<Folded> folded_;  // by conv node
  // An unfused frozen conv's kernel stamp (its bias and kernel unchanged while it holds), and
  // the weight generation it was made under; by conv node.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> kernel_stamps_;
  std::vector<float> folded_kernel_, bn_shift_;
  // Bumped by every non-const weight access (weights_) and by optimizer steps and training
  // forwards (trainable_: they change only the trainable layers' weights and BN statistics).
  std::uint64_t weights_generation_ = 1, trainable_generation_ = 1, next_stamp_ = 1;
  int first_trainable_ = 0;  // first_trainable_node() at the last plan()
  Precision precision_ = Precision::kFloat32;
  void round_if_bfloat16(Tensor& t) const;
  bool built_ = false;
  bool backward_ready_ = false;
  std::vector<bool> bound_trainable_;
  // Per-step scratch of run() and backward(), kept so that a step allocates nothing.
  std::vector<int> pending_;  // consumers of each node's output yet to run
  std::vector<const Tensor*> ins_;
  std::vector<Shape> in_shapes_;
  std::vector<Tensor*> din_;
  std::vector<Tensor> scratch_;  // a second consumer's input gradient, before it is summed in
  std::vector<bool> has_grad_;
  std::vector<std::size_t> ready_end_;
};

}  // namespace parafine
