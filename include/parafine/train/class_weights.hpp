// --class-weight: Keras's fit(class_weight=...) as a train option. The text is parsed before
// any data is opened; the classes it names are resolved against the training data's classes.
// Each training sample's loss is then weighted by its class's weight (core/loss.hpp).
//
// Keras (trainers/data_adapters/data_adapter_utils.py class_weight_to_sample_weights, and
// tf_dataset_adapter.py make_class_weight_map_fn) turns class_weight into a float32 (floatx)
// sample_weight array, w = class_weight.get(label, 1.0): a class not in the dict gets weight 1.
// parafine does the same, rounding each weight to float32 as Keras's array holds it.
// `balanced` is sklearn's compute_class_weight("balanced"): n / (k * count_c) over the
// training set (k classes, n samples); a class without training samples is an error there too.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "parafine/core/loss.hpp"

namespace parafine {

class SampleSource;

struct ClassWeightSpec {
  bool balanced = false;
  // (class as written: a class name or a class index, weight) in the order given.
  std::vector<std::pair<std::string, double>> entries;
  bool empty() const { return !balanced && entries.empty(); }
};

// "" (no weights) | "balanced" | "C0:W0,C1:W1,...". Throws std::invalid_argument naming
// --class-weight for malformed text, a weight that is negative, not finite or not a number, or
// a class written twice.
ClassWeightSpec parse_class_weight(const std::string& text);

// The weight of each of `counts.size()` classes. A C that is one of `class_names` is that
// class (a name wins over an index: with folders "1" and "2", "1" is the folder "1", index 0);
// otherwise a whole number in [0, classes) is the index. Throws std::invalid_argument naming
// --class-weight for an unknown class, two entries naming the same class, or (balanced) a
// class without training samples. counts[c] = training samples of class c.
ClassWeights resolve_class_weights(const ClassWeightSpec& spec,
                                   const std::vector<std::string>& class_names,
                                   const std::vector<long>& counts);

// sklearn's balanced weights n / (k * count_c), float64 (before the float32 rounding).
std::vector<double> balanced_class_weights(const std::vector<long>& counts);

// Samples per class of a labelled source: [classes()].
std::vector<long> class_counts(const SampleSource& data);

// "class weights: cats 0.5, dogs 2 (balanced)" for the log: every class, by name when named.
std::string class_weights_text(const ClassWeights& weights,
                               const std::vector<std::string>& class_names, bool balanced);

// One line per class for trajectory_options: "--class-weight 0:W0,1:W1,..." with exact
// weights, or "" without weights.
std::string class_weights_option(const ClassWeights& weights);

}  // namespace parafine
