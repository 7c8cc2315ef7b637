// fuzz_inputs: the seeded fuzz target of issue 11 ("never a crash, a hang or a silently wrong
// file"). For each parser of untrusted input it mutates the committed seed corpus
// (tests/fuzz/corpus/) with a deterministic mutator, runs every mutant in a forked child with a
// timeout, counts the outcomes, saves every failing mutant, and exits 1 when there was any.
// It never calls MPI. Usage (see --help and README "Fuzzing"):
//   fuzz_inputs --parser all --mutants 200 --seed 1 --corpus tests/fuzz/corpus
//   fuzz_inputs --parser keras1 --replay fuzz-failures/keras1-seed1-mutant17.h5
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "child_process.hpp"
#include "fuzz_parsers.hpp"
#include "mutator.hpp"

namespace fs = std::filesystem;
using namespace parafine::fuzz;

#if defined(__SANITIZE_ADDRESS__)
// Under ASan the child's address space is not limited (ASan reserves terabytes of shadow
// memory); instead malloc returns null for allocations above 4 GiB, as under the RLIMIT_AS of
// the other builds: HDF5 copes with a failed malloc of a damaged size, which ASan's default
// (abort) would report as a crash. A C++ `new` of such a size still ends in an ASan report and
// SIGABRT, a failure as std::bad_alloc is elsewhere. Options in ASAN_OPTIONS
// (launch/test_sanitizers.sh) are added to these.
extern "C" const char* __asan_default_options() {
  return "allocator_may_return_null=1:max_allocation_size_mb=4096";
}
constexpr long long kChildMemoryLimit = 0;
#else
constexpr long long kChildMemoryLimit = 4LL << 30;
#endif

namespace {

constexpr int kMessagesShown = 6;

struct Options {
  std::string parser = "all";
  int mutants = 200;
  std::uint64_t seed = 1;
  std::string corpus = PARAFINE_FUZZ_CORPUS;
  std::string keep_failures = "fuzz-failures";
  double timeout = 10;
  std::string replay;
  std::string work_dir;     // default: a fresh directory under the system temp directory
  bool in_process = false;  // --replay without a child, for a debugger
};

const char* const kUsage =
    "usage: fuzz_inputs [--parser image|h5_dataset|keras_tf|keras1|checkpoint|all]\n"
    "                   [--mutants N] [--seed S] [--corpus DIR] [--keep-failures DIR]\n"
    "                   [--timeout SECONDS] [--work-dir DIR] [--replay FILE [--in-process]]\n"
    "Mutates the seed corpus N times per parser and runs each mutant in a forked child.\n"
    "Failures (signal, timeout, other exit, empty message, bad_alloc) are saved in\n"
    "--keep-failures (default ./fuzz-failures); --replay runs one saved file again\n"
    "(--in-process: in the driver itself, to run it under gdb).\n";

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--in-process") {
      o.in_process = true;
      continue;
    }
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      std::exit(0);
    }
    if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value\n" + kUsage);
    const std::string value = argv[++i];
    if (arg == "--parser")
      o.parser = value;
    else if (arg == "--mutants")
      o.mutants = std::stoi(value);
    else if (arg == "--seed")
      o.seed = std::stoull(value);
    else if (arg == "--corpus")
      o.corpus = value;
    else if (arg == "--keep-failures")
      o.keep_failures = value;
    else if (arg == "--timeout")
      o.timeout = std::stod(value);
    else if (arg == "--replay")
      o.replay = value;
    else if (arg == "--work-dir")
      o.work_dir = value;
    else
      throw std::invalid_argument("unknown option " + arg + "\n" + kUsage);
  }
  if (o.parser != "all" && !find_parser(o.parser))
    throw std::invalid_argument("unknown --parser " + o.parser + "\n" + kUsage);
  if (!o.replay.empty() && o.parser == "all")
    throw std::invalid_argument("--replay needs --parser (which reader the file is for)");
  if (o.mutants < 0 || o.timeout <= 0)
    throw std::invalid_argument("--mutants must be >= 0 and --timeout > 0");
  return o;
}

struct SeedFile {
  std::string name, extension;
  Bytes bytes;
};

Bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open");
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_file(const std::string& path, const Bytes& bytes) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  if (!out.flush()) throw std::runtime_error(path + ": cannot write");
}

