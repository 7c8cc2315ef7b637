// How many compute threads a rank takes when --threads is not given, and why (the reason is
// logged): OMP_NUM_THREADS, else SLURM_CPUS_PER_TASK, else the CPUs of this process's affinity
// mask (what mpirun or a container allows it) divided among the ranks of the node that share
// that mask. Every source but --threads is capped by the hard limits: the mask (when the rank
// is bound) and the cgroup CPU quota (a container's --cpus) over the node's ranks; the reason
// then says so. The decision is a pure function of ThreadSources, which the readers fill from the
// environment, sched_getaffinity and the cgroup files, so tests inject every input.
#pragma once

#include <optional>
#include <string>

namespace parafine {

struct ThreadSources {
  std::optional<std::string> omp_num_threads;      // the environment's value, when set
  std::optional<std::string> slurm_cpus_per_task;  // idem
  int node_cpus = 1;           // online CPUs (std::thread::hardware_concurrency)
  int mask_cpus = 0;           // CPUs in the affinity mask (0: unknown, taken as node_cpus)
  double quota_cpus = 0;       // cgroup CPU quota in CPUs, quota / period (0: no limit)
  int ranks_on_node = 1;       // ranks of this job on this node
  int ranks_sharing_mask = 1;  // of those, the ones with this rank's affinity mask (itself too)
};

struct ThreadBudget {
  int threads = 1;
  std::string source;  // e.g. "CPU affinity mask: 1 of 2 CPUs"
};

// The threads per rank for --threads `requested` (0: not given) and where the number came from.
ThreadBudget decide_threads(int requested, const ThreadSources& s);

// The CPU quota of the cgroup this process is in, in CPUs (0: none): cgroup v2 cpu.max or v1
// cpu.cfs_quota_us / cpu.cfs_period_us, for the cgroup named in <root>/proc/self/cgroup and
// each of its parents (the smallest wins), under <root>/sys/fs/cgroup. `root` is "/" except in
// tests.
double cgroup_cpu_quota(const std::string& root = "/");

// The CPUs in this process's affinity mask (sched_getaffinity), 0 if unknown; `mask_key` gets a
// hash of the mask, equal for ranks bound to the same CPUs.
int affinity_cpus(unsigned* mask_key = nullptr);

// ThreadSources from this process's environment, mask and cgroup; the two rank counts are the
// caller's (Comm, in the dist layer).
ThreadSources read_thread_sources(int ranks_on_node, int ranks_sharing_mask);

}  // namespace parafine
