// Keras 3 config.json and weight paths of a Model (see keras_config_writer.hpp).
#include "parafine/io/keras_config_writer.hpp"

#include <map>
#include <stdexcept>

#include "parafine/io/keras3_weights_file.hpp"
#include "parafine/layers/activation_layer.hpp"
#include "parafine/layers/batch_norm.hpp"
#include "parafine/layers/concatenate.hpp"
#include "parafine/layers/conv2d.hpp"
#include "parafine/layers/dense.hpp"
#include "parafine/layers/depthwise_conv2d.hpp"
#include "parafine/layers/dropout.hpp"
#include "parafine/layers/flatten.hpp"
#include "parafine/layers/normalization.hpp"
#include "parafine/layers/pass_through.hpp"
#include "parafine/layers/pooling.hpp"
#include "parafine/layers/rescaling.hpp"
#include "parafine/layers/simple_layers.hpp"

namespace parafine {

using json = nlohmann::json;

namespace {

const char* padding_text(Padding p) {
  return p == Padding::kSame ? "same" : "valid";
}

json pair(int a, int b) {
  return json::array({a, b});
}

const char* dense_activation(Activation a) {
  switch (a) {
    case Activation::kRelu:
      return "relu";
    case Activation::kSoftmax:
      return "softmax";
    case Activation::kSigmoid:
      return "sigmoid";
    case Activation::kTanh:
      return "tanh";
    case Activation::kLinear:
      break;
  }
  return "linear";
}

json numbers(const std::vector<float>& v) {
  if (v.size() == 1) return v[0];
  return json(v);
}

}  // namespace

json keras3_layer_config(const Layer& layer, const std::string& keras_class) {
  json c = {{"name", layer.name()}, {"trainable", layer.trainable}, {"dtype", "float32"}};
  const std::string type = keras_class.empty() ? std::string(layer.type()) : keras_class;
  if (const auto* l = dynamic_cast<const InputLayer*>(&layer)) {
    const Shape& s = l->sample_shape();
    return {{"batch_shape", json::array({nullptr, s[0], s[1], s[2]})},
            {"dtype", "float32"},
            {"sparse", false},
            {"name", layer.name()}};
  }
  if (const auto* l = dynamic_cast<const Conv2D*>(&layer)) {
    c["filters"] = l->filters();
    c["kernel_size"] = pair(l->kernel_h(), l->kernel_w());
    c["strides"] = pair(l->stride(), l->stride());
    c["padding"] = padding_text(l->padding());
    c["data_format"] = "channels_last";
    c["dilation_rate"] = pair(1, 1);
    c["groups"] = 1;
    c["activation"] = l->activation() == ConvActivation::kRelu ? "relu" : "linear";
    c["use_bias"] = l->use_bias();
  } else if (const auto* l = dynamic_cast<const DepthwiseConv2D*>(&layer)) {
    c["kernel_size"] = pair(l->kernel_size(), l->kernel_size());
    c["strides"] = pair(l->stride(), l->stride());
    c["padding"] = padding_text(l->padding());
    c["data_format"] = "channels_last";
    c["dilation_rate"] = pair(1, 1);
    c["depth_multiplier"] = l->depth_multiplier();
    c["activation"] = "linear";
    c["use_bias"] = l->use_bias();
  } else if (const auto* l = dynamic_cast<const BatchNormalization*>(&layer)) {
    c["axis"] = -1;
    c["momentum"] = l->momentum();
    c["epsilon"] = l->epsilon();
    c["center"] = true;
    c["scale"] = l->scale();
  } else if (const auto* l = dynamic_cast<const Dense*>(&layer)) {
    c["units"] = l->units();
    c["activation"] = dense_activation(l->activation());
    c["use_bias"] = l->use_bias();
  } else if (const auto* l = dynamic_cast<const ReLU*>(&layer)) {
    if (type == "Activation") {
      c["activation"] = l->max_value() ? "relu6" : "relu";
    } else {
      c["max_value"] = l->max_value() ? json(*l->max_value()) : json(nullptr);
      c["negative_slope"] = 0.0;
      c["threshold"] = 0.0;
    }
  } else if (const auto* l = dynamic_cast<const ElementwiseActivation*>(&layer)) {
    c["activation"] = l->activation_name();
  } else if (const auto* l = dynamic_cast<const ZeroPadding2D*>(&layer)) {
    c["padding"] = json::array({pair(l->top(), l->bottom()), pair(l->left(), l->right())});
    c["data_format"] = "channels_last";
  } else if (const auto* l = dynamic_cast<const MaxPooling2D*>(&layer)) {
    c["pool_size"] = pair(l->pool(), l->pool());
    c["strides"] = pair(l->stride(), l->stride());
    c["padding"] = padding_text(l->padding());
    c["data_format"] = "channels_last";
  } else if (const auto* l = dynamic_cast<const AveragePooling2D*>(&layer)) {
    c["pool_size"] = pair(l->pool(), l->pool());
    c["strides"] = pair(l->stride(), l->stride());
    c["padding"] = padding_text(l->padding());
    c["data_format"] = "channels_last";
  } else if (type == "GlobalAveragePooling2D" || type == "GlobalMaxPooling2D" ||
             type == "Flatten") {
    c["data_format"] = "channels_last";
    if (type != "Flatten") c["keepdims"] = false;
  } else if (type == "Add") {
  } else if (dynamic_cast<const Concatenate*>(&layer)) {
    c["axis"] = -1;
  } else if (const auto* l = dynamic_cast<const Dropout*>(&layer)) {
    c["rate"] = l->rate();
    c["seed"] = l->seed() ? json(*l->seed()) : json(nullptr);
    c["noise_shape"] = nullptr;
  } else if (const auto* l = dynamic_cast<const Rescaling*>(&layer)) {
    c["scale"] = numbers(l->scale());
    c["offset"] = numbers(l->offset());
  } else if (const auto* l = dynamic_cast<const Normalization*>(&layer)) {
    c["axis"] = -1;
    c["invert"] = false;
    if (l->adapted())
      throw std::invalid_argument(
          "layer '" + layer.name() +
          "' (an adapted Normalization): its int64 'count' variable is not written by parafine; "
          "save the model as .h5, or build the layer with mean= and variance=");
    c["mean"] = numbers(l->constant_mean());
    c["variance"] = numbers(l->constant_variance());
  } else if (dynamic_cast<const PassThrough*>(&layer)) {
    // An augmentation layer or a nested model's InputLayer: the graph's config is kept.
  } else {
    throw std::logic_error(std::string("no Keras config for layer class ") + type);
  }
  return c;
}

KerasGraph graph_of_model(const Model& model, const std::string& name) {
  KerasGraph g;
  g.keras_major = 3;
  KerasModel m;
  m.class_name = "Functional";
  m.name = name;
  g.models.push_back(m);
  for (int i = 0; i < model.size(); ++i) {
    KerasNode n;
    n.class_name = model.layer(i).type();
    n.name = n.flat_name = model.layer(i).name();
    n.model = 0;
    n.inputs = model.inputs_of(i);
    n.config = keras3_layer_config(model.layer(i));
    g.nodes.push_back(std::move(n));
    g.models[0].layers.push_back({i, -1});
  }
  g.output = model.size() - 1;
  return g;
}

namespace {

// Writes the Keras 3 config of model `m` of `graph`, each layer's settings from `model`.
class ConfigWriter {
 public:
  ConfigWriter(const KerasGraph& graph, const Model& model) : g_(graph), model_(model) {
    // Which model entry produces each node's output as seen from outside a nested model.
    model_output_.assign(g_.models.size(), -1);
    compute_outputs();
  }

