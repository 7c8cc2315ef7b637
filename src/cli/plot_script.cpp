// Finding and running the plotting script (see plot_script.hpp).
#include "cli/plot_script.hpp"

#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>

extern char** environ;

namespace parafine {

const char* const kPlotInstallHint =
    "apt-get install python3-matplotlib python3-pil (or set PARAFINE_PYTHON to a python3 that "
    "has matplotlib and PIL)";

namespace {

constexpr int kScriptMissingLibraries = 3;  // parafine_plot.py's exit code for an ImportError

bool is_file(const std::string& path) {
  struct stat st {};
  return !path.empty() && stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string binary_directory() {
  char buffer[4096];
  const ssize_t n = readlink("/proc/self/exe", buffer, sizeof buffer - 1);
  if (n <= 0) return "";
  const std::string exe(buffer, static_cast<std::size_t>(n));
  return exe.substr(0, exe.rfind('/') + 1);
}

std::string python_interpreter() {
  const char* chosen = std::getenv("PARAFINE_PYTHON");
  return chosen && *chosen ? chosen : "python3";
}

}  // namespace

std::string plot_script_path() {
  if (const char* env = std::getenv("PARAFINE_PLOT_SCRIPT"); env && *env) return env;
#ifdef PARAFINE_PLOT_SCRIPT_SOURCE
  if (is_file(PARAFINE_PLOT_SCRIPT_SOURCE)) return PARAFINE_PLOT_SCRIPT_SOURCE;
#endif
  const std::string beside = binary_directory() + "parafine_plot.py";
  return is_file(beside) ? beside : "";
}

PlotOutcome run_plot_script(const std::vector<std::string>& args, const std::string& what) {
  const std::string script = plot_script_path();
  if (!is_file(script)) {
    std::cerr << "parafine: cannot draw " << what << ": the plotting script parafine_plot.py "
              << (script.empty() ? std::string("was not found (set PARAFINE_PLOT_SCRIPT)")
                                 : "is not at " + script + " (PARAFINE_PLOT_SCRIPT)")
              << "\n";
    return PlotOutcome::kFailed;
  }
  const std::string python = python_interpreter();
  std::vector<std::string> words = {python, script};
  words.insert(words.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int spawned = posix_spawnp(&pid, python.c_str(), nullptr, nullptr, argv.data(), environ);
  if (spawned != 0) {
    std::cerr << "parafine: cannot draw " << what << ": cannot run " << python << " ("
              << std::strerror(spawned)
              << "); python3 with matplotlib and PIL is needed: " << kPlotInstallHint << "\n";
    return spawned == ENOENT ? PlotOutcome::kMissingLibraries : PlotOutcome::kFailed;
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return PlotOutcome::kFailed;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return PlotOutcome::kDrawn;
  if (WIFEXITED(status) && WEXITSTATUS(status) == kScriptMissingLibraries) {
    std::cerr << "parafine: cannot draw " << what << ": " << python << " lacks matplotlib or PIL; "
              << kPlotInstallHint << "\n";
    return PlotOutcome::kMissingLibraries;
  }
  std::cerr << "parafine: drawing " << what << " failed (" << python << " " << script << " "
            << (WIFEXITED(status) ? "exited with " + std::to_string(WEXITSTATUS(status))
                                  : "died of signal " + std::to_string(WTERMSIG(status)))
            << ")\n";
  return PlotOutcome::kFailed;
}

}  // namespace parafine
