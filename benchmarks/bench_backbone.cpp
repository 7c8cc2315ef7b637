// bench_backbone: throughput of any backbone parafine fine-tunes (model/backbone.hpp: the
// keras.applications network with include_top=False + dense 1024 relu + dense_1 2 classes) in
// the three training scenarios (issue 13). For ResNet50 at batch 32, 224x224 on 2 cores DESIGN.md
// §6 gives PyTorch reference figures, which the table divides by:
//   frozen  forward of the model with the base frozen, inference mode      (PyTorch 20.7 img/s)
//   phase2  base frozen, last --unfreeze-last (10) base layers unfrozen; full forward in
//           training mode, loss, backward, Adam step                        (PyTorch 18.9 img/s)
//   full    every layer trainable; the same step                           (PyTorch  4.9 img/s)
// For the other backbones, benchmarks/compare_pytorch.py --backbone NAME times the same Keras
// architecture in PyTorch (torch_backbones.py) in the same run.
// Weights are Keras-initialised and the BN statistics calibrated once on the benchmark batch,
// so activations have realistic scales. Each scenario runs on a freshly built model (weights
// copied from the calibrated one) after warm-up steps; we report median / min / max images/s
// over the repeats, GFLOP/s from the model's own counted Conv2D + DepthwiseConv2D + Dense FLOPs
// (2 per multiply-add; backward of a trainable layer: weight grad = 1x forward FLOPs, input
// grad = 1x when its input needs a gradient), and the peak RSS of the scenario. --profile
// times every layer run on its own and sums by layer kind.
//
//   bench_backbone [--backbone resnet50] [--alpha 1.0] [--batch 32] [--image-size 0 (the
//                  backbone's default)] [--unfreeze-last 10] [--threads T] [--repeats 5]
//                  [--warmup 1] [--scenarios frozen,phase2,full] [--profile] [--csv FILE]
//                  [--seed 1] [--precision float32]
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench_options.hpp"
#include "parafine/core/adam.hpp"
#include "parafine/core/compute.hpp"
#include "parafine/core/loss.hpp"
#include "parafine/core/precision.hpp"
#include "parafine/core/rng.hpp"
#include "parafine/layers/conv2d.hpp"
#include "parafine/layers/dense.hpp"
#include "parafine/layers/depthwise_conv2d.hpp"
#include "parafine/model/backbone.hpp"
#include "parafine/model/initializers.hpp"
#include "parafine/model/model.hpp"

