// Parsing a Keras model config (Keras 2 or Keras 3 serialisation) into a flat KerasGraph (see
// keras_config.hpp). Written from keras/src/models/functional.py (get_config,
// functional_from_config, deserialize_node), keras/src/models/sequential.py and tf-keras's
// functional.py (the Keras 2 form).
#include "parafine/io/keras_config.hpp"

#include <map>
#include <stdexcept>

namespace parafine {

using json = nlohmann::json;

int KerasGraph::find(const std::string& flat_name) const {
  for (std::size_t i = 0; i < nodes.size(); ++i)
    if (nodes[i].flat_name == flat_name) return static_cast<int>(i);
  return -1;
}

int KerasGraph::base_model() const {
  int found = -1;
  for (std::size_t m = 1; m < models.size(); ++m) {
    bool has_weights = false;
    for (const KerasNode& n : nodes)
      if (n.model == static_cast<int>(m) &&
          (n.class_name == "Conv2D" || n.class_name == "DepthwiseConv2D" ||
           n.class_name == "Dense" || n.class_name == "BatchNormalization"))
        has_weights = true;
    if (!has_weights) continue;
    // A model nested in the base (a block) belongs to it: count only the outermost such model.
    int parent = models[m].parent;
    while (parent > 0 && parent != found) parent = models[static_cast<std::size_t>(parent)].parent;
    if (found >= 0 && parent == found) continue;
    if (found >= 0) return -1;  // two bases
    found = static_cast<int>(m);
  }
  return found;
}

namespace {

bool is_model_class(const std::string& c) {
  return c == "Functional" || c == "Sequential" || c == "Model";
}

// A layer's reference to a tensor: [layer name, node index, tensor index].
struct TensorRef {
  std::string layer;
  int node = 0, tensor = 0;
};

class ConfigParser {
 public:
  explicit ConfigParser(std::string where) : where_(std::move(where)) {}

  KerasGraph parse(const json& root) {
    if (!root.is_object() || !root.contains("class_name") || !root.contains("config"))
      fail("", "not a Keras model config (no class_name and config at the top)");
    graph_.keras_major = root.contains("module") ? 3 : 2;
    const std::string cls = root["class_name"].get<std::string>();
    if (!is_model_class(cls))
      fail("", "the top-level object is a '" + cls +
                   "': parafine reads Functional and Sequential models (a subclassed model's "
                   "config has no layer graph)");
    graph_.output = add_model(root, -1, -1, false);
    graph_.from_config = true;
    return std::move(graph_);
  }

 private:
  [[noreturn]] void fail(const std::string& layer, const std::string& what) const {
    throw std::runtime_error(where_ + (layer.empty() ? "" : ": layer '" + layer + "'") + ": " +
                             what);
  }

  static std::string text(const json& j, const char* key, const std::string& fallback = "") {
    if (j.is_object() && j.contains(key) && j[key].is_string()) return j[key].get<std::string>();
    return fallback;
  }

  // The (single) outer call of a layer entry: the tensors it reads and its kwargs. Keras 2:
  // [[["name", node, tensor, {kwargs}], ...]]; Keras 3: [{"args": [...], "kwargs": {...}}].
  void read_call(const json& entry, const std::string& name, std::vector<TensorRef>& refs,
                 json& kwargs) {
    const json& nodes = entry.contains("inbound_nodes") ? entry["inbound_nodes"] : json::array();
    if (!nodes.is_array()) fail(name, "inbound_nodes is not a list");
    if (nodes.empty()) return;
    if (nodes.size() > 1)
      fail(name, "is called " + std::to_string(nodes.size()) +
                     " times (a shared layer): parafine runs each layer once per step");
    const json& call = nodes[0];
    kwargs = json::object();
    if (call.is_array()) {  // Keras 2
      for (const json& t : call) {
        if (!t.is_array() || t.size() < 3 || !t[0].is_string())
          fail(name, "an inbound node entry is not [layer, node, tensor, kwargs]");
        refs.push_back({t[0].get<std::string>(), t[1].get<int>(), t[2].get<int>()});
        if (t.size() >= 4 && t[3].is_object())
          for (auto it = t[3].begin(); it != t[3].end(); ++it) kwargs[it.key()] = it.value();
      }
      graph_.keras_major = 2;
      return;
    }
    if (!call.is_object() || !call.contains("args"))
      fail(name, "an inbound node is neither Keras 2's list nor Keras 3's {args, kwargs}");
    graph_.keras_major = 3;
    collect_tensors(call["args"], name, refs);
    if (call.contains("kwargs") && call["kwargs"].is_object()) {
      kwargs = call["kwargs"];
      std::vector<TensorRef> extra;
      collect_tensors(kwargs, name, extra);
      for (const TensorRef& r : extra)
        fail(name, "takes the tensor of '" + r.layer +
                       "' as a keyword argument (a mask?): parafine passes one tensor per input");
    }
  }

