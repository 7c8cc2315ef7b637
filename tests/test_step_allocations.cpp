// No heap allocation per layer per step: once a model has run one step of a given batch shape,
// further steps of that shape (forward, backward, and the loss and Adam around them) make no
// call to operator new. Every global operator new / new[] of this test binary is replaced by
// a counting one; the counts are printed and must be zero.
// oneDNN, which runs the convolutions, builds a small argument map inside every primitive call
// (its C API copies the arguments into a std::unordered_map). Those allocations, made while
// parafine::onednn::execute is inside the library, are counted apart: they must be the same
// number in every steady step (nothing is created per step) and each small (no buffer is
// allocated per step: scratchpads and reordered kernels are parafine's, sized once).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "parafine/core/adam.hpp"
#include "parafine/core/loss.hpp"
#include "parafine/core/onednn.hpp"
#include "parafine/layers/dense.hpp"
#include "parafine/model/initializers.hpp"
#include "parafine/model/backbone.hpp"
#include "test_util.hpp"

// ---- counting operator new (all replaceable forms; the deletes pair with them) ----

namespace {

std::atomic<long> g_allocations{0};
std::atomic<long> g_library_allocations{0};
std::atomic<std::size_t> g_library_largest{0};

void count(std::size_t n) {
  if (!parafine::onednn::in_library_call()) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  g_library_allocations.fetch_add(1, std::memory_order_relaxed);
  std::size_t seen = g_library_largest.load(std::memory_order_relaxed);
  while (n > seen && !g_library_largest.compare_exchange_weak(seen, n)) {
  }
}

void* counted_alloc(std::size_t n) {
  count(n);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}

void* counted_aligned_alloc(std::size_t n, std::align_val_t al) {
  count(n);
  const std::size_t a = std::max(static_cast<std::size_t>(al), sizeof(void*));
  void* p = nullptr;
  if (posix_memalign(&p, a, n ? n : 1) == 0) return p;
  throw std::bad_alloc();
}

}  // namespace

