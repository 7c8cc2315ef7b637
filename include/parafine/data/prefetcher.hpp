// Background decoding of one rank's batches for one epoch, ahead of the training step.
//
// Given a SampleSource and this rank's sample indices per step (ShardPlan::local_batches),
// T worker threads load samples, apply the augmentation (augment.hpp) and the preprocessing,
// and assemble
// batches; the consumer takes them with next() strictly in step order. Work is handed out per
// sample in step order, so T threads cooperate on the oldest unfinished batch first.
//
// Determinism: a batch's content depends only on the step list, the source, the image size,
// the preprocessing, the augmentation and (seed, epoch, sample index) for its random
// parameters: never on T, the depth or thread timing.
// Bounded memory: at most `depth` batches are being filled or waiting at once (plus the one the
// consumer holds). next() swaps buffers with the caller, so after the first depth+1 batches no
// image buffer is allocated again (the capacity of the largest batch is kept).
// Errors: an exception thrown while loading (a bad file) stops the workers and is rethrown, the
// original exception object, by next() on the consumer thread; every later next() rethrows it.
// Destruction at any point (mid-epoch, after an error) stops and joins the workers: each
// finishes at most the sample it is decoding.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "parafine/core/tensor.hpp"
#include "parafine/data/augment.hpp"
#include "parafine/data/preprocess.hpp"
#include "parafine/data/sample_source.hpp"

namespace parafine {

struct PrefetchConfig {
  int image_size = 224;
  Preprocess preprocess = Preprocess::kCaffe;
  AugmentSpec augment;     // none by default (validation and the cache never augment)
  std::uint64_t seed = 0;  // with epoch: the augmentation's random parameters
  int epoch = 0;
  int threads = 1;  // T >= 1 worker threads
  int depth = 3;    // batches in flight, >= 1
};

struct Batch {
  int step = -1;             // index in the epoch's step list
  Tensor images;             // [b,S,S,3] preprocessed floats; b may be 0 (see data_order.hpp)
  std::vector<int> labels;   // [b] class indices (-1 for unlabelled sources)
  std::vector<int> indices;  // [b] global sample indices
  int size() const { return static_cast<int>(indices.size()); }
};

class BatchPrefetcher {
 public:
  // `steps`: [steps][b_k] sample indices of this rank, b_k >= 0. `source` must outlive the
  // prefetcher. Throws std::invalid_argument for a bad config or an index outside the source.
  // Workers start at once.
  BatchPrefetcher(const SampleSource& source, std::vector<std::vector<int>> steps,
                  const PrefetchConfig& config);
  ~BatchPrefetcher();  // stops and joins the workers
  BatchPrefetcher(const BatchPrefetcher&) = delete;
  BatchPrefetcher& operator=(const BatchPrefetcher&) = delete;

  int steps() const { return static_cast<int>(steps_.size()); }

  // The next batch in step order, swapped into `out` (out's old buffers are recycled). Returns
  // false once every step was delivered. Rethrows a worker's exception. One consumer thread.
  bool next(Batch& out);

 private:
  struct Slot {
    Batch batch;
    int remaining = 0;  // samples not yet decoded
    bool ready = false;
  };

  void worker();
  void worker_loop();
  void fail(std::exception_ptr e);  // caller holds m_
  void setup_slot(int step);        // caller holds m_
  void skip_empty_steps();          // caller holds m_
  Slot& slot_of(int step) { return slots_[static_cast<std::size_t>(step % config_.depth)]; }

  const SampleSource& source_;
  const std::vector<std::vector<int>> steps_;
  const PrefetchConfig config_;
  const std::size_t per_image_;  // S*S*3 floats

  std::mutex m_;
  std::condition_variable work_cv_;     // workers: a slot became free, or stop
  std::condition_variable ready_cv_;    // consumer: a batch became ready, or an error
  std::vector<Slot> slots_;             // [depth]; step k lives in slot k % depth
  int claim_step_ = 0, claim_pos_ = 0;  // the next sample to hand to a worker
  int consumed_ = 0;                    // steps delivered by next()
  bool stop_ = false;
  std::exception_ptr error_;
  std::vector<std::thread> threads_;
};

}  // namespace parafine
