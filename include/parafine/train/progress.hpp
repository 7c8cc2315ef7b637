// What a training run shows while it runs: rank 0's Keras-like progress line for an epoch
// ("k/steps - loss - accuracy - img/s - ETA", redrawn in place on a terminal, a plain line every
// tenth of the epoch otherwise; under mpirun, whose pseudo-terminal may lead to a file, always
// plain lines), and the summary line logged after every epoch.
#pragma once

#include <iosfwd>

#include "parafine/core/loss.hpp"
#include "parafine/train/train_config.hpp"

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

// "phase P epoch E: loss - accuracy [- val_loss - val_accuracy] - seconds (img/s; rank 0's
// compute, exposed communication and data wait)"; leaves the stream's format flags as found.
void log_epoch(std::ostream& log, const EpochStats& stats, bool has_validation);

}  // namespace parafine
