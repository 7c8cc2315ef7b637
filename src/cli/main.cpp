// parafine command-line entry point: dispatches to the subcommands in src/cli/.
#include <boost/program_options/errors.hpp>
#include <csignal>
#include <iostream>
#include <new>
#include <string>

#include "cli/cli.hpp"
#include "parafine/core/out_of_memory.hpp"
#include "parafine/core/stop_signal.hpp"
#include "parafine/dist/comm.hpp"

namespace {

const char* kUsage =
    "usage: parafine COMMAND [options]   (parafine COMMAND --help for its options)\n"
    "commands:\n"
    "  train      --train PATH [--val PATH] [--weights imagenet|none|FILE] ... two-phase "
    "fine-tuning\n"
    "  sweep      --train PATH --backbone B1,B2 --unfreeze-last N1,N2 --output DIR: the "
    "two-phase job for every backbone x setting, the frozen base computed once per backbone\n"
    "  demo       two-phase fine-tuning on a built-in synthetic dataset\n"
    "  convert    --input DIR --output DATA.h5: pack an image folder into an HDF5 dataset\n"
    "  inspect    FILE.h5: the layout and weights of a Keras weight file, and whether it loads\n"
    "  predict    --model M.h5 --input PATH [--output preds.csv]\n"
    "  evaluate   --model M.h5 --data PATH [--report DIR]\n"
    "  plot-history HISTORY.csv OUT.png: loss and accuracy per epoch from train --history\n"
    "  cache      ls DIR | rm DIR KEY...|--all: the feature caches train --cache-keep kept\n"
    "PATH is an image folder (one sub-folder per class) or an HDF5 dataset.\n";

// An error message as it may be shown on a terminal: names read from a damaged file can hold
// any bytes, so control characters (but newline and tab) and bytes that are not UTF-8 are
// written as \xNN; valid UTF-8 (class names in any script) passes unchanged.
std::string printable(const std::string& text) {
  std::string out;
  auto escape = [&](unsigned char c) {
    const char* hex = "0123456789abcdef";
    out += "\\x";
    out += hex[c >> 4];
    out += hex[c & 15];
  };
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f)
        escape(c);
      else
        out += static_cast<char>(c);
      ++i;
      continue;
    }
    const std::size_t length = c >= 0xf0 && c < 0xf5 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
    bool valid = length > 0 && c < 0xf5 && i + length <= text.size();
    for (std::size_t k = 1; valid && k < length; ++k)
      valid = (static_cast<unsigned char>(text[i + k]) & 0xc0) == 0x80;
    if (valid) {
      out.append(text, i, length);
      i += length;
    } else {
      escape(c);
      ++i;
    }
  }
  return out;
}

}  // namespace

int run(int argc, char** argv);

// Under mpirun an error on one rank must end every rank (MPI_Abort), never leave the others
// waiting in a collective; alone, the exit code says what kind of error it was. A stop for a
// signal (exit 75) is agreed by every rank at the same step: they all exit normally.
int main(int argc, char** argv) {
  // Past a file size limit (ulimit -f, a quota) a write then fails with EFBIG, which the
  // writers report (naming the file, leaving the previous one intact), instead of the kernel
  // killing the process with no message and a partial file.
  std::signal(SIGXFSZ, SIG_IGN);
  parafine::install_crash_report();
  parafine::MpiSession mpi(&argc, &argv);
  const int code = run(argc, argv);
  if (code != 0 && code != parafine::kStoppedBySignalExitCode && parafine::Comm::size() > 1)
    parafine::MpiSession::abort_all(code);
  return code;
}

int run(int argc, char** argv) {
  const std::string where = parafine::Comm::size() > 1
                                ? " (rank " + std::to_string(parafine::Comm::rank()) + ")"
                                : std::string();
  if (argc < 2) {
    std::cerr << kUsage;
    return 2;
  }
  const std::string command = argv[1];
  try {
    if (command == "demo") return parafine::run_demo(argc - 1, argv + 1);
    if (command == "inspect") return parafine::run_inspect(argc - 1, argv + 1);
    if (command == "predict") return parafine::run_predict(argc - 1, argv + 1);
    if (command == "evaluate") return parafine::run_evaluate(argc - 1, argv + 1);
    if (command == "convert") return parafine::run_convert(argc - 1, argv + 1);
    if (command == "train") return parafine::run_train(argc - 1, argv + 1);
    if (command == "sweep") return parafine::run_sweep(argc - 1, argv + 1);
    if (command == "plot-history") return parafine::run_plot_history(argc - 1, argv + 1);
    if (command == "cache") return parafine::run_cache(argc - 1, argv + 1);
    if (command == "--help" || command == "-h" || command == "help") {
      std::cout << kUsage;
      return 0;
    }
    std::cerr << "parafine: unknown command '" << command << "'\n" << kUsage;
    return 2;
  } catch (const parafine::StoppedBySignal&) {  // the trainer logged what and where
    return parafine::kStoppedBySignalExitCode;
  } catch (const boost::program_options::error& e) {
    std::cerr << "parafine " << command << where << ": " << printable(e.what()) << "\n";
    return 2;
  } catch (const std::invalid_argument& e) {  // UsageError and bad option values
    std::cerr << "parafine " << command << where << ": " << printable(e.what()) << "\n";
    return 2;
  } catch (const parafine::OutOfMemory& e) {  // names what was being allocated, and how large
    std::cerr << "parafine " << command << where << ": error: " << printable(e.what()) << "\n";
    return 1;
  } catch (const std::bad_alloc&) {  // which allocation failed is not known here
    std::cerr << "parafine " << command << where
              << ": error: out of memory (an allocation failed). Try a smaller --batch-size, "
                 "--image-size or --cache-mem, or fewer ranks per node.\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "parafine " << command << where << ": error: " << printable(e.what()) << "\n";
    return 1;
  }
}
