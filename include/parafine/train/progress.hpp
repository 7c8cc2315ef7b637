// Rank 0's Keras-like progress line for a training epoch: "k/steps - loss - accuracy - img/s -
// ETA", redrawn in place on a terminal, a plain line every tenth of the epoch otherwise (under
// mpirun, whose pseudo-terminal may lead to a file, always plain lines).
#pragma once

#include <iosfwd>

#include "parafine/core/loss.hpp"

namespace parafine {

class Progress {
 public:
  // out null: silent (ranks other than 0).
  Progress(std::ostream* out, int steps);
  // After `done` steps: the global sums so far, images trained and seconds since the start.
  void update(int done, const LossResult& global, int images, double seconds);

 private:
  std::ostream* out_;
  int steps_;
  bool tty_;
};

}  // namespace parafine
