// Does bfloat16 pay on this CPU? Two measurements behind --precision's documentation (issue 12):
//  1. the core's peak: 16 independent chains of AVX-512 FMA (vfmadd231ps, 32 FLOP each) against
//     16 of the bfloat16 dot product (vdpbf16ps, 64 FLOP each), one thread, in registers;
//  2. oneDNN 2.6's convolutions on ResNet50's shapes, forward inference with bias and ReLU,
//     NHWC, weights in the layout the primitive prefers: float32 against bfloat16
//     (src, weights and dst bfloat16; what a bfloat16 engine would run), alternating.
// A CPU without AVX512_BF16 skips (1); oneDNN then has no bfloat16 convolution and (2) says so.
// It never runs under CTest (benchmarks/README.md).
#include <immintrin.h>
#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "bench_options.hpp"
#include "parafine/core/compute.hpp"
#include "parafine/core/precision.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Makes the accumulators observable, so the loops are not optimised away.
__attribute__((target("avx512f"))) void keep(const __m512* acc) {
  alignas(64) float lanes[16];
  float sink = 0;
  for (int j = 0; j < 16; ++j) {
    _mm512_store_ps(lanes, acc[j]);
    sink += lanes[0];
  }
  if (sink == 42.0f) std::puts("");
}

// GFLOP/s of `iterations` x 16 FMAs (32 FLOP each) on one thread.
__attribute__((target("avx512f"))) double fma_gflops(long iterations) {
  __m512 acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i) * 1e-9f);
  const __m512 x = _mm512_set1_ps(1.0001f), y = _mm512_set1_ps(0.9999f);
  const auto t0 = Clock::now();
  for (long i = 0; i < iterations; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < 16; ++j) acc[j] = _mm512_fmadd_ps(x, y, acc[j]);
  const double s = seconds_since(t0);
  keep(acc);
  return iterations * 16.0 * 32 / s * 1e-9;
}

// GFLOP/s of `iterations` x 16 bfloat16 dot products (64 FLOP each) on one thread.
__attribute__((target("avx512f,avx512bf16"))) double dpbf16_gflops(long iterations) {
  __m512 acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = _mm512_setzero_ps();
  const __m512bh x = (__m512bh)_mm512_set1_epi16(0x3f80);  // 1.0
  const auto t0 = Clock::now();
  for (long i = 0; i < iterations; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < 16; ++j) acc[j] = _mm512_dpbf16_ps(acc[j], x, x);
  const double s = seconds_since(t0);
  keep(acc);
  return iterations * 16.0 * 64 / s * 1e-9;
}

struct ConvShape {
  const char* name;
  int h, cin, cout, k, stride;
};

// ResNet50's heaviest conv shapes (named by the first Keras layer with the shape).
const ConvShape kShapes[] = {
    {"conv1_conv", 230, 3, 64, 7, 2},          {"conv2_block1_1_conv", 56, 64, 64, 1, 1},
    {"conv2_block1_2_conv", 56, 64, 64, 3, 1}, {"conv2_block2_1_conv", 56, 256, 64, 1, 1},
    {"conv3_block2_2_conv", 28, 128, 128, 3, 1}, {"conv4_block2_2_conv", 14, 256, 256, 3, 1},
    {"conv4_block2_1_conv", 14, 1024, 256, 1, 1}, {"conv5_block2_2_conv", 7, 512, 512, 3, 1},
};

struct Conv {
  dnnl::convolution_forward prim;
  dnnl::memory src, weights, bias, dst;
  std::string impl;
};

Conv make_conv(dnnl::engine& eng, const ConvShape& s, int batch, dt type) {
  const int pad = s.k == 3 ? 1 : 0, out = (s.h + 2 * pad - s.k) / s.stride + 1;
  const dnnl::memory::desc src({batch, s.cin, s.h, s.h}, type, tag::nhwc),
      weights({s.cout, s.cin, s.k, s.k}, type, tag::any), bias({s.cout}, dt::f32, tag::x),
      dst({batch, s.cout, out, out}, type, tag::nhwc);
  const dnnl::convolution_forward::desc d(
      dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src, weights, bias,
      dst, {s.stride, s.stride}, {pad, pad}, {pad, pad});
  dnnl::post_ops ops;
  ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
  dnnl::primitive_attr attr;
  attr.set_post_ops(ops);
  const dnnl::convolution_forward::primitive_desc pd(d, attr, eng);
  Conv c{dnnl::convolution_forward(pd), dnnl::memory(pd.src_desc(), eng),
         dnnl::memory(pd.weights_desc(), eng), dnnl::memory(pd.bias_desc(), eng),
         dnnl::memory(pd.dst_desc(), eng), pd.impl_info_str()};
  for (dnnl::memory* m : {&c.src, &c.weights, &c.bias, &c.dst})  // zeros: no NaN, no denormal
    std::fill_n(static_cast<char*>(m->get_data_handle()), m->get_desc().get_size(), 0);
  return c;
}

