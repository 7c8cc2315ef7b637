// BatchPrefetcher and sample sources: batches come out in step order with the same content for
// 1 and 4 threads and depth 1 and 4; flip augmentation is seeded and flips about half; a
// load() exception surfaces in next(); destruction mid-epoch does not hang; at most `depth`
// batches are decoded ahead; H5Source reads the pixels a one-hyperslab batch read does
// (read_h5_batch, test_util.hpp: the independent reference).
#include <gtest/gtest.h>

#include <mutex>

#include <unistd.h>
#include <condition_variable>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <future>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <thread>

#include "parafine/core/rng.hpp"
#include "parafine/data/data_order.hpp"
#include "parafine/data/prefetcher.hpp"
#include "parafine/data/sample_source.hpp"
#include "test_util.hpp"

namespace parafine {
namespace {

using namespace std::chrono_literals;
using test_util::max_abs_diff;
using test_util::random_pixels;
using test_util::read_h5_batch;
using test_util::TempDir;
using test_util::write_h5_images;

// N random RGB images [H,W,3] with labels i % classes.
InMemorySource random_source(int N, int H, int W, int classes, std::uint64_t seed) {
  std::vector<unsigned char> px = random_pixels(static_cast<size_t>(N) * H * W * 3, seed);
  std::vector<int> labels(static_cast<size_t>(N));
  for (int i = 0; i < N; ++i) labels[static_cast<size_t>(i)] = i % classes;
  return InMemorySource(N, H, W, std::move(px), std::move(labels), classes);
}

// The batches a serial loop would produce: load, optional flip, preprocess, sample by sample.
std::vector<Batch> serial_batches(const SampleSource& src,
                                  const std::vector<std::vector<int>>& steps,
                                  const PrefetchConfig& c) {
  std::vector<Batch> out;
  const std::size_t per = static_cast<std::size_t>(c.image_size) * c.image_size * 3;
  for (std::size_t k = 0; k < steps.size(); ++k) {
    Batch b;
    b.step = static_cast<int>(k);
    b.indices = steps[k];
    b.images.resize(Shape{static_cast<int>(steps[k].size()), c.image_size, c.image_size, 3});
    for (std::size_t p = 0; p < steps[k].size(); ++p) {
      const int i = steps[k][p];
      b.labels.push_back(src.label(i));
      src.load(i, c.image_size, b.images.data() + per * p);
      prepare_sample(b.images.data() + per * p, c.image_size,
                     c.augment.find(AugmentKind::kFlip) && flip_decision(c.seed, c.epoch, i),
                     c.preprocess);
    }
    out.push_back(std::move(b));
  }
  return out;
}

std::vector<Batch> drain(BatchPrefetcher& pf) {
  std::vector<Batch> out;
  Batch b;
  while (pf.next(b)) {
    Batch copy;
    copy.step = b.step;
    copy.images = b.images;
    copy.labels = b.labels;
    copy.indices = b.indices;
    out.push_back(std::move(copy));
  }
  return out;
}

// Max |a-b| over images, and exact equality of everything else.
double compare(const std::vector<Batch>& got, const std::vector<Batch>& want) {
  EXPECT_EQ(got.size(), want.size());
  double worst = 0;
  for (std::size_t k = 0; k < std::min(got.size(), want.size()); ++k) {
    EXPECT_EQ(got[k].step, want[k].step);
    EXPECT_EQ(got[k].indices, want[k].indices) << "step " << k;
    EXPECT_EQ(got[k].labels, want[k].labels) << "step " << k;
    EXPECT_EQ(got[k].images.shape(), want[k].images.shape()) << "step " << k;
    if (got[k].images.shape() != want[k].images.shape()) return INFINITY;
    worst = std::max(
        worst, max_abs_diff(got[k].images.data(), want[k].images.data(), got[k].images.numel()));
  }
  return worst;
}

TEST(Prefetcher, SameOrderAndPixelsForAnyThreadsAndDepth) {
  const InMemorySource src = random_source(37, 10, 12, 3, 1);  // resized 10x12 -> 8x8
  // Rank 2 of 3, global batch 8, shuffled: local batches of 2 or 3 samples, then 2 of 5.
  const ShardPlan plan(37, 8, 3, 2, true, 5);
  const auto steps = plan.local_batches(4);
  for (const char* aug : {"none", "flip"}) {
    PrefetchConfig c;
    c.image_size = 8;
    c.augment = parse_augment(aug);
    c.seed = 11;
    c.epoch = 4;
    const auto want = serial_batches(src, steps, c);
    for (int threads : {1, 4})
      for (int depth : {1, 4}) {
        c.threads = threads;
        c.depth = depth;
        BatchPrefetcher pf(src, steps, c);
        EXPECT_EQ(pf.steps(), plan.steps());
        const double err = compare(drain(pf), want);
        std::cout << "augment " << aug << " threads " << threads << " depth " << depth
                  << ": max |prefetched - serial| = " << err << "\n";
        EXPECT_EQ(err, 0.0);
      }
  }
}

TEST(Prefetcher, TwoRunsSameSeedSameOrder) {
  const InMemorySource src = random_source(33, 6, 6, 4, 2);
  PrefetchConfig c;
  c.image_size = 6;
  c.augment = parse_augment("flip");
  c.seed = 3;
  c.epoch = 1;
  std::vector<std::vector<Batch>> runs;
  for (int threads : {1, 4, 1, 4}) {
    c.threads = threads;
    BatchPrefetcher pf(src, ShardPlan(33, 4, 1, 0, true, 3).local_batches(1), c);
    runs.push_back(drain(pf));
  }
  for (std::size_t r = 1; r < runs.size(); ++r)
    EXPECT_EQ(compare(runs[r], runs[0]), 0.0) << "run " << r;
  EXPECT_NE(runs[0][0].indices, (std::vector<int>{0, 1, 2, 3})) << "shuffled";
}

TEST(Prefetcher, FlipIsSeededAndFlipsAboutHalf) {
  int flipped = 0;
  const int n = 2000;
  for (int i = 0; i < n; ++i) flipped += flip_decision(7, 0, i);
  std::cout << flipped << " of " << n << " samples flipped\n";
  EXPECT_GT(flipped, n * 0.45);
  EXPECT_LT(flipped, n * 0.55);
  int same_other_epoch = 0, same_other_seed = 0;
  for (int i = 0; i < n; ++i) {
    same_other_epoch += flip_decision(7, 0, i) == flip_decision(7, 1, i);
    same_other_seed += flip_decision(7, 0, i) == flip_decision(8, 0, i);
    EXPECT_EQ(flip_decision(7, 0, i), flip_decision(7, 0, i));
  }
  EXPECT_LT(same_other_epoch, n * 0.6) << "another epoch gives other flips";
  EXPECT_LT(same_other_seed, n * 0.6) << "another seed gives other flips";

  // The delivered images of flipped samples are the mirror images of the unflipped ones.
  const InMemorySource src = random_source(64, 5, 5, 2, 3);
  std::vector<std::vector<int>> steps;
  for (int k = 0; k < 8; ++k)
    steps.push_back(
        {8 * k, 8 * k + 1, 8 * k + 2, 8 * k + 3, 8 * k + 4, 8 * k + 5, 8 * k + 6, 8 * k + 7});
  PrefetchConfig c;
  c.image_size = 5;
  c.preprocess = Preprocess::kNone;
  c.threads = 3;
  BatchPrefetcher plain(src, steps, c);
  c.augment = parse_augment("flip");
  c.seed = 21;
  BatchPrefetcher aug(src, steps, c);
  const auto a = drain(plain), b = drain(aug);
  int mirrored = 0, kept = 0;
  for (std::size_t k = 0; k < a.size(); ++k)
    for (int p = 0; p < 8; ++p) {
      const float* x = a[k].images.data() + p * 75;
      const float* y = b[k].images.data() + p * 75;
      const bool flip = flip_decision(21, 0, a[k].indices[static_cast<size_t>(p)]);
      for (int row = 0; row < 5; ++row)
        for (int col = 0; col < 5; ++col)
          for (int ch = 0; ch < 3; ++ch)
            ASSERT_EQ(y[(row * 5 + col) * 3 + ch], x[(row * 5 + (flip ? 4 - col : col)) * 3 + ch]);
      (flip ? mirrored : kept)++;
    }
  std::cout << mirrored << " mirrored, " << kept << " kept\n";
  EXPECT_GT(mirrored, 16);
  EXPECT_GT(kept, 16);
  EXPECT_THROW(parse_augment("rotate"), std::invalid_argument);
}

TEST(Prefetcher, EmptyBatchesAreDeliveredAsSizeZero) {
  const InMemorySource src = random_source(33, 4, 4, 2, 4);
  const ShardPlan plan(33, 8, 4, 0, false, 0);  // last batch = {32}: rank 0 gets nothing
  PrefetchConfig c;
  c.image_size = 4;
  c.threads = 2;
  c.depth = 1;
  BatchPrefetcher pf(src, plan.local_batches(0), c);
  const auto got = drain(pf);
  ASSERT_EQ(got.size(), 5u);
  EXPECT_EQ(got[4].step, 4);
  EXPECT_EQ(got[4].size(), 0);
  EXPECT_EQ(got[4].images.shape(), (Shape{0, 4, 4, 3}));
  EXPECT_EQ(got[0].indices, (std::vector<int>{0, 1}));
  // All-empty step lists too.
  BatchPrefetcher empty(src, std::vector<std::vector<int>>(3), c);
  EXPECT_EQ(drain(empty).size(), 3u);
}

// Wraps a source: counts loads, optionally sleeps, throws for one sample.
class InstrumentedSource : public SampleSource {
 public:
  InstrumentedSource(const SampleSource& inner, int bad_sample, std::chrono::milliseconds delay)
      : inner_(inner), bad_(bad_sample), delay_(delay) {}
  int size() const override { return inner_.size(); }
  int classes() const override { return inner_.classes(); }
  const std::vector<std::string>& class_names() const override { return inner_.class_names(); }
  int label(int i) const override { return inner_.label(i); }
  void load(int i, int image_size, float* out) const override {
    if (delay_.count() > 0) std::this_thread::sleep_for(delay_);
    if (i == bad_)
      throw std::runtime_error("broken.h5: image " + std::to_string(i) + " is damaged");
    inner_.load(i, image_size, out);
    ++loads;
    int seen = max_sample.load();
    while (i > seen && !max_sample.compare_exchange_weak(seen, i)) {
    }
  }
  mutable std::atomic<int> loads{0};
  mutable std::atomic<int> max_sample{-1};

