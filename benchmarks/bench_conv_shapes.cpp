// bench_conv_shapes: GFLOP/s of parafine's Conv2D on every distinct Conv2D shape of ResNet50
// (benchdnn / XNNPACK style: real layer shapes, named by the first Keras layer that has them),
// forward and, separately, backward (weight grad + input grad; bias grad skipped as in the
// network, where every conv feeds a BatchNormalization), on each engine (--engines: oneDNN
// primitives, im2col + OpenBLAS), timed alternately engine by engine within every repeat.
// Next to them, the rate OpenBLAS reaches on the bare sgemm calls the im2col engine makes (one
// call, no im2col / col2im / bias), so the gap is what that engine spends around sgemm. First,
// a big square sgemm as the machine's ceiling. Medians over repeats; FLOPs count 2 per
// multiply-add; "x" is the first engine's time over the second's (> 1: the second is faster).
//
//   bench_conv_shapes [--batch 32] [--image-size 224] [--threads T] [--repeats 5]
//                     [--engines im2col,onednn] [--gemm-size 4096] [--filter SUBSTRING]
//                     [--no-sgemm] [--csv FILE]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench_options.hpp"
#include "parafine/core/compute.hpp"
#include "parafine/core/rng.hpp"
#include "parafine/layers/conv2d.hpp"
#include "parafine/model/backbone.hpp"

namespace {

using parafine::Conv2D;
using parafine::Shape;
using parafine::Tensor;
using Clock = std::chrono::steady_clock;

struct Options {
  int batch = 32;
  int image_size = 224;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int repeats = 5;
  int gemm_size = 4096;
  bool sgemm_equivalent = true;
  std::vector<parafine::ConvEngine> engines{parafine::ConvEngine::kIm2col,
                                            parafine::ConvEngine::kOneDnn};
  std::string filter;
  std::string csv;
};

std::vector<parafine::ConvEngine> parse_engines(const std::string& list) {
  std::vector<parafine::ConvEngine> e;
  std::stringstream ss(list);
  for (std::string item; std::getline(ss, item, ',');) {
    if (item == "im2col")
      e.push_back(parafine::ConvEngine::kIm2col);
    else if (item == "onednn")
      e.push_back(parafine::ConvEngine::kOneDnn);
    else
      throw std::invalid_argument("--engines: unknown engine '" + item + "' (im2col, onednn)");
  }
  if (e.empty() || e.size() > 2) throw std::invalid_argument("--engines: one or two engines");
  return e;
}

Options parse(int argc, char** argv) {
  Options o;
  bool no_sgemm = false;
  std::string engines = "im2col,onednn";
  bench::po::options_description opts("bench_conv_shapes options");
  auto add = opts.add_options();
  add("help,h", "show this help");
  add("batch", bench::po::value(&o.batch)->default_value(o.batch), "images per conv call");
  add("image-size", bench::po::value(&o.image_size)->default_value(o.image_size),
      "network input size (>= 32)");
  add("threads", bench::po::value(&o.threads)->default_value(o.threads), "compute threads");
  add("repeats", bench::po::value(&o.repeats)->default_value(o.repeats), "timed runs per shape");
  add("gemm-size", bench::po::value(&o.gemm_size)->default_value(o.gemm_size),
      "square sgemm ceiling size (0: skip)");
  add("engines", bench::po::value(&engines)->default_value(engines),
      "engines to time alternately, comma-separated: im2col, onednn");
  add("filter", bench::po::value(&o.filter), "only shapes whose name contains this");
  add("no-sgemm", bench::po::bool_switch(&no_sgemm), "skip the bare-sgemm comparison");
  add("csv", bench::po::value(&o.csv), "also write the results here");
  bench::parse_or_exit(argc, argv, "bench_conv_shapes", opts);
  bench::require_at_least("bench_conv_shapes", "batch", o.batch, 1);
  bench::require_at_least("bench_conv_shapes", "image-size", o.image_size, 32);
  bench::require_at_least("bench_conv_shapes", "threads", o.threads, 1);
  bench::require_at_least("bench_conv_shapes", "repeats", o.repeats, 1);
  bench::require_at_least("bench_conv_shapes", "gemm-size", o.gemm_size, 0);
  o.sgemm_equivalent = !no_sgemm;
  try {
    o.engines = parse_engines(engines);
  } catch (const std::exception& e) {
    std::cerr << "bench_conv_shapes: " << e.what() << "\n";
    std::exit(2);
  }
  return o;
}

struct Summary {
  double median = 0, min = 0, max = 0;
};

// Runs fn once to warm up, then `repeats` times; seconds per run.
template <class Fn>
Summary time_runs(int repeats, Fn&& fn) {
  fn();
  std::vector<double> v;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = Clock::now();
    fn();
    v.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return {n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]), v.front(), v.back()};
}

