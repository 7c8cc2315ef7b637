// A short-lived worker pool for independent items: parallel_for(threads, begin, end, stride,
// body) calls body(i) for i = begin, begin+stride, ... < end on `threads` threads (the caller is
// one of them), handing out items one at a time. The first exception a call throws stops the
// hand-out and is rethrown to the caller once every thread has finished; later ones are dropped
// (they are usually consequences of the first).
#pragma once

#include <functional>

namespace parafine {

void parallel_for(int threads, int begin, int end, int stride,
                  const std::function<void(int)>& body);

}  // namespace parafine
