// oneDNN engine, stream and primitive execution for parafine's buffers (see onednn.hpp).
#include "parafine/core/onednn.hpp"

#include <atomic>
#include <stdexcept>
#include <string>

namespace parafine::onednn {

namespace {
std::atomic<int> g_library_depth{0};

// Marks the calling thread's time inside oneDNN, also when a call throws.
struct InLibrary {
  InLibrary() { g_library_depth.fetch_add(1, std::memory_order_relaxed); }
  ~InLibrary() { g_library_depth.fetch_sub(1, std::memory_order_relaxed); }
};
}  // namespace

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

dnnl::stream& stream() {
  // One per thread: two threads running models at once never share an in-order stream.
  thread_local dnnl::stream s(engine());
  return s;
}

dnnl::memory::desc f32(const dnnl::memory::dims& dims, dnnl::memory::format_tag tag) {
  return dnnl::memory::desc(dims, dnnl::memory::data_type::f32, tag);
}

dnnl::memory unbound(const dnnl::memory::desc& md) {
  return dnnl::memory(md, engine(), DNNL_MEMORY_NONE);
}

void execute(const dnnl::primitive& p, const Arg* args, int count) {
  constexpr int kMaxArgs = 8;
  dnnl_exec_arg_t c_args[kMaxArgs];
  if (count > kMaxArgs) throw std::logic_error("onednn::execute: too many arguments");
  dnnl_status_t st = dnnl_success;
  {
    const InLibrary marker;
    int n = 0;
    for (; n < count; ++n) {
      args[n].memory->set_data_handle(const_cast<void*>(args[n].data));
      c_args[n] = {args[n].slot, args[n].memory->get()};
    }
    st = dnnl_primitive_execute(p.get(), stream().get(), n, c_args);
    if (st == dnnl_success) st = dnnl_stream_wait(stream().get());
  }
  if (st != dnnl_success)
    throw std::runtime_error("oneDNN primitive execution failed (status " +
                             std::to_string(static_cast<int>(st)) + ")");
}

bool in_library_call() {
  return g_library_depth.load(std::memory_order_relaxed) > 0;
}

}  // namespace parafine::onednn
