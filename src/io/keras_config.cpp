// Parsing a Keras model config (Keras 2 or Keras 3 serialisation) into a flat KerasGraph (see
// keras_config.hpp). Written from keras/src/models/functional.py (get_config,
// functional_from_config, deserialize_node), keras/src/models/sequential.py and tf-keras's
// functional.py (the Keras 2 form). The config is untrusted: every member is looked up with
// `member` (never json's unchecked operator[]), every value's type is checked before use, the
// nesting depth is bounded, and the work is linear in the number of layers.
#include "parafine/io/keras_config.hpp"

#include <map>
#include <set>
#include <stdexcept>

namespace parafine {

using json = nlohmann::json;

int KerasGraph::find(const std::string& flat_name) const {
  for (std::size_t i = 0; i < nodes.size(); ++i)
    if (nodes[i].flat_name == flat_name) return static_cast<int>(i);
  return -1;
}

namespace {

bool holds_convolutions(const std::string& cls) {
  return cls == "Conv2D" || cls == "DepthwiseConv2D";
}

}  // namespace

int KerasGraph::base_model() const {
  // The smallest nested model that holds every convolution: the guide's base_model, and
  // MobileNetV2 inside Teachable Machine's Sequentials (not the Sequential around it).
  int best = -1, best_depth = -1;
  for (std::size_t m = 1; m < models.size(); ++m) {
    bool all = true, any = false;
    for (const KerasNode& n : nodes) {
      if (!holds_convolutions(n.class_name)) continue;
      int owner = n.model;
      while (owner > static_cast<int>(m)) owner = models[static_cast<std::size_t>(owner)].parent;
      const bool inside = owner == static_cast<int>(m);
      all = all && inside;
      any = any || inside;
    }
    if (!all || !any) continue;
    int depth = 0;
    for (int p = models[m].parent; p >= 0; p = models[static_cast<std::size_t>(p)].parent) ++depth;
    if (depth > best_depth) {
      best = static_cast<int>(m);
      best_depth = depth;
    }
  }
  return best;
}

namespace {

constexpr int kMaxNesting = 64;  // models inside models, far beyond any real network

bool is_model_class(const std::string& c) {
  return c == "Functional" || c == "Sequential" || c == "Model";
}

// j[key] when j is an object holding it, else null: never json's unchecked operator[].
const json& member(const json& j, const char* key) {
  static const json null;
  if (!j.is_object()) return null;
  const auto it = j.find(key);
  return it == j.end() ? null : *it;
}

std::string text(const json& j, const char* key, const std::string& fallback = "") {
  const json& v = member(j, key);
  return v.is_string() ? v.get<std::string>() : fallback;
}

// A layer's reference to a tensor: [layer name, node index, tensor index].
struct TensorRef {
  std::string layer;
  int tensor = 0;
};

// One entry of a Functional's `layers`, read once: its class, name, config and call.
struct Entry {
  const json* raw = nullptr;
  std::string cls, name;
  const json* config = nullptr;
  std::vector<TensorRef> refs;
  bool training_false = false;
};

class ConfigParser {
 public:
  explicit ConfigParser(std::string where) : where_(std::move(where)) {}

  KerasGraph parse(const json& root) {
    if (!root.is_object() || !member(root, "config").is_object())
      fail("", "not a Keras model config (no class_name and config at the top)");
    graph_.keras_major = root.contains("module") ? 3 : 2;
    const std::string cls = text(root, "class_name");
    if (!is_model_class(cls))
      fail("", "the top-level object is a '" + cls +
                   "': parafine reads Functional and Sequential models (a subclassed model's "
                   "config has no layer graph)");
    graph_.output = add_model(root, -1, -1, false, 0);
    graph_.from_config = true;
    return std::move(graph_);
  }

 private:
  [[noreturn]] void fail(const std::string& layer, const std::string& what) const {
    throw std::runtime_error(where_ + (layer.empty() ? "" : ": layer '" + layer + "'") + ": " +
                             what);
  }

