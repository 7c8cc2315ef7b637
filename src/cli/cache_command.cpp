// `parafine cache ls DIR` and `parafine cache rm DIR KEY... | --all`: the entries that
// train --cache-dir DIR --cache-keep left in DIR/parafine-cache (cache/persistent_cache.hpp).
// Only directories named like a key under DIR/parafine-cache are entries: nothing else in DIR
// is ever removed. Runs on rank 0 only (other ranks of an mpirun do nothing).
#include <unistd.h>

#include <filesystem>
#include <iomanip>
#include <iostream>
#include <string>
#include <vector>

#include "cli/cli.hpp"
#include "parafine/cache/persistent_cache.hpp"
#include "parafine/core/out_of_memory.hpp"  // format_bytes
#include "parafine/dist/comm.hpp"

namespace parafine {

namespace {

namespace fs = std::filesystem;

const char* kCacheUsage =
    "usage: parafine cache ls DIR              list the kept feature caches in DIR\n"
    "       parafine cache rm DIR KEY...       remove these entries\n"
    "       parafine cache rm DIR --all        remove every entry (nothing else in DIR)\n"
    "DIR is a --cache-dir given to train --cache-keep; its entries are in DIR/parafine-cache.\n";

void check_dir(const std::string& dir, bool writable) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) throw UsageError(dir + " does not exist");
  if (!fs::is_directory(dir, ec)) throw UsageError(dir + " is not a directory");
  if (writable && ::access(dir.c_str(), W_OK | X_OK) != 0)
    throw UsageError(dir + " is not writable by this user");
}

int list(const std::string& dir) {
  check_dir(dir, false);
  const std::vector<KeptCacheEntry> entries = list_kept_caches(dir);
  if (entries.empty()) {
    std::cout << "no kept feature caches in " << kept_cache_root(dir) << "\n";
    return 0;
  }
  double total = 0;
  std::cout << std::left << std::setw(34) << "key" << std::setw(11) << "size" << std::setw(22)
            << "created" << std::setw(12) << "status" << std::setw(26) << "model" << std::setw(7)
            << "image" << std::setw(7) << "ranks"
            << "nodes / data\n";
  for (const KeptCacheEntry& e : entries) {
    total += static_cast<double>(e.bytes);
    std::cout << std::setw(34) << e.key << std::setw(11)
              << format_bytes(static_cast<double>(e.bytes)) << std::setw(22) << e.created
              << std::setw(12) << (e.complete ? "complete" : "incomplete") << std::setw(26)
              << e.model << std::setw(7) << e.image_size << std::setw(7) << e.world << e.nodes
              << " / " << e.data << "\n";
  }
  std::cout << entries.size() << " entr" << (entries.size() == 1 ? "y" : "ies") << ", "
            << format_bytes(total) << " in " << kept_cache_root(dir) << "\n";
  return 0;
}

int remove(const std::string& dir, const std::vector<std::string>& keys, bool all) {
  check_dir(dir, true);
  const std::vector<KeptCacheEntry> entries = list_kept_caches(dir);
  std::vector<const KeptCacheEntry*> chosen;
  if (all) {
    for (const KeptCacheEntry& e : entries) chosen.push_back(&e);
  } else {
    for (const std::string& key : keys) {
      const KeptCacheEntry* found = nullptr;
      for (const KeptCacheEntry& e : entries)
        if (e.key == key) found = &e;
      if (!found)
        throw UsageError("rm: no entry '" + key + "' in " + kept_cache_root(dir) +
                         " (parafine cache ls " + dir + " lists them)");
      chosen.push_back(found);
    }
  }
  double freed = 0;
  for (const KeptCacheEntry* e : chosen) {
    std::error_code ec;
    fs::remove_all(e->path, ec);
    if (ec) {
      std::cerr << "parafine cache rm: cannot remove " << e->path << ": " << ec.message() << "\n";
      return 1;
    }
    freed += static_cast<double>(e->bytes);
    std::cout << "removed " << e->key << " (" << format_bytes(static_cast<double>(e->bytes))
              << ")\n";
  }
  std::cout << "removed " << chosen.size() << " entr" << (chosen.size() == 1 ? "y" : "ies")
            << ", freed " << format_bytes(freed) << "\n";
  return 0;
}

}  // namespace

int run_cache(int argc, char** argv) {
  // argv[0] is "cache"
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && (args[0] == "--help" || args[0] == "-h")) {
    std::cout << kCacheUsage;
    return 0;
  }
  if (args.size() < 2) throw UsageError(std::string("missing arguments\n") + kCacheUsage);
  if (!Comm::is_root()) return 0;
  const std::string& what = args[0];
  const std::string& dir = args[1];
  if (what == "ls") {
    if (args.size() != 2) throw UsageError("ls: takes one DIR, got '" + args[2] + "' too");
    return list(dir);
  }
  if (what == "rm") {
    const std::vector<std::string> rest(args.begin() + 2, args.end());
    const bool all = rest.size() == 1 && rest[0] == "--all";
    if (rest.empty()) throw UsageError("rm: give KEY... or --all after " + dir);
    if (!all)
      for (const std::string& key : rest)
        if (key == "--all") throw UsageError("rm: --all takes no KEY");
    return remove(dir, rest, all);
  }
  throw UsageError("unknown action '" + what + "' (ls or rm)\n" + kCacheUsage);
}

}  // namespace parafine