  json model_entry(int m) {
    const KerasModel& km = g_.models[static_cast<std::size_t>(m)];
    json config = {{"name", km.name}, {"trainable", m == 0 || model_trainable(g_, model_, m)}};
    json layers = json::array();
    if (km.class_name == "Sequential") {
      for (int node : input_nodes(m)) layers.push_back(layer_entry(node, false));
      for (const KerasLayerEntry& e : km.layers)
        layers.push_back(e.node >= 0 ? layer_entry(e.node, false) : model_entry(e.model));
      config["layers"] = layers;
      return {{"module", "keras"},
              {"class_name", "Sequential"},
              {"config", config},
              {"registered_name", nullptr}};
    }
    for (const KerasLayerEntry& e : km.layers) {
      if (e.node >= 0) {
        layers.push_back(layer_entry(e.node, true));
      } else {
        json sub = model_entry(e.model);
        sub["name"] = g_.models[static_cast<std::size_t>(e.model)].name;
        sub["inbound_nodes"] = call_of(first_node(e.model), true);
        layers.push_back(sub);
      }
    }
    config["layers"] = layers;
    const int input = input_nodes(m).empty() ? -1 : input_nodes(m)[0];
    // One input and one output: single triples, as Keras 3 writes a model built on single
    // tensors (functional.py get_config maps _inputs_struct), so it loads back returning one
    // tensor, not a list of one.
    config["input_layers"] = json::array({g_.nodes[static_cast<std::size_t>(input)].name, 0, 0});
    config["output_layers"] = reference(model_output_[static_cast<std::size_t>(m)], m, true);
    return {{"module", "keras.src.models.functional"},
            {"class_name", "Functional"},
            {"config", config},
            {"registered_name", "Functional"}};
  }

