// Keras weight loading by name (see keras_weights.hpp).
#include "parafine/io/keras_weights.hpp"

#include "parafine/io/backbone_of_file.hpp"
#include "parafine/io/graph_weights.hpp"
#include "parafine/io/keras_config_writer.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <ostream>
#include <set>
#include <stdexcept>

namespace parafine {

namespace {

bool in_scope(const Model& model, int node, WeightScope scope) {
  return scope == WeightScope::kFull || (node >= model.base_begin() && node < model.base_end());
}

// Keras's auto-generated name without its index: "conv2d_17" -> "conv2d".
std::string without_index(const std::string& name) {
  const std::size_t u = name.find_last_of('_');
  if (u == std::string::npos || u + 1 == name.size()) return name;
  for (std::size_t i = u + 1; i < name.size(); ++i)
    if (name[i] < '0' || name[i] > '9') return name;
  return name.substr(0, u);
}

// "ResNet101 weights (--backbone resnet101)",
// "MobileNetV2 weights (--backbone mobilenet_v2 --alpha 0.35)".
std::string backbone_text(const FileBackbone& b) {
  const BackboneInfo& i = backbone_info(b.backbone);
  std::string t = std::string(i.keras_name) + " weights (--backbone " + i.name;
  if (b.backbone == Backbone::kMobileNetV2) t += " --alpha " + alpha_text(b.alpha);
  return t + ")";
}

}  // namespace

KerasWeightFile describe_weights(const Model& model) {
  KerasWeightFile d;
  for (int i = 0; i < model.size(); ++i) {
    if (!model.layer(i).has_params()) continue;
    StoredLayer l;
    l.name = l.stored_name = model.layer(i).name();
    for (const ParamRef& r : model.param_refs())
      if (r.node == i) {
        StoredWeight w;
        w.var = r.name;
        w.shape.assign(r.shape.begin(), r.shape.end());
        l.weights.push_back(w);
      }
    d.layers.push_back(std::move(l));
  }
  return d;
}

namespace {

std::string var_list(const StoredLayer& l) {
  std::string s;
  for (const auto& w : l.weights)
    s += (s.empty() ? "" : ", ") + (w.var.empty() ? w.stored_name : w.var);
  return s;
}

// The model's layers with weights in scope, and the file layer each loads from: by name; when
// some name is missing, by the order of the layers with weights, as Keras's load_weights does,
// but only when the names differ in their auto-generated index alone (files written by another
// Keras generation: InceptionV3's conv2d_1 ... conv2d_94 for tf.keras's conv2d ... conv2d_93),
// never for a renamed or reordered layer.
struct LayerPairing {
  std::vector<int> nodes;                  // model layers with weights in scope, in order
  std::vector<const StoredLayer*> source;  // the file layer of each, or null when missing
  std::size_t missing = 0;                 // by name
  bool by_order = false;
  // The names are another Keras generation's but the layers do not pair up by order: the
  // problems (per layer class, the counts that differ) are already listed, and per-name
  // "missing" lines would only name layers that are there under another index.
  bool generation_mismatch = false;
};

// Per Keras layer class (name without its index), how many of `names` there are.
std::map<std::string, int> class_counts(const std::vector<std::string>& names) {
  std::map<std::string, int> counts;
  for (const std::string& n : names) ++counts[without_index(n)];
  return counts;
}

LayerPairing pair_layers(const Model& model, const KerasWeightFile& file, WeightScope scope,
                         WeightCheck& check) {
  LayerPairing p;
  for (int i = 0; i < model.size(); ++i)
    if (in_scope(model, i, scope) && model.layer(i).has_params()) p.nodes.push_back(i);
  for (int node : p.nodes) {
    p.source.push_back(file.find(model.layer(node).name()));
    p.missing += p.source.back() == nullptr;
  }
  if (p.missing == 0) return p;
  // File layers this scope may load from: for the base, not a top classifier and not a Dense
  // (no backbone's base has one: a head, under whatever index its generation gave it).
  std::vector<const StoredLayer*> candidates;
  for (const StoredLayer& l : file.layers) {
    const int node = model.index_of(l.name);
    const bool outside = node >= 0 && !in_scope(model, node, scope);
    const bool head = scope == WeightScope::kBase &&
                      (is_top_classifier(l.name) || without_index(l.name) == "dense");
    if (!outside && !head) candidates.push_back(&l);
  }
  p.by_order = candidates.size() == p.nodes.size();
  for (std::size_t k = 0; p.by_order && k < p.nodes.size(); ++k)
    p.by_order =
        without_index(candidates[k]->name) == without_index(model.layer(p.nodes[k]).name());
  if (p.by_order) {
    p.source = candidates;
    check.notes.push_back("the file's layer names are not this model's (e.g. '" +
                          candidates.front()->stored_name + "' for '" +
                          model.layer(p.nodes.front()).name() +
                          "'): loaded by the order of the layers with weights, as Keras's "
                          "load_weights does, every shape checked");
    return p;
  }
  std::vector<std::string> model_names, file_names;
  for (int node : p.nodes) model_names.push_back(model.layer(node).name());
  for (const StoredLayer* l : candidates) file_names.push_back(l->name);
  const auto in_model = class_counts(model_names), in_file = class_counts(file_names);
  bool same_classes = in_model.size() == in_file.size();
  for (const auto& [name, count] : in_model) same_classes = same_classes && in_file.count(name);
  if (same_classes) {  // another generation's names, but a layer missing or extra
    p.generation_mismatch = true;
    std::fill(p.source.begin(), p.source.end(), nullptr);  // same names, other layers: no pairs
    for (const auto& [name, count] : in_model)
      if (in_file.at(name) != count)
        check.problems.push_back(
            "the file names its layers as another Keras generation does (e.g. '" +
            candidates.front()->stored_name + "' for '" + model_names.front() +
            "'), so they load by order, but it has " + std::to_string(in_file.at(name)) + " " +
            name + " layer(s) with weights and the model " + std::to_string(count) +
            ": a layer is missing or extra");
    return p;
  }
  const std::optional<FileBackbone> held = backbone_of_file(file);
  const std::optional<FileBackbone> wanted = backbone_of_file(describe_weights(model));
  if (held && (!wanted || held->backbone != wanted->backbone || held->alpha != wanted->alpha))
    check.problems.push_back(
        "the file holds " + backbone_text(*held) + ", whose layers are not this model's" +
        (wanted ? " (it needs " + backbone_text(*wanted) + ")" : std::string()));
  return p;
}

using Staged = std::vector<std::pair<const ParamRef*, Tensor>>;

// Reads and checks every variable of model layer `node` from `stored` into `staged`; `where`
// names the layer in messages.
void stage_layer(const Model& model, const H5File& h5, int node, const StoredLayer& stored,
                 const std::string& where, Staged& staged, WeightCheck& check) {
  std::set<std::string> used;
  for (const ParamRef& r : model.param_refs()) {
    if (r.node != node) continue;
    const StoredWeight* w = nullptr;
    for (const auto& sw : stored.weights)
      if (sw.var == r.name) w = &sw;
    if (!w) {
      check.problems.push_back(where + ": no '" + r.name +
                               "' weight (the file has: " + var_list(stored) + ")");
      continue;
    }
    used.insert(w->var);
    if (!w->is_float) {
      check.problems.push_back(where + "/" + r.name + ": stored as " + w->dtype +
                               ", expected floating point");
      continue;
    }
    if (!r.shape.matches(w->shape)) {
      check.problems.push_back(where + "/" + r.name + ": shape " + dims_str(w->shape) +
                               " in the file, the model needs " + r.shape.str());
      continue;
    }
    Tensor t = h5.read_tensor(w->dataset);
    std::size_t bad = 0;
    for (std::size_t e = 0; e < t.numel(); ++e) bad += !std::isfinite(t[e]);
    if (bad) {
      check.problems.push_back(where + "/" + r.name + ": " + std::to_string(bad) +
                               " NaN or Inf value(s)");
      continue;
    }
    staged.emplace_back(&r, std::move(t));
  }
  for (const auto& sw : stored.weights)
    if (!used.count(sw.var))
      check.problems.push_back(where + ": unexpected weight '" + sw.stored_name + "'");
}

}  // namespace

WeightCheck check_and_load_keras_weights(Model& model, const H5File& h5,
                                         const KerasWeightFile& file, WeightScope scope,
                                         bool load) {
  WeightCheck check;
  const LayerPairing pairing = pair_layers(model, file, scope, check);
  Staged staged;
  std::set<const StoredLayer*> used_layers;
  for (std::size_t k = 0; k < pairing.nodes.size(); ++k) {
    const std::string& name = model.layer(pairing.nodes[k]).name();
    const StoredLayer* stored = pairing.source[k];
    if (!stored) {
      if (!pairing.generation_mismatch) check.problems.push_back(name + ": missing from the file");
      continue;
    }
    used_layers.insert(stored);
    const std::string where =
        pairing.by_order ? name + " (file layer " + stored->stored_name + ")" : name;
    stage_layer(model, h5, pairing.nodes[k], *stored, where, staged, check);
  }
  for (const StoredLayer& l : file.layers) {
    if (used_layers.count(&l)) continue;
    const int node = model.index_of(l.name);
    if (is_top_classifier(l.name) && scope == WeightScope::kBase)
      check.notes.push_back("ignoring the top classifier '" + l.stored_name +
                            "' (include_top weights)");
    else if ((node >= 0 && !in_scope(model, node, scope)) ||
             (scope == WeightScope::kBase && without_index(l.name) == "dense"))
      check.notes.push_back("ignoring '" + l.name +
                            "': only the base is loaded from a --weights file");
    else if (!pairing.generation_mismatch)
      check.problems.push_back(l.stored_name + ": in the file but not a layer of the model" +
                               (l.name != l.stored_name ? " (as " + l.name + ")" : std::string()));
  }
  if (load && check.problems.empty())
    for (auto& [ref, t] : staged) std::copy(t.data(), t.data() + t.numel(), model.data(*ref));
  return check;
}

void load_keras_weights(Model& model, const std::string& path, WeightScope scope,
                        std::ostream* log) {
  load_graph_weights(model, graph_of_model(model), path, path, scope, log);
}

}  // namespace parafine
