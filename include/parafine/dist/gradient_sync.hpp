// Bucketed gradient allreduce that overlaps backward (cf. PyTorch DDP buckets, Horovod tensor
// fusion). The trainable gradients are one contiguous block whose front fills first (weights
// are laid out last layer first), so they are cut into contiguous buckets of about
// --bucket-mb; each bucket's MPI_Iallreduce (sum) starts as soon as backward reports the block
// filled past its end, and finish() waits for the rest. Only the calling (main) thread uses
// MPI. With one rank it does nothing.
#pragma once

#include <cstddef>
#include <vector>

namespace parafine {

class GradientSync {
 public:
  // grads [n] floats; bucket_floats >= 1.
  GradientSync(float* grads, std::size_t n, std::size_t bucket_floats);
  ~GradientSync();  // waits for any bucket still in flight
  GradientSync(const GradientSync&) = delete;
  GradientSync& operator=(const GradientSync&) = delete;

  // grads[0, filled) are final: start every bucket that lies inside, and let MPI progress.
  void ready(std::size_t filled);
  // Starts the remaining buckets and waits for all; returns the seconds spent waiting (the
  // communication backward did not hide).
  double finish();
  std::size_t buckets() const { return bounds_.size() - 1; }

 private:
  float* grads_;
  std::vector<std::size_t> bounds_;  // bucket b is [bounds_[b], bounds_[b+1])
  std::vector<void*> requests_;      // MPI_Request per started bucket (opaque here)
  std::size_t started_ = 0;
  bool active_;
};

}  // namespace parafine
