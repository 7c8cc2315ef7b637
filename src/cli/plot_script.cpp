// Running the plotting script (see plot_script.hpp). TEMPORARY: replaced by the report branch's.
#include "cli/plot_script.hpp"

#include <sys/wait.h>
#include <unistd.h>

namespace parafine {

PlotResult run_plot_script(const std::vector<std::string>& args, const std::string& what) {
  std::vector<std::string> words{"python3", PARAFINE_SOURCE_DIR "/launch/parafine_plot.py"};
  words.insert(words.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    execvp("python3", argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  PlotResult r;
  r.ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (!r.ok) r.message = what + ": the plotting script failed";
  return r;
}

}  // namespace parafine