 private:
  // Nodes that are InputLayers of model m itself.
  std::vector<int> input_nodes(int m) const {
    std::vector<int> out;
    for (std::size_t i = 0; i < g_.nodes.size(); ++i)
      if (g_.nodes[i].model == m && g_.nodes[i].class_name == "InputLayer")
        out.push_back(static_cast<int>(i));
    return out;
  }

  int first_node(int m) const {
    for (std::size_t i = 0; i < g_.nodes.size(); ++i)
      if (inside(g_.nodes[i].model, m)) return static_cast<int>(i);
    return -1;
  }

  bool inside(int model, int outer) const {
    while (model >= 0 && model != outer) model = g_.models[static_cast<std::size_t>(model)].parent;
    return model == outer;
  }

  // The outermost model's output is graph.output; a nested model's output is the last node
  // inside it that a node outside reads.
  void compute_outputs() {
    for (std::size_t m = 0; m < g_.models.size(); ++m) {
      for (std::size_t i = 0; i < g_.nodes.size(); ++i)
        for (int in : g_.nodes[i].inputs)
          if (inside(g_.nodes[static_cast<std::size_t>(in)].model, static_cast<int>(m)) &&
              !inside(g_.nodes[i].model, static_cast<int>(m)))
            model_output_[m] = in;
    }
    // A nested model whose output no outer layer reads is the last step: its output is the
    // model's (Teachable Machine's Sequential head inside the outer Sequential).
    for (std::size_t m = 0; m < g_.models.size(); ++m)
      if (model_output_[m] < 0 &&
          inside(g_.nodes[static_cast<std::size_t>(g_.output)].model, static_cast<int>(m)))
        model_output_[m] = g_.output;
    model_output_[0] = g_.output;
  }

  // How model `m` refers to the tensor of node `node`: the layer itself, or the outermost
  // nested model (inside m) that holds it. Its first call is node 0 in a call's arguments
  // (serialize_node counts only the outer model's nodes) but node 1 in output_layers (get_config
  // counts a Functional's built-in node; functional_from_config subtracts it again).
  json reference(int node, int m, bool in_output_layers = false) const {
    int holder = g_.nodes[static_cast<std::size_t>(node)].model;
    if (holder == m) return json::array({g_.nodes[static_cast<std::size_t>(node)].name, 0, 0});
    while (g_.models[static_cast<std::size_t>(holder)].parent != m)
      holder = g_.models[static_cast<std::size_t>(holder)].parent;
    const KerasModel& km = g_.models[static_cast<std::size_t>(holder)];
    return json::array({km.name, in_output_layers && km.class_name == "Functional" ? 1 : 0, 0});
  }

