// Messages for allocation failures (see out_of_memory.hpp).
#include "parafine/core/out_of_memory.hpp"

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

}  // namespace parafine
