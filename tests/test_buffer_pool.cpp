// BufferPool's choice of buffer (issue 12, memory): close fits before large ones, a buffer that
// no later request needs before a new one, and a repeated pass served by the buffers the first
// one made.
#include <gtest/gtest.h>

#include <iostream>
#include <vector>

#include "parafine/core/tensor.hpp"

namespace parafine {
namespace {

// A request of n floats when the pass's requests still to come ask for at most `later`.
std::vector<float> take(BufferPool& pool, std::size_t n, std::size_t later) {
  pool.set_later(later);
  return pool.acquire(n);
}

// Floats the pool holds once every buffer is back.
std::size_t held(const BufferPool& pool) {
  return pool.pooled_floats();
}

TEST(BufferPool, ASmallRequestLeavesALargeBufferALaterRequestNeeds) {
  BufferPool pool;
  pool.release(pool.acquire(1000));
  // 300 floats while a request of 1000 is still to come: a new buffer, not the 1000 one.
  std::vector<float> small = take(pool, 300, 1000);
  EXPECT_EQ(small.capacity(), 300u);
  std::vector<float> large = take(pool, 1000, 0);
  EXPECT_EQ(large.capacity(), 1000u);
  pool.release(std::move(small));
  pool.release(std::move(large));
  std::cout << "held " << held(pool) << " floats (expected 1300)\n";
  EXPECT_EQ(held(pool), 1300u);
}

TEST(BufferPool, ClosestFitWithinTwiceTheRequest) {
  BufferPool pool;
  std::vector<float> a = pool.acquire(1000), b = pool.acquire(550), c = pool.acquire(5000);
  pool.release(std::move(a));
  pool.release(std::move(b));
  pool.release(std::move(c));
  EXPECT_EQ(take(pool, 500, 100000).capacity(), 550u);    // the smallest of 500..1000
  EXPECT_EQ(take(pool, 600, 100000).capacity(), 1000u);   // 550 is too small
  EXPECT_EQ(take(pool, 2000, 100000).capacity(), 2000u);  // 5000 > 2x and a later one may need it
}

TEST(BufferPool, ABufferNoLaterRequestNeedsServesASmallOne) {
  BufferPool pool;
  pool.release(pool.acquire(1000));
  // Nothing after this asks for more than 400: the 1000 buffer would only sit idle.
  EXPECT_EQ(take(pool, 300, 400).capacity(), 1000u);
  // No bound given (0, as for a frozen prefix or inference): best fit.
  pool.release(take(pool, 5000, 0));
  EXPECT_EQ(take(pool, 300, 0).capacity(), 5000u);
}

TEST(BufferPool, ARepeatedPassMakesNoNewBuffer) {
  BufferPool pool;
  pool.begin_pass(1);  // another kind of pass left a buffer of 1000
  pool.release(pool.acquire(1000));
  const auto pass = [&pool] {
    pool.begin_pass(7);
    // First pass: nothing within 2x; the 1000 is larger than any later request (500).
    std::vector<float> x = take(pool, 300, 500);
    // First pass: nothing free: a new 300. Had x taken that 300 (the closest fit once it
    // exists), this one would find only the 1000, which a later request (2000) may need.
    std::vector<float> y = take(pool, 300, 2000);
    pool.release(std::move(x));
    pool.release(std::move(y));
  };
  pass();
  const std::size_t after_first = held(pool);
  for (int i = 0; i < 3; ++i) pass();
  std::cout << "held after pass 1: " << after_first << " floats, after pass 4: " << held(pool)
            << " (expected 1300)\n";
  EXPECT_EQ(after_first, 1300u);
  EXPECT_EQ(held(pool), after_first);
}

TEST(BufferPool, EmptyRequestsTakeNoBuffer) {
  BufferPool pool;
  pool.release(pool.acquire(64));
  EXPECT_EQ(pool.acquire(0).capacity(), 0u);
  EXPECT_EQ(held(pool), 64u);
}

}  // namespace
}  // namespace parafine
