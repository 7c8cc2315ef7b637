// bench_data_pipeline: can the data pipeline keep up with training? On the real cats_dogs photos
// (1000 train + 400 val JPEGs of many sizes) it measures, each as the median of --repeats runs:
//   decode          decode_image_file alone, images/s and MP/s, with 1 and 2 threads
//   decode+resize   decode_image_file + resize_bilinear to SxS (what FolderSource::load does),
//                   images/s in total and per thread
//   convert         write_image_dataset of the train split at SxS into a file under /tmp
//   h5 read         H5Source::load of that file in a shuffled order (hyperslab per image,
//                   uint8 -> float), 1 and 2 threads; and H5Source::load in file order followed
//                   by caffe preprocessing (prepare_sample), one thread; images/s and MB/s of
//                   stored pixels
//   prefetch        BatchPrefetcher delivering caffe-preprocessed batches of --batch at SxS for
//                   one shuffled epoch of the train split, from the folder and from the .h5,
//                   with 1 and 2 loader threads; images/s
//   forward         the frozen-base forward (inference mode, batch --batch, --threads compute
//                   threads) that consumes those batches; the pipeline should deliver >= 3x it
// Files are read through the page cache: after the first pass they are warm, so these are
// decode/HDF5 rates, not disk rates. CPU/wall shows how many cores a run actually got (the
// machine is shared; a figure well below the thread count means someone else was busy).
//
//   bench_data_pipeline [--data ../shared/data/cats_dogs] [--image-size 224] [--batch 32]
//                       [--repeats 5] [--threads 2] [--h5 /tmp/parafine_bench_<pid>.h5]
//                       [--keep-h5] [--no-forward]
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "parafine/core/compute.hpp"
#include "parafine/data/data_order.hpp"
#include "parafine/data/folder_source.hpp"
#include "parafine/data/h5_dataset.hpp"
#include "parafine/data/h5_dataset_writer.hpp"
#include "parafine/data/image_decode.hpp"
#include "parafine/data/image_folder.hpp"
#include "parafine/data/prefetcher.hpp"
#include "parafine/data/sample_source.hpp"
#include "parafine/model/initializers.hpp"
#include "parafine/model/backbone.hpp"