void* operator new(std::size_t n) {
  return counted_alloc(n);
}
void* operator new[](std::size_t n) {
  return counted_alloc(n);
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return counted_alloc(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return counted_alloc(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new(std::size_t n, std::align_val_t al) {
  return counted_aligned_alloc(n, al);
}
void* operator new[](std::size_t n, std::align_val_t al) {
  return counted_aligned_alloc(n, al);
}
void* operator new(std::size_t n, std::align_val_t al, const std::nothrow_t&) noexcept {
  try {
    return counted_aligned_alloc(n, al);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, std::align_val_t al, const std::nothrow_t&) noexcept {
  try {
    return counted_aligned_alloc(n, al);
  } catch (...) {
    return nullptr;
  }
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  std::free(p);
}

namespace parafine {
namespace {

long allocations() {
  return g_allocations.load(std::memory_order_relaxed);
}

long library_allocations() {
  return g_library_allocations.load(std::memory_order_relaxed);
}

// The counter sees what it should: a vector allocates, a reserved one does not.
TEST(StepAllocations, CounterCountsOperatorNew) {
  const long before = allocations();
  auto* v = new std::vector<int>(100);
  const long after_new = allocations();
  v->clear();
  v->resize(50);
  const long after_resize = allocations();
  delete v;
  EXPECT_EQ(after_new - before, 2);  // the vector object and its storage
  EXPECT_EQ(after_resize, after_new);
}

// Shapes keep their dims inline: building, copying and comparing them allocates nothing.
TEST(StepAllocations, ShapesDoNotAllocate) {
  const std::vector<int> dims{2, 7, 7, 2048};
  const long before = allocations();
  Shape s{2, 7, 7, 2048};
  const Shape from_vector(dims);
  Shape copy = s;
  copy.set(0, 3);
  const bool same = s == from_vector && copy != s && copy.numel() == 3u * 7 * 7 * 2048;
  const long after = allocations();
  EXPECT_TRUE(same);
  EXPECT_EQ(after, before);
  EXPECT_EQ(copy.str(), "[3,7,7,2048]");
  EXPECT_EQ(Shape{}.rank(), 0);
  EXPECT_EQ(Shape{}.numel(), 0u);
  EXPECT_EQ((Shape{5}), Shape(std::vector<int>{5}));
  EXPECT_NE((Shape{5}), (Shape{5, 1}));
  EXPECT_THROW(s[4], std::out_of_range);
  EXPECT_THROW(s[-1], std::out_of_range);
  EXPECT_THROW(copy.set(4, 1), std::out_of_range);
  EXPECT_THROW((Shape{1, 2, 3, 4, 5}), std::invalid_argument);
  try {
    Shape(std::vector<int>{1, 2, 3, 4, 5});
    ADD_FAILURE() << "a rank-5 shape was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("[1,2,3,4,5] has rank 5"), std::string::npos) << e.what();
  }
}

const Tensor& logits_of(const Model& m) {
  return static_cast<const Dense&>(m.layer(m.size() - 1)).logits();
}

// A small ResNet50 (width 16, 32x32, with the head), initialised and BN-calibrated.
struct Fixture {
  Model model = build_network(NetworkConfig{32, 3, 32, 16, 3});
  test_util::SyntheticBatch data = test_util::synthetic_batch(6, 32, 3, 1);
  Tensor dlogits;

  Fixture() {
    keras_initialize(model, 5);
    model.calibrate_batch_norm(data.images);
  }
};

// Allocations of one training step, split into forward+backward and loss+Adam.
struct StepCounts {
  long forward_backward = 0;
  long loss_adam = 0;
};

StepCounts training_step(Fixture& f, Adam& adam, const std::function<void(std::size_t)>& ready) {
  StepCounts c;
  long t0 = allocations();
  f.model.forward(f.data.images, true);
  c.forward_backward += allocations() - t0;
  t0 = allocations();
  softmax_cross_entropy(logits_of(f.model), f.data.labels, f.data.size(), &f.dlogits);
  c.loss_adam += allocations() - t0;
  t0 = allocations();
  f.model.backward(f.dlogits, ready);
  c.forward_backward += allocations() - t0;
  t0 = allocations();
  adam.step(f.model.params().data(), f.model.grads().data());
  c.loss_adam += allocations() - t0;
  return c;
}

// Runs a warm-up step, then steps 2..3, and checks the steady-state steps allocate nothing.
void expect_allocation_free_training(Fixture& f, const char* what) {
  Adam adam(f.model.trainable_size(), 1e-4);
  std::size_t finished = 0;
  // Built before counting: a gradient-bucket callback as the trainer passes one.
  const std::function<void(std::size_t)> ready = [&finished](std::size_t n) { finished = n; };
  const StepCounts warm = training_step(f, adam, ready);
  StepCounts steady[2];
  for (StepCounts& s : steady) s = training_step(f, adam, ready);
  std::cout << what << ": allocations in step 1 (warm-up) forward+backward "
            << warm.forward_backward << ", loss+Adam " << warm.loss_adam
            << "; steps 2, 3 forward+backward " << steady[0].forward_backward << ", "
            << steady[1].forward_backward << ", loss+Adam " << steady[0].loss_adam << ", "
            << steady[1].loss_adam << "\n";
  EXPECT_EQ(finished, f.model.grads().size());
  for (const StepCounts& s : steady) {
    EXPECT_EQ(s.forward_backward, 0) << what;
    EXPECT_EQ(s.loss_adam, 0) << what;
  }
}

// Phase 2: the base frozen but for its last 10 layers (a frozen prefix with fused convs).
TEST(StepAllocations, Phase2TrainingStepAllocatesNothing) {
  Fixture f;
  freeze_base(f.model);
  unfreeze_last_base_layers(f.model, 10);
  expect_allocation_free_training(f, "phase 2");
}

// Every layer trainable: every layer's backward runs, with input gradients throughout.
TEST(StepAllocations, FullTrainingStepAllocatesNothing) {
  Fixture f;
  expect_allocation_free_training(f, "full");
}

// Phase 2 from cached features: forward_from a block boundary, then backward.
TEST(StepAllocations, Phase2StepFromCachedFeaturesAllocatesNothing) {
  Fixture f;
  freeze_base(f.model);
  unfreeze_last_base_layers(f.model, 10);
  const int cut = f.model.index_of("conv5_block2_out");
  f.model.keep_output(cut);
  f.model.forward(f.data.images, false);
  const Tensor features = f.model.output(cut);
  Adam adam(f.model.trainable_size(), 1e-4);
  long counts[3] = {0, 0, 0};
  for (long& count : counts) {
    const long t0 = allocations();
    f.model.forward_from(cut, features, true);
    softmax_cross_entropy(logits_of(f.model), f.data.labels, f.data.size(), &f.dlogits);
    f.model.backward(f.dlogits);
    adam.step(f.model.params().data(), f.model.grads().data());
    count = allocations() - t0;
  }
  std::cout << "phase 2 from features: allocations per step " << counts[0] << " (warm-up), "
            << counts[1] << ", " << counts[2] << "\n";
  EXPECT_EQ(counts[1], 0);
  EXPECT_EQ(counts[2], 0);
}

// Inference with the base frozen: fused conv+BN(+ReLU) and Add+ReLU chains, released prefix.
TEST(StepAllocations, FrozenInferenceForwardAllocatesNothing) {
  Fixture f;
  freeze_base(f.model);
  long counts[3] = {0, 0, 0};
  for (long& count : counts) {
    const long t0 = allocations();
    f.model.forward(f.data.images, false);
    count = allocations() - t0;
  }
  std::cout << "frozen inference: allocations per forward " << counts[0] << " (warm-up), "
            << counts[1] << ", " << counts[2] << "\n";
  EXPECT_EQ(counts[1], 0);
  EXPECT_EQ(counts[2], 0);
}

// oneDNN's own allocations inside primitive calls: the same number every steady step (one
// fixed set per call, nothing created per step) and each small (argument maps, no buffers).
TEST(StepAllocations, OneDnnCallsAllocateOnlySmallFixedArgumentMaps) {
  Fixture f;
  Adam adam(f.model.trainable_size(), 1e-4);
  const std::function<void(std::size_t)> ready = [](std::size_t) {};
  long counts[3] = {0, 0, 0};
  std::size_t largest = 0;
  for (int step = 0; step < 3; ++step) {
    if (step == 1) g_library_largest.store(0);
    const long t0 = library_allocations();
    training_step(f, adam, ready);
    counts[step] = library_allocations() - t0;
  }
  largest = g_library_largest.load();
  std::cout << "oneDNN-internal allocations per full training step: " << counts[0]
            << " (warm-up), " << counts[1] << ", " << counts[2]
            << "; largest in steady steps " << largest << " bytes\n";
  EXPECT_EQ(counts[1], counts[2]);
  EXPECT_LE(largest, 1024u) << "a buffer allocated inside oneDNN in every step";
}

}  // namespace
}  // namespace parafine
