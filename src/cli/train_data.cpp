// Opening a training run's data and building its starting model (see train_data.hpp).
#include "cli/train_data.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <optional>
#include <sstream>
#include <tuple>

#include "cli/callback_options.hpp"
#include "cli/cli.hpp"
#include "cli/options.hpp"
#include "parafine/cache/feature_store.hpp"  // parse_byte_size
#include "parafine/core/atomic_file.hpp"
#include "parafine/core/compute.hpp"
#include "parafine/core/stop_signal.hpp"
#include "parafine/data/folder_source.hpp"
#include "parafine/data/subset_source.hpp"
#include "parafine/data/validation_split.hpp"
#include "parafine/dist/comm.hpp"
#include "parafine/io/keras_config_writer.hpp"
#include "parafine/io/model_file.hpp"
#include "parafine/io/model_files.hpp"
#include "parafine/io/model_from_config.hpp"
#include "parafine/train/checkpoint.hpp"
#include "parafine/train/class_weights.hpp"
#include "parafine/train/evaluation.hpp"
#include "parafine/train/history_csv.hpp"
#include "parafine/train/trainer.hpp"

namespace parafine {

namespace {

void require(bool ok, const std::string& message) {
  if (!ok) throw UsageError(message);
}

// --class-weight's classes against an image folder's class names (its sub-folders, from the
// listing open_data makes anyway), before any image is decoded: a misspelt class fails at
// once. An HDF5 dataset's class names are read without decoding; they are checked when it is
// opened (resolve_class_weights).
void check_class_weight_classes(const TrainOptions& o, const std::vector<std::string>& names) {
  if (o.class_weight_spec.empty() || o.class_weight_spec.balanced) return;
  resolve_class_weights(o.class_weight_spec, names, std::vector<long>(names.size(), 1));
}

// --validation-split of an image folder: Keras's listing and split of it, each subset a
// FolderSource over the folder's classes; bad images are dropped after the split, as parafine
// decides them, so the split itself stays Keras's.
TrainData open_split_folder(const TrainOptions& o, const SourceOptions& so, std::ostream& out) {
  const TrainConfig& c = o.config;
  const KerasFolderIndex index = keras_index_directory(o.train_path);
  check_class_weight_classes(o, index.class_names);
  ValidationSplit split;
  try {
    split = keras_validation_split(index.files, index.labels, c.validation_split,
                                   static_cast<std::int64_t>(c.seed));
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string(e.what()) + " (--train " + o.train_path + ")");
  }
  out << "--validation-split " << c.validation_split << " --seed " << c.seed
      << ": Keras's split (image_dataset_from_directory, subset=\"both\") of the "
      << index.files.size() << " files of " << o.train_path << " in " << index.class_names.size()
      << " classes: " << split.training.size() << " training, " << split.validation.size()
      << " validation" << std::endl;
  const std::string prefix = o.train_path.back() == '/' ? o.train_path : o.train_path + "/";
  std::ostringstream lines;
  const auto subset = [&](const std::vector<LabeledFile>& files, const char* tag,
                          const char* name) {
    std::vector<std::string> paths;
    std::vector<int> labels;
    for (const LabeledFile& f : files) {
      paths.push_back(prefix + f.path);
      labels.push_back(f.label);
      lines << tag << '\t' << f.label << '\t' << f.path << '\n';
    }
    return std::make_unique<FolderSource>("--train " + o.train_path + " (" + name + " subset)",
                                          paths, labels, index.class_names, so.on_bad_image,
                                          so.threads, so.log);
  };
  TrainData d;
  d.train = subset(split.training, "train", "training");
  d.val = subset(split.validation, "val", "validation");
  d.split_text = lines.str();
  return d;
}

// --validation-split of an HDF5 dataset: the same algorithm on its sample indices.
TrainData open_split_samples(const TrainOptions& o, const SourceOptions& so, std::ostream& out) {
  const TrainConfig& c = o.config;
  std::shared_ptr<const SampleSource> whole = open_sample_source(o.train_path, "--train", so);
  IndexSplit split;
  try {
    split = keras_index_split(whole->size(), c.validation_split, static_cast<std::int64_t>(c.seed));
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string(e.what()) + " (--train " + o.train_path + ")");
  }
  out << "--validation-split " << c.validation_split << " --seed " << c.seed
      << ": Keras's split (its image_dataset_from_directory algorithm on the sample indices) of "
         "the "
      << whole->size() << " samples of " << o.train_path << ": " << split.training.size()
      << " training, " << split.validation.size() << " validation" << std::endl;
  std::ostringstream lines;
  for (const auto& [tag, indices] :
       {std::pair{"train", &split.training}, std::pair{"val", &split.validation}})
    for (const int i : *indices) lines << tag << '\t' << whole->label(i) << '\t' << i << '\n';
  TrainData d;
  d.train = std::make_unique<SubsetSource>(whole, std::move(split.training));
  d.val = std::make_unique<SubsetSource>(whole, std::move(split.validation));
  d.split_text = lines.str();
  return d;
}