void fill_uniform(float* p, std::size_t n, float lo, float hi, std::uint64_t seed) {
  parafine::SplitMix64 rng(seed);
  for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<float>(lo + (hi - lo) * rng.uniform());
}

// One distinct Conv2D configuration of the network.
struct ConvShape {
  std::string name;  // first Keras layer with this shape
  int h = 0, w = 0, cin = 0, cout = 0, k = 0, stride = 0;
  parafine::Padding padding = parafine::Padding::kValid;
  int count = 0;  // layers in the network with this shape
  Shape out;
  std::string str() const {
    return std::to_string(h) + "x" + std::to_string(w) + "x" + std::to_string(cin) + " -> " +
           std::to_string(cout) + " k" + std::to_string(k) + " s" + std::to_string(stride);
  }
  bool same_config(const ConvShape& o) const {
    return h == o.h && w == o.w && cin == o.cin && cout == o.cout && k == o.k &&
           stride == o.stride && padding == o.padding;
  }
};

std::vector<ConvShape> resnet50_conv_shapes(const Options& o) {
  parafine::NetworkConfig c;
  c.image_size = o.image_size;
  const parafine::Model m = parafine::build_network(c);
  std::vector<ConvShape> shapes;
  for (int i = 0; i < m.size(); ++i) {
    const auto* conv = dynamic_cast<const Conv2D*>(&m.layer(i));
    if (!conv) continue;
    const Shape in = m.output_shape(m.inputs_of(i)[0], o.batch);
    const Shape out = m.output_shape(i, o.batch);
    ConvShape s;
    s.name = conv->name();
    s.h = in[1];
    s.w = in[2];
    s.cin = in[3];
    s.cout = conv->filters();
    s.k = conv->kernel_h();  // ResNet50's kernels are square
    s.stride = conv->stride();
    s.out = out;
    // Conv2D does not expose its padding; the output size tells 'valid' from 'same'.
    s.padding = (in[1] - s.k) / s.stride + 1 == out[1] ? parafine::Padding::kValid
                                                       : parafine::Padding::kSame;
    auto it = std::find_if(shapes.begin(), shapes.end(),
                           [&](const ConvShape& e) { return e.same_config(s); });
    if (it == shapes.end()) it = shapes.insert(shapes.end(), s);
    it->count += 1;
  }
  return shapes;
}

// Timings of one engine on one shape.
struct EngineTimes {
  Summary fwd, bwd;
};

struct Row {
  ConvShape shape;
  double flops = 0;  // forward
  std::vector<EngineTimes> engines;  // in Options::engines order
  Summary fwd_gemm, bwd_gemm;
};

Summary summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return {n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]), v.front(), v.back()};
}

