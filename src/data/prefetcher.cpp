// Deterministic multi-threaded batch prefetching (see prefetcher.hpp).
#include "parafine/data/prefetcher.hpp"

#include <algorithm>
#include <stdexcept>
#include <utility>

namespace parafine {

BatchPrefetcher::BatchPrefetcher(const SampleSource& source, std::vector<std::vector<int>> steps,
                                 const PrefetchConfig& config)
    : source_(source),
      steps_(std::move(steps)),
      config_(config),
      per_image_(static_cast<std::size_t>(std::max(config.image_size, 0)) *
                 std::max(config.image_size, 0) * 3) {
  if (config_.image_size < 1)
    throw std::invalid_argument("--image-size must be at least 1, got " +
                                std::to_string(config_.image_size));
  if (config_.threads < 1)
    throw std::invalid_argument("prefetch threads must be at least 1, got " +
                                std::to_string(config_.threads));
  check_augment_size(config_.augment, config_.image_size);
  if (config_.depth < 1)
    throw std::invalid_argument("prefetch depth (batches in flight) must be at least 1, got " +
                                std::to_string(config_.depth));
  const int n = source_.size();
  for (std::size_t k = 0; k < steps_.size(); ++k)
    for (int i : steps_[k])
      if (i < 0 || i >= n)
        throw std::invalid_argument("prefetcher: sample index " + std::to_string(i) + " in step " +
                                    std::to_string(k) + " is outside the " + std::to_string(n) +
                                    " samples of the source");
  slots_.resize(static_cast<std::size_t>(config_.depth));
  threads_.reserve(static_cast<std::size_t>(config_.threads));
  try {
    for (int t = 0; t < config_.threads; ++t) threads_.emplace_back([this] { worker(); });
  } catch (...) {  // could not start a thread: stop the ones that did start
    {
      std::lock_guard<std::mutex> lock(m_);
      stop_ = true;
    }
    work_cv_.notify_all();
    for (auto& th : threads_) th.join();
    throw;
  }
}

BatchPrefetcher::~BatchPrefetcher() {
  {
    std::lock_guard<std::mutex> lock(m_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& th : threads_)
    if (th.joinable()) th.join();
}

bool BatchPrefetcher::next(Batch& out) {
  std::unique_lock<std::mutex> lock(m_);
  if (consumed_ >= steps()) return false;
  Slot& s = slot_of(consumed_);
  ready_cv_.wait(lock, [&] { return s.ready || error_; });
  // Once a load failed, every call rethrows, even if a worker finished this slot meanwhile.
  if (error_) std::rethrow_exception(error_);
  std::swap(out, s.batch);  // the caller's old buffers become this slot's next buffers
  s.ready = false;
  ++consumed_;
  lock.unlock();
  work_cv_.notify_all();  // slot free: workers may start step consumed_ - 1 + depth
  return true;
}

void BatchPrefetcher::fail(std::exception_ptr e) {
  if (!error_) error_ = std::move(e);  // the first error wins; later ones are consequences
  ready_cv_.notify_all();
  work_cv_.notify_all();
}

void BatchPrefetcher::setup_slot(int step) {
  const std::vector<int>& idx = steps_[static_cast<std::size_t>(step)];
  const int b = static_cast<int>(idx.size());
  Slot& s = slot_of(step);
  s.batch.step = step;
  s.batch.indices = idx;
  s.batch.labels.resize(idx.size());
  for (std::size_t i = 0; i < idx.size(); ++i) s.batch.labels[i] = source_.label(idx[i]);
  s.batch.images.resize(Shape{b, config_.image_size, config_.image_size, 3});
  s.remaining = b;
  s.ready = b == 0;
  if (s.ready) ready_cv_.notify_all();
}

void BatchPrefetcher::skip_empty_steps() {
  while (claim_pos_ == 0 && claim_step_ < steps() && claim_step_ < consumed_ + config_.depth &&
         steps_[static_cast<std::size_t>(claim_step_)].empty()) {
    setup_slot(claim_step_);  // delivered as b = 0
    ++claim_step_;
  }
}

void BatchPrefetcher::worker() {
  try {
    worker_loop();
  } catch (...) {
    std::lock_guard<std::mutex> lock(m_);
    fail(std::current_exception());
  }
}

void BatchPrefetcher::worker_loop() {
  // This thread's buffers for crop's D x D decode and the affine transforms' source copy:
  // allocated by the first sample, reused after.
  std::vector<float> decoded, scratch;
  const int S = config_.image_size, D = config_.augment.decode_size(S);
  std::unique_lock<std::mutex> lock(m_);
  for (;;) {
    work_cv_.wait(lock, [&] {
      return stop_ || error_ || claim_step_ >= steps() || claim_step_ < consumed_ + config_.depth;
    });
    if (stop_ || error_) return;
    skip_empty_steps();
    if (claim_step_ >= steps()) {
      work_cv_.notify_all();  // nothing left for anyone
      return;
    }
    if (claim_step_ >= consumed_ + config_.depth) continue;  // every slot is busy: wait

    // Claim one sample, in step order.
    const int step = claim_step_, pos = claim_pos_;
    if (pos == 0) setup_slot(step);
    Slot& s = slot_of(step);
    if (++claim_pos_ == static_cast<int>(steps_[static_cast<std::size_t>(step)].size())) {
      claim_pos_ = 0;
      ++claim_step_;
    }
    const int sample = steps_[static_cast<std::size_t>(step)][static_cast<std::size_t>(pos)];
    float* dst = s.batch.images.data() + per_image_ * static_cast<std::size_t>(pos);  // [S,S,3]
    lock.unlock();

    // Decode outside the lock. The slot's buffer is not resized until the consumer has taken
    // this batch, which needs remaining == 0, so dst stays valid.
    // Throws out of worker_loop -> fail().
    if (config_.augment.any()) {
      const AugmentDraw draw =
          draw_augment(config_.augment, config_.seed, config_.epoch, sample, S);
      if (D != S) {  // crop: decode at D, keep the drawn S x S window
        decoded.resize(static_cast<std::size_t>(D) * static_cast<std::size_t>(D) * 3);
        source_.load(sample, D, decoded.data());
        crop_window(decoded.data(), D, draw.crop_y, draw.crop_x, S, dst);
      } else {
        source_.load(sample, S, dst);
      }
      apply_augment(config_.augment, draw, dst, S, scratch);
    } else {
      source_.load(sample, S, dst);
    }
    prepare_sample(dst, S, false, config_.preprocess);

    lock.lock();
    if (--s.remaining == 0) {
      s.ready = true;
      ready_cv_.notify_all();
    }
  }
}

}  // namespace parafine
