// What every command does with its options (DESIGN.md §3): `--help` prints the usage line and
// the options (exit 0); the command line is parsed; `--config FILE` reads the same keys from an
// INI file, where the command line wins; then the required options are checked and the values
// written to their variables. Boost errors become UsageError (exit 2): main prefixes the message
// with "parafine COMMAND: ", so the command is named once. Also the --threads default.
#pragma once

#include <boost/program_options.hpp>
#include <string>

namespace parafine {

class CommandOptions {
 public:
  // `command` as typed ("train"); `usage` is what follows "usage: parafine " in --help, e.g.
  // "convert --input DIR --output DATA.h5 [options]". --help and --config are added here.
  CommandOptions(const std::string& command, const std::string& usage);

  // Adds options, as boost::program_options::options_description::add_options() does.
  boost::program_options::options_description_easy_init add();
  // Command-line words that are not options fill `name` (a vector-valued option), in order.
  void positional(const char* name);

  // Returns false after printing --help (the command then exits 0), true with every value
  // stored. Throws UsageError for an unknown option, a bad value or a missing required one; for
  // a problem in the --config file the message names the file and the key.
  bool parse(int argc, char** argv);

  // Whether `name` was given (on the command line or in the --config file), not defaulted.
  bool given(const char* name) const;

 private:
  void read_config_file(const std::string& path);

  std::string usage_;
  boost::program_options::options_description description_;
  boost::program_options::positional_options_description positional_;
  boost::program_options::variables_map values_;
};

// Threads per rank for `--threads requested`: `requested` when above 0; for 0 the default,
// the node's cores (std::thread::hardware_concurrency) divided by the ranks on this node
// (Comm::ranks_on_node), at least 1. Alone that is every core; under mpirun the ranks of a node
// share its cores instead of each taking all of them. Throws UsageError for a negative value.
// Collective under mpirun (every rank calls it at the same point).
int threads_per_rank(int requested);

}  // namespace parafine
