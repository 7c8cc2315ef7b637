// `parafine predict` (class probabilities per image, as CSV) and `parafine evaluate` (loss
// and accuracy) for a full model file on an HDF5 dataset.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "cli/cli.hpp"
#include "cli/csv_field.hpp"
#include "cli/evaluate_report.hpp"
#include "cli/options.hpp"
#include "parafine/core/atomic_file.hpp"
#include "parafine/core/compute.hpp"
#include "parafine/core/loss.hpp"
#include "parafine/core/out_of_memory.hpp"
#include "parafine/data/data_order.hpp"
#include "parafine/data/folder_source.hpp"
#include "parafine/data/h5_dataset.hpp"
#include "parafine/dist/comm.hpp"
#include "parafine/dist/replica.hpp"
#include "parafine/io/model_file.hpp"
#include "parafine/layers/dense.hpp"
#include "parafine/model/backbone.hpp"
#include "parafine/train/evaluation.hpp"
#include "parafine/train/trainer.hpp"

namespace po = boost::program_options;

namespace parafine {

namespace {

struct InferenceOptions {
  std::string model, data, output, preprocess = "auto", precision = "float32";
  int batch_size = 32, image_size = 0, threads = 0;
  Precision chosen = Precision::kFloat32;             // --precision resolved for this machine
  Preprocess chosen_preprocess = Preprocess::kCaffe;  // --preprocess, auto resolved for the model
  // What --model holds, read once before the data (classify_model): a Keras config's own
  // layers, or a parafine backbone + head (ResNet50 when none is recognised: its load says why).
  bool config_model = false;
  Backbone backbone = Backbone::kResNet50;
  // evaluate --report DIR and its settings (classification_report.hpp).
  std::string report;
  ReportOptions report_options{5, 10, 16};
};

// evaluate's --report options.
void add_report_options(CommandOptions& opts, InferenceOptions& o) {
  auto add = opts.add();
  add("report", po::value(&o.report),
      "also write a report into this directory: report.json, CSV tables, PNG pictures and "
      "index.html");
  add("top-k", po::value(&o.report_options.top_k)->default_value(5),
      "--report: top-k accuracy for k = 1..K (capped at the class count)");
  add("wrong", po::value(&o.report_options.wrong)->default_value(16),
      "--report: how many of the most confidently wrong images to list and show");
  add("bins", po::value(&o.report_options.bins)->default_value(10),
      "--report: equal-width confidence bins of the calibration (reliability diagram, ECE)");
  opts.bound("top-k", 1, 1000);
  opts.bound("wrong", 0, 1000);
  opts.bound("bins", 1, 1000);
}

// Parses the options shared by predict and evaluate; returns false after printing --help.
bool parse(int argc, char** argv, const char* command, const char* data_option,
           InferenceOptions& o) {
  CommandOptions opts(
      command, std::string(command) + " --model M.h5 --" + data_option + " DATA.h5 [options]");
  auto add = opts.add();
  add("model", po::value(&o.model)->required(),
      "full model file (written by --save, or Keras save_weights)");
  add(data_option, po::value(&o.data)->required(), "image folder or HDF5 dataset");
  add("batch-size", po::value(&o.batch_size)->default_value(32), "images per forward pass");
  add("image-size", po::value(&o.image_size)->default_value(0),
      "resize images to this size (0: the dataset's)");
  add_preprocess_option(opts, o.preprocess);
  add_threads_option(opts, o.threads, "threads for compute and for checking a folder's files,");
  add_precision_option(opts, o.precision);
  if (std::string(command) == "predict")
    add("output", po::value(&o.output), "CSV file to write (default: standard output)");
  else
    add_report_options(opts, o);
  opts.bound("batch-size", 1, kMaxBatchSize);
  opts.describe_range("image-size", std::string("0 (the dataset's) or ") + kImageSizeRange);
  if (!opts.parse(argc, argv)) return false;
  for (const char* name : {"top-k", "wrong", "bins"})
    if (o.report.empty() && std::string(command) == "evaluate" && opts.given(name))
      throw UsageError(std::string("--") + name + " needs --report DIR");
  if (!o.report.empty() && Comm::is_root()) prepare_report_dir(o.report);   // rank 0 writes it
  if (o.image_size > kMaxImageSize) check_image_size_option(o.image_size);  // the minimum: later
  preprocess_option(o.preprocess, Backbone::kResNet50);  // its spelling; auto is resolved later
  if (Comm::is_root()) check_output_path("--output", o.output);  // rank 0 writes it
  set_threads(threads_per_rank(o.threads));
  o.chosen = resolve_precision(o.precision, std::cerr);
  return true;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

// The backbone the --model file holds (ResNet50 when it is none we know: its load says why),
// with --image-size checked against its minimum: before any data is read.
Backbone model_backbone(const InferenceOptions& o) {
  const std::optional<FileBackbone> held = backbone_of_weights_file(o.model);
  const Backbone backbone = held ? held->backbone : Backbone::kResNet50;
  if (o.image_size > 0) check_image_size_option(o.image_size, backbone);
  return backbone;
}

// --image-size, else an HDF5 dataset's stored size, else 0 (the size the model was trained at);
// at least the backbone's minimum.
int image_size_for(const InferenceOptions& o, const SampleSource& data, Backbone backbone) {
  if (o.image_size > 0) return o.image_size;
  const auto* h5 = dynamic_cast<const H5Source*>(&data);
  if (!h5) return 0;
  const H5ImageDataset& d = h5->dataset();
  const std::string holds = d.path() + " holds " + std::to_string(d.height()) + "x" +
                            std::to_string(d.width()) + " images";
  if (d.height() != d.width()) throw UsageError(holds + ": give --image-size (square)");
  try {
    check_image_size(d.height(), backbone);
  } catch (const std::invalid_argument& e) {
    throw UsageError(holds + ", the size used without --image-size: " + e.what() +
                     "; give --image-size to resize them");
  }
  return d.height();
}

// Whether --model carries a Keras config (its own input size and layers); false for a file
// that cannot be read (its load says why).
bool is_config_model(const std::string& path) {
  try {
    return has_keras_config(path);
  } catch (const std::exception&) {
    return false;
  }
}

// Which kind of model --model holds, with --image-size checked against a parafine backbone's
// minimum: before any data is read (a config model's layers decide for themselves when built).
void classify_model(InferenceOptions& o) {
  o.config_model = is_config_model(o.model);
  if (!o.config_model) o.backbone = model_backbone(o);
}

// The --model file built for `data`: a model with a Keras config at its own input size (unless
// --image-size), a parafine backbone + head at the dataset's size (see image_size_for).
LoadedModel load_for_inference(const InferenceOptions& o, const SampleSource& data) {
  int fallback = 0;
  if (!o.config_model) {
    fallback = image_size_for(o, data, o.backbone);
  } else if (o.image_size == 0) {  // a config that leaves the size open: the dataset's
    if (const auto* h5 = dynamic_cast<const H5Source*>(&data))
      if (h5->dataset().height() == h5->dataset().width()) fallback = h5->dataset().height();
  }
  return load_model_option("--model", o.model, o.image_size, fallback);
}

// The class probabilities of row i of the model's output: a softmax or sigmoid Dense's as they
// are; a linear Dense's outputs are logits (softmax over several, sigmoid of one); one sigmoid
// unit gives the two classes' (1 - p, p). Another output layer's values as they are.
std::vector<float> class_probabilities(const Model& model, const Tensor& out, int i) {
  const int units = static_cast<int>(out.shape()[1]);
  const float* row = out.data() + static_cast<std::size_t>(i) * units;
  std::vector<float> p(row, row + units);
  const OutputHead head = output_head(model);
  if (!head.dense) return p;
  if (head.activation == Activation::kLinear) {
    if (units == 1) {
      p[0] = 1.0f / (1.0f + std::exp(-p[0]));
    } else {
      const float top = *std::max_element(p.begin(), p.end());
      double sum = 0;
      for (float& v : p) sum += (v = std::exp(v - top));
      for (float& v : p) v = static_cast<float>(v / sum);
    }
  }
  if (units == 1 &&
      (head.activation == Activation::kLinear || head.activation == Activation::kSigmoid))
    p = {1.0f - p[0], p[0]};
  return p;
}

// The columns predict writes for the model's output (see class_probabilities).
int probability_columns(const Model& model) {
  const int units = static_cast<int>(model.output_shape(model.size() - 1, 1)[1]);
  const OutputHead head = output_head(model);
  const bool binary =
      head.dense && units == 1 &&
      (head.activation == Activation::kLinear || head.activation == Activation::kSigmoid);
  return binary ? 2 : units;
}

// An image folder's files are all decoded up front (bad ones found), each rank its share, on
// --threads threads: before inference, so the compute threads are idle meanwhile.
std::unique_ptr<SampleSource> open_data(const std::string& path, const char* option) {
  SourceOptions so;
  so.threads = parafine::threads();
  so.log = Comm::is_root() ? &std::cerr : nullptr;
  return open_sample_source(path, option, so);
}

// The model's class names completed for its `classes` outputs: the dataset's when the model has
// none and the counts match, else "class<k>" for the missing ones.
void complete_class_names(std::vector<std::string>& names, const SampleSource& data, int classes) {
  if (names.empty() && static_cast<int>(data.class_names().size()) == classes)
    names = data.class_names();
  for (int c = static_cast<int>(names.size()); c < classes; ++c)
    names.push_back("class" + std::to_string(c));
}

// This rank's share of every batch, as "<index>\t<csv row>\0" per sample; the model has
// `classes` outputs, each with a name.
std::string predict_rows_unguarded(Model& model, int classes, const SampleSource& data,
                                   const InferenceOptions& o,
                                   const std::vector<std::string>& names) {
  const ShardPlan plan(data.size(), o.batch_size, Comm::size(), Comm::rank(), false, 0, "--input");
  PrefetchConfig p;
  p.image_size = model.sample_input_shape()[0];
  p.preprocess = o.chosen_preprocess;
  BatchPrefetcher batches(data, plan.local_batches(0), p);
  Batch batch;
  std::ostringstream rows;
  rows << std::setprecision(6);
  while (batches.next(batch)) {
    const Tensor& out = model.forward(batch.images, false);
    for (int i = 0; i < batch.size(); ++i) {
      const std::vector<float> p = class_probabilities(model, out, i);
      const int index = batch.indices[static_cast<size_t>(i)];
      rows << index << "\t" << csv_field(data.sample_name(index));
      for (int c = 0; c < classes; ++c) rows << "," << p[static_cast<std::size_t>(c)];
      const auto best = static_cast<size_t>(std::max_element(p.begin(), p.end()) - p.begin());
      rows << "," << csv_field(names[best]) << '\0';
    }
  }
  return rows.str();
}

std::string predict_rows(Model& model, int classes, const SampleSource& data,
                         const InferenceOptions& o, const std::vector<std::string>& names) {
  const int local_batch = (o.batch_size + Comm::size() - 1) / Comm::size();
  const int size = model.sample_input_shape()[0];
  return allocating("inference on " + std::to_string(local_batch) + " images of " +
                        std::to_string(size) + "x" + std::to_string(size) +
                        " per rank (the layer outputs, estimated)",
                    model.step_bytes(local_batch, false), "Try a smaller --batch-size.",
                    [&] { return predict_rows_unguarded(model, classes, data, o, names); });
}

using Rows = std::vector<std::pair<int, std::string>>;  // (sample index, CSV row)

// Every rank's rows at rank 0, in sample order (collective; the other ranks get none).
Rows gather_rows(const std::string& mine) {
  const std::vector<unsigned char> gathered =
      Comm::gather_to_root(std::vector<unsigned char>(mine.begin(), mine.end()));
  Rows lines;
  if (!Comm::is_root()) return lines;
  std::istringstream all(std::string(gathered.begin(), gathered.end()));
  for (std::string line;
       std::getline(all, line, '\0');) {  // NUL ends a record: no file name holds one
    const auto tab = line.find('\t');
    lines.emplace_back(std::stoi(line.substr(0, tab)), line.substr(tab + 1));
  }
  std::sort(lines.begin(), lines.end());
  return lines;
}

void write_csv(std::ostream& out, const char* first_column, const std::vector<std::string>& names,
               const Rows& lines) {
  out << first_column;
  for (const auto& n : names) out << "," << csv_field("p_" + n);
  out << ",predicted\n";
  for (const auto& [index, line] : lines) out << line << "\n";
}

// --output: published only when complete (AtomicFile), so a failure leaves no partial file.
void write_csv_file(const std::string& path, const char* first_column,
                    const std::vector<std::string>& names, const Rows& lines) {
  AtomicFile file(path, "predictions file");
  std::ofstream out(file.temp_path());
  if (!out) throw std::runtime_error("cannot write " + path);
  write_csv(out, first_column, names, lines);
  out.close();
  if (!out) throw std::runtime_error("cannot write " + path);  // e.g. the disk filled up
  file.commit();
  std::cerr << "wrote " << lines.size() << " predictions to " << path << "\n";
}

// evaluate --report: the loss sums (as evaluate()) and every sample's class probabilities
// [N, classes] at rank 0 (the other ranks get none), from one inference pass.
struct ScoredSamples {
  LossResult total;
  std::vector<float> probabilities;  // rank 0: [N, classes] in sample order
};

ScoredSamples score_samples_unguarded(Model& model, const SampleSource& data,
                                      const InferenceOptions& o, int image_size, int classes) {
  const ShardPlan plan(data.size(), o.batch_size, Comm::size(), Comm::rank(), false, 0, "--data");
  PrefetchConfig p;
  p.image_size = image_size;
  p.preprocess = o.chosen_preprocess;
  p.threads = 2;
  EpochFeed batches(data, plan.local_batches(0), p);
  Batch batch;
  LossResult local;
  std::vector<unsigned char> mine;  // per sample: int index, then `classes` floats
  const std::size_t record = sizeof(int) + sizeof(float) * static_cast<std::size_t>(classes);
  while (batches.next(batch)) {
    const Tensor& out = batches.forward(model, batch.images, false);
    local += model_loss(model, batch.labels, 1.0, nullptr);
    for (int i = 0; i < batch.size(); ++i) {
      const std::vector<float> probs = class_probabilities(model, out, i);
      const std::size_t at = mine.size();
      mine.resize(at + record);
      std::memcpy(mine.data() + at, &batch.indices[static_cast<std::size_t>(i)], sizeof(int));
      std::memcpy(mine.data() + at + sizeof(int), probs.data(), record - sizeof(int));
    }
  }
  ScoredSamples scored;
  scored.total = global_sum(local);
  const std::vector<unsigned char> all = Comm::gather_to_root(mine);
  if (!Comm::is_root()) return scored;
  scored.probabilities.assign(static_cast<std::size_t>(data.size()) * classes, 0.0f);
  for (std::size_t at = 0; at + record <= all.size(); at += record) {
    int index = 0;
    std::memcpy(&index, all.data() + at, sizeof(int));
    std::memcpy(scored.probabilities.data() + static_cast<std::size_t>(index) * classes,
                all.data() + at + sizeof(int), record - sizeof(int));
  }
  return scored;
}

ScoredSamples score_samples(Model& model, const SampleSource& data, const InferenceOptions& o,
                            int image_size, int classes) {
  const int local_batch = (o.batch_size + Comm::size() - 1) / Comm::size();
  return allocating("inference on " + std::to_string(local_batch) + " images of " +
                        std::to_string(image_size) + "x" + std::to_string(image_size) +
                        " per rank (the layer outputs, estimated)",
                    model.step_bytes(local_batch, false), "Try a smaller --batch-size.",
                    [&] { return score_samples_unguarded(model, data, o, image_size, classes); });
}

// evaluate's output line, and with --report the report (rank 0); returns the exit code.
int report_evaluation(const LossResult& total, const InferenceOptions& o, const SampleSource& data,
                      std::vector<std::string> names, std::vector<float> probabilities, int classes,
                      int image_size) {
  std::cout << std::fixed << std::setprecision(4) << "loss " << total.loss_sum / total.count
            << " - accuracy " << static_cast<double>(total.correct) / total.count << " ("
            << total.count << " samples)\n";
  if (o.report.empty()) return 0;
  EvaluationReportInput in;
  in.dir = o.report;
  in.model_path = o.model;
  in.data_path = o.data;
  complete_class_names(names, data, classes);
  in.class_names = std::move(names);
  in.probabilities = std::move(probabilities);
  for (int i = 0; i < data.size(); ++i) in.labels.push_back(data.label(i));
  in.loss = total.loss_sum / total.count;
  in.image_size = image_size;
  in.options = o.report_options;
  return write_evaluation_report(in, data);
}

}  // namespace

int run_predict(int argc, char** argv) {
  InferenceOptions o;
  if (!parse(argc, argv, "predict", "input", o)) return 0;
  classify_model(o);
  const auto data = open_data(o.data, "--input");
  LoadedModel loaded = load_for_inference(o, *data);
  Model& model = loaded.model;
  std::vector<std::string>& names = loaded.class_names;
  o.chosen_preprocess = model_preprocess(o.preprocess, loaded, std::cerr);
  model.set_precision(o.chosen);
  const int classes = probability_columns(model);
  complete_class_names(names, *data, classes);
  // Each rank predicts its share of every batch; rank 0 gathers the rows and writes them in
  // sample order.
  const Rows lines = gather_rows(predict_rows(model, classes, *data, o, names));
  if (!Comm::is_root()) return 0;
  const char* first_column = dynamic_cast<const H5Source*>(data.get()) ? "index" : "file";
  if (o.output.empty())
    write_csv(std::cout, first_column, names, lines);
  else
    write_csv_file(o.output, first_column, names, lines);
  return 0;
}

int run_evaluate(int argc, char** argv) {
  InferenceOptions o;
  if (!parse(argc, argv, "evaluate", "data", o)) return 0;
  classify_model(o);
  const auto data = open_data(o.data, "--data");
  if (data->classes() == 0 || data->label(0) < 0)
    throw std::runtime_error(o.data + ": no labels, so there is nothing to evaluate against");
  LoadedModel loaded = load_for_inference(o, *data);
  Model& model = loaded.model;
  const std::vector<std::string>& names = loaded.class_names;
  o.chosen_preprocess = model_preprocess(o.preprocess, loaded, std::cerr);
  model.set_precision(o.chosen);
  const int image_size = model.sample_input_shape()[0];
  int classes = 0;
  try {
    classes = output_classes(model);
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string("--model ") + o.model + ": cannot evaluate it: " + e.what());
  }
  if (!names.empty() && !data->class_names().empty() && names != data->class_names())
    throw UsageError(o.data + "'s classes (" + join(data->class_names()) +
                     ") differ from the model's (" + join(names) +
                     "): label k would be scored against another class");
  if (data->classes() > classes)
    throw UsageError(o.data + " has " + std::to_string(data->classes()) + " classes, the model " +
                     std::to_string(classes));
  if (o.report.empty()) {
    const LossResult total =
        evaluate(model, *data, o.batch_size, image_size, o.chosen_preprocess, 2);
    return Comm::is_root() ? report_evaluation(total, o, *data, names, {}, classes, image_size)
                           : 0;  // the sums are global: rank 0 reports them
  }
  ScoredSamples scored = score_samples(model, *data, o, image_size, classes);
  if (!Comm::is_root()) return 0;
  return report_evaluation(scored.total, o, *data, names, std::move(scored.probabilities), classes,
                           image_size);
}

}  // namespace parafine