  // [layer, node, tensor] (the node index is not needed: shared layers are refused).
  TensorRef tensor_ref(const json& t, const std::string& name, const char* what) const {
    if (!t.is_array() || t.size() < 3 || !t[0].is_string() || !t[2].is_number_integer())
      fail(name, std::string(what) + " is not [layer, node, tensor]: " + t.dump().substr(0, 80));
    return {t[0].get<std::string>(), t[2].get<int>()};
  }

  // The (single) call of a layer entry: the tensors it reads and whether it is called with
  // training=False. Keras 2: [[["name", node, tensor, {kwargs}], ...]]; Keras 3:
  // [{"args": [...], "kwargs": {...}}].
  void read_call(const json& entry, Entry& e) {
    const json& nodes = member(entry, "inbound_nodes");
    if (nodes.is_null()) return;
    if (!nodes.is_array()) fail(e.name, "inbound_nodes is not a list");
    if (nodes.empty()) return;
    if (nodes.size() > 1)
      fail(e.name, "is called " + std::to_string(nodes.size()) +
                       " times (a shared layer): parafine runs each layer once per step");
    const json& call = nodes[0];
    json kwargs = json::object();
    if (call.is_array()) {  // Keras 2
      for (const json& t : call) {
        e.refs.push_back(tensor_ref(t, e.name, "an inbound node entry"));
        if (t.size() >= 4 && t[3].is_object()) kwargs.update(t[3]);
      }
      graph_.keras_major = 2;
    } else {
      if (!call.is_object() || !call.contains("args"))
        fail(e.name, "an inbound node is neither Keras 2's list nor Keras 3's {args, kwargs}");
      graph_.keras_major = 3;
      collect_tensors(member(call, "args"), e.name, e.refs, 0);
      if (member(call, "kwargs").is_object()) {
        kwargs = member(call, "kwargs");
        std::vector<TensorRef> extra;
        collect_tensors(kwargs, e.name, extra, 0);
        for (const TensorRef& r : extra)
          fail(e.name,
               "takes the tensor of '" + r.layer +
                   "' as a keyword argument (a mask?): parafine passes one tensor per input");
      }
    }
    const json& training = member(kwargs, "training");
    if (training.is_boolean() && training.get<bool>())
      fail(e.name,
           "is called with training=True (dropout or batch statistics at inference, "
           "e.g. Monte-Carlo dropout), which parafine does not run");
    e.training_false = training.is_boolean();
  }

  // Every serialised Keras 3 tensor ({"class_name": "__keras_tensor__", "config":
  // {"keras_history": [layer, node, tensor]}}) in a structure, in order.
  void collect_tensors(const json& j, const std::string& name, std::vector<TensorRef>& refs,
                       int depth) {
    if (depth > kMaxNesting) fail(name, "call arguments nested too deeply");
    if (j.is_array()) {
      for (const json& e : j) collect_tensors(e, name, refs, depth + 1);
    } else if (j.is_object()) {
      if (text(j, "class_name") == "__keras_tensor__") {
        refs.push_back(tensor_ref(member(member(j, "config"), "keras_history"), name,
                                  "a tensor's keras_history"));
        return;
      }
      for (const auto& item : j.items()) collect_tensors(item.value(), name, refs, depth + 1);
    }
  }