  // Every serialised Keras 3 tensor ({"class_name": "__keras_tensor__", "config":
  // {"keras_history": [layer, node, tensor]}}) in a structure, in order.
  void collect_tensors(const json& j, const std::string& name, std::vector<TensorRef>& refs) {
    if (j.is_array()) {
      for (const json& e : j) collect_tensors(e, name, refs);
    } else if (j.is_object()) {
      if (text(j, "class_name") == "__keras_tensor__") {
        const json& h = j["config"]["keras_history"];
        if (!h.is_array() || h.size() != 3 || !h[0].is_string())
          fail(name, "a tensor's keras_history is not [layer, node, tensor]");
        refs.push_back({h[0].get<std::string>(), h[1].get<int>(), h[2].get<int>()});
        return;
      }
      for (auto it = j.begin(); it != j.end(); ++it) collect_tensors(it.value(), name, refs);
    }
  }

  std::string unique_flat_name(const std::string& name, int model) {
    std::string flat = name;
    if (used_.count(flat)) flat = graph_.models[static_cast<std::size_t>(model)].name + "/" + name;
    for (int k = 2; used_.count(flat); ++k)
      flat = graph_.models[static_cast<std::size_t>(model)].name + "/" + name + "_" +
             std::to_string(k);
    used_.insert({flat, 1});
    return flat;
  }

  int add_node(const std::string& cls, const std::string& name, int model, const json& config,
               std::vector<int> inputs, bool inference_only) {
    KerasNode n;
    n.class_name = cls == "Model" ? "Functional" : cls;
    n.name = name;
    n.flat_name = unique_flat_name(name, model);
    n.model = model;
    n.config = config;
    n.inputs = std::move(inputs);
    n.inference_only = inference_only;
    graph_.nodes.push_back(std::move(n));
    return static_cast<int>(graph_.nodes.size()) - 1;
  }

  // The first of a list of [layer, node, tensor] triples, or the triple itself (Keras 3
  // writes a single input or output as one triple).
  TensorRef single_ref(const json& j, const std::string& model, const char* what) {
    const json* t = &j;
    if (j.is_array() && !j.empty() && j[0].is_array()) {
      if (j.size() != 1)
        fail("", "model '" + model + "' has " + std::to_string(j.size()) + " " + what +
                     "s: parafine runs models with one input and one output");
      t = &j[0];
    }
    if (!t->is_array() || t->size() < 3 || !(*t)[0].is_string())
      fail("", "model '" + model + "': " + what + "_layers is not [layer, node, tensor]");
    return {(*t)[0].get<std::string>(), (*t)[1].get<int>(), (*t)[2].get<int>()};
  }

  // Adds a model's layers; `input` feeds its InputLayer (-1: the outermost model). Returns
  // the node of its output.
  int add_model(const json& entry, int parent, int input, bool inference_only) {
    const json& config = entry["config"];
    if (!config.is_object() || !config.contains("layers") || !config["layers"].is_array())
      fail(text(entry, "name"), "a model config without a 'layers' list");
    KerasModel m;
    m.class_name = text(entry, "class_name") == "Model" ? "Functional" : text(entry, "class_name");
    m.name = text(config, "name", text(entry, "name", "model"));
    m.parent = parent;
    if (config.contains("trainable") && config["trainable"].is_boolean())
      m.trainable = config["trainable"].get<bool>();
    graph_.models.push_back(m);
    const int index = static_cast<int>(graph_.models.size()) - 1;
    return m.class_name == "Sequential" ? add_sequential(config, index, input, inference_only)
                                        : add_functional(config, index, input, inference_only);
  }

  // A Sequential's input shape when its first layer is not an InputLayer: Keras 2's
  // batch_input_shape on the first layer, or the model's build_input_shape.
  static json sequential_input_shape(const json& config) {
    const json& first = config["layers"].empty() ? json() : config["layers"][0]["config"];
    if (first.is_object() && first.contains("batch_input_shape")) return first["batch_input_shape"];
    if (config.contains("build_input_shape")) return config["build_input_shape"];
    return json();
  }

