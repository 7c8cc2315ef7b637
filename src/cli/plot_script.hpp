// Runs launch/parafine_plot.py, the script that draws parafine's PNGs (python3 + matplotlib +
// PIL): the C++ computes the numbers and writes them as CSV, the script only draws them.
#pragma once

#include <string>
#include <vector>

namespace parafine {

enum class PlotOutcome { kDrawn, kMissingLibraries, kFailed };

// The script: $PARAFINE_PLOT_SCRIPT when set, else the source tree's copy (compiled in), else
// parafine_plot.py next to the parafine binary. Empty when none exists.
std::string plot_script_path();

// Runs `$PARAFINE_PYTHON (default python3, found on PATH) SCRIPT args...` without a shell (the
// arguments passed as they are) and waits for it. `what` names the picture in messages
// ("reliability.png"). On anything but kDrawn a message on stderr says why: for a python3, a
// matplotlib or a PIL that is missing, what to install.
PlotOutcome run_plot_script(const std::vector<std::string>& args, const std::string& what);

// The message for kMissingLibraries: what to install (one place, for the commands' summaries).
extern const char* const kPlotInstallHint;

}  // namespace parafine