template <class Fn>
double seconds(Fn&& fn) {
  const auto t0 = Clock::now();
  fn();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// The layer on every engine, timed alternately: each repeat runs forward on engine A, B, ...,
// then backward on A, B, ..., so a slow spell of the shared machine hits every engine alike.
void time_engines(const ConvShape& s, const Options& o, const Shape& in, std::vector<float>& kernel,
                  Row& row) {
  const std::size_t kn = kernel.size(), e_count = o.engines.size();
  std::vector<float> dkernel(kn), bias(static_cast<std::size_t>(s.cout), 0.0f),
      dbias(static_cast<std::size_t>(s.cout));
  parafine::Workspace ws;
  std::vector<std::unique_ptr<Conv2D>> convs;
  for (const parafine::ConvEngine e : o.engines) {
    convs.push_back(std::make_unique<Conv2D>(s.name, s.cout, s.k, s.stride, s.padding));
    Conv2D& conv = *convs.back();
    conv.set_engine(e);
    conv.infer_shape({in});
    conv.set_workspace(&ws);
    conv.bind_param(0, kernel.data(), dkernel.data());
    conv.bind_param(1, bias.data(), dbias.data());
    conv.set_bias_gradient_is_zero(true);
  }
  Tensor x(in), y, dy(s.out), dx;
  fill_uniform(x.data(), x.numel(), -1.0f, 1.0f, 2);
  fill_uniform(dy.data(), dy.numel(), -1.0f, 1.0f, 3);
  std::vector<std::vector<double>> fwd(e_count), bwd(e_count);
  for (int r = -1; r < o.repeats; ++r) {  // r = -1: warm-up (primitive creation, buffers)
    for (std::size_t e = 0; e < e_count; ++e) {
      const double t = seconds([&] { convs[e]->forward({&x}, y, true); });
      if (r >= 0) fwd[e].push_back(t);
    }
    for (std::size_t e = 0; e < e_count; ++e) {
      const double t = seconds([&] { convs[e]->backward({&x}, y, dy, {&dx}); });
      if (r >= 0) bwd[e].push_back(t);
    }
  }
  for (std::size_t e = 0; e < e_count; ++e) row.engines.push_back({summarize(fwd[e]), summarize(bwd[e])});
}

Row bench_shape(const ConvShape& s, const Options& o) {
  Row row;
  row.shape = s;
  Conv2D conv(s.name, s.cout, s.k, s.stride, s.padding);
  const Shape in{o.batch, s.h, s.w, s.cin};
  const Shape out = conv.infer_shape({in});
  if (out != s.out)
    throw std::logic_error(s.name + ": standalone conv gives " + out.str() + ", the network " +
                           s.out.str());
  row.flops = conv.forward_flops(in);

  const std::size_t kn = static_cast<std::size_t>(s.k) * s.k * s.cin * s.cout;
  std::vector<float> kernel(kn), dkernel(kn);
  const float limit = static_cast<float>(std::sqrt(6.0 / (s.k * s.k * (s.cin + s.cout))));
  fill_uniform(kernel.data(), kn, -limit, limit, 1);
  time_engines(s, o, in, kernel, row);

  if (o.sgemm_equivalent) {
    // The multiplies the im2col engine does, as single sgemm calls on ready-made columns:
    // forward  y[M,Cout] = col[M,K] W[K,Cout]; backward dW[K,Cout] = col^T dy, dcol[M,K] = dy W^T.
    const int m = static_cast<int>(out.rows()), kk = s.k * s.k * s.cin, n = s.cout;
    std::vector<float> col(static_cast<std::size_t>(m) * kk), c(static_cast<std::size_t>(m) * n);
    Tensor dy(out);
    fill_uniform(dy.data(), dy.numel(), -1.0f, 1.0f, 3);
    fill_uniform(col.data(), col.size(), -1.0f, 1.0f, 4);
    row.fwd_gemm = time_runs(o.repeats, [&] {
      parafine::sgemm(false, false, m, n, kk, 1.0f, col.data(), kk, kernel.data(), n, 0.0f,
                      c.data(), n);
    });
    c.clear();
    c.shrink_to_fit();
    row.bwd_gemm = time_runs(o.repeats, [&] {
      parafine::sgemm(true, false, kk, n, m, 1.0f, col.data(), kk, dy.data(), n, 0.0f,
                      dkernel.data(), n);
      parafine::sgemm(false, true, m, kk, n, 1.0f, dy.data(), n, kernel.data(), n, 0.0f, col.data(),
                      kk);
    });
  }
  return row;
}

std::string gflops(double flops, double seconds) {
  if (seconds <= 0) return "-";
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", flops / seconds * 1e-9);
  return b;
}

std::string ratio(double a, double b) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", b > 0 ? a / b : 0.0);
  return buf;
}