  json tensor(int node, int m) const {
    const Shape s = model_.output_shape(node, 1);
    json shape = json::array({nullptr});
    for (int d = 1; d < s.rank(); ++d) shape.push_back(s[d]);
    return {{"class_name", "__keras_tensor__"},
            {"config",
             {{"shape", shape}, {"dtype", "float32"}, {"keras_history", reference(node, m)}}}};
  }

  // The inbound_nodes of a call of `node` (a layer, or the first node of a nested model) from
  // its model: [{"args": [x] or [[x, y]], "kwargs": {...}}].
  json call_of(int node, bool nested_model_call) const {
    const KerasNode& n = g_.nodes[static_cast<std::size_t>(node)];
    if (n.inputs.empty()) return json::array();
    int m = n.model;
    if (nested_model_call) m = g_.models[static_cast<std::size_t>(n.model)].parent;
    json args = json::array();
    if (n.inputs.size() == 1) {
      args.push_back(tensor(n.inputs[0], m));
    } else {
      json list = json::array();
      for (int in : n.inputs) list.push_back(tensor(in, m));
      args.push_back(list);
    }
    json kwargs = json::object();
    // base(x, training=False): the nested model runs in inference, its caller does not.
    if (nested_model_call && called_in_inference(n.model) && !called_in_inference(m))
      kwargs["training"] = false;
    return json::array({{{"args", args}, {"kwargs", kwargs}}});
  }

  // Whether model m's own nodes all run in inference (its caller passed training=False).
  bool called_in_inference(int m) const {
    for (const KerasNode& n : g_.nodes)
      if (n.model == m) return n.inference_only;
    return false;
  }

  json layer_entry(int node, bool functional) const {
    const KerasNode& n = g_.nodes[static_cast<std::size_t>(node)];
    const int i = model_.index_of(n.flat_name);
    json config = keras3_layer_config(model_.layer(i), n.class_name);
    if (dynamic_cast<const PassThrough*>(&model_.layer(i))) {
      config = n.config;  // as read (an augmentation layer's settings, a nested InputLayer)
      if (n.class_name == "InputLayer") {
        const Shape s = model_.output_shape(i, 1);
        config = {{"batch_shape", json::array({nullptr, s[1], s[2], s[3]})},
                  {"dtype", "float32"},
                  {"sparse", false}};
      }
    } else if (g_.keras_major == 3 && n.config.is_object()) {
      json merged = n.config;  // keep what parafine does not model (initializers, ...)
      for (auto it = config.begin(); it != config.end(); ++it) {
        const auto old = merged.find(it.key());
        // A number parafine holds as float (epsilon 0.001 as 0.0010000000474974513) keeps
        // the file's spelling when it is the same float.
        const bool same_float =
            old != merged.end() && old->is_number_float() && it.value().is_number() &&
            static_cast<float>(old->get<double>()) == static_cast<float>(it.value().get<double>());
        if (!same_float) merged[it.key()] = it.value();
      }
      config = merged;
    }
    config["name"] = n.name;
    json entry = {{"module", "keras.layers"},
                  {"class_name", n.class_name},
                  {"config", config},
                  {"registered_name", nullptr}};
    if (functional) {
      entry["name"] = n.name;
      entry["inbound_nodes"] = n.class_name == "InputLayer" ? json::array() : call_of(node, false);
    }
    return entry;
  }

  const KerasGraph& g_;
  const Model& model_;
  std::vector<int> model_output_;
};

}  // namespace

std::string keras3_model_config(const KerasGraph& graph, const Model& model) {
  ConfigWriter writer(graph, model);
  json root = writer.model_entry(0);
  return root.dump(1);
}

bool model_trainable(const KerasGraph& graph, const Model& model, int m) {
  for (const KerasNode& n : graph.nodes) {
    int owner = n.model;
    while (owner > m) owner = graph.models[static_cast<std::size_t>(owner)].parent;
    if (owner != m) continue;
    const int i = model.index_of(n.flat_name);
    if (i >= 0 && model.layer(i).trainable) return true;
  }
  return false;
}

}  // namespace parafine