namespace {

using parafine::Model;
using parafine::Shape;
using parafine::Tensor;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// CPU seconds used by all threads of the process (user + system). CPU / wall time of a step
// shows how many cores it got: well below --threads means the machine was busy elsewhere
// (or threads slept); spinning OpenMP / OpenBLAS threads count as busy.
double process_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

// ---- options ----

struct Options {
  parafine::Backbone backbone = parafine::Backbone::kResNet50;
  float alpha = 1.0f;
  int batch = 32;
  int image_size = 0;  // 0: the backbone's default (224, InceptionV3 299)
  int unfreeze_last = 10;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int repeats = 5;
  int warmup = 1;
  std::vector<std::string> scenarios{"frozen", "phase2", "full"};
  bool profile = false;
  std::string csv;
  std::uint64_t seed = 1;
  parafine::Precision precision = parafine::Precision::kFloat32;
};

Options parse(int argc, char** argv) {
  Options o;
  std::string scenarios = "frozen,phase2,full", precision = "float32", backbone = "resnet50";
  bench::po::options_description opts("bench_backbone options");
  auto add = opts.add_options();
  add("help,h", "show this help");
  add("backbone", bench::po::value(&backbone)->default_value(backbone),
      "resnet50 | resnet101 | resnet152 | vgg16 | vgg19 | inception_v3 | mobilenet_v2");
  add("alpha", bench::po::value(&o.alpha)->default_value(o.alpha, "1.0"),
      "MobileNetV2's width multiplier: 0.35, 0.5, 0.75, 1.0, 1.3 or 1.4");
  add("batch", bench::po::value(&o.batch)->default_value(o.batch), "images per step");
  add("image-size", bench::po::value(&o.image_size)->default_value(o.image_size),
      "input height and width; 0: the backbone's default (224, inception_v3 299)");
  add("unfreeze-last", bench::po::value(&o.unfreeze_last)->default_value(o.unfreeze_last),
      "phase2: Keras's base.layers[-N:] trainable (as parafine train --unfreeze-last)");
  add("threads", bench::po::value(&o.threads)->default_value(o.threads), "compute threads");
  add("repeats", bench::po::value(&o.repeats)->default_value(o.repeats),
      "timed steps per scenario");
  add("warmup", bench::po::value(&o.warmup)->default_value(o.warmup), "untimed steps first");
  add("scenarios", bench::po::value(&scenarios)->default_value(scenarios),
      "frozen,phase2,full (any subset)");
  add("profile", bench::po::bool_switch(&o.profile),
      "re-run layer by layer and sum time by layer kind");
  add("csv", bench::po::value(&o.csv), "also write the results here");
  add("seed", bench::po::value(&o.seed)->default_value(o.seed), "initialisation seed");
  add("precision", bench::po::value(&precision)->default_value(precision),
      "float32 | mixed_bfloat16 | auto (as parafine train --precision)");
  bench::parse_or_exit(argc, argv, "bench_backbone", opts);
  try {
    o.backbone = parafine::parse_backbone(backbone);
    parafine::check_alpha(o.alpha, o.backbone);
    const parafine::BackboneInfo& info = parafine::backbone_info(o.backbone);
    if (o.image_size == 0) o.image_size = info.default_size;
    parafine::check_image_size(o.image_size, o.backbone);
    // base.layers[-N:] with N up to len(base.layers), as unfreeze_last_base_layers takes.
    if (o.unfreeze_last < 0 || o.unfreeze_last > info.base_layers)
      throw std::invalid_argument("--unfreeze-last must be in 0.." +
                                  std::to_string(info.base_layers) + " for " + info.name +
                                  " (its base has " + std::to_string(info.base_layers) +
                                  " layers), got " + std::to_string(o.unfreeze_last));
    std::string note;
    o.precision = parafine::choose_precision(precision, parafine::cpu_bfloat16(), note);
    if (!note.empty()) std::cout << note << "\n";
  } catch (const std::invalid_argument& e) {
    std::cerr << "bench_backbone: " << e.what() << "\n";
    std::exit(2);
  }
  bench::require_at_least("bench_backbone", "batch", o.batch, 1);
  bench::require_at_least("bench_backbone", "threads", o.threads, 1);
  bench::require_at_least("bench_backbone", "repeats", o.repeats, 1);
  bench::require_at_least("bench_backbone", "warmup", o.warmup, 0);
  o.scenarios.clear();
  std::stringstream ss(scenarios);
  for (std::string s; std::getline(ss, s, ',');) {
    if (s != "frozen" && s != "phase2" && s != "full") {
      std::cerr << "bench_backbone: --scenarios takes frozen, phase2 and/or full, got '" << s
                << "'\n";
      std::exit(2);
    }
    o.scenarios.push_back(s);
  }
  return o;
}

// ---- statistics, memory ----

struct Summary {
  double median = 0, min = 0, max = 0;
};

Summary summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  Summary s;
  s.min = v.front();
  s.max = v.back();
  s.median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  return s;
}

// Peak resident set size of the process in MiB (getrusage: ru_maxrss is in KiB on Linux).
double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024.0;
}

// Minor page faults of the process so far: each is a first touch of freshly mapped memory
// (a large buffer freed to the OS and allocated again costs one per 4 KiB page).
long minor_faults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}

// Linux >= 4.0: writing 5 to clear_refs resets the peak RSS, which getrusage then reports from
// the current RSS on. Returns false when that is not possible (the peak is then process-wide).
bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  if (!f) return false;
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}

// ---- model set-up ----

// Batch of caffe-preprocessed-like pixels (uniform in [-124, 152)) and alternating labels.
void synthetic_batch(int batch, int size, std::uint64_t seed, Tensor& x, std::vector<int>& labels) {
  x.resize(Shape{batch, size, size, 3});
  parafine::SplitMix64 rng(seed);
  for (std::size_t i = 0; i < x.numel(); ++i)
    x[i] = static_cast<float>(rng.uniform() * 276.0 - 124.0);
  labels.resize(static_cast<std::size_t>(batch));
  for (int i = 0; i < batch; ++i) labels[static_cast<std::size_t>(i)] = i % 2;
}

