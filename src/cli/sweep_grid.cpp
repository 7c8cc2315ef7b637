// Reading `parafine sweep`'s grid and each run's train options (see sweep_grid.hpp).
#include "cli/sweep_grid.hpp"

#include <algorithm>
#include <iostream>
#include <set>
#include <sstream>

#include "cli/cli.hpp"

namespace parafine {

namespace {

const char* kSweepHelp =
    "usage: parafine sweep --train PATH [--val PATH] --backbone B1,B2,... "
    "(--unfreeze-last N1,N2,... | --unfreeze-from L1,L2,...) --output DIR [train options]\n"
    "Runs the two-phase job for every backbone x unfreeze setting, with the other train options "
    "shared. Per backbone the frozen base is computed once for all settings (the feature cache), "
    "phase 1 is trained once and every setting's phase 2 starts from its end.\n"
    "Writes into DIR: sweep.csv (one row per run), sweep_history.csv and sweep.png (validation "
    "accuracy per epoch, one line per run), and per run <backbone>_<setting>.keras and "
    "<backbone>_<setting>.history.csv.\n"
    "Not with --save, --save-best, --history, --checkpoint-dir, --resume, --max-steps or --init "
    "(the sweep writes its own files and is not resumable).\n"
    "The train options follow (parafine train --help):\n";

std::vector<std::string> split_list(const std::string& option, const std::string& text) {
  std::vector<std::string> items;
  if (!text.empty() && (text.back() == ',' || text.front() == ','))
    throw UsageError("--" + option + " '" + text + "': an empty entry in the list");
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (item.empty())
      throw UsageError("--" + option + " '" + text + "': an empty entry in the list");
    if (std::find(items.begin(), items.end(), item) != items.end())
      throw UsageError("--" + option + " '" + text + "': '" + item + "' is listed twice");
    items.push_back(item);
  }
  if (items.empty()) throw UsageError("--" + option + ": the list is empty");
  return items;
}

int unfreeze_count(const std::string& text) {
  std::size_t used = 0;
  int n = -1;
  try {
    n = std::stoi(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || n < 0)
    throw UsageError("--unfreeze-last: '" + text + "' is not a layer count (an integer >= 0)");
  return n;
}

}  // namespace

std::string UnfreezeSetting::text() const {
  return from.empty() ? "unfreeze-last " + std::to_string(last) : "unfreeze-from " + from;
}

bool parse_sweep_grid(int argc, char** argv, SweepGrid& grid) {
  std::string backbones, last, from;
  std::set<std::string> given;
  bool help = false;
  const std::vector<std::pair<std::string, std::string*>> grid_options{
      {"backbone", &backbones},
      {"unfreeze-last", &last},
      {"unfreeze-from", &from},
      {"output", &grid.output_dir}};
  for (int i = 1; i < argc; ++i) {
    const std::string word = argv[i];
    help = help || word == "--help" || word == "-h";
    bool taken = false;
    for (const auto& [name, value] : grid_options) {
      const std::string flag = "--" + name;
      if (word == flag) {
        if (i + 1 >= argc) throw UsageError(flag + " needs a value");
        *value += (given.count(name) ? "," : "") + std::string(argv[++i]);
        given.insert(name);
        taken = true;
      } else if (word.rfind(flag + "=", 0) == 0) {
        *value += (given.count(name) ? "," : "") + word.substr(flag.size() + 1);
        given.insert(name);
        taken = true;
      }
    }
    if (!taken) grid.shared_args.push_back(word);
  }
  if (help) {
    std::cout << kSweepHelp;
    TrainOptions o;
    std::vector<char*> args{argv[0], const_cast<char*>("--help")};
    parse_train_options(2, args.data(), o, "sweep");
    return false;
  }
  if (!given.count("backbone"))
    throw UsageError(
        "--backbone: give the backbones to compare, e.g. "
        "--backbone resnet50,vgg16 (one is fine)");
  grid.backbones = split_list("backbone", backbones);
  if (given.count("unfreeze-last") && given.count("unfreeze-from"))
    throw UsageError("--unfreeze-last and --unfreeze-from: give one of them");
  if (!given.count("unfreeze-last") && !given.count("unfreeze-from"))
    throw UsageError(
        "--unfreeze-last N1,N2,... or --unfreeze-from L1,L2,...: the phase-2 "
        "settings to compare are required");
  if (given.count("unfreeze-last"))
    for (const std::string& n : split_list("unfreeze-last", last)) {
      const int count = unfreeze_count(n);
      for (const UnfreezeSetting& s : grid.settings)
        if (s.last == count)
          throw UsageError("--unfreeze-last '" + last + "': " + std::to_string(count) +
                           " is listed twice");
      grid.settings.push_back(UnfreezeSetting{count, ""});
    }
  else
    for (const std::string& layer : split_list("unfreeze-from", from))
      grid.settings.push_back(UnfreezeSetting{-1, layer});
  if (grid.output_dir.empty())
    throw UsageError(
        "--output DIR is required: the sweep writes sweep.csv, sweep.png and one "
        "model per run there");
  return true;
}

TrainOptions sweep_run_options(const SweepGrid& grid, const std::string& backbone,
                               const UnfreezeSetting& setting) {
  std::vector<std::string> words{"sweep"};
  words.insert(words.end(), grid.shared_args.begin(), grid.shared_args.end());
  words.insert(words.end(), {"--backbone", backbone});
  if (setting.from.empty())
    words.insert(words.end(), {"--unfreeze-last", std::to_string(setting.last)});
  else
    words.insert(words.end(), {"--unfreeze-from", setting.from});
  std::vector<char*> args;
  for (std::string& w : words) args.push_back(w.data());
  args.push_back(nullptr);
  TrainOptions o;
  const std::string run = sweep_run_name(backbone, setting);
  try {
    parse_train_options(static_cast<int>(words.size()), args.data(), o, "sweep");
    const std::vector<std::pair<bool, const char*>> refused{
        {!o.save.empty(), "--save: the sweep writes one model per run into --output"},
        {!o.callbacks.save_best.empty(), "--save-best: not in a sweep (each run's model is saved)"},
        {!o.history_path.empty(), "--history: the sweep writes each run's history into --output"},
        {!o.config.checkpoint_dir.empty(), "--checkpoint-dir: a sweep is not resumable"},
        {!o.resume.empty(), "--resume: a sweep is not resumable"},
        {o.config.max_steps > 0, "--max-steps: not in a sweep"},
        {!o.init.empty(), "--init: the sweep builds each --backbone (with --weights)"},
    };
    for (const auto& [bad, why] : refused)
      if (bad) throw UsageError(why);
    validate_train_options(o);
  } catch (const std::invalid_argument& e) {  // UsageError, and the model's own checks
    throw UsageError("sweep run '" + run + "': " + e.what());
  }
  return o;
}

std::string sweep_run_name(const std::string& backbone, const UnfreezeSetting& setting) {
  return backbone + " " + setting.text();
}

std::string sweep_run_stem(const std::string& backbone, const UnfreezeSetting& setting) {
  std::string stem = backbone + "_" + setting.text();
  for (char& ch : stem)
    if (ch == ' ')
      ch = '-';
    else if (ch == '/' || ch == '\\' || static_cast<unsigned char>(ch) < 0x20)
      ch = '_';
  return stem;
}

}  // namespace parafine
