// The MPI world as parafine uses it: rank, size and the few collectives the commands need.
// One MpiSession per process (in main) initialises MPI with MPI_THREAD_FUNNELED: only the
// main thread calls MPI; loader threads never do. Without mpirun the process is a world of 1.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace parafine {

class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();  // MPI_Finalize
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  // Ends every rank at once after an error on one (MPI_Abort): no rank is left waiting.
  [[noreturn]] static void abort_all(int exit_code);
};

class Comm {
 public:
  static int rank();
  static int size();
  static bool is_root() { return rank() == 0; }
  // Element-wise max / sum over ranks, in place.
  static void allreduce_max(std::vector<int>& values);
  static void allreduce_sum(std::vector<double>& values);
  static void allreduce_sum(float* values, std::size_t n);
  static void allreduce_min_max(double& min, double& max);
  // Rank 0's values on every rank.
  static void broadcast(float* values, std::size_t n);
  static void broadcast_bytes(void* data, std::size_t bytes);  // e.g. a trivially copyable struct
  // Ranks sharing this node (MPI_Comm_split_type SHARED), for threads = cores / ranks.
  static int ranks_on_node();
  // Of the ranks on this node, how many passed this `key` (this one included), e.g. ranks
  // bound to the same CPUs (core/thread_budget.hpp's mask key). Collective.
  static int ranks_on_node_sharing(unsigned key);
  // Every rank's bytes, concatenated in rank order at rank 0 (other ranks get nothing back).
  static std::vector<unsigned char> gather_to_root(const std::vector<unsigned char>& mine);
  // Rank 0's string on every rank.
  static std::string broadcast(const std::string& from_root);
  // Personalised all-to-all of fixed-size records (MPI_Alltoallv): this rank sends
  // send_records[q] records to rank q, taken in rank order from `send`, and receives
  // recv_records[p] records from rank p, stored in rank order in `recv`. A record is
  // record_floats floats. Every rank must call it with matching counts.
  static void alltoall_records(const float* send, const std::vector<int>& send_records, float* recv,
                               const std::vector<int>& recv_records, std::size_t record_floats);
};

// Collective error agreement: every rank passes whether it failed and its message; if any
// rank failed, all ranks throw std::runtime_error with the first failing rank's message (so
// no rank waits in a later collective for one that gave up).
void agree_on_failure(bool failed, const std::string& message);

}  // namespace parafine
