// The options steps every command shares, and the --threads default (see options.hpp).
#include "cli/options.hpp"

#include <algorithm>
#include <fstream>
#include <iostream>
#include <thread>

#include "cli/cli.hpp"
#include "parafine/dist/comm.hpp"

namespace po = boost::program_options;

namespace parafine {

CommandOptions::CommandOptions(const std::string& command, const std::string& usage)
    : usage_(usage), description_("parafine " + command + " options") {
  auto add = description_.add_options();
  add("help,h", "show this help");
  add("config", po::value<std::string>(), "INI file with any of these options");
}

po::options_description_easy_init CommandOptions::add() {
  return description_.add_options();
}

void CommandOptions::positional(const char* name) {
  positional_.add(name, -1);
}

bool CommandOptions::parse(int argc, char** argv) {
  try {
    auto parser = po::command_line_parser(argc, argv).options(description_).positional(positional_);
    po::store(parser.run(), values_);
    if (values_.count("help")) {
      std::cout << "usage: parafine " << usage_ << "\n" << description_;
      return false;
    }
    if (values_.count("config")) read_config_file(values_["config"].as<std::string>());
    po::notify(values_);
  } catch (const po::error& e) {
    throw UsageError(e.what());
  }
  return true;
}

// po::store keeps a value already stored, so what the command line gave wins over the file.
void CommandOptions::read_config_file(const std::string& path) {
  std::ifstream file(path);
  if (!file) throw UsageError("--config: cannot read " + path);
  try {
    po::store(po::parse_config_file(file, description_), values_);
  } catch (const po::error& e) {
    throw UsageError("--config " + path + ": " + e.what());
  }
}

bool CommandOptions::given(const char* name) const {
  return values_.count(name) && !values_[name].defaulted();
}

int threads_per_rank(int requested) {
  if (requested < 0) throw UsageError("--threads must be >= 0");
  if (requested > 0) return requested;
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::max(1, cores / Comm::ranks_on_node());
}

}  // namespace parafine
