// `parafine inspect MODEL` for a file with a Keras config (.keras, Keras 2 full-model .h5) or a
// Keras 3 .weights.h5: a summary in the manner of Keras's model.summary() (layer, class, output
// shape, parameters, inputs), nested models indented under their own line, then whether
// parafine can run it (predict, evaluate) and train it, with every reason when it cannot.
#include <iomanip>
#include <iostream>
#include <sstream>

#include "cli/cli.hpp"
#include "parafine/io/keras_config.hpp"
#include "parafine/io/model_files.hpp"
#include "parafine/io/model_from_config.hpp"
#include "parafine/model/model_summary.hpp"
#include "parafine/train/evaluation.hpp"

namespace parafine {

namespace {

int depth_of(const KerasGraph& g, int model) {
  int depth = 0;
  while (model > 0) {
    model = g.models[static_cast<std::size_t>(model)].parent;
    ++depth;
  }
  return depth;
}

std::string pad(const std::string& s, std::size_t width) {
  return s.size() >= width ? s + " " : s + std::string(width - s.size(), ' ');
}

std::string shape_text(const Model* model, const std::string& flat_name) {
  if (!model) return "?";
  const int i = model->index_of(flat_name);
  if (i < 0) return "?";
  const Shape s = model->output_shape(i, 1);
  std::string t = "(None";
  for (int d = 1; d < s.rank(); ++d) t += ", " + std::to_string(s[d]);
  return t + ")";
}

long long params_of(const Model* model, const std::string& flat_name) {
  if (!model) return -1;
  const int i = model->index_of(flat_name);
  long long n = 0;
  for (const ParamRef& r : model->param_refs())
    if (r.node == i) n += static_cast<long long>(r.shape.numel());
  return n;
}

void print_graph(const KerasGraph& g, const Model* model) {
  const KerasModel& top = g.models[0];
  std::cout << "Model: \"" << top.name << "\" (" << top.class_name << ", Keras " << g.keras_major
            << " serialisation)\n"
            << pad(" Layer (type)", 52) << pad("Output Shape", 24) << pad("Param #", 12)
            << "Connected to\n";
  int current = 0;
  long long total = 0;
  for (const KerasNode& n : g.nodes) {
    if (n.model != current) {
      // Entering a nested model (possibly several levels): a header line per level entered.
      std::vector<int> chain;
      for (int m = n.model; m > 0 && m != current; m = g.models[static_cast<std::size_t>(m)].parent)
        chain.insert(chain.begin(), m);
      for (int m : chain) {
        const KerasModel& km = g.models[static_cast<std::size_t>(m)];
        std::cout << std::string(static_cast<std::size_t>(2 * depth_of(g, m) - 1), ' ') << km.name
                  << " (" << km.class_name << ", nested"
                  << (n.inference_only ? ", called with training=False" : "") << ")\n";
      }
      current = n.model;
    }
    const int depth = depth_of(g, n.model);
    std::string inputs = "[";
    for (std::size_t k = 0; k < n.inputs.size(); ++k)
      inputs += (k ? ", " : "") + g.nodes[static_cast<std::size_t>(n.inputs[k])].flat_name;
    inputs += "]";
    const long long p = params_of(model, n.flat_name);
    if (p > 0) total += p;
    std::cout << pad(std::string(static_cast<std::size_t>(1 + 2 * depth), ' ') + n.flat_name +
                         " (" + n.class_name + ")",
                     52)
              << pad(shape_text(model, n.flat_name), 24)
              << pad(p < 0 ? "?" : with_commas(static_cast<std::size_t>(p)), 12) << inputs << "\n";
  }
  std::cout << "Total params: " << (model ? with_commas(static_cast<std::size_t>(total)) : "?")
            << "\n";
}

// Whether the two phases can train it: the output loss and the base.
void report_training(const LoadedModel& loaded, std::vector<std::string>& reasons) {
  reasons = reasons_not_trainable(loaded);
  try {
    const OutputLoss loss = output_loss(loaded.model);
    std::cout << "output: " << output_classes(loaded.model) << " classes, "
              << (loss == OutputLoss::kBinary ? "binary cross-entropy (one sigmoid unit)"
                                              : "categorical cross-entropy")
              << "\n";
  } catch (const std::invalid_argument&) {
    // listed in reasons
  }
  for (const std::string& note : training_notes(loaded.graph))
    std::cout << "note: " << note << "\n";
  const Model& m = loaded.model;
  if (m.base_layers() > 0) {
    const int base = loaded.graph.base_model();
    std::cout << "base: " << m.base_layers() << " layers ("
              << (base > 0 ? "the nested model '" +
                                 loaded.graph.models[static_cast<std::size_t>(base)].name + "'"
                           : std::string("the backbone's base.layers"))
              << "): phase 1 trains what follows it, --unfreeze-last N counts its layers\n";
  } else {
    std::cout << "base: none (no nested base model): --unfreeze-last N counts the model's layers "
                 "and phase 1 has nothing to train\n";
  }
}

}  // namespace

int inspect_model_file(const std::string& path) {
  ModelFormat format;
  try {
    format = model_format_of(path, "inspect");
  } catch (const std::invalid_argument&) {
    return -1;  // no model suffix: the weight-file inspection says what it is
  }
  if (format == ModelFormat::kLegacyH5) {
    try {
      if (!has_keras_config(path)) return -1;  // a tf.keras weights file
    } catch (const std::exception&) {
      return -1;  // unreadable as a model: the weight-file inspection reports it
    }
  }
  std::cout << "file: " << path << "\nformat: " << model_format_name(format) << "\n";
  std::vector<std::string> reasons;
  std::optional<LoadedModel> loaded;
  try {
    loaded.emplace(load_model_file(path, 0));
  } catch (const std::exception& e) {
    reasons.push_back(e.what());
  }
  if (loaded) {
    print_graph(loaded->graph, &loaded->model);
    report_training(*loaded, reasons);
  } else if (format != ModelFormat::kKeras3Weights) {
    try {
      const ModelFileStructure s = read_model_structure(path);
      print_graph(s.graph, nullptr);
    } catch (const std::exception&) {
      // the reason is already listed
    }
  }
  if (!loaded) {
    std::cout << "parafine cannot run it:\n";
    for (const std::string& r : reasons) std::cout << "  " << r << "\n";
    return 2;
  }
  if (reasons.empty()) {
    std::cout << "parafine can run it (predict, evaluate) and train it (train --init " << path
              << ")\n";
  } else {
    std::cout << "parafine can run it (predict) but not train it (train --init) as Keras would:\n";
    for (const std::string& r : reasons) std::cout << "  " << r << "\n";
  }
  return 0;
}

}  // namespace parafine
