// The process's oneDNN CPU engine and stream, and the calls that run oneDNN primitives on
// memory parafine owns: descriptors of plain float32 layouts, memory objects created once and
// pointed at the current buffers on every call, and an execute without a per-call argument map.
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include <initializer_list>

namespace parafine::onednn {

// The process's CPU engine, and an in-order stream per calling thread (oneDNN runs on our
// OpenMP pool).
dnnl::engine& engine();
dnnl::stream& stream();

// float32 memory descriptor of these dims in a plain layout (e.g. nhwc, hwio, x).
dnnl::memory::desc f32(const dnnl::memory::dims& dims, dnnl::memory::format_tag tag);

// A memory object with no buffer yet (setup only: creating one allocates its handle).
dnnl::memory unbound(const dnnl::memory::desc& md);

// One argument of a primitive call: its DNNL_ARG_* slot, the memory object and the buffer the
// object is pointed at for this call.
struct Arg {
  int slot;
  dnnl::memory* memory;
  const void* data;
};

// Points every memory at its buffer and runs p on the stream, waiting for it. Calls oneDNN's C
// API with an argument array on the stack: parafine allocates nothing here.
void execute(const dnnl::primitive& p, const Arg* args, int count);
inline void execute(const dnnl::primitive& p, std::initializer_list<Arg> args) {
  execute(p, args.begin(), static_cast<int>(args.size()));
}

// True while execute() is inside oneDNN (on any thread). oneDNN builds a small argument map
// per call; tests/test_step_allocations.cpp counts those allocations apart from parafine's.
bool in_library_call();

}  // namespace parafine::onednn
