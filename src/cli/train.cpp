// `parafine train`: the two-phase fine-tuning job on an image folder or HDF5 dataset, with
// the options of DESIGN.md §3, read from the command line and from --config FILE (INI, same
// keys; the command line wins). Alone or under mpirun: each rank trains its share of every
// global batch (trainer.hpp).
#include <sys/resource.h>

#include <iostream>
#include <sstream>

#include "cli/callback_options.hpp"
#include "cli/cli.hpp"
#include "cli/options.hpp"
#include "cli/train_data.hpp"
#include "cli/train_options.hpp"
#include "parafine/core/compute.hpp"
#include "parafine/core/stop_signal.hpp"
#include "parafine/dist/comm.hpp"
#include "parafine/io/keras_config_writer.hpp"
#include "parafine/io/model_files.hpp"
#include "parafine/train/history_csv.hpp"
#include "parafine/train/trainer.hpp"

namespace parafine {

namespace {

void report_peak_memory(std::ostream& out) {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::vector<int> peak_mib{static_cast<int>(usage.ru_maxrss / 1024)};
  const int mine = peak_mib[0];
  Comm::allreduce_max(peak_mib);
  out << "peak memory: " << mine << " MiB on rank 0, at most " << peak_mib[0] << " MiB per rank"
      << std::endl;
}

void save_model(const Model& model, const KerasGraph& graph, const TrainOptions& o,
                const SampleSource& train, std::ostream& out) {
  if (o.save.empty() || !Comm::is_root()) return;
  save_model_file(model, graph, o.save, train.class_names());
  out << "model saved to " << o.save << std::endl;
}

}  // namespace

int run_train(int argc, char** argv) {
  TrainOptions o;
  if (!parse_train_options(argc, argv, o)) return 0;  // --help
  validate_train_options(o);
  // From here a SIGTERM, SIGINT or SIGUSR1 stops the run at the next step boundary, with a
  // checkpoint (exit code 75); a second SIGINT ends it at once.
  install_stop_handlers();
  set_threads(threads_per_rank(o.threads, Comm::is_root() ? &std::cout : nullptr));
  std::ostringstream quiet;  // only rank 0 speaks; the others report errors only
  std::ostream& out = Comm::is_root() ? std::cout : quiet;
  const Precision precision = resolve_precision(o.precision, out);
  const TrainData data = open_data(o, out);
  resolve_class_weights(o, *data.train, out);
  Model model = build_model(o, *data.train, out);
  // The Keras structure --save writes: the file's, or one flat Functional.
  const KerasGraph graph = o.init_model ? o.init_model->graph : graph_of_model(model);
  model.set_precision(precision);
  report_run(o, data, model.precision(), out);
  HistoryCsv history_csv(o.history_path, o.config.resume, data.val != nullptr);
  const auto save_best = [&](const EpochStats& s) {  // --save-best: ModelCheckpoint
    if (!Comm::is_root()) return;
    save_model_file(model, graph, o.callbacks.save_best, data.train->class_names());
    out << "phase " << s.phase << " epoch " << s.epoch << ": "
        << monitor_name(o.config.callbacks.monitor) << " improved, model saved to "
        << o.callbacks.save_best << std::endl;
  };
  const auto history = run_two_phase(
      model, *data.train, data.val.get(), o.config, out,
      [&](const EpochStats& s) { history_csv.write(s); }, save_best);
  report_peak_memory(out);
  save_model(model, graph, o, *data.train, out);
  if (!history.empty() && data.val)
    out << "final validation accuracy " << history.back().val_accuracy
        << (o.config.callbacks.restore_best
                ? " (of the last epoch; --restore-best may have restored an earlier epoch's "
                  "weights, see above)"
                : "")
        << std::endl;
  return 0;
}

}  // namespace parafine
