// Messages for allocation failures (see out_of_memory.hpp).
#include "parafine/core/out_of_memory.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <iomanip>
#include <sstream>

namespace parafine {

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  std::ostringstream s;
  s << std::fixed << std::setprecision(u == 0 ? 0 : 1) << bytes << " " << units[u];
  return s.str();
}

std::string out_of_memory_text(const std::string& what, double bytes, const std::string& advice) {
  return "out of memory allocating " + what + " (" + format_bytes(bytes) + ")" +
         (advice.empty() ? "" : ". " + advice);
}

void check_address_space(const std::string& what, double bytes, const std::string& advice) {
  rlimit limit{};
  if (getrlimit(RLIMIT_AS, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return;
  unsigned long long mapped_pages = 0;
  if (FILE* statm = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(statm, "%llu", &mapped_pages) != 1) mapped_pages = 0;
    std::fclose(statm);
  }
  const double mapped =
      static_cast<double>(mapped_pages) * static_cast<double>(sysconf(_SC_PAGESIZE));
  const double left = static_cast<double>(limit.rlim_cur) - mapped;
  if (bytes <= left) return;
  throw OutOfMemory(out_of_memory_text(what, bytes, "") + ": the address-space limit (ulimit -v, " +
                    format_bytes(static_cast<double>(limit.rlim_cur)) + ") leaves " +
                    format_bytes(left > 0 ? left : 0) + (advice.empty() ? "" : ". " + advice));
}

}  // namespace parafine