parafine::NetworkConfig network_config(const Options& o) {
  parafine::NetworkConfig c;
  c.backbone = o.backbone;
  c.alpha = o.alpha;
  c.image_size = o.image_size;
  c.classes = 2;
  c.head_units = 1024;
  c.width = 64;  // ResNet's real width (the other backbones ignore it)
  return c;
}

// "ResNet50", "MobileNetV2 alpha 0.35".
std::string network_label(const Options& o) {
  std::string s = parafine::backbone_info(o.backbone).keras_name;
  if (o.backbone == parafine::Backbone::kMobileNetV2)
    s += " alpha " + parafine::alpha_text(o.alpha);
  return s;
}

// Trainable flags of one scenario.
void configure(Model& m, const std::string& scenario, int unfreeze_last) {
  parafine::freeze_base(m);
  if (scenario == "phase2") parafine::unfreeze_last_base_layers(m, unfreeze_last);
  if (scenario == "full")
    for (int i = 0; i < m.size(); ++i) m.layer(i).trainable = true;
}

bool is_training(const std::string& scenario) {
  return scenario != "frozen";
}

const Tensor& logits_of(const Model& m) {
  return dynamic_cast<const parafine::Dense&>(m.layer(m.size() - 1)).logits();
}

// ---- FLOP counting (Conv2D, DepthwiseConv2D, Dense; the rest is memory-bound, counted as 0) ----

struct Flops {
  double forward = 0, backward = 0;
  double total() const { return forward + backward; }
};

// Forward and (if training) backward FLOPs of layer i for the model's current trainable flags,
// following Model::backward: nodes below the cut get no backward, an input below the cut
// gets no gradient, a frozen layer above the cut gets only its input gradient.
Flops layer_flops(const Model& m, int i, int batch, bool training) {
  Flops f;
  const parafine::Layer& l = m.layer(i);
  const int cut = training ? m.first_trainable_node() : m.size();
  // From the layer's own weights, whatever its kernel's shape: every output row (a pixel of
  // an image, or an image for Dense) takes one multiply-add per kernel element --
  // Conv2D [KH,KW,Cin,Cout], DepthwiseConv2D [KH,KW,C,M] (channel c reads only input c),
  // Dense [in,units]. The same count as cache_plan's forward_flops_through, depthwise included.
  double fwd = 0;
  for (const parafine::ParamSpec& p : l.param_specs())
    if (p.name == "kernel" || p.name == "depthwise_kernel")
      fwd += 2.0 * static_cast<double>(p.shape.numel()) *
             static_cast<double>(m.output_shape(i, batch).rows());
  f.forward = fwd;
  if (fwd > 0 && i >= cut) {
    if (l.trainable) f.backward += fwd;               // weight gradient
    if (m.inputs_of(i)[0] >= cut) f.backward += fwd;  // input gradient
  }
  return f;
}

Flops model_flops(const Model& m, int batch, bool training) {
  Flops f;
  for (int i = 0; i < m.size(); ++i) {
    const Flops g = layer_flops(m, i, batch, training);
    f.forward += g.forward;
    f.backward += g.backward;
  }
  return f;
}

// ---- the timed step ----

struct Runner {
  Model& model;
  const Tensor& x;
  const std::vector<int>& labels;
  bool training;
  parafine::Adam adam;
  Tensor dlogits;

  Runner(Model& m, const Tensor& images, const std::vector<int>& y, bool train)
      : model(m), x(images), labels(y), training(train), adam(m.trainable_size(), 1e-5) {}

  void step() {
    model.forward(x, training);
    if (!training) return;
    const parafine::LossResult r = parafine::softmax_cross_entropy(
        logits_of(model), labels, static_cast<double>(labels.size()), &dlogits);
    if (!std::isfinite(r.loss_sum))
      throw std::runtime_error("the loss became " + std::to_string(r.loss_sum));
    model.backward(dlogits);
    model.finish_gradients();
    adam.step(model.trainable_params(), model.grads().data());
  }
};

