// `parafine sweep`: the two-phase job for a grid of backbones x phase-2 unfreeze settings,
// with the other train options shared. Per backbone, one phase-1 run builds the feature cache
// for every setting in one pass over the frozen base and trains phase 1 once; every setting's
// phase 2 then starts from phase 1's end state and trains from the same cache (trainer.hpp,
// SweepStage). Each run ends as the run of that setting alone would. Results go into
// --output DIR as the runs finish (sweep_results.hpp), and sweep.png is drawn at the end.
//
// A run that fails is reported by name and the sweep goes on with the others when that is
// safe: alone, or (under mpirun) when every rank left the run together (a diverged loss) or
// the failure is rank 0's model file. A failure inside a
// multi-rank run may have left other ranks inside a collective, so it ends the sweep as train
// ends (every rank stops); the runs finished before it keep their results.
#include <chrono>
#include <filesystem>
#include <iostream>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "cli/cli.hpp"
#include "cli/options.hpp"
#include "cli/plot_script.hpp"
#include "cli/sweep_grid.hpp"
#include "cli/sweep_results.hpp"
#include "cli/train_data.hpp"
#include "parafine/core/compute.hpp"
#include "parafine/core/stop_signal.hpp"
#include "parafine/dist/comm.hpp"
#include "parafine/io/keras_config_writer.hpp"
#include "parafine/io/model_files.hpp"
#include "parafine/model/backbone.hpp"
#include "parafine/train/trainer.hpp"

namespace parafine {

namespace {

// The grid's run options, every one checked before any data is opened: [backbone][setting].
std::vector<std::vector<TrainOptions>> checked_runs(const SweepGrid& grid) {
  std::vector<std::vector<TrainOptions>> runs;
  for (const std::string& b : grid.backbones) {
    runs.emplace_back();
    for (const UnfreezeSetting& s : grid.settings)
      runs.back().push_back(sweep_run_options(grid, b, s));
  }
  return runs;
}

// --output DIR: created when missing; it must not hold another sweep's results.
void prepare_output_dir(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) std::filesystem::create_directories(dir, ec);
  if (ec || !std::filesystem::is_directory(dir, ec))
    throw UsageError("--output " + dir + ": cannot create the directory" +
                     (ec ? " (" + ec.message() + ")" : std::string(" (a file has that name)")));
  if (std::filesystem::exists(dir + "/sweep.csv", ec))
    throw UsageError("--output " + dir +
                     " already holds a sweep's results (sweep.csv): choose another directory, "
                     "or remove that one first");
  check_output_path("--output", dir + "/sweep.csv");
}

void unfreeze(Model& model, const UnfreezeSetting& s) {
  if (!s.from.empty())
    unfreeze_base_from(model, s.from);
  else
    unfreeze_last_base_layers(model, s.last);
}

class Sweep {
 public:
  Sweep(const SweepGrid& grid, std::ostream& out, Precision precision, const TrainData& data,
        SweepResults& results)
      : grid_(grid), out_(out), precision_(precision), data_(data), results_(results) {}

  // Phase 1 once, then every setting's phase 2, for one backbone.
  void run_backbone(const std::string& backbone, std::vector<TrainOptions>& runs);

 private:
  void fail(const std::string& backbone, std::size_t setting, const std::string& why,
            SweepRunResult run = {});
  SweepRunResult run_phase2(Model& model, TrainOptions& o, const std::string& backbone,
                            std::size_t setting, const Checkpoint& phase1_end,
                            TrainingCaches& caches);

