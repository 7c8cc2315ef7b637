// Drawing pictures with launch/parafine_plot.py (python3 + matplotlib): the C++ computes and
// writes the numbers, the script only draws them.
#pragma once

#include <string>
#include <vector>

namespace parafine {

struct PlotResult {
  bool ok = false;
  std::string message;  // why not, and what to install
};

// Runs `python3 parafine_plot.py ARGS...`; `what` names the picture in messages.
PlotResult run_plot_script(const std::vector<std::string>& args, const std::string& what);

}  // namespace parafine