// ---- per-layer profile ----

// Kind of a layer for the profile: Conv2D split by kernel and stride, else the Keras class.
std::string kind_of(const parafine::Layer& l) {
  if (const auto* c = dynamic_cast<const parafine::Conv2D*>(&l)) {
    std::string k =
        "Conv2D " + std::to_string(c->kernel_h()) + "x" + std::to_string(c->kernel_w());
    if (c->stride() > 1) k += " s" + std::to_string(c->stride());
    return k;
  }
  // DepthwiseConv2D (MobileNetV2) split the same way.
  if (const auto* d = dynamic_cast<const parafine::DepthwiseConv2D*>(&l)) {
    std::string k = "DepthwiseConv2D " + std::to_string(d->kernel_size()) + "x" +
                    std::to_string(d->kernel_size());
    if (d->stride() > 1) k += " s" + std::to_string(d->stride());
    return k;
  }
  return l.type();
}

struct KindTime {
  double fwd_s = 0, bwd_s = 0, fwd_flops = 0, bwd_flops = 0;
  int layers = 0;
};

// Runs one step layer by layer, as Model::forward/backward do, timing every layer on its own
// (after one untimed step, summed over `repeats` steps). All outputs are kept, so memory is
// higher than in the real step.
void profile_step(Model& m, const std::string& scenario, const Tensor& x,
                  const std::vector<int>& labels, int repeats, std::ostream& out) {
  const bool training = is_training(scenario);
  const int batch = x.shape()[0];
  {
    // A one-image step binds the gradient buffers and the zero-bias-gradient flags that
    // Model::forward sets up, without holding a second set of batch-sized activations.
    Tensor x1(Shape{1, x.shape()[1], x.shape()[2], x.shape()[3]});
    std::copy(x.data(), x.data() + x1.numel(), x1.data());
    m.forward(x1, training);
  }
  const int n = m.size();
  const int cut = training ? m.first_trainable_node() : n;
  std::map<std::string, KindTime> kinds;
  double loss_s = 0, adam_s = 0, gradsum_s = 0;
  parafine::Adam adam(m.trainable_size(), 1e-5);
  for (int i = 0; i < n; ++i) {
    const Flops f = layer_flops(m, i, batch, training);
    KindTime& k = kinds[kind_of(m.layer(i))];
    k.layers += 1;
    k.fwd_flops += f.forward * repeats;
    k.bwd_flops += f.backward * repeats;
  }
  // Outputs persist across steps and gradients are recycled through a pool, as in the Model,
  // so after the untimed first step no layer pays for page faults on fresh memory.
  std::vector<Tensor> outs(static_cast<std::size_t>(n)), grads(static_cast<std::size_t>(n)),
      scratch(2);
  parafine::BufferPool pool;
  auto take = [&](Tensor& t, const Shape& shape) {
    t.give_storage(pool.acquire(shape.numel()), shape);
  };
  auto give = [&](Tensor& t) { pool.release(t.take_storage()); };
  std::vector<const Tensor*> ins;
  std::vector<Tensor*> din;
  for (int rep = 0; rep <= repeats; ++rep) {
    const double timed = rep > 0 ? 1.0 : 0.0;  // step 0 warms up
    for (int i = 0; i < n; ++i) {
      ins.clear();
      if (m.inputs_of(i).empty()) ins.push_back(&x);
      for (int k : m.inputs_of(i)) ins.push_back(&outs[static_cast<std::size_t>(k)]);
      const auto t0 = Clock::now();
      m.layer(i).forward(ins, outs[static_cast<std::size_t>(i)], training);
      kinds[kind_of(m.layer(i))].fwd_s += timed * seconds_since(t0);
    }
    if (!training) continue;
    auto t0 = Clock::now();
    Tensor& top = grads[static_cast<std::size_t>(n - 1)];
    take(top, outs[static_cast<std::size_t>(n - 1)].shape());
    parafine::softmax_cross_entropy(logits_of(m), labels, batch, &top);
    loss_s += timed * seconds_since(t0);
    for (int j = n - 1; j >= cut; --j) {
      Tensor& dout = grads[static_cast<std::size_t>(j)];
      if (dout.empty()) continue;
      const auto& inputs = m.inputs_of(j);
      ins.clear();
      din.clear();
      for (std::size_t a = 0; a < inputs.size(); ++a) {
        const int k = inputs[a];
        ins.push_back(&outs[static_cast<std::size_t>(k)]);
        if (k < cut) {
          din.push_back(nullptr);
          continue;
        }
        Tensor& gk = grads[static_cast<std::size_t>(k)];
        Tensor& target = gk.empty() ? gk : scratch[a];
        take(target, outs[static_cast<std::size_t>(k)].shape());
        din.push_back(&target);
      }
      if (inputs.empty()) ins.push_back(&x);
      t0 = Clock::now();
      m.layer(j).backward(ins, outs[static_cast<std::size_t>(j)], dout, din);
      kinds[kind_of(m.layer(j))].bwd_s += timed * seconds_since(t0);
      t0 = Clock::now();
      for (std::size_t a = 0; a < inputs.size(); ++a) {
        if (din[a] != &scratch[a]) continue;
        float* d = grads[static_cast<std::size_t>(inputs[a])].data();
        const float* src = scratch[a].data();
        const long count = static_cast<long>(scratch[a].numel());
#pragma omp parallel for
        for (long e = 0; e < count; ++e) d[e] += src[e];
        give(scratch[a]);
      }
      gradsum_s += timed * seconds_since(t0);
      give(dout);
    }
    t0 = Clock::now();
    m.finish_gradients();
    adam.step(m.trainable_params(), m.grads().data());
    adam_s += timed * seconds_since(t0);
  }
  double total = loss_s + adam_s + gradsum_s;
  for (const auto& kv : kinds) total += kv.second.fwd_s + kv.second.bwd_s;
  char line[256];
  out << "\nprofile " << scenario << ": each layer timed on its own, " << repeats
      << " step(s), seconds per step (all outputs kept)\n";
  std::snprintf(line, sizeof line, "  %-22s %6s %9s %9s %7s %8s %8s\n", "layer kind", "layers",
                "fwd s", "bwd s", "share", "fwd GF/s", "bwd GF/s");
  out << line;
  std::vector<std::pair<std::string, KindTime>> sorted(kinds.begin(), kinds.end());
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
    return a.second.fwd_s + a.second.bwd_s > b.second.fwd_s + b.second.bwd_s;
  });
  auto rate = [](double flops, double s) -> std::string {
    if (flops <= 0 || s <= 0) return "-";
    char b[32];
    std::snprintf(b, sizeof b, "%.1f", flops / s * 1e-9);
    return b;
  };
  for (const auto& [name, k] : sorted) {
    std::snprintf(line, sizeof line, "  %-22s %6d %9.3f %9.3f %6.1f%% %8s %8s\n", name.c_str(),
                  k.layers, k.fwd_s / repeats, k.bwd_s / repeats,
                  100.0 * (k.fwd_s + k.bwd_s) / total, rate(k.fwd_flops, k.fwd_s).c_str(),
                  rate(k.bwd_flops, k.bwd_s).c_str());
    out << line;
  }
  if (training) {
    std::snprintf(line, sizeof line, "  %-22s %6s %9s %9.3f %6.1f%%\n", "gradient fan-in sums", "",
                  "", gradsum_s / repeats, 100.0 * gradsum_s / total);
    out << line;
    std::snprintf(line, sizeof line, "  %-22s %6s %9.3f %9s %6.1f%%\n", "loss", "",
                  loss_s / repeats, "", 100.0 * loss_s / total);
    out << line;
    std::snprintf(line, sizeof line, "  %-22s %6s %9s %9.3f %6.1f%%   (%zu weights)\n", "Adam step",
                  "", "", adam_s / repeats, 100.0 * adam_s / total, m.trainable_size());
    out << line;
  }
  std::snprintf(line, sizeof line, "  %-22s %6d %9s %9s         total %.3f s/step = %.2f img/s\n",
                "all", n, "", "", total / repeats, batch * repeats / total);
  out << line;
}

