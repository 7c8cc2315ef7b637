// bench_conv_shapes: GFLOP/s of parafine's Conv2D on every distinct Conv2D shape of ResNet50
// (benchdnn / XNNPACK style: real layer shapes, named by the first Keras layer that has them),
// forward and, separately, backward (weight grad + input grad; bias grad skipped as in the
// network, where every conv feeds a BatchNormalization). Next to each, the rate OpenBLAS
// reaches on the bare sgemm calls of the same sizes (one call, no im2col / col2im / bias), so
// the gap is what the layer spends around sgemm. First, a big square sgemm as the machine's
// ceiling. Medians over repeats; FLOPs count 2 per multiply-add.
//
//   bench_conv_shapes [--batch 32] [--image-size 224] [--threads T] [--repeats 5]
//                     [--gemm-size 4096] [--filter SUBSTRING] [--no-sgemm] [--csv FILE]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench_options.hpp"
#include "parafine/core/compute.hpp"
#include "parafine/core/rng.hpp"
#include "parafine/layers/conv2d.hpp"
#include "parafine/model/resnet50.hpp"

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
  std::string filter;
  std::string csv;
};

Options parse(int argc, char** argv) {
  Options o;
  bool no_sgemm = false;
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
  parafine::ResNet50Config c;
  c.image_size = o.image_size;
  const parafine::Model m = parafine::build_resnet50(c);
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
    s.k = conv->kernel_size();
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

struct Row {
  ConvShape shape;
  double flops = 0;  // forward
  Summary fwd, bwd, fwd_gemm, bwd_gemm;
};

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
  std::vector<float> kernel(kn), dkernel(kn), bias(static_cast<std::size_t>(s.cout), 0.0f),
      dbias(static_cast<std::size_t>(s.cout));
  const float limit = static_cast<float>(std::sqrt(6.0 / (s.k * s.k * (s.cin + s.cout))));
  fill_uniform(kernel.data(), kn, -limit, limit, 1);
  parafine::Workspace ws;
  conv.set_workspace(&ws);
  conv.bind_param(0, kernel.data(), dkernel.data());
  conv.bind_param(1, bias.data(), dbias.data());
  conv.set_bias_gradient_is_zero(true);

  Tensor x(in), y, dy(out), dx;
  fill_uniform(x.data(), x.numel(), -1.0f, 1.0f, 2);
  fill_uniform(dy.data(), dy.numel(), -1.0f, 1.0f, 3);
  row.fwd = time_runs(o.repeats, [&] { conv.forward({&x}, y, true); });
  row.bwd = time_runs(o.repeats, [&] { conv.backward({&x}, y, dy, {&dx}); });

  if (o.sgemm_equivalent) {
    // The multiplies the layer does, as single sgemm calls on ready-made columns:
    // forward  y[M,Cout] = col[M,K] W[K,Cout]; backward dW[K,Cout] = col^T dy, dcol[M,K] = dy W^T.
    const int m = static_cast<int>(out.rows()), kk = s.k * s.k * s.cin, n = s.cout;
    std::vector<float> col(static_cast<std::size_t>(m) * kk), c(static_cast<std::size_t>(m) * n);
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
    csv << "name,shape,count,gflop_forward,fwd_ms_median,fwd_ms_min,fwd_ms_max,fwd_gflops,"
           "fwd_sgemm_gflops,bwd_ms_median,bwd_ms_min,bwd_ms_max,bwd_gflops,bwd_sgemm_gflops\n";
  }

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
          << flops / t.median * 1e-9 << ",,,,,,\n";
  };
  square_sgemm("before");
  std::cout << "\n";

  std::snprintf(line, sizeof line, "%-22s %-26s %3s %7s | %8s %7s %7s | %8s %7s %7s\n", "layer",
                "shape (HxWxCin -> Cout)", "n", "GFLOP", "fwd ms", "GF/s", "sgemm", "bwd ms",
                "GF/s", "sgemm");
  std::cout << line;
  int convs = 0;
  double net_flops = 0, net_fwd_s = 0, net_bwd_s = 0, net_fwd_gemm_s = 0, net_bwd_gemm_s = 0;
  for (const ConvShape& s : resnet50_conv_shapes(o)) {
    if (!o.filter.empty() && s.name.find(o.filter) == std::string::npos) continue;
    const Row r = bench_shape(s, o);
    const std::string shape = s.str();
    std::snprintf(line, sizeof line, "%-22s %-26s %3d %7.2f | %8.1f %7s %7s | %8.1f %7s %7s\n",
                  s.name.c_str(), shape.c_str(), s.count, r.flops * 1e-9, r.fwd.median * 1e3,
                  gflops(r.flops, r.fwd.median).c_str(),
                  o.sgemm_equivalent ? gflops(r.flops, r.fwd_gemm.median).c_str() : "-",
                  r.bwd.median * 1e3, gflops(2 * r.flops, r.bwd.median).c_str(),
                  o.sgemm_equivalent ? gflops(2 * r.flops, r.bwd_gemm.median).c_str() : "-");
    std::cout << line << std::flush;
    convs += s.count;
    net_flops += s.count * r.flops;
    net_fwd_s += s.count * r.fwd.median;
    net_bwd_s += s.count * r.bwd.median;
    net_fwd_gemm_s += s.count * r.fwd_gemm.median;
    net_bwd_gemm_s += s.count * r.bwd_gemm.median;
    if (csv)
      csv << s.name << ',' << s.str() << ',' << s.count << ',' << r.flops * 1e-9 << ','
          << r.fwd.median * 1e3 << ',' << r.fwd.min * 1e3 << ',' << r.fwd.max * 1e3 << ','
          << r.flops / r.fwd.median * 1e-9 << ','
          << (o.sgemm_equivalent ? r.flops / r.fwd_gemm.median * 1e-9 : 0.0) << ','
          << r.bwd.median * 1e3 << ',' << r.bwd.min * 1e3 << ',' << r.bwd.max * 1e3 << ','
          << 2 * r.flops / r.bwd.median * 1e-9 << ','
          << (o.sgemm_equivalent ? 2 * r.flops / r.bwd_gemm.median * 1e-9 : 0.0) << '\n';
  }
  std::snprintf(line, sizeof line,
                "\nthe %d convs above weighted by count:\n"
                "  forward  %.1f GFLOP in %.2f s = %.1f GFLOP/s (bare sgemm %.2f s)\n"
                "  backward %.1f GFLOP in %.2f s = %.1f GFLOP/s (bare sgemm %.2f s)\n",
                convs, net_flops * 1e-9, net_fwd_s, net_flops / net_fwd_s * 1e-9,
                o.sgemm_equivalent ? net_fwd_gemm_s : 0.0, 2 * net_flops * 1e-9, net_bwd_s,
                2 * net_flops / net_bwd_s * 1e-9, o.sgemm_equivalent ? net_bwd_gemm_s : 0.0);
  std::cout << line;
  std::cout << "\n";
  square_sgemm("after");
  std::cout << "(backward = weight grad + input grad; in the network conv1_conv needs no input\n"
               " grad. sgemm = the same multiplies as bare OpenBLAS calls on ready-made columns)\n";
  if (!o.csv.empty()) std::cout << "wrote " << o.csv << "\n";
  return 0;
}
