// Conv2D forward / backward-data / backward-weights on oneDNN primitives (see conv_onednn.hpp).
#include "conv_onednn.hpp"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "parafine/core/onednn.hpp"

namespace parafine {

namespace {

using Tag = dnnl::memory::format_tag;
using Dims = dnnl::memory::dims;
using onednn::Arg;

// Primitive sets kept per kind; the oldest is dropped beyond this (batch sizes seen: the
// training batch, a last partial batch, the evaluation batch).
constexpr std::size_t kMaxCached = 8;

bool same_dims(const ConvDims& a, const ConvDims& b) {
  return std::memcmp(&a, &b, sizeof(ConvDims)) == 0;
}

Dims src_dims(const ConvDims& d) { return {d.n, d.cin, d.h, d.w}; }
Dims dst_dims(const ConvDims& d) { return {d.n, d.cout, d.ho, d.wo}; }
Dims kernel_dims(const ConvDims& d) { return {d.cout, d.cin, d.kh, d.kw}; }
Dims strides(const ConvDims& d) { return {d.stride, d.stride}; }
Dims pad_low(const ConvDims& d) { return {d.pad_top, d.pad_left}; }
Dims pad_high(const ConvDims& d) { return {d.pad_bottom, d.pad_right}; }

// PARAFINE_ONEDNN_KERNEL=hwio makes the primitives take the kernel as Keras stores it (no
// reorder); the default lets each primitive choose (format_tag::any) and reorders into it.
Tag kernel_tag() {
  static const Tag tag = [] {
    const char* v = std::getenv("PARAFINE_ONEDNN_KERNEL");
    return v && std::string(v) == "hwio" ? Tag::hwio : Tag::any;
  }();
  return tag;
}

dnnl::primitive_attr user_scratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

// A 64-byte aligned scratchpad of `bytes` from the workspace (null when none is needed).
void* scratchpad(Workspace& ws, std::size_t bytes) {
  if (bytes == 0) return nullptr;
  float* p = ws.get_a((bytes + 64) / sizeof(float) + 1);
  const auto at = reinterpret_cast<std::uintptr_t>(p);
  return reinterpret_cast<void*>((at + 63) & ~std::uintptr_t(63));
}

// The plain HWIO kernel (or kernel gradient) and the layout the primitive chose for it, with
// the reorder between them (from HWIO for kernels, to HWIO for gradients) when they differ.
struct KernelLayout {
  dnnl::memory::desc chosen_md;
  dnnl::memory plain, chosen, scratch;
  dnnl::reorder reorder;
  bool needed = false;
  std::size_t chosen_bytes = 0, scratch_bytes = 0;

  void init(const ConvDims& d, const dnnl::memory::desc& chosen_md, bool to_chosen) {
    const dnnl::memory::desc plain_md = onednn::f32(kernel_dims(d), Tag::hwio);
    plain = onednn::unbound(plain_md);
    chosen = onednn::unbound(chosen_md);
    this->chosen_md = chosen_md;
    chosen_bytes = chosen_md.get_size();
    needed = chosen_md != plain_md;
    if (!needed) return;
    const dnnl::memory::desc& from = to_chosen ? plain_md : chosen_md;
    const dnnl::memory::desc& to = to_chosen ? chosen_md : plain_md;
    const dnnl::reorder::primitive_desc pd(onednn::engine(), from, onednn::engine(), to,
                                           user_scratchpad());
    reorder = dnnl::reorder(pd);
    scratch_bytes = pd.scratchpad_desc().get_size();
    if (scratch_bytes) scratch = onednn::unbound(pd.scratchpad_desc());
  }

  // The buffer the primitive reads (kernels) or writes (gradients): the HWIO one itself when
  // no reorder is needed, else the model's shared kernel buffer.
  float* chosen_buffer(const float* hwio, Workspace& ws) const {
    return needed ? ws.get_b(chosen_bytes / sizeof(float) + 1) : const_cast<float*>(hwio);
  }

