// tf.keras save_weights layout loader (see keras_weights.hpp).
#include "parafine/keras_weights.hpp"

#include <cmath>
#include <stdexcept>

#include "parafine/h5_tensors.hpp"

namespace parafine {

void load_keras_weights(Model& model, const std::string& path) {
  H5File file(path, H5File::Mode::kRead);
  std::vector<std::pair<const ParamRef*, Tensor>> staged;
  std::vector<std::string> problems;
  for (const ParamRef& r : model.param_refs()) {
    const std::string& layer = model.layer(r.node).name();
    const std::string ds = "/" + layer + "/" + layer + "/" + r.name + ":0";
    if (!file.exists(ds)) {
      problems.push_back(layer + ": missing " + ds);
      continue;
    }
    Tensor t = file.read_tensor(ds);
    const auto dims = file.dataset_shape(ds);
    Shape got;
    for (hsize_t d : dims) got.dims.push_back(static_cast<int>(d));
    if (got != r.shape) {
      problems.push_back(layer + ": " + r.name + " has shape " + got.str() + ", the model expects " +
                         r.shape.str());
      continue;
    }
    bool finite = true;
    for (std::size_t i = 0; i < t.numel() && finite; ++i) finite = std::isfinite(t[i]);
    if (!finite) {
      problems.push_back(layer + ": " + r.name + " contains NaN or Inf");
      continue;
    }
    staged.emplace_back(&r, std::move(t));
  }
  if (!problems.empty()) {
    std::string msg = path + ": cannot load weights (" + std::to_string(problems.size()) + " problem(s)):";
    for (const auto& p : problems) msg += "\n  " + p;
    throw std::runtime_error(msg);
  }
  for (auto& [ref, t] : staged) std::copy(t.data(), t.data() + t.numel(), model.data(*ref));
}

}  // namespace parafine