double run_once(Conv& c, dnnl::stream& st) {
  const auto t0 = Clock::now();
  c.prim.execute(st, {{DNNL_ARG_SRC, c.src},
                      {DNNL_ARG_WEIGHTS, c.weights},
                      {DNNL_ARG_BIAS, c.bias},
                      {DNNL_ARG_DST, c.dst}});
  st.wait();
  return seconds_since(t0);
}

}  // namespace

int main(int argc, char** argv) {
  int batch = 32, threads = 2, repeats = 5;
  long iterations = 100000000;
  bench::po::options_description opts("bench_bf16_kernels options");
  auto add = opts.add_options();
  add("help,h", "show this help");
  add("batch", bench::po::value(&batch)->default_value(batch), "images per convolution");
  add("threads", bench::po::value(&threads)->default_value(threads), "oneDNN threads");
  add("repeats", bench::po::value(&repeats)->default_value(repeats), "timed runs per conv");
  add("iterations", bench::po::value(&iterations)->default_value(iterations),
      "loop trips of the peak measurement");
  bench::parse_or_exit(argc, argv, "bench_bf16_kernels", opts);
  bench::require_at_least("bench_bf16_kernels", "batch", batch, 1);
  bench::require_at_least("bench_bf16_kernels", "threads", threads, 1);
  bench::require_at_least("bench_bf16_kernels", "repeats", repeats, 1);
  bench::require_at_least("bench_bf16_kernels", "iterations", iterations, 1000);
  parafine::set_threads(threads);

  const parafine::CpuBfloat16 cpu = parafine::cpu_bfloat16();
  std::printf("CPU: avx512_bf16 %d, amx_bf16 %d\n", cpu.avx512_bf16, cpu.amx_bf16);
  if (cpu.avx512_bf16) {
    // Alternating, best of 5 each: a shared core slows either one, never speeds it up.
    double f = 0, b = 0;
    for (int r = 0; r < 5; ++r) {
      f = std::max(f, fma_gflops(iterations / 5));
      b = std::max(b, dpbf16_gflops(iterations / 5));
    }
    std::printf("one core's peak (best of 5, alternating): FMA float32 %.1f GFLOP/s, bfloat16 "
                "dot product %.1f GFLOP/s (%.2fx)\n", f, b, b / f);
  }
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream st(eng);
  std::printf("\noneDNN convolutions, batch %d, %d thread(s), median of %d (ms); x = float32 "
              "time / bfloat16 time\n", batch, threads, repeats);
  std::printf("%-22s %10s %10s %6s  %s\n", "shape", "float32", "bfloat16", "x", "bfloat16 impl");
  double total_f = 0, total_b = 0;
  for (const ConvShape& s : kShapes) {
    Conv f = make_conv(eng, s, batch, dt::f32);
    Conv b;
    try {
      b = make_conv(eng, s, batch, dt::bf16);
    } catch (const dnnl::error& e) {
      std::printf("%-22s no bfloat16 convolution on this CPU (%s)\n", s.name, e.what());
      continue;
    }
    run_once(f, st);
    run_once(b, st);
    std::vector<double> tf, tb;
    for (int r = 0; r < repeats; ++r) {
      tf.push_back(run_once(f, st));
      tb.push_back(run_once(b, st));
    }
    const double mf = median(tf), mb = median(tb);
    total_f += mf;
    total_b += mb;
    std::printf("%-22s %10.2f %10.2f %6.2f  %s\n", s.name, mf * 1e3, mb * 1e3, mf / mb,
                b.impl.c_str());
  }
  if (total_b > 0)
    std::printf("%-22s %10.2f %10.2f %6.2f\n", "all of the above", total_f * 1e3, total_b * 1e3,
                total_f / total_b);
  return 0;
}