  void run(const float* from, float* to, bool to_chosen, Workspace& ws) {
    if (!needed) return;
    dnnl::memory& src = to_chosen ? plain : chosen;
    dnnl::memory& dst = to_chosen ? chosen : plain;
    if (scratch_bytes)
      onednn::execute(reorder, {{DNNL_ARG_FROM, &src, from},
                                {DNNL_ARG_TO, &dst, to},
                                {DNNL_ARG_SCRATCHPAD, &scratch, scratchpad(ws, scratch_bytes)}});
    else
      onednn::execute(reorder, {{DNNL_ARG_FROM, &src, from}, {DNNL_ARG_TO, &dst, to}});
  }
};

dnnl::convolution_forward::desc forward_desc(const ConvDims& d, bool bias, bool training) {
  const dnnl::memory::desc bias_md =
      bias ? onednn::f32({d.cout}, Tag::x) : dnnl::memory::desc();
  return dnnl::convolution_forward::desc(
      training ? dnnl::prop_kind::forward_training : dnnl::prop_kind::forward_inference,
      dnnl::algorithm::convolution_direct, onednn::f32(src_dims(d), Tag::nhwc),
      onednn::f32(kernel_dims(d), kernel_tag()), bias_md, onednn::f32(dst_dims(d), Tag::nhwc),
      strides(d), pad_low(d), pad_high(d));
}

template <class Entry>
void remember(std::vector<std::unique_ptr<Entry>>& cache, std::unique_ptr<Entry> e) {
  if (cache.size() >= kMaxCached) cache.erase(cache.begin());
  cache.push_back(std::move(e));
}

}  // namespace

struct ConvOneDnn::Forward {
  ConvDims d;
  bool bias, relu, accumulate, training;
  dnnl::convolution_forward conv;
  KernelLayout kernel;
  dnnl::memory src, bias_mem, dst, scratch;
  std::size_t scratch_bytes = 0;
};

struct ConvOneDnn::FrozenKernel {
  dnnl::memory::desc layout;
  std::vector<float> values;
  std::uint64_t stamp = 0;
};

struct ConvOneDnn::BackwardData {
  ConvDims d;
  dnnl::convolution_backward_data conv;
  KernelLayout kernel;
  dnnl::memory diff_dst, diff_src, scratch;
  std::size_t scratch_bytes = 0;
};

struct ConvOneDnn::BackwardWeights {
  ConvDims d;
  dnnl::convolution_backward_weights conv;
  KernelLayout kernel;  // the gradient, reordered to HWIO
  dnnl::memory src, diff_dst, scratch;
  std::size_t scratch_bytes = 0;
};

ConvOneDnn::ConvOneDnn() = default;
ConvOneDnn::~ConvOneDnn() = default;

int ConvOneDnn::cached_primitives() const {
  return static_cast<int>(forward_.size() + backward_data_.size() + backward_weights_.size());
}

ConvOneDnn::Forward& ConvOneDnn::forward_for(const ConvDims& d, bool bias, bool relu,
                                             bool accumulate, bool training) {
  for (auto& e : forward_)
    if (same_dims(e->d, d) && e->bias == bias && e->relu == relu &&
        e->accumulate == accumulate && e->training == training)
      return *e;
  auto e = std::make_unique<Forward>();
  e->d = d;
  e->bias = bias;
  e->relu = relu;
  e->accumulate = accumulate;
  e->training = training;
  dnnl::primitive_attr attr = user_scratchpad();
  // Post-ops run after the bias, in order: dst = relu(conv + bias + dst).
  dnnl::post_ops ops;
  if (accumulate) ops.append_sum(1.0f);
  if (relu) ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
  if (accumulate || relu) attr.set_post_ops(ops);
  const dnnl::convolution_forward::primitive_desc pd(forward_desc(d, bias, training), attr,
                                                     onednn::engine());
  e->conv = dnnl::convolution_forward(pd);
  e->kernel.init(d, pd.weights_desc(), /*to_chosen=*/true);
  e->src = onednn::unbound(pd.src_desc());
  e->dst = onednn::unbound(pd.dst_desc());
  if (bias) e->bias_mem = onednn::unbound(pd.bias_desc());
  e->scratch_bytes = pd.scratchpad_desc().get_size();
  if (e->scratch_bytes) e->scratch = onednn::unbound(pd.scratchpad_desc());
  remember(forward_, std::move(e));
  return *forward_.back();
}

ConvOneDnn::BackwardData& ConvOneDnn::backward_data_for(const ConvDims& d) {
  for (auto& e : backward_data_)
    if (same_dims(e->d, d)) return *e;
  auto e = std::make_unique<BackwardData>();
  e->d = d;
  const dnnl::convolution_forward::primitive_desc hint(forward_desc(d, false, true),
                                                       onednn::engine());
  const dnnl::convolution_backward_data::desc desc(
      dnnl::algorithm::convolution_direct, onednn::f32(src_dims(d), Tag::nhwc),
      onednn::f32(kernel_dims(d), kernel_tag()), onednn::f32(dst_dims(d), Tag::nhwc), strides(d),
      pad_low(d), pad_high(d));
  const dnnl::convolution_backward_data::primitive_desc pd(desc, user_scratchpad(),
                                                           onednn::engine(), hint);
  e->conv = dnnl::convolution_backward_data(pd);
  e->kernel.init(d, pd.weights_desc(), /*to_chosen=*/true);
  e->diff_dst = onednn::unbound(pd.diff_dst_desc());
  e->diff_src = onednn::unbound(pd.diff_src_desc());
  e->scratch_bytes = pd.scratchpad_desc().get_size();
  if (e->scratch_bytes) e->scratch = onednn::unbound(pd.scratchpad_desc());
  remember(backward_data_, std::move(e));
  return *backward_data_.back();
}

ConvOneDnn::BackwardWeights& ConvOneDnn::backward_weights_for(const ConvDims& d) {
  for (auto& e : backward_weights_)
    if (same_dims(e->d, d)) return *e;
  auto e = std::make_unique<BackwardWeights>();
  e->d = d;
  const dnnl::convolution_forward::primitive_desc hint(forward_desc(d, false, true),
                                                       onednn::engine());
  const dnnl::convolution_backward_weights::desc desc(
      dnnl::algorithm::convolution_direct, onednn::f32(src_dims(d), Tag::nhwc),
      onednn::f32(kernel_dims(d), kernel_tag()), dnnl::memory::desc(),
      onednn::f32(dst_dims(d), Tag::nhwc), strides(d), pad_low(d), pad_high(d));
  const dnnl::convolution_backward_weights::primitive_desc pd(desc, user_scratchpad(),
                                                              onednn::engine(), hint);
  e->conv = dnnl::convolution_backward_weights(pd);
  e->kernel.init(d, pd.diff_weights_desc(), /*to_chosen=*/false);
  e->src = onednn::unbound(pd.src_desc());
  e->diff_dst = onednn::unbound(pd.diff_dst_desc());
  e->scratch_bytes = pd.scratchpad_desc().get_size();
  if (e->scratch_bytes) e->scratch = onednn::unbound(pd.scratchpad_desc());
  remember(backward_weights_, std::move(e));
  return *backward_weights_.back();
}

// The stamped kernel in e's layout: reordered (or copied) from source.plain() when the copy
// kept for that layout has another stamp.
const float* ConvOneDnn::frozen_kernel(Forward& e, const KernelSource& source, Workspace& ws) {
  FrozenKernel* f = nullptr;
  for (auto& k : frozen_)
    if (k->layout == e.kernel.chosen_md) f = k.get();
  if (!f) {
    frozen_.push_back(std::make_unique<FrozenKernel>());
    f = frozen_.back().get();
    f->layout = e.kernel.chosen_md;
  }
  if (f->stamp != source.stamp) {
    const float* plain = source.plain();
    f->values.resize(e.kernel.chosen_bytes / sizeof(float) + 1);
    if (e.kernel.needed)
      e.kernel.run(plain, f->values.data(), /*to_chosen=*/true, ws);
    else
      std::memcpy(f->values.data(), plain, e.kernel.chosen_bytes);
    f->stamp = source.stamp;
  }
  return f->values.data();
}

void ConvOneDnn::forward(const ConvDims& d, const float* x, const KernelSource& source,
                         const float* bias, bool relu, bool accumulate, bool training, float* y,
                         Workspace& ws) {
  Forward& e = forward_for(d, bias != nullptr, relu, accumulate, training);
  const float* w = nullptr;
  if (source.stamp != 0) {
    w = frozen_kernel(e, source, ws);
  } else {
    frozen_.clear();  // trainable now: the frozen copies are stale
    const float* kernel = source.plain();
    float* chosen = e.kernel.chosen_buffer(kernel, ws);
    e.kernel.run(kernel, chosen, /*to_chosen=*/true, ws);
    w = chosen;
  }
  Arg args[5] = {{DNNL_ARG_SRC, &e.src, x}, {DNNL_ARG_WEIGHTS, &e.kernel.chosen, w},
                 {DNNL_ARG_DST, &e.dst, y}};
  int n = 3;
  if (bias) args[n++] = {DNNL_ARG_BIAS, &e.bias_mem, bias};
  if (e.scratch_bytes)
    args[n++] = {DNNL_ARG_SCRATCHPAD, &e.scratch, scratchpad(ws, e.scratch_bytes)};
  onednn::execute(e.conv, args, n);
}

void ConvOneDnn::backward_data(const ConvDims& d, const float* dy, const float* kernel, float* dx,
                               Workspace& ws) {
  BackwardData& e = backward_data_for(d);
  float* w = e.kernel.chosen_buffer(kernel, ws);
  e.kernel.run(kernel, w, /*to_chosen=*/true, ws);
  Arg args[4] = {{DNNL_ARG_DIFF_DST, &e.diff_dst, dy}, {DNNL_ARG_WEIGHTS, &e.kernel.chosen, w},
                 {DNNL_ARG_DIFF_SRC, &e.diff_src, dx}};
  int n = 3;
  if (e.scratch_bytes)
    args[n++] = {DNNL_ARG_SCRATCHPAD, &e.scratch, scratchpad(ws, e.scratch_bytes)};
  onednn::execute(e.conv, args, n);
}

void ConvOneDnn::backward_weights(const ConvDims& d, const float* x, const float* dy,
                                  float* dkernel, Workspace& ws) {
  BackwardWeights& e = backward_weights_for(d);
  float* dw = e.kernel.chosen_buffer(dkernel, ws);
  Arg args[4] = {{DNNL_ARG_SRC, &e.src, x}, {DNNL_ARG_DIFF_DST, &e.diff_dst, dy},
                 {DNNL_ARG_DIFF_WEIGHTS, &e.kernel.chosen, dw}};
  int n = 3;
  if (e.scratch_bytes)
    args[n++] = {DNNL_ARG_SCRATCHPAD, &e.scratch, scratchpad(ws, e.scratch_bytes)};
  onednn::execute(e.conv, args, n);
  e.kernel.run(dw, dkernel, /*to_chosen=*/false, ws);
}

}  // namespace parafine