// ---- reporting ----

// DESIGN.md §6's PyTorch 1.13 figures: ResNet50, batch 32, 224x224, 2 cores.
double reference_img_s(const std::string& scenario) {
  if (scenario == "frozen") return 20.7;
  if (scenario == "phase2") return 18.9;
  return 4.9;
}

struct Result {
  std::string scenario;
  Summary img_s, step_s;
  double cores = 0;   // process CPU time / wall time over the timed steps
  double faults = 0;  // minor page faults per timed step
  Flops flops;
  double peak_rss_mib = 0;
  bool rss_is_per_scenario = false;
  double activation_mib = 0;
  std::size_t trainable = 0;    // weights Adam updates
  std::string first_trainable;  // earliest layer with trainable weights
};

// The network, or exit 2 with build_network's message (e.g. a backbone not built yet).
Model build_or_exit(const Options& o) {
  try {
    return parafine::build_network(network_config(o));
  } catch (const std::invalid_argument& e) {
    std::cerr << "bench_backbone: " << e.what() << "\n";
    std::exit(2);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  parafine::set_threads(o.threads);
  const bool reference_setup =
      o.backbone == parafine::Backbone::kResNet50 && o.batch == 32 && o.image_size == 224;

  std::cout << "bench_backbone: " << network_label(o) << ", dense 1024, 2 classes; batch "
            << o.batch << ", " << o.image_size << "x" << o.image_size << ", " << o.threads
            << " thread(s), " << o.warmup << " warm-up + " << o.repeats
            << " timed step(s) per scenario; conv engine "
            << parafine::conv_engine_name(parafine::default_conv_engine())
            << " (PARAFINE_CONV_ENGINE); " << parafine::precision_name(o.precision)
            << "; phase2 unfreezes base.layers[-" << o.unfreeze_last << ":]\n";

  Tensor x;
  std::vector<int> labels;
  synthetic_batch(o.batch, o.image_size, o.seed, x, labels);

  // Keras init + BN calibration once; each scenario then starts from a copy of these weights.
  std::vector<float> params, state;
  {
    const auto t0 = Clock::now();
    Model m = build_or_exit(o);
    parafine::keras_initialize(m, o.seed);
    m.calibrate_batch_norm(x);
    params = m.params();
    state = m.state();
    std::cout << "set-up (build, init, BN calibration forward): " << seconds_since(t0) << " s\n";
  }

  std::vector<Result> results;
  for (const std::string& scenario : o.scenarios) {
    Result r;
    r.scenario = scenario;
    Model m = build_or_exit(o);
    m.set_weights(params, state);
    m.set_precision(o.precision);
    configure(m, scenario, o.unfreeze_last);
    const bool training = is_training(scenario);
    r.flops = model_flops(m, o.batch, training);
    r.trainable = training ? m.trainable_size() : 0;
    if (training) r.first_trainable = m.layer(m.first_trainable_node()).name();
    r.rss_is_per_scenario = reset_peak_rss();
    {
      Runner run(m, x, labels, training);
      for (int w = 0; w < o.warmup; ++w) run.step();
      std::vector<double> step_s, img_s;
      const double cpu0 = process_cpu_seconds();
      const long faults0 = minor_faults();
      const auto wall0 = Clock::now();
      for (int rep = 0; rep < o.repeats; ++rep) {
        const auto t0 = Clock::now();
        run.step();
        const double s = seconds_since(t0);
        step_s.push_back(s);
        img_s.push_back(o.batch / s);
      }
      r.cores = (process_cpu_seconds() - cpu0) / seconds_since(wall0);
      r.faults = static_cast<double>(minor_faults() - faults0) / o.repeats;
      r.step_s = summarize(step_s);
      r.img_s = summarize(img_s);
      r.activation_mib = m.activation_floats() * 4.0 / (1 << 20);
    }
    r.peak_rss_mib = peak_rss_mib();
    char line[512];
    std::snprintf(line, sizeof line,
                  "%-7s %7.2f img/s median (min %.2f, max %.2f)  %.3f s/step  %.1f GFLOP/step  "
                  "%.1f GFLOP/s  %.2f cores busy  %.0f page faults/step  peak RSS %.0f MiB%s\n",
                  scenario.c_str(), r.img_s.median, r.img_s.min, r.img_s.max, r.step_s.median,
                  r.flops.total() * 1e-9, r.flops.total() / r.step_s.median * 1e-9, r.cores,
                  r.faults, r.peak_rss_mib, r.rss_is_per_scenario ? "" : " (process-wide)");
    std::cout << line;
    if (training)
      std::cout << "        trainable from " << r.first_trainable << ": " << r.trainable
                << " weights\n";
    std::cout << std::flush;
    if (o.profile)
      profile_step(m, scenario, x, labels, std::max(1, std::min(o.repeats, 2)), std::cout);
    results.push_back(r);
  }

  std::cout << "\n";
  char line[512];
  std::snprintf(line, sizeof line, "%-8s %9s %9s %9s %9s %9s %9s %6s %9s %9s %10s %8s\n",
                "scenario", "img/s", "min", "max", "s/step", "GFLOP", "GFLOP/s", "cores", "RSS MiB",
                "act MiB", "PyTorch", "ratio");
  std::cout << line;
  for (const Result& r : results) {
    const double ref = reference_img_s(r.scenario);
    std::string ratio = "n/a", reference = "n/a";
    if (reference_setup) {
      char b[32];
      std::snprintf(b, sizeof b, "%.2fx", r.img_s.median / ref);
      ratio = b;
    }
    if (o.backbone == parafine::Backbone::kResNet50) {
      char b[32];
      std::snprintf(b, sizeof b, "%.1f", ref);
      reference = b;
    }
    std::snprintf(line, sizeof line,
                  "%-8s %9.2f %9.2f %9.2f %9.3f %9.1f %9.1f %6.2f %9.0f %9.0f %10s %8s\n",
                  r.scenario.c_str(), r.img_s.median, r.img_s.min, r.img_s.max, r.step_s.median,
                  r.flops.total() * 1e-9, r.flops.total() / r.step_s.median * 1e-9, r.cores,
                  r.peak_rss_mib, r.activation_mib, reference.c_str(), ratio.c_str());
    std::cout << line;
  }
  std::cout << "(GFLOP: Conv2D + DepthwiseConv2D + Dense, 2 per multiply-add. PyTorch, ratio:\n"
               " img/s over the PyTorch 1.13 reference of DESIGN.md §6, ResNet50 only, the ratio\n"
               " only for batch 32 at 224x224; other backbones: benchmarks/compare_pytorch.py.\n"
               " cores: process CPU time over wall time. act MiB: activations + pool held by the\n"
               " model after a step)\n";

  if (!o.csv.empty()) {
    std::ofstream f(o.csv);
    if (!f) {
      std::cerr << "bench_backbone: cannot write --csv file '" << o.csv << "'\n";
      return 1;
    }
    f << "scenario,batch,image_size,threads,repeats,img_s_median,img_s_min,img_s_max,step_s_median,"
         "gflop_forward,gflop_backward,gflops_median,cores_busy,page_faults_per_step,peak_rss_mib,"
         "activation_mib,trainable_weights,pytorch_img_s,ratio,backbone,alpha,unfreeze_last\n";
    for (const Result& r : results) {
      const double ref = reference_img_s(r.scenario);
      f << r.scenario << ',' << o.batch << ',' << o.image_size << ',' << o.threads << ','
        << o.repeats << ',' << r.img_s.median << ',' << r.img_s.min << ',' << r.img_s.max << ','
        << r.step_s.median << ',' << r.flops.forward * 1e-9 << ',' << r.flops.backward * 1e-9 << ','
        << r.flops.total() / r.step_s.median * 1e-9 << ',' << r.cores << ',' << r.faults << ','
        << r.peak_rss_mib << ',' << r.activation_mib << ',' << r.trainable << ',';
      if (o.backbone == parafine::Backbone::kResNet50) f << ref;
      f << ',';
      if (reference_setup) f << r.img_s.median / ref;
      f << ',' << parafine::backbone_info(o.backbone).name << ',' << parafine::alpha_text(o.alpha)
        << ',' << o.unfreeze_last << '\n';
    }
    std::cout << "wrote " << o.csv << "\n";
  }
  return 0;
}
