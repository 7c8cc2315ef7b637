// MPI session and collectives (see comm.hpp).
#include "parafine/dist/comm.hpp"

#include <mpi.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace parafine {

MpiSession::MpiSession(int* argc, char*** argv) {
  int provided = 0;
  MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
  if (provided < MPI_THREAD_FUNNELED) {
    MPI_Finalize();
    throw std::runtime_error("the MPI library does not support MPI_THREAD_FUNNELED");
  }
}

MpiSession::~MpiSession() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

void MpiSession::abort_all(int exit_code) {
  MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::abort();  // not reached
}

int Comm::rank() {
  int initialized = 0, r = 0;
  MPI_Initialized(&initialized);
  if (initialized) MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

int Comm::size() {
  int initialized = 0, n = 1;
  MPI_Initialized(&initialized);
  if (initialized) MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

void Comm::allreduce_max(std::vector<int>& values) {
  if (size() == 1) return;
  MPI_Allreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), MPI_INT, MPI_MAX,
                MPI_COMM_WORLD);
}

void Comm::allreduce_sum(std::vector<double>& values) {
  if (size() == 1) return;
  MPI_Allreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), MPI_DOUBLE, MPI_SUM,
                MPI_COMM_WORLD);
}

void Comm::allreduce_sum(float* values, std::size_t n) {
  if (size() == 1) return;
  for (std::size_t done = 0; done < n;) {  // MPI counts are int
    const int count = static_cast<int>(std::min<std::size_t>(n - done, 1u << 30));
    MPI_Allreduce(MPI_IN_PLACE, values + done, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    done += static_cast<std::size_t>(count);
  }
}

void Comm::allreduce_min_max(double& min, double& max) {
  if (size() == 1) return;
  MPI_Allreduce(MPI_IN_PLACE, &min, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(MPI_IN_PLACE, &max, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
}

void Comm::broadcast(float* values, std::size_t n) {
  if (size() == 1) return;
  for (std::size_t done = 0; done < n;) {
    const int count = static_cast<int>(std::min<std::size_t>(n - done, 1u << 30));
    MPI_Bcast(values + done, count, MPI_FLOAT, 0, MPI_COMM_WORLD);
    done += static_cast<std::size_t>(count);
  }
}

void Comm::broadcast_bytes(void* data, std::size_t bytes) {
  if (size() == 1) return;
  for (std::size_t done = 0; done < bytes;) {
    const int count = static_cast<int>(std::min<std::size_t>(bytes - done, 1u << 30));
    MPI_Bcast(static_cast<char*>(data) + done, count, MPI_BYTE, 0, MPI_COMM_WORLD);
    done += static_cast<std::size_t>(count);
  }
}

int Comm::ranks_on_node() {
  if (size() == 1) return 1;
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank(), MPI_INFO_NULL, &node);
  int n = 1;
  MPI_Comm_size(node, &n);
  MPI_Comm_free(&node);
  return n;
}

int Comm::ranks_on_node_sharing(unsigned key) {
  if (size() == 1) return 1;
  MPI_Comm node, same;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank(), MPI_INFO_NULL, &node);
  MPI_Comm_split(node, static_cast<int>(key & 0x7fffffffu), rank(), &same);  // colour >= 0
  int n = 1;
  MPI_Comm_size(same, &n);
  MPI_Comm_free(&same);
  MPI_Comm_free(&node);
  return n;
}

std::vector<unsigned char> Comm::gather_to_root(const std::vector<unsigned char>& mine) {
  if (size() == 1) return mine;
  const int n = size();
  int count = static_cast<int>(mine.size());
  std::vector<int> counts(static_cast<size_t>(n)), displs(static_cast<size_t>(n));
  MPI_Gather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, MPI_COMM_WORLD);
  std::vector<unsigned char> all;
  if (is_root()) {
    std::size_t total = 0;
    for (int r = 0; r < n; ++r) {
      if (total > static_cast<std::size_t>(INT32_MAX))
        throw std::runtime_error(
            "gather_to_root: more than 2 GiB in one gather (use smaller rounds)");
      displs[static_cast<size_t>(r)] = static_cast<int>(total);
      total += static_cast<std::size_t>(counts[static_cast<size_t>(r)]);
    }
    all.resize(total);
  }
  MPI_Gatherv(mine.data(), count, MPI_UNSIGNED_CHAR, all.data(), counts.data(), displs.data(),
              MPI_UNSIGNED_CHAR, 0, MPI_COMM_WORLD);
  return all;
}

std::string Comm::broadcast(const std::string& from_root) {
  if (size() == 1) return from_root;
  int len = static_cast<int>(from_root.size());
  MPI_Bcast(&len, 1, MPI_INT, 0, MPI_COMM_WORLD);
  std::string s = is_root() ? from_root : std::string(static_cast<size_t>(len), '\0');
  MPI_Bcast(s.data(), len, MPI_CHAR, 0, MPI_COMM_WORLD);
  return s;
}

void Comm::alltoall_records(const float* send, const std::vector<int>& send_records, float* recv,
                            const std::vector<int>& recv_records, std::size_t record_floats) {
  const int n = size();
  if (static_cast<int>(send_records.size()) != n || static_cast<int>(recv_records.size()) != n)
    throw std::logic_error("alltoall_records: one count per rank is needed");
  if (record_floats > static_cast<std::size_t>(INT32_MAX))
    throw std::runtime_error("alltoall_records: a record of " + std::to_string(record_floats) +
                             " floats is larger than MPI's int count");
  // Displacements are counted in records (the derived type), so only the per-rank record count
  // has to fit in an int, not the floats moved.
  auto displacements = [n](const std::vector<int>& counts) {
    std::vector<int> d(static_cast<size_t>(n), 0);
    long long total = 0;
    for (int r = 0; r < n; ++r) {
      if (total > INT32_MAX)
        throw std::runtime_error("alltoall_records: more than 2^31 records in one exchange");
      d[static_cast<size_t>(r)] = static_cast<int>(total);
      total += counts[static_cast<size_t>(r)];
    }
    return d;
  };
  const std::vector<int> sdispl = displacements(send_records), rdispl = displacements(recv_records);
  if (n == 1) {
    std::copy(send, send + static_cast<std::size_t>(send_records[0]) * record_floats, recv);
    return;
  }
  MPI_Datatype record;
  MPI_Type_contiguous(static_cast<int>(record_floats), MPI_FLOAT, &record);
  MPI_Type_commit(&record);
  MPI_Alltoallv(send, send_records.data(), sdispl.data(), record, recv, recv_records.data(),
                rdispl.data(), record, MPI_COMM_WORLD);
  MPI_Type_free(&record);
}

void agree_on_failure(bool failed, const std::string& message) {
  if (Comm::size() == 1) {
    if (failed) throw std::runtime_error(message);
    return;
  }
  // The lowest failing rank tells everyone its message.
  std::vector<int> first{failed ? Comm::size() - Comm::rank() : 0};
  Comm::allreduce_max(first);
  if (first[0] == 0) return;
  const int from = Comm::size() - first[0];
  int len = Comm::rank() == from ? static_cast<int>(message.size()) : 0;
  MPI_Bcast(&len, 1, MPI_INT, from, MPI_COMM_WORLD);
  std::string s = Comm::rank() == from ? message : std::string(static_cast<size_t>(len), '\0');
  MPI_Bcast(s.data(), len, MPI_CHAR, from, MPI_COMM_WORLD);
  throw std::runtime_error(
      s + (from == Comm::rank() ? "" : " (reported by rank " + std::to_string(from) + ")"));
}

}  // namespace parafine
