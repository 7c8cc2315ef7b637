// The default threads per rank and its reason (see thread_budget.hpp).
#include "parafine/core/thread_budget.hpp"

#include <sched.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>
#include <thread>
#include <vector>

namespace parafine {

namespace {

// The leading positive integer of an environment value ("4", or OpenMP's list "4,2"), or 0.
int leading_count(const std::optional<std::string>& value) {
  if (!value) return 0;
  const char* text = value->c_str();
  char* end = nullptr;
  const long n = std::strtol(text, &end, 10);
  if (end == text || n <= 0 || n > 1 << 20) return 0;
  return static_cast<int>(n);
}

std::string cpus(double n) {
  std::ostringstream s;
  s << n << (n == 1 ? " CPU" : " CPUs");
  return s.str();
}

std::string ranks_text(int ranks) {
  return ranks > 1 ? " / " + std::to_string(ranks) + " ranks" : "";
}

// The first line of a file, "" when it cannot be read.
std::string first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// One cgroup directory's quota in CPUs (0: none or unreadable), v2 or v1 layout.
double quota_in(const std::string& dir, bool v2) {
  double quota = 0, period = 0;
  if (v2) {
    std::istringstream in(first_line(dir + "/cpu.max"));  // "max 100000" or "200000 100000"
    std::string q;
    if (!(in >> q >> period) || q == "max") return 0;
    quota = std::atof(q.c_str());
  } else {
    quota = std::atof(first_line(dir + "/cpu.cfs_quota_us").c_str());  // -1: no limit
    period = std::atof(first_line(dir + "/cpu.cfs_period_us").c_str());
  }
  return quota > 0 && period > 0 ? quota / period : 0;
}

// The smallest quota of the cgroup `path` under `mount` and its parents (0: none).
double smallest_quota(const std::string& mount, std::string path, bool v2) {
  double smallest = 0;
  while (true) {
    const double q = quota_in(mount + path, v2);
    if (q > 0 && (smallest == 0 || q < smallest)) smallest = q;
    if (path.empty() || path == "/") break;
    path.erase(path.find_last_of('/'));
  }
  return smallest;
}

}  // namespace

ThreadBudget decide_threads(int requested, const ThreadSources& s) {
  if (requested > 0) return {requested, "--threads"};
  const int node = std::max(1, s.node_cpus);
  const int mask = s.mask_cpus > 0 ? std::min(s.mask_cpus, node) : node;
  const int ranks = std::max(1, s.ranks_on_node);
  const int sharing = std::max(1, s.ranks_sharing_mask);
  const bool bound = mask < node;  // by mpirun, taskset or a cpuset: share the mask, not the node
  const std::string mask_text =
      "CPU affinity mask: " + std::to_string(mask) + " of " + cpus(node) + ranks_text(sharing);
  const int quota = s.quota_cpus > 0
                        ? std::max(1, static_cast<int>(std::floor(s.quota_cpus / ranks)))
                        : std::numeric_limits<int>::max();
  const std::string quota_text = "cgroup CPU quota: " + cpus(s.quota_cpus) + ranks_text(ranks);
  // The environment's choice (OpenMP's convention, then Slurm's), within the hard limits: the
  // CPUs this rank may run on and its share of the quota (more threads only time-share them).
  for (const auto& [value, name] : {std::pair{&s.omp_num_threads, "OMP_NUM_THREADS="},
                                    std::pair{&s.slurm_cpus_per_task, "SLURM_CPUS_PER_TASK="}})
    if (const int n = leading_count(*value)) {
      const std::string given = name + **value;
      if (bound && mask / sharing < std::min(n, quota))
        return {std::max(1, mask / sharing), given + ", capped by the " + mask_text};
      if (quota < n) return {quota, given + ", capped by the " + quota_text};
      return {n, given};
    }
  ThreadBudget b;
  if (bound) {
    b.threads = std::max(1, mask / sharing);
    b.source = mask_text;
  } else {
    b.threads = std::max(1, node / ranks);
    b.source = "the node's " + cpus(node) + ranks_text(ranks);
  }
  if (quota < b.threads) {
    b.threads = quota;
    b.source += ", capped by the " + quota_text;
  }
  return b;
}

double cgroup_cpu_quota(const std::string& root) {
  const std::string base = root == "/" ? "" : root;
  std::ifstream in(base + "/proc/self/cgroup");
  std::string line;
  double smallest = 0;
  auto take = [&](double q) {
    if (q > 0 && (smallest == 0 || q < smallest)) smallest = q;
  };
  while (std::getline(in, line)) {  // "ID:controllers:path"
    const auto a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    if (controllers.empty()) {  // cgroup v2
      take(smallest_quota(base + "/sys/fs/cgroup", path, true));
      continue;
    }
    std::istringstream list(controllers);
    for (std::string c; std::getline(list, c, ',');)
      if (c == "cpu") {  // v1: mounted as cpu or cpu,cpuacct; inside a container the path may
                         // not exist under the mount, whose root is then the container's
        for (const std::string& mount :
             std::vector<std::string>{"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/" + controllers}) {
          take(smallest_quota(base + mount, path, false));
          take(quota_in(base + mount, false));
        }
      }
  }
  return smallest;
}

int affinity_cpus(unsigned* mask_key) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 0;
  unsigned key = 2166136261u;  // FNV-1a over the CPU numbers in the mask
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
    if (CPU_ISSET(cpu, &set)) key = (key ^ static_cast<unsigned>(cpu)) * 16777619u;
  if (mask_key) *mask_key = key;
  return CPU_COUNT(&set);
}

ThreadSources read_thread_sources(int ranks_on_node, int ranks_sharing_mask) {
  ThreadSources s;
  auto env = [](const char* name) -> std::optional<std::string> {
    const char* v = std::getenv(name);
    return v && *v ? std::optional<std::string>(v) : std::nullopt;
  };
  s.omp_num_threads = env("OMP_NUM_THREADS");
  s.slurm_cpus_per_task = env("SLURM_CPUS_PER_TASK");
  s.node_cpus = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  s.mask_cpus = affinity_cpus();
  s.quota_cpus = cgroup_cpu_quota();
  s.ranks_on_node = ranks_on_node;
  s.ranks_sharing_mask = ranks_sharing_mask;
  return s;
}

}  // namespace parafine