  int add_sequential(const json& config, int model, int input, bool inference_only) {
    const json& layers = config["layers"];
    int x = input;
    bool first = true;
    for (const json& entry : layers) {
      const std::string cls = text(entry, "class_name");
      const json& lc = entry.contains("config") ? entry["config"] : json::object();
      const std::string name = text(lc, "name", text(entry, "name", cls));
      if (first && cls != "InputLayer") {  // an implicit input: Keras names it <layer>_input
        json shape = sequential_input_shape(config);
        if (input < 0 && shape.is_null())
          fail(name, "the Sequential model '" + graph_.models[static_cast<std::size_t>(model)].name +
                         "' has no input shape in its config (it was never built)");
        json input_config = {{"name", name + "_input"}, {"batch_input_shape", shape}};
        x = add_node("InputLayer", name + "_input", model, input_config,
                     input < 0 ? std::vector<int>{} : std::vector<int>{input}, inference_only);
      }
      first = false;
      if (cls == "InputLayer") {
        x = add_node(cls, name, model, lc, input < 0 ? std::vector<int>{} : std::vector<int>{input},
                     inference_only);
        continue;  // Sequential.layers does not list it
      }
      if (is_model_class(cls)) {
        const int sub = static_cast<int>(graph_.models.size());
        x = add_model(entry, model, x, inference_only);
        graph_.models[static_cast<std::size_t>(model)].layers.push_back({-1, sub});
        continue;
      }
      x = add_node(cls, name, model, lc, {x}, inference_only);
      graph_.models[static_cast<std::size_t>(model)].layers.push_back({x, -1});
    }
    if (x < 0) fail("", "the Sequential model has no layers");
    return x;
  }

  int add_functional(const json& config, int model, int input, bool inference_only) {
    const std::string model_name = graph_.models[static_cast<std::size_t>(model)].name;
    const json& layers = config["layers"];
    const TensorRef in = single_ref(config["input_layers"], model_name, "input");
    const TensorRef out = single_ref(config["output_layers"], model_name, "output");
    std::map<std::string, int> produced;  // layer name -> node of its output
    // Entry i's position in model.layers: filled as entries are added (a nested model's
    // layers go in as its own KerasModel).
    std::vector<KerasLayerEntry> order(layers.size());
    std::vector<bool> done(layers.size(), false);
    std::size_t remaining = layers.size();
    while (remaining > 0) {  // in list order; a layer waits until its inputs exist
      bool progress = false;
      for (std::size_t i = 0; i < layers.size(); ++i) {
        if (done[i]) continue;
        const json& entry = layers[i];
        const std::string cls = text(entry, "class_name");
        const json& lc = entry.contains("config") ? entry["config"] : json::object();
        const std::string name = text(entry, "name", text(lc, "name"));
        if (name.empty()) fail("", "model '" + model_name + "': a layer entry without a name");
        std::vector<TensorRef> refs;
        json kwargs = json::object();
        read_call(entry, name, refs, kwargs);
        std::vector<int> inputs;
        bool ready = true;
        for (const TensorRef& r : refs) {
          if (r.tensor != 0)
            fail(name, "reads output " + std::to_string(r.tensor) + " of '" + r.layer +
                           "': parafine's layers have one output");
          auto it = produced.find(r.layer);
          if (it == produced.end()) {
            bool exists = false;
            for (const json& e : layers) exists |= text(e, "name", text(e["config"], "name")) == r.layer;
            if (!exists) fail(name, "reads '" + r.layer + "', which model '" + model_name + "' does not have");
            ready = false;
            break;
          }
          inputs.push_back(it->second);
        }
        if (!ready) continue;
        const bool training_false = kwargs.contains("training") && kwargs["training"].is_boolean() &&
                                    !kwargs["training"].get<bool>();
        if (cls == "InputLayer") {
          if (input >= 0 && name != in.layer)
            fail(name, "a second input of model '" + model_name + "': parafine runs one input");
          produced[name] = add_node(cls, name, model, lc,
                                    input < 0 ? std::vector<int>{} : std::vector<int>{input},
                                    inference_only);
          order[i] = {produced[name], -1};
        } else if (is_model_class(cls)) {
          if (inputs.size() != 1) fail(name, "a nested model called on several tensors");
          const int sub = static_cast<int>(graph_.models.size());
          produced[name] = add_model(entry, model, inputs[0], inference_only || training_false);
          order[i] = {-1, sub};
        } else {
          if (inputs.empty()) fail(name, "has no inputs in model '" + model_name + "'");
          produced[name] = add_node(cls, name, model, lc, inputs, inference_only || training_false);
          order[i] = {produced[name], -1};
        }
        done[i] = true;
        --remaining;
        progress = true;
      }
      if (!progress)
        fail("", "model '" + model_name +
                     "': the layers' inputs form a loop or name layers that never run");
    }
    graph_.models[static_cast<std::size_t>(model)].layers = order;
    auto it = produced.find(out.layer);
    if (it == produced.end())
      fail("", "model '" + model_name + "': its output layer '" + out.layer + "' does not exist");
    return it->second;
  }

  std::string where_;
  KerasGraph graph_;
  std::map<std::string, int> used_;
};

}  // namespace

KerasGraph parse_keras_config(const std::string& json_text, const std::string& where) {
  json root;
  try {
    root = json::parse(json_text);
  } catch (const json::parse_error& e) {
    throw std::runtime_error(where + ": not JSON (" + e.what() + ")");
  }
  try {
    return ConfigParser(where).parse(root);
  } catch (const json::exception& e) {  // a value of the wrong type somewhere
    throw std::runtime_error(where + ": not a Keras model config as Keras writes it (" +
                             e.what() + ")");
  }
}

}  // namespace parafine
