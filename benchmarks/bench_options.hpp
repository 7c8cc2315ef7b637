// Command-line parsing shared by the benchmarks: Boost.ProgramOptions (as the parafine binary
// uses), with --help and a usage error (exit 2) that names the option.
#pragma once

#include <boost/program_options.hpp>
#include <cstdlib>
#include <iostream>
#include <string>

namespace bench {

namespace po = boost::program_options;

// Parses argv into the variables bound in `opts`; on --help prints them and exits 0, on a bad
// option prints the error and exits 2.
inline void parse_or_exit(int argc, char** argv, const char* program,
                          const po::options_description& opts) {
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, opts), vm);
    if (vm.count("help")) {
      std::cout << "usage: " << program << " [options]\n" << opts;
      std::exit(0);
    }
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << program << ": " << e.what() << "\n" << opts;
    std::exit(2);
  }
}

// Exits 2 naming the option when a value is below its minimum.
inline void require_at_least(const char* program, const char* option, long long value,
                             long long min) {
  if (value >= min) return;
  std::cerr << program << ": --" << option << " must be >= " << min << ", got " << value << "\n";
  std::exit(2);
}

}  // namespace bench
