// Writing a sweep's results as its runs finish (see sweep_results.hpp).
#include "cli/sweep_results.hpp"

#include <fstream>
#include <sstream>
#include <stdexcept>

#include "cli/csv_field.hpp"
#include "parafine/core/atomic_file.hpp"
#include "parafine/dist/comm.hpp"
#include "parafine/train/history_csv.hpp"

namespace parafine {

const char* const kSweepCsvHeader =
    "backbone,unfreeze,trainable_params,best_phase,best_epoch,best_val_loss,best_val_accuracy,"
    "final_val_loss,final_val_accuracy,shared_seconds,phase1_seconds,phase2_seconds,"
    "phase1_img_per_s,phase2_img_per_s,model,status";

namespace {

// The phase's total seconds and mean training images/s, "NA" when it has no epoch.
std::pair<std::string, std::string> phase_time(const std::vector<EpochStats>& epochs, int phase) {
  double seconds = 0, rate = 0;
  int n = 0;
  for (const EpochStats& s : epochs)
    if (s.phase == phase) seconds += s.seconds, rate += s.images_per_second, ++n;
  if (n == 0) return {"NA", "NA"};
  return {python_float_text(seconds), python_float_text(rate / n)};
}

// The global 1-based epoch of epochs[i] (phase 1's count before phase 2's).
int global_epoch(const std::vector<EpochStats>& epochs, std::size_t i) {
  int phase1 = 0;
  for (const EpochStats& s : epochs) phase1 += s.phase == 1 ? 1 : 0;
  return epochs[i].phase == 1 ? epochs[i].epoch : phase1 + epochs[i].epoch;
}

}  // namespace

SweepResults::SweepResults(std::string dir, bool has_val, Monitor monitor)
    : dir_(std::move(dir)), has_val_(has_val), monitor_(monitor) {}

int SweepResults::failed() const {
  int n = 0;
  for (const SweepRunResult& r : runs_) n += r.status == "ok" ? 0 : 1;
  return n;
}

std::string SweepResults::row(const SweepRunResult& run) const {
  const std::vector<EpochStats>& e = run.epochs;
  std::ostringstream out;
  out << csv_field(run.backbone) << ","
      << csv_field(run.setting.from.empty() ? "last " + std::to_string(run.setting.last)
                                            : "from " + run.setting.from)
      << "," << run.trainable_params << ",";
  const bool has_val = has_val_ || !monitor_needs_validation(monitor_);
  if (e.empty() || !has_val) {
    out << "NA,NA,NA,NA";
  } else {
    std::size_t best = 0;
    for (std::size_t i = 1; i < e.size(); ++i) {
      const double v = monitored_value(e[i], monitor_), b = monitored_value(e[best], monitor_);
      if (monitor_maximises(monitor_) ? v > b : v < b) best = i;  // the first best wins
    }
    out << e[best].phase << "," << global_epoch(e, best) << ","
        << (has_val_ ? python_float_text(e[best].val_loss) + "," +
                           python_float_text(e[best].val_accuracy)
                     : std::string("NA,NA"));
  }
  if (e.empty() || !has_val_)
    out << ",NA,NA";
  else
    out << "," << python_float_text(e.back().val_loss) << ","
        << python_float_text(e.back().val_accuracy);
  const auto [p1_seconds, p1_rate] = phase_time(e, 1);
  const auto [p2_seconds, p2_rate] = phase_time(e, 2);
  out << "," << python_float_text(run.shared_seconds) << "," << p1_seconds << "," << p2_seconds
      << "," << p1_rate << "," << p2_rate << "," << csv_field(run.model_file) << ","
      << csv_field(run.status);
  return out.str();
}

void SweepResults::rewrite(const std::string& path, const std::string& text) const {
  AtomicFile file(path, "sweep results", text.size());
  file.write([&](const std::string& temp_path) {
    std::ofstream f(temp_path, std::ios::trunc | std::ios::binary);
    f << text;
    f.close();
    if (!f) throw std::runtime_error("writing failed (disk full, or a file size limit?)");
  });
}

void SweepResults::add(const SweepRunResult& run) {
  runs_.push_back(run);
  if (!Comm::is_root()) return;
  std::ostringstream csv, history;
  csv << kSweepCsvHeader << "\n";
  history << "run,phase,epoch,val_accuracy,val_loss,accuracy,loss\n";
  for (const SweepRunResult& r : runs_) {
    csv << row(r) << "\n";
    for (std::size_t i = 0; i < r.epochs.size(); ++i) {
      const EpochStats& s = r.epochs[i];
      history << csv_field(sweep_run_name(r.backbone, r.setting)) << "," << s.phase << ","
              << global_epoch(r.epochs, i) << ","
              << (has_val_ ? python_float_text(s.val_accuracy) : "NA") << ","
              << (has_val_ ? python_float_text(s.val_loss) : "NA") << ","
              << python_float_text(s.accuracy) << "," << python_float_text(s.loss) << "\n";
    }
  }
  rewrite(csv_path(), csv.str());
  rewrite(history_path(), history.str());
  if (run.epochs.empty()) return;
  HistoryCsv own(dir_ + "/" + sweep_run_stem(run.backbone, run.setting) + ".history.csv", false,
                 has_val_);
  for (const EpochStats& s : run.epochs) own.write(s);
}

}  // namespace parafine