namespace {

using namespace parafine;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double process_cpu_seconds() {  // all threads, user + system
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

std::string command_output(const char* cmd) {
  std::string out;
  if (FILE* p = popen(cmd, "r")) {
    char buf[512];
    while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    pclose(p);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

std::string load_average() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct Options {
  std::string data = PARAFINE_CATS_DOGS_DIR;  // ../shared/data/cats_dogs beside the repository
  int image_size = 224, batch = 32, repeats = 5, threads = 2;
  std::string h5;
  bool keep_h5 = false, forward = true;
};

[[noreturn]] void usage(const std::string& error) {
  std::cerr
      << "bench_data_pipeline: " << error << "\n"
      << "usage: bench_data_pipeline [--data DIR] [--image-size 224] [--batch 32] [--repeats 5]\n"
         "                           [--threads 2] [--h5 FILE] [--keep-h5] [--no-forward]\n";
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  o.h5 = "/tmp/parafine_bench_" + std::to_string(::getpid()) + ".h5";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(a + " needs a value");
      return argv[++i];
    };
    auto number = [&]() {
      const std::string v = value();
      try {
        return std::stoi(v);
      } catch (...) {
        usage(a + " needs a number, got '" + v + "'");
      }
    };
    if (a == "--data")
      o.data = value();
    else if (a == "--image-size")
      o.image_size = number();
    else if (a == "--batch")
      o.batch = number();
    else if (a == "--repeats")
      o.repeats = number();
    else if (a == "--threads")
      o.threads = number();
    else if (a == "--h5")
      o.h5 = value();
    else if (a == "--keep-h5")
      o.keep_h5 = true;
    else if (a == "--no-forward")
      o.forward = false;
    else
      usage("unknown option " + a);
  }
  if (o.image_size < 32 || o.batch < 1 || o.repeats < 1 || o.threads < 1)
    usage("sizes and counts must be positive");
  return o;
}

// One timed run: wall seconds and the cores it got (process CPU seconds / wall seconds).
struct Run {
  double seconds = 0, cores = 0;
};

Run timed(const std::function<void()>& work) {
  const double cpu0 = process_cpu_seconds();
  const auto t0 = Clock::now();
  work();
  Run r;
  r.seconds = seconds_since(t0);
  r.cores = (process_cpu_seconds() - cpu0) / r.seconds;
  return r;
}

// Runs `work` --repeats times; prints per-run rates and returns the median items/s.
double report(const std::string& what, int repeats, double items, const std::string& unit,
              const std::function<void()>& work, double bytes_per_item = 0) {
  std::vector<double> rates, cores;
  for (int r = 0; r < repeats; ++r) {
    const Run run = timed(work);
    rates.push_back(items / run.seconds);
    cores.push_back(run.cores);
  }
  const double med = median(rates);
  std::cout << std::left << std::setw(46) << what << std::right << std::fixed
            << std::setprecision(1) << std::setw(9) << med << " " << unit;
  if (bytes_per_item > 0)
    std::cout << " (" << std::setprecision(1) << med * bytes_per_item / 1e6 << " MB/s)";
  std::cout << "   runs:";
  for (double x : rates) std::cout << " " << std::setprecision(0) << x;
  // Rate per core actually obtained: comparable across runs when a neighbour takes a core.
  std::vector<double> per_core;
  for (std::size_t r = 0; r < rates.size(); ++r)
    per_core.push_back(rates[r] / std::max(cores[r], 1e-9));
  std::cout << "  cpu/wall " << std::setprecision(2) << median(cores) << ", "
            << std::setprecision(1) << median(per_core) << " " << unit << " per busy core\n";
  return med;
}

// Runs body(i) for i in [0, n) on `threads` threads (atomic work counter).
void parallel_for(int n, int threads, const std::function<void(int)>& body) {
  std::atomic<int> next{0};
  auto work = [&] {
    for (int i = next++; i < n; i = next++) body(i);
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  const int S = o.image_size;
  std::string cpu = command_output("lscpu | sed -n 's/^Model name: *//p'");
  std::cout << "bench_data_pipeline: " << (cpu.empty() ? "unknown CPU" : cpu) << ", "
            << std::thread::hardware_concurrency() << " hardware threads, load average "
            << load_average() << "\n"
            << "data " << o.data << ", image size " << S << ", batch " << o.batch << ", "
            << o.repeats << " repeats (median reported; runs listed), warm page cache\n\n";

  try {
    // ---- the photos ----
    std::vector<std::string> files;
    for (const char* split : {"train", "val"}) {
      const ImageFolder f = scan_image_folder(o.data + "/" + split);
      files.insert(files.end(), f.files.begin(), f.files.end());
    }
    const int n = static_cast<int>(files.size());
    double megapixels = 0;
    for (const auto& f : files) {  // also warms the page cache
      const RgbImage img = decode_image_file(f);
      megapixels += img.width * static_cast<double>(img.height) / 1e6;
    }
    std::cout << n << " photos, " << std::setprecision(3) << megapixels / n << " MP on average\n";

    std::vector<double> decode_resize_rate(3, 0);
    for (int threads : {1, 2}) {
      const std::string t =
          " (" + std::to_string(threads) + " thread" + (threads > 1 ? "s" : "") + ")";
      const double d = report("decode" + t, o.repeats, n, "img/s", [&] {
        parallel_for(n, threads, [&](int i) { decode_image_file(files[static_cast<size_t>(i)]); });
      });
      std::cout << "    = " << std::setprecision(1) << d * megapixels / n << " MP/s, "
                << d / threads << " img/s per thread\n";
      decode_resize_rate[static_cast<size_t>(threads)] =
          report("decode+resize to " + std::to_string(S) + t, o.repeats, n, "img/s", [&] {
            parallel_for(n, threads, [&](int i) {
              thread_local std::vector<float> out;
              out.resize(static_cast<size_t>(S) * S * 3);
              const RgbImage img = decode_image_file(files[static_cast<size_t>(i)]);
              resize_bilinear(img.pixels.data(), img.height, img.width, out.data(), S, S);
            });
          });
      std::cout << "    = " << std::setprecision(1)
                << decode_resize_rate[static_cast<size_t>(threads)] / threads
                << " img/s per thread\n";
    }

    // ---- convert the train split, then read it back ----
    const FolderSource train(o.data + "/train", BadImagePolicy::kFail, 2, nullptr);
    const int nt = train.size();
    report("convert train split to .h5 at " + std::to_string(S) + " (2 threads)", 1, nt, "img/s",
           [&] { write_image_dataset(train, o.h5, S, 2, nullptr); });
    const double bytes_per_image = static_cast<double>(S) * S * 3;
    std::cout << "    " << o.h5 << ": " << nt << " images, " << std::setprecision(1)
              << nt * bytes_per_image / 1e6 << " MB of pixels\n";
    double h5_rate[3] = {0, 0, 0};
    {
      const H5Source h5(o.h5);
      const std::vector<int> order = epoch_order(nt, true, 1, 0);
      for (int threads : {1, 2}) {
        h5_rate[threads] = report(
            "h5 H5Source::load, shuffled (" + std::to_string(threads) + " thread" +
                (threads > 1 ? "s" : "") + ")",
            o.repeats, nt, "img/s",
            [&] {
              parallel_for(nt, threads, [&](int k) {
                thread_local std::vector<float> out;
                out.resize(static_cast<size_t>(S) * S * 3);
                h5.load(order[static_cast<size_t>(k)], S, out.data());
              });
            },
            bytes_per_image);
      }
      // In file order with caffe preprocessing, as the prefetcher's loaders do it (one hyperslab
      // per image); the shuffled rows above leave out the preprocessing.
      std::vector<float> image(static_cast<size_t>(S) * S * 3);
      report(
          "h5 H5Source::load, in order, caffe (1 thread)", o.repeats, nt, "img/s",
          [&] {
            for (int k = 0; k < nt; ++k) {
              h5.load(k, S, image.data());
              prepare_sample(image.data(), S, false, Preprocess::kCaffe);
            }
          },
          bytes_per_image);
    }

    // ---- the prefetcher: what training actually receives ----
    double prefetch_rate[2][3] = {{0, 0, 0}, {0, 0, 0}};  // [folder, h5][threads]
    {
      const H5Source h5(o.h5);
      const ShardPlan plan(nt, o.batch, 1, 0, true, 1, "--train");
      const auto steps = plan.local_batches(0);
      for (int from = 0; from < 2; ++from) {
        const SampleSource& src = from == 0 ? static_cast<const SampleSource&>(train) : h5;
        for (int threads : {1, 2}) {
          PrefetchConfig c;
          c.image_size = S;
          c.preprocess = Preprocess::kCaffe;
          c.threads = threads;
          c.depth = 3;
          prefetch_rate[from][threads] =
              report(std::string("prefetch batches of ") + std::to_string(o.batch) + " from " +
                         (from == 0 ? "folder" : ".h5   ") + " (" + std::to_string(threads) +
                         " loader" + (threads > 1 ? "s" : "") + ")",
                     o.repeats, nt, "img/s", [&] {
                       BatchPrefetcher pf(src, steps, c);
                       Batch b;
                       while (pf.next(b)) {
                       }
                     });
        }
      }
    }

    // ---- the consumer: the frozen-base forward ----
    double forward_rate = 0;
    if (o.forward) {
      set_threads(o.threads);
      NetworkConfig net;
      net.image_size = S;
      Model model = build_network(net);
      keras_initialize(model, 1);
      freeze_base(model);
      PrefetchConfig c;
      c.image_size = S;
      BatchPrefetcher pf(train, {[&] {
                           std::vector<int> idx(static_cast<size_t>(o.batch));
                           for (int i = 0; i < o.batch; ++i) idx[static_cast<size_t>(i)] = i;
                           return idx;
                         }()},
                         c);
      Batch b;
      pf.next(b);
      model.calibrate_batch_norm(b.images);
      model.forward(b.images, false);  // warm-up
      forward_rate =
          report("frozen-base forward, batch " + std::to_string(o.batch) + " (" +
                     std::to_string(o.threads) + " compute threads)",
                 std::min(o.repeats, 3), o.batch, "img/s", [&] { model.forward(b.images, false); });
    }

    std::cout << "\nsummary (medians; load average now " << load_average() << "):\n"
              << std::setprecision(1) << "  decode+resize to " << S << ": " << decode_resize_rate[1]
              << " img/s on 1 thread, " << decode_resize_rate[2] / 2 << " img/s per thread on 2\n"
              << "  HDF5 read (H5Source, shuffled): " << h5_rate[1]
              << " img/s = " << h5_rate[1] * bytes_per_image / 1e6 << " MB/s on 1 thread, "
              << h5_rate[2] << " img/s on 2\n"
              << "  prefetcher delivers: folder " << prefetch_rate[0][1] << " / "
              << prefetch_rate[0][2] << " img/s, .h5 " << prefetch_rate[1][1] << " / "
              << prefetch_rate[1][2] << " img/s (1 / 2 loader threads)\n";
    if (o.forward) {
      std::cout << "  frozen-base forward consumes " << forward_rate
                << " img/s; the pipeline delivers " << std::setprecision(1)
                << prefetch_rate[0][1] / forward_rate << "x (folder, 1 loader), "
                << prefetch_rate[0][2] / forward_rate << "x (folder, 2 loaders), "
                << prefetch_rate[1][1] / forward_rate << "x (.h5, 1 loader) of it; target >= 3x\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "bench_data_pipeline: " << e.what() << "\n";
    if (!o.keep_h5) std::remove(o.h5.c_str());
    return 1;
  }
  if (!o.keep_h5) std::remove(o.h5.c_str());
  return 0;
}
