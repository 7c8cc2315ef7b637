// A parafine Model from a KerasGraph (see model_from_config.hpp).
#include "parafine/io/model_from_config.hpp"

#include <stdexcept>

#include "parafine/layers/activation_layer.hpp"
#include "parafine/layers/batch_norm.hpp"
#include "parafine/layers/dense.hpp"

namespace parafine {

int config_image_size(const KerasGraph& graph) {
  for (const KerasNode& n : graph.nodes) {
    if (n.class_name != "InputLayer" || !n.inputs.empty()) continue;
    nlohmann::json shape = n.config.value("batch_shape", nlohmann::json());
    if (shape.is_null()) shape = n.config.value("batch_input_shape", nlohmann::json());
    if (shape.is_array() && shape.size() == 4 && shape[1].is_number_integer())
      return shape[1].get<int>();
    return 0;
  }
  return 0;
}

std::vector<std::string> training_problems(const KerasGraph& graph) {
  std::vector<std::string> problems;
  for (const KerasNode& n : graph.nodes) {
    for (const char* key :
         {"kernel_regularizer", "bias_regularizer", "activity_regularizer", "depthwise_regularizer",
          "beta_regularizer", "gamma_regularizer", "kernel_constraint", "bias_constraint",
          "depthwise_constraint", "beta_constraint", "gamma_constraint"}) {
      const auto it = n.config.is_object() ? n.config.find(key) : n.config.end();
      if (n.config.is_object() && it != n.config.end() && !it->is_null())
        problems.push_back("layer '" + n.flat_name + "' (" + n.class_name + ") has a " + key +
                           " (" + it->dump().substr(0, 60) +
                           "), which parafine does not apply: training would differ from Keras's");
    }
    const auto renorm = n.config.is_object() ? n.config.find("renorm") : n.config.end();
    if (n.config.is_object() && renorm != n.config.end() && renorm->is_boolean() &&
        renorm->get<bool>())
      problems.push_back("layer '" + n.flat_name +
                         "' (BatchNormalization) uses renorm=True, "
                         "which parafine does not implement");
  }
  return problems;
}

std::vector<std::string> training_notes(const KerasGraph& graph) {
  std::vector<std::string> notes;
  for (const KerasNode& n : graph.nodes)
    if (is_augmentation_layer(n.class_name))
      notes.push_back(
          "layer '" + n.flat_name + "' (" + n.class_name +
          ") is the identity here, as in inference: parafine does not augment "
          "inside a model (--augment applies Keras's augmentation layers to the input)");
  return notes;
}

namespace {

// The flat node range of a model's layers (nested models' included): they were inlined
// consecutively, so the range is [first, last].
std::pair<int, int> node_range(const KerasGraph& graph, int model) {
  int first = -1, last = -1;
  for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
    int m = graph.nodes[i].model;
    while (m > model) m = graph.models[static_cast<std::size_t>(m)].parent;
    if (m != model) continue;
    if (first < 0) first = static_cast<int>(i);
    last = static_cast<int>(i);
  }
  return {first, last};
}

}  // namespace

Model model_from_graph(const KerasGraph& graph, int image_size, const std::string& where) {
  std::vector<std::string> problems;
  Model model;
  for (const KerasNode& n : graph.nodes) {
    std::string problem;
    std::unique_ptr<Layer> layer = layer_from_config(n, image_size, problem);
    if (!layer) {
      problems.push_back(problem);
      continue;
    }
    if (n.inference_only)
      if (auto* bn = dynamic_cast<BatchNormalization*>(layer.get()))
        bn->set_called_in_inference(true);
    if (!problems.empty()) continue;
    try {
      model.add(std::move(layer), n.inputs);
    } catch (const std::exception& e) {
      problems.push_back(e.what());
    }
  }
  if (!problems.empty()) {
    std::string text = where + ": parafine cannot build " + std::to_string(problems.size()) +
                       " layer(s) of this model:";
    for (const std::string& p : problems) text += "\n  " + p;
    throw std::invalid_argument(text);
  }
  try {
    model.build();
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(where + ": " + e.what());
  }
  // Only the output layer's softmax/sigmoid is fused with the loss; elsewhere a Dense
  // differentiates its activation.
  for (int i = 0; i + 1 < model.size(); ++i)
    if (auto* dense = dynamic_cast<Dense*>(&model.layer(i))) dense->set_fused_with_loss(false);
  // A trailing Activation('softmax' | 'sigmoid') after a linear Dense is the classifier's head:
  // the loss takes its input as logits, so its backward passes dLoss/dlogits through.
  if (auto* act = dynamic_cast<ElementwiseActivation*>(&model.layer(model.size() - 1)))
    if (act->kind() == ElementwiseKind::kSoftmax || act->kind() == ElementwiseKind::kSigmoid) {
      act->set_fused_with_loss(true);
      // Its input is the logits the loss reads: kept by every forward, frozen or not.
      for (int in : model.inputs_of(model.size() - 1)) model.keep_output(in);
    }
  const int base = graph.base_model();
  if (base > 0) {
    const auto [first, last] = node_range(graph, base);
    model.set_base_range(first, last - first + 1);
  }
  return model;
}

}  // namespace parafine
