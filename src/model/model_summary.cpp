// Keras-style model summaries (see model_summary.hpp).
#include "parafine/model/model_summary.hpp"

#include <algorithm>
#include <ostream>
#include <vector>

namespace parafine {

namespace {

// Keras's column widths for a Functional model (the 98-character layout with "Connected to").
constexpr int kNameWidth = 36, kShapeWidth = 22, kParamWidth = 12;

std::string shape_text(const Model& model, int node) {
  const Shape s = model.output_shape(node, 1);
  std::string t = "(None";
  for (int d = 1; d < s.rank(); ++d) t += ", " + std::to_string(s[d]);
  return t + ")";
}

std::string pad(const std::string& s, int width) {
  return s.size() >= static_cast<std::size_t>(width) ? s + " "
                                                     : s + std::string(width - s.size(), ' ');
}

}  // namespace

std::string with_commas(std::size_t n) {
  std::string s = std::to_string(n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

ParamCounts count_params(const Model& model, int first, int last) {
  ParamCounts c;
  for (const ParamRef& r : model.param_refs()) {
    if (r.node < first || r.node >= last) continue;
    const std::size_t n = static_cast<std::size_t>(r.shape.numel());
    c.total += n;
    if (r.optimised && model.layer(r.node).trainable) c.trainable += n;
  }
  return c;
}

void print_model_summary(const Model& model, const std::string& title, std::ostream& out) {
  const std::string rule(98, '_'), double_rule(98, '=');
  out << "Model: \"" << title << "\"\n"
      << rule << "\n"
      << pad(" Layer (type)", kNameWidth) << pad("Output Shape", kShapeWidth)
      << pad("Param #", kParamWidth) << "Connected to\n"
      << double_rule << "\n";
  for (int i = 0; i < model.size(); ++i) {
    if (i == model.base_begin() && i > 0 && model.base_layers() > 0)
      out << " -- the base (" << model.base_layers() << " layers) starts --\n";
    if (i == model.base_end() && i > 0 && model.base_layers() > 0)
      out << " -- end of the base (" << model.base_layers() << " layers); the head follows --\n";
    const Layer& l = model.layer(i);
    std::string inbound = "[";
    for (std::size_t k = 0; k < model.inputs_of(i).size(); ++k)
      inbound += (k ? ", '" : "'") + model.layer(model.inputs_of(i)[k]).name() + "[0][0]'";
    inbound += "]";
    out << pad(" " + l.name() + " (" + l.type() + ")", kNameWidth)
        << pad(shape_text(model, i), kShapeWidth)
        << pad(with_commas(count_params(model, i, i + 1).total), kParamWidth) << inbound
        << (l.trainable ? "" : "  (frozen)") << "\n";
  }
  const ParamCounts all = count_params(model, 0, model.size());
  out << double_rule << "\nTotal params: " << with_commas(all.total)
      << "\nTrainable params: " << with_commas(all.trainable)
      << "\nNon-trainable params: " << with_commas(all.total - all.trainable) << "\n"
      << rule << "\n";
  if (model.base_layers() > 0) {
    const ParamCounts base = count_params(model, model.base_begin(), model.base_end());
    out << "Base (include_top=False): " << model.base_layers() << " layers, "
        << with_commas(base.total) << " params\n";
  }
}

}  // namespace parafine