// The CSV columns: per engine and pass its median/min/max ms and GFLOP/s, then bare sgemm.
std::string csv_columns(const Options& o) {
  std::string c = "name,shape,count,gflop_forward";
  for (const char* pass : {"fwd", "bwd"})
    for (const parafine::ConvEngine e : o.engines)
      for (const char* col : {"ms_median", "ms_min", "ms_max", "gflops"})
        c += std::string(",") + pass + "_" + parafine::conv_engine_name(e) + "_" + col;
  if (o.sgemm_equivalent) c += ",fwd_sgemm_gflops,bwd_sgemm_gflops";
  return c;
}

void print_header(const Options& o) {
  std::string h = "layer                  shape (HxWxCin -> Cout)      n   GFLOP |";
  char b[64];
  for (const char* pass : {"fwd", "bwd"}) {
    for (const parafine::ConvEngine e : o.engines) {
      std::snprintf(b, sizeof b, " %s %-6s", pass, parafine::conv_engine_name(e));
      h += b;
    }
    h += o.engines.size() == 2 ? "     x |" : " |";
  }
  if (o.sgemm_equivalent) h += " sgemm GF/s fwd bwd";
  std::cout << h << "\n(ms medians)\n";
}

void print_row(const Options& o, const Row& r, std::ofstream& csv) {
  const ConvShape& s = r.shape;
  char b[256];
  std::snprintf(b, sizeof b, "%-22s %-26s %3d %7.2f |", s.name.c_str(), s.str().c_str(), s.count,
                r.flops * 1e-9);
  std::string line = b;
  if (csv) csv << s.name << ',' << s.str() << ',' << s.count << ',' << r.flops * 1e-9;
  for (int pass = 0; pass < 2; ++pass) {
    const double flops = pass == 0 ? r.flops : 2 * r.flops;
    for (const EngineTimes& t : r.engines) {
      const Summary& m = pass == 0 ? t.fwd : t.bwd;
      std::snprintf(b, sizeof b, " %10.1f", m.median * 1e3);
      line += b;
      if (csv)
        csv << ',' << m.median * 1e3 << ',' << m.min * 1e3 << ',' << m.max * 1e3 << ','
            << flops / m.median * 1e-9;
    }
    if (r.engines.size() == 2) {
      const Summary& a = pass == 0 ? r.engines[0].fwd : r.engines[0].bwd;
      const Summary& z = pass == 0 ? r.engines[1].fwd : r.engines[1].bwd;
      line += " " + std::string(6 - std::min<std::size_t>(6, ratio(a.median, z.median).size()), ' ') +
              ratio(a.median, z.median);
    }
    line += " |";
  }
  if (o.sgemm_equivalent) {
    line += " " + gflops(r.flops, r.fwd_gemm.median) + " " + gflops(2 * r.flops, r.bwd_gemm.median);
    if (csv)
      csv << ',' << r.flops / r.fwd_gemm.median * 1e-9 << ',' << 2 * r.flops / r.bwd_gemm.median * 1e-9;
  }
  std::cout << line << std::endl;
  if (csv) csv << '\n';
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  parafine::set_threads(o.threads);
  std::cout << "bench_conv_shapes: ResNet50 Conv2D shapes, batch " << o.batch << ", "
            << o.image_size << "x" << o.image_size << ", " << o.threads
            << " thread(s), 1 warm-up + " << o.repeats << " timed run(s), medians\n";

  std::ofstream csv;
  if (!o.csv.empty()) {
    csv.open(o.csv);
    if (!csv) {
      std::cerr << "bench_conv_shapes: cannot write --csv file '" << o.csv << "'\n";
      return 1;
    }
    csv << csv_columns(o) << "\n";
  }
  // The sgemm rows fill the first engine's forward columns and leave the rest empty.
  const std::string columns = csv_columns(o);
  const std::string sgemm_padding(
      static_cast<std::size_t>(std::count(columns.begin(), columns.end(), ',') - 7), ',');

  char line[512];
  // The ceiling, measured before and after the shapes: a big gap between the two says the
  // machine was busy with something else during the run.
  auto square_sgemm = [&](const char* when) {
    if (o.gemm_size <= 0) return;
    const int n = o.gemm_size;
    std::vector<float> a(static_cast<std::size_t>(n) * n), b(a.size()), c(a.size());
    fill_uniform(a.data(), a.size(), -1.0f, 1.0f, 5);
    fill_uniform(b.data(), b.size(), -1.0f, 1.0f, 6);
    const Summary t = time_runs(o.repeats, [&] {
      parafine::sgemm(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    });
    const double flops = 2.0 * n * n * static_cast<double>(n);
    std::snprintf(line, sizeof line,
                  "sgemm %dx%dx%d (%s): %.1f GFLOP/s median (min %.1f, max %.1f)\n", n, n, n, when,
                  flops / t.median * 1e-9, flops / t.max * 1e-9, flops / t.min * 1e-9);
    std::cout << line << std::flush;
    if (csv)
      csv << "sgemm_square_" << when << ',' << n << "x" << n << "x" << n << ",1," << flops * 1e-9
          << ',' << t.median * 1e3 << ',' << t.min * 1e3 << ',' << t.max * 1e3 << ','
          << flops / t.median * 1e-9 << sgemm_padding << "\n";
  };
  square_sgemm("before");
  std::cout << "\n";

  print_header(o);
  int convs = 0;
  const std::size_t ne = o.engines.size();
  double net_flops = 0, net_fwd_gemm_s = 0, net_bwd_gemm_s = 0;
  std::vector<double> net_fwd_s(ne, 0.0), net_bwd_s(ne, 0.0);
  for (const ConvShape& s : resnet50_conv_shapes(o)) {
    if (!o.filter.empty() && s.name.find(o.filter) == std::string::npos) continue;
    const Row r = bench_shape(s, o);
    print_row(o, r, csv);
    convs += s.count;
    net_flops += s.count * r.flops;
    for (std::size_t e = 0; e < ne; ++e) {
      net_fwd_s[e] += s.count * r.engines[e].fwd.median;
      net_bwd_s[e] += s.count * r.engines[e].bwd.median;
    }
    net_fwd_gemm_s += s.count * r.fwd_gemm.median;
    net_bwd_gemm_s += s.count * r.bwd_gemm.median;
  }
  std::cout << "\nthe " << convs << " convs above weighted by count:\n";
  for (std::size_t e = 0; e < ne; ++e) {
    std::snprintf(line, sizeof line,
                  "  %-7s forward  %.1f GFLOP in %.2f s = %.1f GFLOP/s; backward %.1f GFLOP in "
                  "%.2f s = %.1f GFLOP/s\n",
                  parafine::conv_engine_name(o.engines[e]), net_flops * 1e-9, net_fwd_s[e],
                  net_flops / net_fwd_s[e] * 1e-9, 2 * net_flops * 1e-9, net_bwd_s[e],
                  2 * net_flops / net_bwd_s[e] * 1e-9);
    std::cout << line;
  }
  if (o.sgemm_equivalent) {
    std::snprintf(line, sizeof line, "  bare sgemm forward %.2f s, backward %.2f s\n",
                  net_fwd_gemm_s, net_bwd_gemm_s);
    std::cout << line;
  }
  std::cout << "\n";
  square_sgemm("after");
  std::cout << "(backward = weight grad + input grad; in the network conv1_conv needs no input\n"
               " grad. sgemm = the same multiplies as bare OpenBLAS calls on ready-made columns)\n";
  if (!o.csv.empty()) std::cout << "wrote " << o.csv << "\n";
  return 0;
}
