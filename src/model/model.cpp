// Model: graph bookkeeping, weight layout, forward with a released frozen prefix, backward
// down to the earliest trainable layer (see model.hpp).
#include "parafine/model/model.hpp"
#include "parafine/core/bfloat16.hpp"
#include "parafine/core/compute.hpp"
#include "parafine/core/out_of_memory.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "parafine/layers/batch_norm.hpp"
#include "parafine/layers/conv2d.hpp"
#include "parafine/layers/depthwise_conv2d.hpp"
#include "parafine/layers/simple_layers.hpp"

namespace parafine {

namespace {
bool has_optimised_params(const Layer& l) {
  for (const auto& s : l.param_specs())
    if (s.optimised) return true;
  return false;
}
}  // namespace

Model::Model() : workspace_(std::make_unique<Workspace>()) {}
Model::~Model() = default;
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;

int Model::add(std::unique_ptr<Layer> layer, std::vector<int> inputs) {
  if (built_) throw std::logic_error("Model::add after build()");
  const int id = size();
  if (id == 0 && !dynamic_cast<InputLayer*>(layer.get()))
    throw std::invalid_argument("the first layer of a model must be an InputLayer");
  if (index_of(layer->name()) >= 0)
    throw std::invalid_argument("duplicate layer name '" + layer->name() + "'");
  if (static_cast<int>(inputs.size()) != layer->num_inputs())
    throw std::invalid_argument("layer '" + layer->name() + "' needs " +
                                std::to_string(layer->num_inputs()) + " input(s), given " +
                                std::to_string(inputs.size()));
  for (int k : inputs) {
    if (k < 0 || k >= id)
      throw std::invalid_argument("layer '" + layer->name() + "' is fed by unknown node " +
                                  std::to_string(k));
    nodes_[static_cast<size_t>(k)].consumers.push_back(id);
  }
  layer->set_workspace(workspace_.get());
  nodes_.push_back(Node{std::move(layer), std::move(inputs), {}, {}});
  return id;
}

void Model::set_sample_keys(const std::vector<std::uint64_t>& keys) {
  workspace_->sample_keys.assign(keys.begin(), keys.end());  // reuses the capacity
}

int Model::index_of(const std::string& name) const {
  for (int i = 0; i < size(); ++i)
    if (nodes_[static_cast<size_t>(i)].layer->name() == name) return i;
  return -1;
}

Shape Model::sample_input_shape() const {
  return static_cast<const InputLayer&>(layer(0)).sample_shape();
}

void Model::build() {
  if (nodes_.empty()) throw std::logic_error("Model::build on an empty model");
  const Shape s = sample_input_shape();
  for (auto& node : nodes_) {
    std::vector<Shape> in;
    if (node.inputs.empty()) in.push_back(Shape{1, s[0], s[1], s[2]});
    for (int k : node.inputs) in.push_back(nodes_[static_cast<size_t>(k)].sample_shape);
    node.sample_shape = node.layer->infer_shape(in);
    node.has_params = node.layer->has_params();
    node.has_optimised = has_optimised_params(*node.layer);
  }
  // Optimised weights from the last layer to the first; state in layer order.
  refs_.clear();
  std::size_t p = 0, st = 0;
  for (int i = size() - 1; i >= 0; --i) {
    const auto specs = layer(i).param_specs();
    for (int j = 0; j < static_cast<int>(specs.size()); ++j)
      if (specs[j].optimised) {
        refs_.push_back({i, j, specs[j].name, specs[j].shape, true, p});
        p += specs[j].shape.numel();
      }
  }
  for (int i = 0; i < size(); ++i) {
    const auto specs = layer(i).param_specs();
    for (int j = 0; j < static_cast<int>(specs.size()); ++j)
      if (!specs[j].optimised) {
        refs_.push_back({i, j, specs[j].name, specs[j].shape, false, st});
        st += specs[j].shape.numel();
      }
  }
  allocating("the model's weights (" + std::to_string(p + st) + " floats)",
             static_cast<double>(p + st) * sizeof(float),
             "The model is larger than this machine's memory: a smaller --head-units?", [&] {
               params_.assign(p, 0.0f);
               state_.assign(st, 0.0f);
             });
  for (const ParamRef& r : refs_) layer(r.node).bind_param(r.index, data(r), nullptr);
  outputs_.resize(nodes_.size());
  node_grads_.resize(nodes_.size());
  keep_.assign(nodes_.size(), false);
  user_keep_.assign(nodes_.size(), false);
  drop_values_.assign(nodes_.size(), false);
  later_.assign(nodes_.size() + 1, 0);
  folded_.assign(nodes_.size(), Folded{});
  kernel_stamps_.assign(nodes_.size(), {0, 0});
  std::size_t max_inputs = 1;
  for (const auto& node : nodes_) max_inputs = std::max(max_inputs, node.inputs.size());
  ins_.reserve(max_inputs);
  in_shapes_.reserve(max_inputs);
  din_.reserve(max_inputs);
  scratch_.resize(max_inputs);
  built_ = true;
}

Shape Model::output_shape(int node, int batch) const {
  Shape s = nodes_.at(static_cast<size_t>(node)).sample_shape;
  s.set(0, batch);
  return s;
}

void Model::set_weights(const std::vector<float>& params, const std::vector<float>& state) {
  if (params.size() != params_.size() || state.size() != state_.size())
    throw std::invalid_argument("set_weights: blocks of " + std::to_string(params.size()) + " + " +
                                std::to_string(state.size()) + " values for a model of " +
                                std::to_string(params_.size()) + " + " +
                                std::to_string(state_.size()));
  std::copy(params.begin(), params.end(), params_.begin());
  std::copy(state.begin(), state.end(), state_.begin());
  ++weights_generation_;
}

const ParamRef& Model::find_param(const std::string& layer_name, const std::string& var) const {
  const int i = index_of(layer_name);
  if (i < 0) throw std::invalid_argument("the model has no layer named '" + layer_name + "'");
  for (const ParamRef& r : refs_)
    if (r.node == i && r.name == var) return r;
  throw std::invalid_argument("layer '" + layer_name + "' has no weight '" + var + "'");
}

int Model::first_trainable_node() const {
  for (int i = 0; i < size(); ++i) {
    const Node& node = nodes_[static_cast<size_t>(i)];
    if (!node.layer->trainable) continue;
    if (built_ ? node.has_optimised : has_optimised_params(*node.layer)) return i;
  }
  return size();
}

std::size_t Model::trainable_size() const {
  const int first = first_trainable_node();
  std::size_t end = 0;
  for (const ParamRef& r : refs_)
    if (r.optimised && r.node >= first) end = std::max(end, r.offset + r.shape.numel());
  return end;
}

void Model::bind_gradients() {
  bool same = bound_trainable_.size() == nodes_.size();
  for (int i = 0; i < size() && same; ++i)
    same = bound_trainable_[static_cast<size_t>(i)] == layer(i).trainable;
  if (same && grads_.size() == trainable_size()) return;
  grads_.assign(trainable_size(), 0.0f);  // frozen layers inside the range keep zeros
  for (const ParamRef& r : refs_) {
    float* g = nullptr;
    if (r.optimised && layer(r.node).trainable && r.offset < grads_.size())
      g = grads_.data() + r.offset;
    layer(r.node).bind_param(r.index, data(r), g);
  }
  bound_trainable_.resize(nodes_.size());
  for (int i = 0; i < size(); ++i) bound_trainable_[static_cast<size_t>(i)] = layer(i).trainable;
}

void Model::plan_outputs(bool training, int cut, std::vector<bool>& keep,
                         std::vector<bool>& drop) const {
  const int last = size() - 1;
  keep.assign(nodes_.size(), false);
  drop.assign(nodes_.size(), false);
  for (int i = 0; i < size(); ++i) {
    bool k = i == last || user_keep_[static_cast<size_t>(i)] || i >= cut;
    for (int c : nodes_[static_cast<size_t>(i)].consumers) k = k || c >= cut;
    keep[static_cast<size_t>(i)] = k;
  }
  // Kept outputs that no backward reads the values of are dropped once their consumers ran:
  // BatchNormalization's (its backward reads x and its statistics; its consumer, a ReLU or
  // an Add, reads none), and the residual Add's (its ReLU reads its own output).
  for (int i = 0; i < size(); ++i) {
    bool d = training && keep[static_cast<size_t>(i)] && i != last &&
             !user_keep_[static_cast<size_t>(i)] &&
             (i < cut || !layer(i).backward_reads_output_values());
    for (int c : nodes_[static_cast<size_t>(i)].consumers)
      d = d && (c < cut || !layer(c).backward_reads_input_values());
    drop[static_cast<size_t>(i)] = d;
  }
}

double Model::step_bytes(int batch, bool training) const {
  const int cut = training ? first_trainable_node() : size();
  std::vector<bool> keep, drop;
  plan_outputs(training, cut, keep, drop);
  auto bytes = [&](int i) {
    return static_cast<double>(output_shape(i, batch).numel()) * sizeof(float);
  };
  std::vector<int> pending(nodes_.size());
  for (size_t i = 0; i < nodes_.size(); ++i)
    pending[i] = static_cast<int>(nodes_[i].consumers.size());
  double live = 0, peak = 0, widest = 0;
  for (int i = 0; i < size(); ++i) {  // forward, releasing as run() does
    live += bytes(i);
    peak = std::max(peak, live);
    double around = bytes(i);
    for (int k : nodes_[static_cast<size_t>(i)].inputs) {
      around += bytes(k);
      if (--pending[static_cast<size_t>(k)] == 0 &&
          (!keep[static_cast<size_t>(k)] || drop[static_cast<size_t>(k)]))
        live -= bytes(k);
    }
    if (i >= cut) widest = std::max(widest, around);
  }
  // Backward holds what forward kept plus, at one layer, its output's gradient and its
  // inputs' (twice: a second consumer's gradient is summed in from scratch).
  return std::max(peak, live + 2 * widest);
}

float* Model::trainable_data(const ParamRef& r) {
  if (r.node < first_trainable_node())
    throw std::logic_error("trainable_data: layer '" + layer(r.node).name() + "' is frozen");
  ++trainable_generation_;
  return (r.optimised ? params_.data() : state_.data()) + r.offset;
}

void Model::plan(bool training) {
  const int first_trainable = first_trainable_node();
  // Folds made while a conv was trainable skipped the checks of trainable changes that a conv
  // frozen now skips: a new freezing (a new phase) refolds everything once.
  if (first_trainable != first_trainable_) ++weights_generation_;
  first_trainable_ = first_trainable;
  cut_ = training ? first_trainable_ : size();
  // A training forward updates the trainable BatchNormalizations' moving statistics.
  if (training) ++trainable_generation_;
  plan_outputs(training, cut_, keep_, drop_values_);
  // later_[j]: the largest output (per sample) of the nodes cut_..j-1, whose gradients backward
  // requests after node j's; later_[size()] also bounds every suffix output forward requests.
  std::fill(later_.begin(), later_.end(), 0);
  for (int j = cut_; j < size(); ++j)
    later_[static_cast<size_t>(j) + 1] = std::max(
        later_[static_cast<size_t>(j)], nodes_[static_cast<size_t>(j)].sample_shape.numel());
  plan_fusions();
  if (!training) return;
  bind_gradients();
  // A conv whose only consumer is a batch-statistics BN has an exactly zero bias gradient.
  for (int i = 0; i < size(); ++i) {
    auto* conv = dynamic_cast<Conv2D*>(nodes_[static_cast<size_t>(i)].layer.get());
    if (!conv) continue;
    const auto& cons = nodes_[static_cast<size_t>(i)].consumers;
    bool zero = false;
    if (cons.size() == 1)
      if (auto* bn = dynamic_cast<BatchNormalization*>(&layer(cons[0])))
        zero = bn->uses_batch_statistics(true);
    conv->set_bias_gradient_is_zero(zero);
  }
}

void Model::plan_fusions() {
  fusion_.assign(nodes_.size(), Fusion{});
  auto only_consumer = [&](int i) {
    const auto& c = nodes_[static_cast<size_t>(i)].consumers;
    return c.size() == 1 && !user_keep_[static_cast<size_t>(i)] ? c[0] : -1;
  };
  // Whether no one but its only consumer reads node i's output values (the others, if any,
  // read its shape): released after use, or dropped in training.
  auto values_unread = [&](int i) {
    return !keep_[static_cast<size_t>(i)] || drop_values_[static_cast<size_t>(i)];
  };
  for (int i = 0; i < size(); ++i) {
    if (fusion_[static_cast<size_t>(i)].kind != Fused::kNone) continue;
    Layer& l = layer(i);
    const int next = only_consumer(i);
    if (next < 0) continue;
    // BatchNormalization (either mode) or Add, then ReLU, in one pass, when the ReLU alone reads
    // the first's values: the head keeps only its shape (BN's and Add's backward read none).
    if ((dynamic_cast<BatchNormalization*>(&l) || dynamic_cast<Add*>(&l)) &&
        is_plain_relu(layer(next)) && values_unread(i)) {
      Fusion f;
      f.kind = dynamic_cast<Add*>(&l) ? Fused::kAddRelu : Fused::kBnRelu;
      f.end = next;
      f.relu = true;
      fusion_[static_cast<size_t>(i)] = f;
      fusion_[static_cast<size_t>(next)].kind = Fused::kSkipped;
      continue;
    }
    // mixed_bfloat16 rounds the conv's output before BatchNormalization's float32 arithmetic,
    // as Keras does; a folded kernel would round elsewhere, so the chain runs unfused.
    // A conv with its own activation is never folded: BN cannot be folded past its ReLU.
    const auto* as_conv = dynamic_cast<Conv2D*>(&l);
    const bool is_conv = as_conv && as_conv->activation() == ConvActivation::kNone;
    const bool is_depthwise = dynamic_cast<DepthwiseConv2D*>(&l) != nullptr;
    if (i < cut_ && (is_conv || is_depthwise) && precision_ == Precision::kFloat32) {
      auto* bn = dynamic_cast<BatchNormalization*>(&layer(next));
      if (!bn || next >= cut_ || bn->calibrating() || bn->uses_batch_statistics(cut_ < size()))
        continue;
      Fusion f;
      f.kind = is_conv ? Fused::kConvChain : Fused::kDepthwiseChain;
      f.bn = f.end = next;
      int after = only_consumer(next);
      const int shortcut =
          is_conv && after >= 0 && after < cut_ ? residual_shortcut(after, next, i) : -1;
      if (shortcut >= 0) {
        f.add = f.end = after;
        f.shortcut = shortcut;
        fusion_[static_cast<size_t>(after)].kind = Fused::kSkipped;
        after = only_consumer(after);
      }
      // A ReLU, plain or with a max_value (ReLU6): its forward is a clamp of what precedes it.
      const auto* relu = after >= 0 && after < cut_ ? dynamic_cast<ReLU*>(&layer(after)) : nullptr;
      if (relu) {
        f.end = after;
        f.relu = true;
        f.relu_max = relu->max_value();
        fusion_[static_cast<size_t>(after)].kind = Fused::kSkipped;
      }
      fusion_[static_cast<size_t>(next)].kind = Fused::kSkipped;
      fusion_[static_cast<size_t>(i)] = f;
    }
  }
}

// The shortcut whose buffer conv `head`'s folded result (through `bn`) can be added into when
// node `add` is the residual Add of the two: the Add's other input, computed before the conv,
// read by nothing after it but the Add, and not kept.
// -1 when there is none.
int Model::residual_shortcut(int add, int bn, int head) const {
  if (!dynamic_cast<const Add*>(&layer(add))) return -1;
  const auto& in = nodes_[static_cast<size_t>(add)].inputs;
  if (in.size() != 2) return -1;
  const int s = in[0] == bn ? in[1] : in[1] == bn ? in[0] : -1;
  if (s < 0 || s >= head || keep_[static_cast<size_t>(s)]) return -1;
  // (The conv itself must not read it either: it writes into that buffer.)
  for (int c : nodes_[static_cast<size_t>(s)].consumers)
    if (c != add && c >= head) return -1;
  return s;
}

// The folded bias of conv (or depthwise conv) node i, and a stamp for its folded kernel,
// refolded only when the weights it depends on may have changed since: any weights for a conv
// in the frozen prefix, and also the trainable ones (an optimizer step, a training forward) for
// a conv after it (an inference forward of a trainable model fuses every conv). A depthwise
// conv's kernel is folded here too (small: KH*KW*C*M), kept in Folded::kernel.
const Model::Folded& Model::fold(int i) {
  Folded& f = folded_[static_cast<size_t>(i)];
  const bool frozen = i < first_trainable_;
  if (f.stamp != 0 && f.weights_generation == weights_generation_ &&
      (frozen || f.trainable_generation == trainable_generation_))
    return f;
  const auto* dw = dynamic_cast<const DepthwiseConv2D*>(&layer(i));
  const auto* conv = dynamic_cast<const Conv2D*>(&layer(i));
  const auto& bn =
      static_cast<const BatchNormalization&>(layer(fusion_[static_cast<size_t>(i)].bn));
  const int cout = dw ? static_cast<int>(layer(i).param_specs()[0].shape.numel() /
                                         (dw->kernel_size() * dw->kernel_size()))
                      : conv->filters();
  const bool has_bias = dw ? dw->use_bias() : conv->use_bias();
  f.scale.resize(static_cast<size_t>(cout));
  bn_shift_.resize(static_cast<size_t>(cout));
  bn.inference_affine(f.scale.data(), bn_shift_.data());
  f.bias.resize(static_cast<size_t>(cout));
  for (int c = 0; c < cout; ++c)
    f.bias[static_cast<size_t>(c)] =
        (has_bias ? layer(i).param(1)[c] : 0.0f) * f.scale[static_cast<size_t>(c)] +
        bn_shift_[static_cast<size_t>(c)];
  if (dw) {  // [KH,KW,C,M] as a matrix [KH*KW, C*M], output channel c*M+m per column
    const float* kernel = layer(i).param(0);
    const std::size_t rows = static_cast<std::size_t>(dw->kernel_size()) * dw->kernel_size();
    f.kernel.resize(rows * cout);
    for (std::size_t r = 0; r < rows; ++r)
      for (int c = 0; c < cout; ++c)
        f.kernel[r * cout + c] = kernel[r * cout + c] * f.scale[static_cast<size_t>(c)];
  }
  f.stamp = next_stamp_++;
  f.weights_generation = weights_generation_;
  f.trainable_generation = trainable_generation_;
  return f;
}

// Computes fusion head i, writing the output of its chain's last node.
void Model::run_fused(int i, const std::vector<const Tensor*>& ins, bool training) {
  const Fusion& f = fusion_[static_cast<size_t>(i)];
  Tensor& out = outputs_[static_cast<size_t>(f.end)];
  const Shape os = output_shape(f.end, ins[0]->shape()[0]);
  if (f.kind == Fused::kConvChain && f.shortcut >= 0)
    out.give_storage(outputs_[static_cast<size_t>(f.shortcut)].take_storage(), os);
  else
    out.give_storage(pool_.acquire(os.numel()), os);
  if (f.kind == Fused::kBnRelu || f.kind == Fused::kAddRelu)  // the head: its shape, no values
    pool_.release(outputs_[static_cast<size_t>(i)].hollow_as(output_shape(i, os[0])));
  if (f.kind == Fused::kBnRelu) {
    static_cast<BatchNormalization&>(layer(i)).forward_relu(*ins[0], out, training);
    return;
  }
  if (f.kind == Fused::kAddRelu) {
    const float* a = ins[0]->data();
    const float* b = ins[1]->data();
    float* y = out.data();
    const long n = static_cast<long>(os.numel());
#pragma omp parallel for if (parallel_worth(n))
    for (long k = 0; k < n; ++k) {
      const float v = a[k] + b[k];
      y[k] = v > 0.0f ? v : 0.0f;
    }
    return;
  }
  const Folded& folded = fold(i);
  if (f.kind == Fused::kDepthwiseChain) {  // depthwise conv -> BN (inference) [-> ReLU]
    static_cast<DepthwiseConv2D&>(layer(i)).forward_with(*ins[0], out, folded.kernel.data(),
                                                         folded.bias.data(), f.relu, f.relu_max);
    return;
  }
  // conv -> BN (inference) [-> Add] [-> ReLU]: W'[..,c] = W[..,c] * scale[c],
  // b'[c] = b[c] * scale[c] + shift[c]; the kernel is folded only when the conv asks for it.
  auto& conv = static_cast<Conv2D&>(layer(i));
  const KernelSource kernel{folded.stamp, [this, i] { return fold_kernel(i); }};
  conv.forward_with(*ins[0], out, kernel, folded.bias.data(), f.relu, f.shortcut >= 0);
  if (f.relu && f.relu_max) {
    // The ReLU's max_value: the conv fused max(y, 0); the clamp from above is one more pass
    // (Conv2D has no clip post-op), still one instead of the BN's and the ReLU's.
    const float hi = *f.relu_max;
    float* y = out.data();
    const long n = static_cast<long>(out.numel());
#pragma omp parallel for if (parallel_worth(n))
    for (long k = 0; k < n; ++k) y[k] = y[k] < hi ? y[k] : hi;
  }
}

// Conv node i's kernel [KH,KW,Cin,Cout] times its BatchNormalization's scale (per Cout), into
// folded_kernel_.
const float* Model::fold_kernel(int i) {
  const auto& conv = static_cast<const Conv2D&>(layer(i));
  const std::vector<float>& scale = fold(i).scale;
  const int cout = conv.filters();
  const float* kernel = conv.param(0);
  // The kernel as a matrix [KH*KW*Cin, Cout].
  const std::size_t rows = static_cast<std::size_t>(conv.kernel_h()) * conv.kernel_w() *
                           static_cast<std::size_t>(conv.input_channels());
  folded_kernel_.resize(rows * cout);
  for (std::size_t r = 0; r < rows; ++r)
    for (int c = 0; c < cout; ++c)
      folded_kernel_[r * cout + c] = kernel[r * cout + c] * scale[static_cast<size_t>(c)];
  return folded_kernel_.data();
}

void Model::set_precision(Precision p) {
  precision_ = p;
  for (auto& node : nodes_) node.layer->set_bfloat16_compute(p == Precision::kMixedBfloat16);
  ++weights_generation_;  // kernels kept by stamp were rounded (or not) for the old precision
}

// The stamp under which unfused conv node i may keep its kernel: nonzero only in the frozen
// prefix (whose weights change only through a non-const access, which bumps the generation).
std::uint64_t Model::kernel_stamp(int i) {
  if (i >= first_trainable_) return 0;
  auto& [stamp, generation] = kernel_stamps_[static_cast<size_t>(i)];
  if (stamp == 0 || generation != weights_generation_) {
    stamp = next_stamp_++;
    generation = weights_generation_;
  }
  return stamp;
}

void Model::round_if_bfloat16(Tensor& t) const {
  if (precision_ == Precision::kMixedBfloat16 && !t.hollow())
    round_to_bfloat16(t.data(), t.numel());
}

const Tensor& Model::forward(const Tensor& x, bool training) {
  return run(0, x, training);
}

const Tensor& Model::forward_from(int node, const Tensor& activation, bool training) {
  if (node < 0 || node >= size())
    throw std::out_of_range("forward_from: no node " + std::to_string(node));
  for (int j = node + 1; j < size(); ++j)
    for (int k : inputs_of(j))
      if (k < node)
        throw std::invalid_argument("forward_from: '" + layer(node).name() +
                                    "' is not a block boundary: '" + layer(j).name() + "' reads '" +
                                    layer(k).name() + "'");
  if (training && first_trainable_node() <= node)
    throw std::invalid_argument("forward_from: trainable layer '" +
                                layer(first_trainable_node()).name() + "' lies at or before '" +
                                layer(node).name() + "'");
  Shape expected = output_shape(node, activation.shape().rank() > 0 ? activation.shape()[0] : 0);
  if (activation.shape() != expected)
    throw std::invalid_argument("forward_from: '" + layer(node).name() + "' outputs " +
                                expected.str() + ", given " + activation.shape().str());
  return run(node, activation, training);
}

// Runs nodes first..end; node `first` outputs a copy of `given` (for first = 0 the InputLayer
// does exactly that).
const Tensor& Model::run(int first, const Tensor& given, bool training) {
  if (!built_) throw std::logic_error("Model::forward before build()");
  plan(training);
  // A fusion whose head lies at or before `first` never runs: its later members compute alone.
  for (int i = 0; i <= first && first > 0; ++i) {
    const Fusion f = fusion_[static_cast<size_t>(i)];
    if (f.kind == Fused::kNone || f.kind == Fused::kSkipped) continue;
    for (int member : {f.bn, f.add, f.end})
      if (member > first) fusion_[static_cast<size_t>(member)] = Fusion{};
  }
  for (Tensor& t : outputs_) release(t);
  for (Tensor& t : node_grads_) release(t);
  // Passes that start at the same node with the same input size, mode and trainable suffix
  // repeat one another's buffer requests.
  batch_ = given.shape().rank() > 0 ? static_cast<std::size_t>(given.shape()[0]) : 0;
  std::uint64_t kind = given.numel();
  for (const std::uint64_t v : {std::uint64_t(first), std::uint64_t(training), std::uint64_t(cut_)})
    kind = kind * 0x9E3779B97F4A7C15ull + v + 1;
  pool_.begin_pass(kind);
  pending_.resize(nodes_.size());
  for (size_t i = 0; i < nodes_.size(); ++i)
    pending_[i] = static_cast<int>(nodes_[i].consumers.size());
  if (first > 0) {
    Tensor& out = outputs_[static_cast<size_t>(first)];
    out.give_storage(pool_.acquire(given.numel()), given.shape());
    std::memcpy(out.data(), given.data(), sizeof(float) * given.numel());
    round_if_bfloat16(out);
  }

  std::vector<const Tensor*>& ins = ins_;
  for (int i = first > 0 ? first + 1 : 0; i < size(); ++i) {
    Node& node = nodes_[static_cast<size_t>(i)];
    ins.clear();
    in_shapes_.clear();
    if (node.inputs.empty()) ins.push_back(&given);
    for (int k : node.inputs) ins.push_back(&outputs_[static_cast<size_t>(k)]);
    const Fused kind = fusion_[static_cast<size_t>(i)].kind;
    if (kind == Fused::kSkipped) continue;  // computed by its fusion head
    int produced = i;
    // Frozen-prefix outputs are short-lived: any free buffer serves them (best fit).
    pool_.set_later(i < cut_ ? 0 : later_.back() * batch_);
    if (kind != Fused::kNone) {
      run_fused(i, ins, training);
      produced = fusion_[static_cast<size_t>(i)].end;
    } else {
      for (const Tensor* t : ins) in_shapes_.push_back(t->shape());
      const Shape os = node.layer->infer_shape(in_shapes_);
      outputs_[static_cast<size_t>(i)].give_storage(pool_.acquire(os.numel()), os);
      if (auto* conv = dynamic_cast<Conv2D*>(node.layer.get()))
        conv->set_kernel_stamp(kernel_stamp(i));
      node.layer->forward(ins, outputs_[static_cast<size_t>(i)], training);
    }
    // (A layer that rounds its own output, or a BN that did so before the ReLU fused to it, has
    // left bfloat16 values.)
    const bool rounded =
        (kind == Fused::kNone || kind == Fused::kBnRelu) && node.layer->output_is_bfloat16();
    if (produced != size() - 1 && !rounded)
      round_if_bfloat16(outputs_[static_cast<size_t>(produced)]);
    for (int k : node.inputs) {
      if (--pending_[static_cast<size_t>(k)] != 0) continue;
      if (!keep_[static_cast<size_t>(k)])
        release(outputs_[static_cast<size_t>(k)]);
      else if (drop_values_[static_cast<size_t>(k)])
        pool_.release(outputs_[static_cast<size_t>(k)].hollow_out());
    }
  }
  backward_ready_ = training;
  return outputs_.back();
}

void Model::backward(const Tensor& dlogits, const std::function<void(std::size_t)>& grads_ready) {
  if (!backward_ready_)
    throw std::logic_error("Model::backward needs a preceding forward(x, true)");
  backward_ready_ = false;
  const int last = size() - 1;
  if (cut_ > last) return;
  // ready_end[j]: grads()[0, ready_end[j]) belong to layers >= j.
  std::vector<std::size_t>& ready_end = ready_end_;
  ready_end.assign(nodes_.size() + 1, 0);
  if (grads_ready) {
    for (const ParamRef& r : refs_)
      if (r.optimised && r.offset < grads_.size())
        ready_end[static_cast<size_t>(r.node)] =
            std::max(ready_end[static_cast<size_t>(r.node)], r.offset + r.shape.numel());
    for (int j = last - 1; j >= 0; --j)
      ready_end[static_cast<size_t>(j)] =
          std::max(ready_end[static_cast<size_t>(j)], ready_end[static_cast<size_t>(j + 1)]);
  }
  if (dlogits.shape() != outputs_.back().shape())
    throw std::invalid_argument("backward: gradient shape " + dlogits.shape().str() +
                                " does not match the output " + outputs_.back().shape().str());
  Tensor& top = node_grads_[static_cast<size_t>(last)];
  pool_.set_later(later_[static_cast<size_t>(last)] * batch_);
  top.give_storage(pool_.acquire(dlogits.numel()), dlogits.shape());
  std::memcpy(top.data(), dlogits.data(), sizeof(float) * dlogits.numel());
  round_if_bfloat16(top);  // the float32 loss's gradient, cast to the bfloat16 logits

  std::vector<const Tensor*>& ins = ins_;
  std::vector<Tensor*>& din = din_;
  std::vector<Tensor>& scratch = scratch_;
  std::vector<bool>& has_grad = has_grad_;
  has_grad.assign(nodes_.size(), false);  // (zero-sample batches have empty tensors)
  has_grad[static_cast<size_t>(last)] = true;
  for (int j = last; j >= cut_; --j) {
    Node& node = nodes_[static_cast<size_t>(j)];
    Tensor& dout = node_grads_[static_cast<size_t>(j)];
    if (!has_grad[static_cast<size_t>(j)]) continue;  // no path from the loss
    ins.clear();
    din.clear();
    for (size_t a = 0; a < node.inputs.size(); ++a) {
      const int k = node.inputs[a];
      ins.push_back(&outputs_[static_cast<size_t>(k)]);
      if (k < cut_) {
        din.push_back(nullptr);
        continue;
      }
      Tensor& gk = node_grads_[static_cast<size_t>(k)];
      Tensor& target = has_grad[static_cast<size_t>(k)] ? scratch[a] : gk;
      has_grad[static_cast<size_t>(k)] = true;
      pool_.set_later(later_[static_cast<size_t>(j)] * batch_);
      target.give_storage(pool_.acquire(outputs_[static_cast<size_t>(k)].numel()),
                          outputs_[static_cast<size_t>(k)].shape());
      din.push_back(&target);
    }
    if (node.inputs.empty()) ins.push_back(&outputs_[0]);
    node.layer->backward(ins, outputs_[static_cast<size_t>(j)], dout, din);
    // Gradients arriving at a node from a second consumer are summed in (under
    // mixed_bfloat16 each is a bfloat16 tensor, and so is their sum).
    for (size_t a = 0; a < node.inputs.size(); ++a) {
      if (!din[a]) continue;
      round_if_bfloat16(*din[a]);
      if (din[a] != &scratch[a]) continue;
      Tensor& gk = node_grads_[static_cast<size_t>(node.inputs[a])];
      const float* s = scratch[a].data();
      float* d = gk.data();
      const long n = static_cast<long>(gk.numel());
#pragma omp parallel for if (parallel_worth(n))
      for (long i = 0; i < n; ++i) d[i] += s[i];
      round_if_bfloat16(gk);
      release(scratch[a]);
    }
    release(dout);
    // Node j's output has served its own backward and its consumers' (all later, so done):
    // its buffer goes back to the pool for the gradients still to come.
    if (j != last && !user_keep_[static_cast<size_t>(j)]) release(outputs_[static_cast<size_t>(j)]);
    if (grads_ready && node.has_params) grads_ready(ready_end[static_cast<size_t>(j)]);
  }
  if (grads_ready) grads_ready(grads_.size());
}

void Model::finish_gradients() {
  if (precision_ != Precision::kMixedBfloat16) return;
  for (const ParamRef& r : refs_)
    if (r.optimised && r.offset < grads_.size() && layer(r.node).multiplies_by_weights())
      round_to_bfloat16(grads_.data() + r.offset, r.shape.numel());
}

const Tensor& Model::output(int node) const {
  const Tensor& t = outputs_.at(static_cast<size_t>(node));
  if (t.empty() || t.hollow())
    throw std::logic_error("the output of layer '" + layer(node).name() +
                           "' was not kept by the last forward (frozen prefix, or read by no "
                           "backward); call keep_output");
  return t;
}

void Model::keep_output(int node, bool keep) {
  user_keep_.at(static_cast<size_t>(node)) = keep;
}

void Model::calibrate_batch_norm(const Tensor& x) {
  std::vector<BatchNormalization*> bns;
  for (auto& node : nodes_)
    if (auto* bn = dynamic_cast<BatchNormalization*>(node.layer.get())) bns.push_back(bn);
  for (auto* bn : bns) bn->set_calibrating(true);
  ++weights_generation_;  // (also when the forward throws half-way through the BNs)
  try {
    forward(x, false);
  } catch (...) {
    for (auto* bn : bns) bn->set_calibrating(false);
    throw;
  }
  for (auto* bn : bns) bn->set_calibrating(false);
  ++weights_generation_;
}

std::size_t Model::activation_floats() const {
  std::size_t n = pool_.pooled_floats();
  for (const Tensor& t : outputs_)  // a hollow tensor has a shape but holds nothing
    if (!t.hollow()) n += t.numel();
  for (const Tensor& t : node_grads_)
    if (!t.hollow()) n += t.numel();
  return n;
}

}  // namespace parafine