 private:
  const SampleSource& inner_;
  int bad_;
  std::chrono::milliseconds delay_;
};

TEST(Prefetcher, LoadErrorSurfacesInNext) {
  const InMemorySource inner = random_source(40, 4, 4, 2, 5);
  for (int threads : {1, 4}) {
    const InstrumentedSource src(inner, 13, 0ms);
    PrefetchConfig c;
    c.image_size = 4;
    c.threads = threads;
    BatchPrefetcher pf(src, ShardPlan(40, 5, 1, 0, false, 0).local_batches(0), c);
    Batch b;
    std::string message;
    int delivered = 0;
    try {
      while (pf.next(b)) ++delivered;
    } catch (const std::runtime_error& e) {
      message = e.what();
    }
    std::cout << "threads " << threads << ": " << delivered << " batches, then: " << message
              << "\n";
    EXPECT_EQ(message, "broken.h5: image 13 is damaged");
    EXPECT_LE(delivered, 2) << "sample 13 is in step 2";
    EXPECT_THROW(pf.next(b), std::runtime_error) << "the error sticks";
  }
}

// A batch that completes after a later sample failed is not delivered: once next() has thrown,
// every call throws. Sample 4 (step 0) waits until the test releases it; sample 5 (step 1)
// fails at once. The test releases sample 4 only after the first next() has thrown and waits
// until step 0 is complete; next() must still rethrow rather than hand step 0 out.
class HeldThenBrokenSource : public SampleSource {
 public:
  explicit HeldThenBrokenSource(const SampleSource& inner) : inner_(inner) {}
  int size() const override { return inner_.size(); }
  int classes() const override { return inner_.classes(); }
  const std::vector<std::string>& class_names() const override { return inner_.class_names(); }
  int label(int i) const override { return inner_.label(i); }
  void load(int i, int image_size, float* out) const override {
    if (i == 5) throw std::runtime_error("broken.h5: image 5 is damaged");
    if (i == 4) {
      std::unique_lock<std::mutex> lock(m_);
      cv_.wait(lock, [this] { return released_; });
    }
    inner_.load(i, image_size, out);
    if (i == 4) {
      std::lock_guard<std::mutex> lock(m_);
      held_done_ = true;
      cv_.notify_all();
    }
  }
  void release() {
    std::lock_guard<std::mutex> lock(m_);
    released_ = true;
    cv_.notify_all();
  }
  void wait_held_done() {
    std::unique_lock<std::mutex> lock(m_);
    cv_.wait(lock, [this] { return held_done_; });
  }