  std::string unique_flat_name(const std::string& name, int model) {
    const std::string& prefix = graph_.models[static_cast<std::size_t>(model)].name + "/";
    std::string flat = name;
    if (used_.count(flat)) flat = prefix + name;
    for (int k = 2; used_.count(flat); ++k) flat = prefix + name + "_" + std::to_string(k);
    used_.insert(flat);
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

  // The single [layer, node, tensor] of input_layers / output_layers (Keras 3 writes one
  // tensor as the triple itself, Keras 2 as a list of one).
  TensorRef single_ref(const json& j, const std::string& model, const char* what) {
    const json* t = &j;
    if (j.is_array() && !j.empty() && j[0].is_array()) {
      if (j.size() != 1)
        fail("", "model '" + model + "' has " + std::to_string(j.size()) + " " + what +
                     "s: parafine runs models with one input and one output");
      t = &j[0];
    }
    return tensor_ref(*t, "",
                      (std::string("model '") + model + "': its " + what + "_layers").c_str());
  }

  // Adds a model's layers; `input` feeds its InputLayer (-1: the outermost model). Returns
  // the node of its output.
  int add_model(const json& entry, int parent, int input, bool inference_only, int depth) {
    if (depth > kMaxNesting)
      fail("", "models nested more than " + std::to_string(kMaxNesting) + " deep");
    const json& config = member(entry, "config");
    if (!member(config, "layers").is_array())
      fail(text(entry, "name"), "a model config without a 'layers' list");
    KerasModel m;
    m.class_name = text(entry, "class_name") == "Model" ? "Functional" : text(entry, "class_name");
    m.name = text(config, "name", text(entry, "name", "model"));
    m.parent = parent;
    if (member(config, "trainable").is_boolean())
      m.trainable = member(config, "trainable").get<bool>();
    graph_.models.push_back(m);
    const int index = static_cast<int>(graph_.models.size()) - 1;
    return m.class_name == "Sequential"
               ? add_sequential(config, index, input, inference_only, depth)
               : add_functional(config, index, input, inference_only, depth);
  }

  // A Sequential's input shape when its first layer is not an InputLayer: Keras 2's
  // batch_input_shape on the first layer, or the model's build_input_shape.
  static json sequential_input_shape(const json& config) {
    const json& layers = member(config, "layers");
    if (!layers.empty()) {
      const json& shape = member(member(layers[0], "config"), "batch_input_shape");
      if (!shape.is_null()) return shape;
    }
    return member(config, "build_input_shape");
  }

  int add_sequential(const json& config, int model, int input, bool inference_only, int depth) {
    int x = input;
    bool first = true;
    for (const json& entry : member(config, "layers")) {
      const std::string cls = text(entry, "class_name");
      const json& lc = member(entry, "config");
      const std::string name = text(lc, "name", text(entry, "name"));
      if (cls.empty() || name.empty())
        fail("", "Sequential model '" + graph_.models[static_cast<std::size_t>(model)].name +
                     "': a layer entry without a class_name or a name");
      if (first && cls != "InputLayer") {  // an implicit input: Keras names it <layer>_input
        const json shape = sequential_input_shape(config);
        if (input < 0 && shape.is_null())
          fail(name, "the Sequential model '" +
                         graph_.models[static_cast<std::size_t>(model)].name +
                         "' has no input shape in its config (it was never built)");
        const json input_config = {{"name", name + "_input"}, {"batch_input_shape", shape}};
        x = add_node("InputLayer", name + "_input", model, input_config,
                     input < 0 ? std::vector<int>{} : std::vector<int>{input}, inference_only);
      }
      first = false;
      if (cls == "InputLayer") {
        if (x != input) fail(name, "a second InputLayer in a Sequential model");
        x = add_node(cls, name, model, lc, input < 0 ? std::vector<int>{} : std::vector<int>{input},
                     inference_only);
        continue;  // Sequential.layers does not list it
      }
      if (is_model_class(cls)) {
        const int sub = static_cast<int>(graph_.models.size());
        x = add_model(entry, model, x, inference_only, depth + 1);
        graph_.models[static_cast<std::size_t>(model)].layers.push_back({-1, sub});
        continue;
      }
      x = add_node(cls, name, model, lc, {x}, inference_only);
      graph_.models[static_cast<std::size_t>(model)].layers.push_back({x, -1});
    }
    if (x < 0 || x == input) fail("", "the Sequential model has no layers");
    return x;
  }

  // The entries of a Functional's `layers`, each read once; names unique.
  std::vector<Entry> read_entries(const json& layers, const std::string& model_name) {
    std::vector<Entry> entries(layers.size());
    std::set<std::string> names;
    for (std::size_t i = 0; i < layers.size(); ++i) {
      Entry& e = entries[i];
      e.raw = &layers[i];
      e.cls = text(layers[i], "class_name");
      e.config = &member(layers[i], "config");
      e.name = text(layers[i], "name", text(*e.config, "name"));
      if (e.name.empty() || e.cls.empty())
        fail("", "model '" + model_name + "': a layer entry without a class_name or a name");
      if (!names.insert(e.name).second) fail(e.name, "listed twice in model '" + model_name + "'");
      read_call(layers[i], e);
      for (const TensorRef& r : e.refs)
        if (r.tensor != 0)
          fail(e.name, "reads output " + std::to_string(r.tensor) + " of '" + r.layer +
                           "': parafine's layers have one output");
    }
    for (const Entry& e : entries)
      for (const TensorRef& r : e.refs)
        if (!names.count(r.layer))
          fail(e.name, "reads '" + r.layer + "', which model '" + model_name + "' does not have");
    return entries;
  }

  // The entries in an order where every layer comes after the layers it reads (Kahn's
  // algorithm, keeping the list order among the ready ones, as Keras's depth-ordered list is).
  std::vector<std::size_t> call_order(const std::vector<Entry>& entries,
                                      const std::string& model_name) {
    std::map<std::string, std::size_t> index;
    for (std::size_t i = 0; i < entries.size(); ++i) index[entries[i].name] = i;
    std::vector<int> waiting(entries.size(), 0);
    std::vector<std::vector<std::size_t>> readers(entries.size());
    for (std::size_t i = 0; i < entries.size(); ++i)
      for (const TensorRef& r : entries[i].refs) {
        ++waiting[i];
        readers[index.at(r.layer)].push_back(i);
      }
    std::set<std::size_t> ready;
    for (std::size_t i = 0; i < entries.size(); ++i)
      if (waiting[i] == 0) ready.insert(i);
    std::vector<std::size_t> order;
    while (!ready.empty()) {
      const std::size_t i = *ready.begin();
      ready.erase(ready.begin());
      order.push_back(i);
      for (std::size_t reader : readers[i])
        if (--waiting[reader] == 0) ready.insert(reader);
    }
    if (order.size() != entries.size())
      fail("", "model '" + model_name + "': the layers' inputs form a loop");
    return order;
  }

  int add_functional(const json& config, int model, int input, bool inference_only, int depth) {
    const std::string model_name = graph_.models[static_cast<std::size_t>(model)].name;
    const TensorRef in = single_ref(member(config, "input_layers"), model_name, "input");
    const TensorRef out = single_ref(member(config, "output_layers"), model_name, "output");
    const std::vector<Entry> entries = read_entries(member(config, "layers"), model_name);
    std::map<std::string, int> produced;  // layer name -> node of its output
    std::vector<KerasLayerEntry> layers(entries.size());
    for (std::size_t i : call_order(entries, model_name)) {
      const Entry& e = entries[i];
      std::vector<int> inputs;
      for (const TensorRef& r : e.refs) inputs.push_back(produced.at(r.layer));
      if (e.cls == "InputLayer") {
        if (e.name != in.layer)
          fail(e.name, "an InputLayer that is not model '" + model_name +
                           "''s input: parafine runs models with one input");
        produced[e.name] =
            add_node(e.cls, e.name, model, *e.config,
                     input < 0 ? std::vector<int>{} : std::vector<int>{input}, inference_only);
        layers[i] = {produced[e.name], -1};
      } else if (is_model_class(e.cls)) {
        if (inputs.size() != 1) fail(e.name, "a nested model called on several tensors");
        const int sub = static_cast<int>(graph_.models.size());
        produced[e.name] =
            add_model(*e.raw, model, inputs[0], inference_only || e.training_false, depth + 1);
        layers[i] = {-1, sub};
      } else {
        if (inputs.empty()) fail(e.name, "has no inputs in model '" + model_name + "'");
        produced[e.name] =
            add_node(e.cls, e.name, model, *e.config, inputs, inference_only || e.training_false);
        layers[i] = {produced[e.name], -1};
      }
    }
    graph_.models[static_cast<std::size_t>(model)].layers = layers;
    const auto it = produced.find(out.layer);
    if (it == produced.end())
      fail("", "model '" + model_name + "': its output layer '" + out.layer + "' does not exist");
    if (produced.find(in.layer) == produced.end())
      fail("", "model '" + model_name + "': its input layer '" + in.layer + "' does not exist");
    return it->second;
  }

  std::string where_;
  KerasGraph graph_;
  std::set<std::string> used_;
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
    throw std::runtime_error(where + ": not a Keras model config as Keras writes it (" + e.what() +
                             ")");
  }
}

}  // namespace parafine