// The seed files of one parser, sorted by name so a mutant index always picks the same one.
std::vector<SeedFile> load_seeds(const ParserSpec& spec, const Options& o,
                                 const parafine::Model& model) {
  std::vector<std::string> paths;
  if (spec.corpus_subdir.empty()) {
    paths.push_back(
        write_generated_seed(spec, (fs::path(o.work_dir) / (spec.name + "_seed")).string(), model));
  } else {
    for (const auto& entry : fs::directory_iterator(fs::path(o.corpus) / spec.corpus_subdir))
      if (entry.is_regular_file()) paths.push_back(entry.path().string());
  }
  std::sort(paths.begin(), paths.end());
  std::vector<SeedFile> seeds;
  for (const std::string& p : paths)
    seeds.push_back(
        {fs::path(p).filename().string(), fs::path(p).extension().string(), read_file(p)});
  if (seeds.empty()) throw std::runtime_error("no seed files for " + spec.name + " in " + o.corpus);
  return seeds;
}

struct Failure {
  int index;
  ChildResult result;
  std::string seed_name, mutations, saved;
};

struct Campaign {
  std::map<Outcome, int> counts;
  std::vector<std::pair<std::string, int>> messages;  // distinct, in order of first appearance
  std::vector<Failure> failures;
  double seconds = 0;
};

// The message with the mutant's path and the work directory replaced, so the same rejection
// counts once.
std::string normalised(std::string message, const std::string& path, const std::string& work_dir) {
  for (const auto& [text, placeholder] :
       {std::pair{path, "<mutant>"}, std::pair{work_dir, "<work>"}})
    for (std::size_t at; (at = message.find(text)) != std::string::npos;)
      message.replace(at, text.size(), placeholder);
  return message;
}

// A message's first line, at most 240 characters: enough to tell rejections apart.
std::string first_line(const std::string& message) {
  const std::string line = message.substr(0, message.find('\n'));
  return line.size() > 240 ? line.substr(0, 240) + "..." : line;
}

void count_message(Campaign& c, const std::string& message) {
  for (auto& [text, count] : c.messages)
    if (text == message) return void(++count);
  c.messages.emplace_back(message, 1);
}

std::string save_failure(const Options& o, const ParserSpec& spec, const Failure& f,
                         const Bytes& bytes, const std::string& extension) {
  const std::string stem =
      spec.name + "-seed" + std::to_string(o.seed) + "-mutant" + std::to_string(f.index);
  const fs::path path = fs::path(o.keep_failures) / (stem + extension);
  write_file(path.string(), bytes);
  std::ofstream note(fs::path(o.keep_failures) / (stem + ".txt"));
  note << "parser " << spec.name << " seed " << o.seed << " mutant " << f.index << "\nfrom "
       << f.seed_name << ": " << f.mutations << "\noutcome " << outcome_name(f.result.outcome)
       << " (" << f.result.detail << ")\nmessage: " << f.result.message << "\noutput:\n"
       << f.result.output << "\nreplay: fuzz_inputs --parser " << spec.name << " --replay "
       << path.string() << "\n";
  return path.string();
}

Campaign run_campaign(const ParserSpec& spec, const Options& o, parafine::Model& model) {
  const std::vector<SeedFile> seeds = load_seeds(spec, o, model);
  const MutationProfile profile = spec.hdf5 ? hdf5_profile() : image_profile();
  Campaign c;
  const auto start = std::chrono::steady_clock::now();
  for (int index = 0; index < o.mutants; ++index) {
    Mutator mutator(mutant_seed(o.seed, spec.name, index));
    const SeedFile& seed = seeds[mutator.below(seeds.size())];
    std::string mutations;
    const Bytes bytes = mutator.mutate(seed.bytes, profile, &mutations);
    const std::string path = mutant_path(spec, o.work_dir, seed.extension);
    write_file(path, bytes);
    const ChildResult r =
        run_in_child([&] { run_parser(spec, path, model); }, o.timeout, kChildMemoryLimit);
    ++c.counts[r.outcome];
    if (r.outcome == Outcome::kCleanError)
      count_message(c, normalised(r.message, path, o.work_dir));
    if (!is_failure(r.outcome)) continue;
    Failure f{index, r, seed.name, mutations, ""};
    f.result.message = normalised(r.message, path, o.work_dir);
    f.saved = save_failure(o, spec, f, bytes, seed.extension);
    c.failures.push_back(f);
  }
  c.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return c;
}

