// The default threads per rank (core/thread_budget.hpp): the order of the sources (--threads,
// OMP_NUM_THREADS, SLURM_CPUS_PER_TASK, the affinity mask shared by the ranks bound to it, the
// node's CPUs over its ranks), the cgroup quota's cap, and the cgroup v1/v2 readers on fake
// /proc and /sys trees.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "parafine/core/thread_budget.hpp"

namespace parafine {
namespace {

namespace fs = std::filesystem;

ThreadSources node(int cpus, int ranks) {
  ThreadSources s;
  s.node_cpus = cpus;
  s.mask_cpus = cpus;
  s.ranks_on_node = ranks;
  s.ranks_sharing_mask = ranks;
  return s;
}

void expect(const ThreadSources& s, int requested, int threads, const std::string& source) {
  const ThreadBudget b = decide_threads(requested, s);
  std::cout << "threads " << b.threads << " (" << b.source << ")\n";
  EXPECT_EQ(b.threads, threads) << b.source;
  EXPECT_EQ(b.source, source);
}

TEST(ThreadBudget, SourcesInOrder) {
  ThreadSources s = node(16, 2);
  s.omp_num_threads = "4,2";  // OpenMP's nested list: the first level
  s.slurm_cpus_per_task = "6";
  expect(s, 3, 3, "--threads");
  expect(s, 0, 4, "OMP_NUM_THREADS=4,2");
  s.omp_num_threads = "many";  // not a count: the next source
  expect(s, 0, 6, "SLURM_CPUS_PER_TASK=6");
  s.slurm_cpus_per_task.reset();
  expect(s, 0, 8, "the node's 16 CPUs / 2 ranks");
}

TEST(ThreadBudget, TheEnvironmentIsCappedByTheMaskAndTheQuota) {
  ThreadSources s = node(2, 2);
  s.mask_cpus = 1;  // mpirun -np 2 binds each rank to a core
  s.ranks_sharing_mask = 1;
  s.slurm_cpus_per_task = "16";
  expect(s, 0, 1, "SLURM_CPUS_PER_TASK=16, capped by the CPU affinity mask: 1 of 2 CPUs");
  s = node(16, 2);
  s.omp_num_threads = "6";
  s.quota_cpus = 4;  // a container's --cpus 4 over 2 ranks
  expect(s, 0, 2, "OMP_NUM_THREADS=6, capped by the cgroup CPU quota: 4 CPUs / 2 ranks");
  s.omp_num_threads = "2";  // within both: as given
  expect(s, 0, 2, "OMP_NUM_THREADS=2");
}

TEST(ThreadBudget, AffinityMaskSharedByTheRanksBoundToIt) {
  ThreadSources s = node(2, 2);
  s.mask_cpus = 1;  // Open MPI binds each of 2 ranks to a core
  s.ranks_sharing_mask = 1;
  expect(s, 0, 1, "CPU affinity mask: 1 of 2 CPUs");
  s = node(64, 4);
  s.mask_cpus = 32;  // bound to a socket: two ranks per socket share it
  s.ranks_sharing_mask = 2;
  expect(s, 0, 16, "CPU affinity mask: 32 of 64 CPUs / 2 ranks");
  s = node(1, 1);
  s.mask_cpus = 0;  // unknown: the node's
  expect(s, 0, 1, "the node's 1 CPU");
  s = node(4, 8);  // more ranks than CPUs: still one thread each
  expect(s, 0, 1, "the node's 4 CPUs / 8 ranks");
}

TEST(ThreadBudget, CgroupQuotaCaps) {
  ThreadSources s = node(16, 1);
  s.quota_cpus = 2.5;  // docker --cpus 2.5
  expect(s, 0, 2, "the node's 16 CPUs, capped by the cgroup CPU quota: 2.5 CPUs");
  s = node(16, 2);
  s.quota_cpus = 4;
  expect(s, 0, 2, "the node's 16 CPUs / 2 ranks, capped by the cgroup CPU quota: 4 CPUs / 2 ranks");
  s.quota_cpus = 32;  // above what the mask gives: no cap
  expect(s, 0, 8, "the node's 16 CPUs / 2 ranks");
}

// A fake root with /proc/self/cgroup and cgroup files under /sys/fs/cgroup.
struct FakeRoot {
  fs::path root = fs::temp_directory_path() / ("parafine_cgroup_" + std::to_string(::getpid()));
  explicit FakeRoot(const std::string& proc_self_cgroup) {
    fs::remove_all(root);
    write("proc/self/cgroup", proc_self_cgroup);
  }
  ~FakeRoot() { fs::remove_all(root); }
  void write(const std::string& path, const std::string& text) {
    fs::create_directories((root / path).parent_path());
    std::ofstream(root / path) << text << "\n";
  }
  double quota() const {
    const double q = cgroup_cpu_quota(root.string());
    std::cout << "cgroup quota " << q << " CPUs\n";
    return q;
  }
};

TEST(ThreadBudget, CgroupV2CpuMaxOfTheCgroupAndItsParents) {
  FakeRoot f("0::/user.slice/job7");
  f.write("sys/fs/cgroup/user.slice/job7/cpu.max", "150000 100000");
  f.write("sys/fs/cgroup/user.slice/cpu.max", "max 100000");
  EXPECT_DOUBLE_EQ(f.quota(), 1.5);
  f.write("sys/fs/cgroup/user.slice/cpu.max", "50000 100000");  // a parent's smaller limit
  EXPECT_DOUBLE_EQ(f.quota(), 0.5);
  f.write("sys/fs/cgroup/user.slice/job7/cpu.max", "max 100000");
  f.write("sys/fs/cgroup/user.slice/cpu.max", "max 100000");
  EXPECT_DOUBLE_EQ(f.quota(), 0);
}

TEST(ThreadBudget, CgroupV1CfsQuota) {
  FakeRoot f("11:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n");
  f.write("sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "200000");
  f.write("sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000");
  EXPECT_DOUBLE_EQ(f.quota(), 2);
  f.write("sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "-1");  // no limit
  EXPECT_DOUBLE_EQ(f.quota(), 0);
}

TEST(ThreadBudget, CgroupV1InsideAContainerReadsTheMountRoot) {
  // The path names the host's cgroup; inside the container the mount's root is its own.
  FakeRoot f("1:cpu:/kubepods/pod1/c2\n");
  f.write("sys/fs/cgroup/cpu/cpu.cfs_quota_us", "300000");
  f.write("sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000");
  EXPECT_DOUBLE_EQ(f.quota(), 3);
}

TEST(ThreadBudget, NoCgroupFilesNoLimit) {
  FakeRoot f("0::/\n");
  EXPECT_DOUBLE_EQ(f.quota(), 0);
  EXPECT_GE(affinity_cpus(), 1);
}

}  // namespace
}  // namespace parafine