 private:
  const SampleSource& inner_;
  mutable std::mutex m_;
  mutable std::condition_variable cv_;
  bool released_ = false;
  mutable bool held_done_ = false;
};

TEST(Prefetcher, NoBatchIsDeliveredAfterTheError) {
  const InMemorySource inner = random_source(20, 4, 4, 2, 6);
  HeldThenBrokenSource src(inner);
  PrefetchConfig c;
  c.image_size = 4;
  c.threads = 4;
  BatchPrefetcher pf(src, ShardPlan(20, 5, 1, 0, false, 0).local_batches(0), c);
  Batch b;
  EXPECT_THROW(pf.next(b), std::runtime_error) << "sample 5 fails while step 0 waits for sample 4";
  src.release();
  src.wait_held_done();
  std::this_thread::sleep_for(
      50ms);  // the worker records sample 4 (step 0 complete) under the prefetcher's lock
  EXPECT_THROW(pf.next(b), std::runtime_error) << "a batch was handed out after the error";
}

// Runs f on another thread; fails if it does not finish within the timeout.
template <class F>
bool finishes_within(F f, std::chrono::seconds timeout) {
  auto fut = std::async(std::launch::async, f);
  if (fut.wait_for(timeout) != std::future_status::ready) {
    std::cerr << "timed out after " << timeout.count() << " s: a hang\n";
    std::fflush(nullptr);
    std::_Exit(1);  // the future's destructor would block on the hung task
  }
  fut.get();
  return true;
}

TEST(Prefetcher, DestructionMidEpochDoesNotHang) {
  const InMemorySource inner = random_source(200, 8, 8, 2, 6);
  const InstrumentedSource slow(inner, -1, 2ms);
  const auto steps = ShardPlan(200, 4, 1, 0, true, 1).local_batches(0);
  for (int threads : {1, 4})
    for (int consume : {0, 1, 7}) {
      EXPECT_TRUE(finishes_within(
          [&] {
            PrefetchConfig c;
            c.image_size = 8;
            c.threads = threads;
            BatchPrefetcher pf(slow, steps, c);
            Batch b;
            for (int k = 0; k < consume; ++k) ASSERT_TRUE(pf.next(b));
          },
          10s))
          << "threads " << threads << " consume " << consume;
    }
  // After an error, too.
  const InstrumentedSource bad(inner, 3, 1ms);
  EXPECT_TRUE(finishes_within(
      [&] {
        PrefetchConfig c;
        c.image_size = 8;
        c.threads = 4;
        BatchPrefetcher pf(bad, steps, c);
        Batch b;
        EXPECT_THROW(while (pf.next(b)){}, std::runtime_error);
      },
      10s));
}

TEST(Prefetcher, AtMostDepthBatchesDecodedAhead) {
  const InMemorySource inner = random_source(60, 4, 4, 2, 7);
  const InstrumentedSource src(inner, -1, 0ms);
  std::vector<std::vector<int>> steps;  // step k = samples 5k..5k+4, in order
  for (int k = 0; k < 12; ++k) steps.push_back({5 * k, 5 * k + 1, 5 * k + 2, 5 * k + 3, 5 * k + 4});
  PrefetchConfig c;
  c.image_size = 4;
  c.threads = 4;
  c.depth = 3;
  BatchPrefetcher pf(src, steps, c);
  auto settle = [&] {  // wait until the workers stop loading
    int last = -1;
    for (int i = 0; i < 200 && src.loads.load() != last; ++i) {
      last = src.loads.load();
      std::this_thread::sleep_for(20ms);
    }
  };
  settle();
  std::cout << "before any next(): " << src.loads << " samples loaded, highest " << src.max_sample
            << "\n";
  EXPECT_EQ(src.loads.load(), 15) << "3 batches of 5";
  EXPECT_EQ(src.max_sample.load(), 14);
  Batch b;
  ASSERT_TRUE(pf.next(b));
  settle();
  std::cout << "after one next(): " << src.loads << " samples loaded\n";
  EXPECT_EQ(src.loads.load(), 20);
  EXPECT_EQ(src.max_sample.load(), 19);
}

TEST(Prefetcher, BadConfigIsRejected) {
  const InMemorySource src = random_source(5, 4, 4, 2, 8);
  PrefetchConfig c;
  c.image_size = 4;
  c.threads = 0;
  EXPECT_THROW(BatchPrefetcher(src, {{0}}, c), std::invalid_argument);
  c.threads = 1;
  c.depth = 0;
  EXPECT_THROW(BatchPrefetcher(src, {{0}}, c), std::invalid_argument);
  c.depth = 2;
  try {
    BatchPrefetcher(src, {{0, 1}, {9}}, c);
    ADD_FAILURE() << "an index outside the source must throw";
  } catch (const std::invalid_argument& e) {
    std::cout << e.what() << "\n";
    EXPECT_NE(std::string(e.what()).find("sample index 9 in step 1"), std::string::npos);
  }
}

// H5Source (one hyperslab per sample, alone and through the prefetcher) against the
// reference read_h5_batch (one hyperslab per batch, its own conversion; test_util.hpp).
TEST(H5Source, ReadsTheSamePixelsAsABatchRead) {
  const TempDir tmp("parafine_test_prefetcher");
  const std::string path = tmp.file("images.h5");
  for (const int W : {9, 7}) {  // non-square (always resized) and square (copied at S = 7)
    SCOPED_TRACE("stored width " + std::to_string(W));
    const int N = 6, H = 7;
    write_h5_images(path, N, H, W, random_pixels(static_cast<size_t>(N) * H * W * 3, 9),
                    {2, 0, 1, 1, 0, 2});
    {
      const H5ImageDataset ds(path);
      const H5Source src(path);
      ASSERT_EQ(src.size(), N);
      EXPECT_EQ(src.classes(), 3);
      for (int i = 0; i < N; ++i) EXPECT_EQ(src.label(i), ds.labels()[static_cast<size_t>(i)]);
      for (int S : {5, 7, 12}) {
        const Tensor want = read_h5_batch(path, 0, N, S, Preprocess::kNone);
        const std::size_t per = static_cast<std::size_t>(S) * S * 3;
        std::vector<float> got(per);
        double worst = 0;
        for (int i = 0; i < N; ++i) {
          src.load(i, S, got.data());
          worst = std::max(worst, max_abs_diff(got.data(), want.data() + per * i, per));
        }
        std::cout << "stored " << H << "x" << W << ", image size " << S
                  << ": max |H5Source - batch read| = " << worst << "\n";
        EXPECT_EQ(worst, 0.0);
      }
      // Through the prefetcher with caffe preprocessing and 4 threads, against the batch read
      // with caffe (which takes hdf5_mutex(), as the prefetcher's loaders may be reading).
      PrefetchConfig c;
      c.image_size = 8;
      c.threads = 4;
      c.depth = 2;
      BatchPrefetcher pf(src, {{0, 1, 2}, {3, 4, 5}}, c);
      const Tensor want = read_h5_batch(path, 0, N, 8, Preprocess::kCaffe);
      const auto got = drain(pf);
      ASSERT_EQ(got.size(), 2u);
      double worst = 0;
      for (int k = 0; k < 2; ++k) {
        const Tensor& images = got[static_cast<size_t>(k)].images;
        const float* reference = want.data() + k * 3 * 8 * 8 * 3;
        worst = std::max(worst, max_abs_diff(images.data(), reference, images.numel()));
      }
      std::cout << "prefetched caffe batches: max |diff| = " << worst << "\n";
      EXPECT_EQ(worst, 0.0);
      EXPECT_EQ(got[1].labels, (std::vector<int>{1, 0, 2}));
      try {
        src.load(N, 8, nullptr);
        ADD_FAILURE() << "out-of-range sample must throw";
      } catch (const std::out_of_range& e) {
        std::cout << e.what() << "\n";
        EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << "names the file";
      }
    }
  }
  EXPECT_THROW(H5Source("/nonexistent/parafine.h5"), std::runtime_error);
}

}  // namespace
}  // namespace parafine
