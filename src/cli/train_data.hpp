// The data and starting model of a training run, from its options: --train/--val (or Keras's
// validation split of --train), the class weights, the network with its starting weights, and
// the run's summary line. Shared by `parafine train` and `parafine sweep`.
#pragma once

#include <iosfwd>
#include <memory>
#include <string>

#include "cli/train_options.hpp"
#include "parafine/core/precision.hpp"
#include "parafine/data/sample_source.hpp"
#include "parafine/model/model.hpp"

namespace parafine {

struct TrainData {
  std::unique_ptr<SampleSource> train, val;  // val may be null
  std::string split_text;                    // --validation-split: the --split-file lines
};

// Opens --train and --val (or the two subsets of --validation-split); both need labels, and
// the same classes; --class-weight's class names are checked against an image folder's before
// any image is decoded. Writes --split-file.
TrainData open_data(const TrainOptions& o, std::ostream& out);

// The backbone and head for the training data's classes, from --init or --weights; a random
// base gets its frozen BN statistics calibrated first (o.config.calibrate_bn_samples).
Model build_model(TrainOptions& o, const SampleSource& train, std::ostream& out);

// --class-weight against the training classes, into o.config.class_weights, logged.
void resolve_class_weights(TrainOptions& o, const SampleSource& train, std::ostream& out);

// The run's one-line summary (network, data, sizes, ranks, precision) and the backbone's note.
void report_run(const TrainOptions& o, const TrainData& d, Precision precision, std::ostream& out);

}  // namespace parafine