// --split-file: rank 0 writes the split, whole or not at all.
void write_split_file(const std::string& path, const std::string& text, std::ostream& out) {
  if (path.empty() || !Comm::is_root()) return;
  AtomicFile file(path, "--split-file", text.size());
  file.write([&](const std::string& temp_path) {
    std::ofstream f(temp_path, std::ios::trunc | std::ios::binary);
    f << text;
    f.close();
    if (!f) throw std::runtime_error("writing failed (disk full, or a file size limit?)");
  });
  out << "split written to " << path << std::endl;
}

// Opens --train and --val (or the two subsets of --validation-split); both need labels, and
// the same classes.

}  // namespace

TrainData open_data(const TrainOptions& o, std::ostream& out) {
  SourceOptions so;
  so.on_bad_image = parse_bad_image_policy(o.on_bad_image);
  so.threads = parafine::threads();
  so.log = &out;
  TrainData d;
  if (o.validation_split_given) {
    std::error_code ec;
    d = std::filesystem::is_directory(o.train_path, ec) ? open_split_folder(o, so, out)
                                                        : open_split_samples(o, so, out);
  } else {
    std::error_code ec;
    if (std::filesystem::is_directory(o.train_path, ec)) {  // listed, checked, then decoded
      ImageFolder folder = scan_image_folder(o.train_path);
      check_class_weight_classes(o, folder.class_names);
      d.train = std::make_unique<FolderSource>(o.train_path, std::move(folder), so.on_bad_image,
                                               so.threads, so.log);
    } else {
      d.train = open_sample_source(o.train_path, "--train", so);
    }
    if (!o.val_path.empty()) d.val = open_sample_source(o.val_path, "--val", so);
  }
  for (const auto& [source, option, path] : {std::tuple{d.train.get(), "--train", o.train_path},
                                             std::tuple{d.val.get(), "--val", o.val_path}})
    if (source && (source->classes() == 0 || source->label(0) < 0))
      throw std::runtime_error(std::string(option) + " " + path +
                               " has no 'labels': training and validation need labels");
  if (d.val && d.val->class_names() != d.train->class_names() && !d.val->class_names().empty())
    throw std::invalid_argument(
        "--val's classes differ from --train's: the label indices would not mean the same thing");
  require(o.classes == 0 || o.classes == d.train->classes(),
          "--classes " + std::to_string(o.classes) + " but --train has " +
              std::to_string(d.train->classes()) + " classes");
  write_split_file(o.split_file, d.split_text, out);
  return d;
}

// The backbone and head for the training data's classes, from --init or --weights; a random base
// gets its frozen BN statistics calibrated first.
Model build_model(TrainOptions& o, const SampleSource& train, std::ostream& out) {
  if (o.init_model) {
    out << "initialised from " << o.init << " (" << model_format_name(o.init_model->format) << ", "
        << o.init_model->model.size() << " layers, base " << o.config.base_layers << " layers)"
        << std::endl;
    return std::move(o.init_model->model);
  }
  o.net.classes = train.classes();
  o.net.image_size = o.config.image_size;
  Model model = build_network(o.net);
  if (prepare_model(model, o.net, o.weights, o.weights_dir, o.init, o.config.seed, out))
    o.config.calibrate_bn_samples = 64;
  return model;
}

// --class-weight against the training classes and their counts, logged.
void resolve_class_weights(TrainOptions& o, const SampleSource& train, std::ostream& out) {
  if (o.class_weight_spec.empty()) return;
  o.config.class_weights =
      resolve_class_weights(o.class_weight_spec, train.class_names(), class_counts(train));
  out << class_weights_text(o.config.class_weights, train.class_names(),
                            o.class_weight_spec.balanced)
      << std::endl;
}

void report_run(const TrainOptions& o, const TrainData& d, Precision precision, std::ostream& out) {
  const TrainConfig& c = o.config;
  out << "parafine train: ";
  if (o.init_model)
    out << "the model of " << o.init;
  else
    out << backbone_info(o.net.backbone).keras_name;
  if (!o.init_model && o.net.backbone == Backbone::kMobileNetV2)
    out << " (alpha " << alpha_text(o.net.alpha) << ")";
  out << ", " << preprocess_name(c.preprocess) << " preprocessing; " << d.train->size()
      << " training images, " << (d.val ? d.val->size() : 0) << " validation images, "
      << d.train->classes() << " classes, " << c.image_size << "x" << c.image_size
      << ", global batch " << c.batch_size << ", " << Comm::size() << " rank(s) x "
      << parafine::threads() << " threads, " << precision_name(precision) << std::endl;
  if (o.init_model) return;
  if (const std::string note = backbone_note(o.net); !note.empty()) out << note << std::endl;
}

// Peak resident memory of rank 0 and the largest of any rank (collective).

}  // namespace parafine