  const SweepGrid& grid_;
  std::ostream& out_;
  Precision precision_;
  const TrainData& data_;
  SweepResults& results_;
};

void Sweep::fail(const std::string& backbone, std::size_t setting, const std::string& why,
                 SweepRunResult run) {
  run.backbone = backbone;
  run.setting = grid_.settings[setting];
  run.status = "failed: " + why;
  out_ << "sweep: run '" << sweep_run_name(backbone, run.setting) << "' failed: " << why
       << std::endl;
  results_.add(run);
}

void Sweep::run_backbone(const std::string& backbone, std::vector<TrainOptions>& runs) {
  TrainOptions& first = runs.front();
  std::vector<EpochStats> phase1;
  Checkpoint phase1_end;
  TrainingCaches caches;
  std::optional<Model> model;
  std::vector<long> trainable(runs.size());
  double shared_seconds = 0;
  try {
    std::ostringstream once;  // the class weights are logged for the first run only
    for (TrainOptions& o : runs) resolve_class_weights(o, *data_.train, &o == &first ? out_ : once);
    model.emplace(build_model(first, *data_.train, out_));
    model->set_precision(precision_);
    report_run(first, data_, model->precision(), out_);
    SweepStage stage;
    stage.caches = &caches;
    stage.phase1_end = &phase1_end;
    for (std::size_t k = 0; k < runs.size(); ++k) {
      freeze_base(*model);
      unfreeze(*model, grid_.settings[k]);
      stage.phase2_first_trainables.push_back(model->first_trainable_node());
      trainable[k] = static_cast<long>(model->trainable_size());
    }
    freeze_base(*model);
    out_ << "sweep: " << backbone << ": phase 1 once for " << runs.size() << " setting(s)"
         << std::endl;
    const auto start = std::chrono::steady_clock::now();
    phase1 =
        run_two_phase(*model, *data_.train, data_.val.get(), first.config, out_, {}, {}, &stage);
    shared_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  } catch (const StoppedBySignal&) {
    throw;
  } catch (const TrainingDiverged& e) {  // every rank left phase 1 at the same step
    for (std::size_t k = 0; k < runs.size(); ++k)
      fail(backbone, k, std::string("phase 1 of ") + backbone + ": " + e.what());
    return;
  } catch (const std::exception& e) {
    // Another rank may be waiting in a collective: the sweep ends (main stops every rank).
    if (Comm::size() > 1)
      throw std::runtime_error("sweep: phase 1 of " + backbone + ": " + e.what());
    for (std::size_t k = 0; k < runs.size(); ++k)
      fail(backbone, k, std::string("phase 1 of ") + backbone + ": " + e.what());
    return;
  }
  for (std::size_t k = 0; k < runs.size(); ++k) {
    SweepRunResult r;
    r.backbone = backbone;
    r.setting = grid_.settings[k];
    r.trainable_params = trainable[k];
    r.shared_seconds = shared_seconds;
    r.epochs = phase1;
    try {
      SweepStage stage;
      stage.caches = &caches;
      stage.phase2_start = &phase1_end;
      out_ << "sweep: run '" << sweep_run_name(backbone, r.setting)
           << "': phase 2 from phase 1's end" << std::endl;
      const auto phase2 = run_two_phase(*model, *data_.train, data_.val.get(), runs[k].config, out_,
                                        {}, {}, &stage);
      r.epochs.insert(r.epochs.end(), phase2.begin(), phase2.end());
    } catch (const StoppedBySignal&) {
      throw;
    } catch (const TrainingDiverged& e) {  // every rank left the run at the same step
      fail(backbone, k, e.what(), r);
      continue;
    } catch (const std::exception& e) {
      if (Comm::size() > 1)
        throw std::runtime_error("sweep run '" + sweep_run_name(backbone, r.setting) +
                                 "': " + e.what());
      fail(backbone, k, e.what(), r);
      continue;
    }
    // Only rank 0 writes the model: its failure (a full disk, a name taken by a directory)
    // leaves the other ranks in step, so the sweep goes on under mpirun too.
    const std::string file = sweep_run_stem(backbone, r.setting) + ".keras";
    try {
      if (Comm::is_root())
        save_model_file(*model, graph_of_model(*model), grid_.output_dir + "/" + file,
                        data_.train->class_names());
      r.model_file = file;
      out_ << "sweep: run '" << sweep_run_name(backbone, r.setting) << "': model saved to "
           << grid_.output_dir << "/" << file << std::endl;
    } catch (const std::exception& e) {
      fail(backbone, k, std::string("saving its model: ") + e.what(), r);
      continue;
    }
    results_.add(r);
  }
}

// sweep.png from sweep_history.csv (rank 0); a missing plotting package is reported, the
// CSV files stay.
bool draw_sweep_plot(const SweepResults& results, const std::string& dir, bool has_val,
                     std::ostream& out) {
  if (!Comm::is_root()) return true;
  if (!has_val) {
    out << "sweep: no validation data, so no sweep.png (it draws validation accuracy)" << std::endl;
    return true;
  }
  // run_plot_script says on stderr why it could not draw, and what to install.
  if (run_plot_script({"sweep", results.history_path(), dir + "/sweep.png"}, "sweep.png") !=
      PlotOutcome::kDrawn) {
    out << "sweep: no sweep.png; the results are in " << results.csv_path() << " and "
        << results.history_path() << std::endl;
    return false;
  }
  out << "sweep: validation accuracy per run drawn in " << dir << "/sweep.png" << std::endl;
  return true;
}

}  // namespace

int run_sweep(int argc, char** argv) {
  SweepGrid grid;
  if (!parse_sweep_grid(argc, argv, grid)) return 0;  // --help
  auto runs = checked_runs(grid);
  TrainOptions& first = runs.front().front();
  if (Comm::is_root()) prepare_output_dir(grid.output_dir);
  install_stop_handlers();
  set_threads(threads_per_rank(first.threads, Comm::is_root() ? &std::cout : nullptr));
  std::ostringstream quiet;  // only rank 0 speaks; the others report errors only
  std::ostream& out = Comm::is_root() ? std::cout : quiet;
  const Precision precision = resolve_precision(first.precision, out);
  out << "parafine sweep: " << grid.backbones.size() << " backbone(s) x " << grid.settings.size()
      << " unfreeze setting(s) = " << grid.backbones.size() * grid.settings.size()
      << " runs, results in " << grid.output_dir << std::endl;
  const TrainData data = open_data(first, out);  // the images do not depend on the backbone
  SweepResults results(grid.output_dir, data.val != nullptr, first.config.callbacks.monitor);
  Sweep sweep(grid, out, precision, data, results);
  for (std::size_t b = 0; b < grid.backbones.size(); ++b)
    sweep.run_backbone(grid.backbones[b], runs[b]);
  const bool drawn = draw_sweep_plot(results, grid.output_dir, data.val != nullptr, out);
  out << "sweep: " << results.runs().size() - results.failed() << " of " << results.runs().size()
      << " runs finished; results in " << results.csv_path() << std::endl;
  if (results.failed() > 0)
    out << "sweep: " << results.failed() << " run(s) failed (see the status column of "
        << results.csv_path() << ")" << std::endl;
  // Every rank returns the same code, and only once rank 0 has drawn: a non-zero exit ends
  // every rank (main's MPI_Abort), which must not cut rank 0's files short.
  std::vector<int> code{results.failed() > 0 || !drawn ? 1 : 0};
  Comm::allreduce_max(code);
  return code[0];
}

}  // namespace parafine
