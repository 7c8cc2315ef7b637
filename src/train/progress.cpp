// The progress line (see progress.hpp).
#include "parafine/train/progress.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <iomanip>
#include <ostream>
#include <sstream>

namespace parafine {

// mpirun hands ranks a pseudo-terminal even when its own output goes to a file, so under
// mpirun (OMPI_COMM_WORLD_SIZE set) plain lines are printed.
Progress::Progress(std::ostream* out, int steps)
    : out_(out),
      steps_(steps),
      tty_(::isatty(STDOUT_FILENO) == 1 && !std::getenv("OMPI_COMM_WORLD_SIZE")) {}

void Progress::update(int done, const LossResult& global, int images, double seconds) {
  if (!out_ || global.count == 0) return;
  const bool plain_due = steps_ >= 10 ? done % (steps_ / 10) == 0 || done == steps_ : true;
  if (!tty_ && !plain_due) return;
  const double rate = images / std::max(seconds, 1e-9);
  const double eta = (steps_ - done) * seconds / std::max(done, 1);
  std::ostringstream line;
  line << std::fixed << std::setprecision(4) << done << "/" << steps_ << " - loss " << global.loss()
       << " - accuracy " << global.accuracy() << " - " << std::setprecision(1) << rate
       << " img/s - ETA " << eta << "s";
  if (tty_)
    *out_ << "\r" << line.str() << "\033[K" << (done == steps_ ? "\r\033[K" : "") << std::flush;
  else
    *out_ << "  " << line.str() << "\n" << std::flush;
}

void log_epoch(std::ostream& log, const EpochStats& s, bool has_val) {
  const std::ios_base::fmtflags flags = log.flags();
  const std::streamsize precision = log.precision();
  log << "phase " << s.phase << " epoch " << s.epoch << ": loss " << std::fixed
      << std::setprecision(4) << s.loss << " - accuracy " << s.accuracy;
  if (has_val) log << " - val_loss " << s.val_loss << " - val_accuracy " << s.val_accuracy;
  log << " - " << std::setprecision(1) << s.seconds << "s (" << s.images_per_second
      << " img/s; rank 0: compute " << std::setprecision(2) << s.compute_seconds
      << "s, exposed communication " << s.comm_seconds << "s, data wait " << s.data_wait_seconds
      << "s)" << std::endl;
  log.flags(flags);
  log.precision(precision);
}

}  // namespace parafine