void print_campaign(const ParserSpec& spec, const Options& o, const Campaign& c) {
  std::cout << "[" << spec.name << "] " << o.mutants << " mutants, seed " << o.seed << ", "
            << c.seconds << " s:";
  for (const auto& [outcome, count] : c.counts)
    std::cout << " " << outcome_name(outcome) << " " << count << ";";
  std::cout << " failures " << c.failures.size() << "\n";
  std::cout << "  " << c.messages.size() << " distinct error messages";
  if (!c.messages.empty())
    std::cout << ", the first " << std::min<std::size_t>(kMessagesShown, c.messages.size());
  std::cout << ":\n";
  for (std::size_t i = 0; i < c.messages.size() && i < kMessagesShown; ++i)
    std::cout << "    " << c.messages[i].second << "x " << first_line(c.messages[i].first) << "\n";
  for (const Failure& f : c.failures) {
    std::cout << "  FAILURE " << outcome_name(f.result.outcome) << " (" << f.result.detail
              << "): parser " << spec.name << " seed " << o.seed << " mutant " << f.index << " of "
              << f.seed_name << " [" << f.mutations << "] saved as " << f.saved << "\n";
    if (!f.result.message.empty())
      std::cout << "    message: " << first_line(f.result.message) << "\n";
  }
}

int replay(const ParserSpec& spec, const Options& o, parafine::Model& model) {
  const std::string path = mutant_path(spec, o.work_dir, fs::path(o.replay).extension().string());
  write_file(path, read_file(o.replay));
  if (o.in_process) {
    run_parser(spec, path, model);
    std::cout << "[" << spec.name << "] replay of " << o.replay << ": accepted (in process)\n";
    return 0;
  }
  const ChildResult r =
      run_in_child([&] { run_parser(spec, path, model); }, o.timeout, kChildMemoryLimit);
  std::cout << "[" << spec.name << "] replay of " << o.replay << ": " << outcome_name(r.outcome)
            << " (" << r.detail << ", " << r.seconds << " s)\n";
  if (!r.message.empty())
    std::cout << "message: " << normalised(r.message, path, o.work_dir) << "\n";
  if (!r.output.empty()) std::cout << "output:\n" << r.output << "\n";
  return is_failure(r.outcome) ? 1 : 0;
}

// The work directory fuzz_inputs made for itself, removed on every way out of main.
struct OwnWorkDir {
  std::string path;
  OwnWorkDir() {
    std::string pattern = (fs::temp_directory_path() / "fuzz_inputs.XXXXXX").string();
    if (!mkdtemp(pattern.data())) throw std::runtime_error("cannot create a work directory");
    path = pattern;
  }
  ~OwnWorkDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
};

int run(Options o) {
  std::unique_ptr<OwnWorkDir> own_work_dir;
  if (o.work_dir.empty()) {
    own_work_dir = std::make_unique<OwnWorkDir>();
    o.work_dir = own_work_dir->path;
  }
  parafine::Model model = build_fuzz_model();
  if (!o.replay.empty()) return replay(*find_parser(o.parser), o, model);
  std::size_t failures = 0;
  for (const ParserSpec& spec : parser_specs()) {
    if (o.parser != "all" && o.parser != spec.name) continue;
    const Campaign c = run_campaign(spec, o, model);
    print_campaign(spec, o, c);
    failures += c.failures.size();
  }
  std::cout << (failures ? "FAILED: " : "OK: ") << failures << " failing mutant(s)\n";
  return failures ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options options = parse_options(argc, argv);
    // A mutant that makes HDF5 loop must become parafine's "damaged" message (its checking
    // child gives up after PARAFINE_HDF5_CHECK_TIMEOUT) well before this driver's timeout; a
    // Keras mutant goes through two checked reads.
    setenv("PARAFINE_HDF5_CHECK_TIMEOUT", std::to_string(options.timeout / 3).c_str(), 0);
    return run(options);
  } catch (const std::exception& e) {
    std::cerr << "fuzz_inputs: " << e.what() << "\n";
    return 2;
  }
}
