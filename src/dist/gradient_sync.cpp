// Bucketed, overlapped gradient allreduce (see gradient_sync.hpp).
#include "parafine/dist/gradient_sync.hpp"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>

#include "parafine/dist/comm.hpp"

namespace parafine {

namespace {
MPI_Request* as_request(void* p) {
  return static_cast<MPI_Request*>(p);
}
}  // namespace

GradientSync::GradientSync(float* grads, std::size_t n, std::size_t bucket_floats)
    : grads_(grads), active_(Comm::size() > 1) {
  if (bucket_floats == 0) throw std::invalid_argument("--bucket-mb must be positive");
  bucket_floats = std::min<std::size_t>(bucket_floats, 1u << 30);  // MPI counts are int
  for (std::size_t b = 0; b < n; b += bucket_floats) bounds_.push_back(b);
  bounds_.push_back(n);
  if (n == 0) bounds_ = {0};
}

GradientSync::~GradientSync() {
  for (void* r : requests_) {
    if (active_) MPI_Wait(as_request(r), MPI_STATUS_IGNORE);
    delete as_request(r);
  }
}

void GradientSync::ready(std::size_t filled) {
  if (!active_) return;
  while (started_ < buckets() && bounds_[started_ + 1] <= filled) {
    auto* req = new MPI_Request;
    const std::size_t begin = bounds_[started_];
    MPI_Iallreduce(MPI_IN_PLACE, grads_ + begin, static_cast<int>(bounds_[started_ + 1] - begin),
                   MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, req);
    requests_.push_back(req);
    ++started_;
  }
  for (void* r : requests_) {  // give MPI a chance to progress buckets in flight
    int done = 0;
    MPI_Test(as_request(r), &done, MPI_STATUS_IGNORE);
  }
}

double GradientSync::finish() {
  if (!active_) return 0.0;
  ready(bounds_.back());
  const auto start = std::chrono::steady_clock::now();
  for (void* r : requests_) {
    MPI_Wait(as_request(r), MPI_STATUS_IGNORE);
    delete as_request(r);
  }
  requests_.clear();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace parafine
