// Data order and sharding (DESIGN.md §2, data_order.hpp): several "ranks" played in one
// process. For N in {1,7,8,33} samples, 1..4 ranks and a range of global batch sizes, the
// rank slices must be disjoint and complete, every rank must run the same number of steps,
// and the rank slices of step k concatenated in rank order must be the 1-rank global batch k.
#include <gtest/gtest.h>

#include <algorithm>
#include <iostream>
#include <numeric>
#include <set>
#include <stdexcept>

#include "parafine/data/data_order.hpp"
#include "test_util.hpp"

namespace parafine {
namespace {

std::string error_of(int N, int B, int R, int r) {
  return test_util::error_message<std::invalid_argument>(
      [&] { ShardPlan(N, B, R, r, true, 1, "--train"); });
}

TEST(DataOrder, ShardingAcrossRanksMatchesOneRank) {
  int configurations = 0, errors = 0;
  for (int N : {1, 7, 8, 33})
    for (int R = 1; R <= 4; ++R)
      for (int B : {1, 2, 3, 4, 5, 8, 32, 40})
        for (bool shuffle : {false, true}) {
          SCOPED_TRACE("N=" + std::to_string(N) + " R=" + std::to_string(R) +
                       " B=" + std::to_string(B) + " shuffle=" + std::to_string(shuffle));
          if (N < R) {
            EXPECT_NE(error_of(N, B, R, 0)
                          .find("fewer samples (" + std::to_string(N) + ") than ranks (" +
                                std::to_string(R) + ")"),
                      std::string::npos);
            ++errors;
            continue;
          }
          if (B < R) {
            EXPECT_NE(error_of(N, B, R, 0).find("--batch-size"), std::string::npos);
            ++errors;
            continue;
          }
          ++configurations;
          const std::uint64_t seed = 42;
          const int epoch = 3;
          const ShardPlan one(N, B, 1, 0, shuffle, seed);
          std::vector<ShardPlan> ranks;
          std::vector<std::vector<std::vector<int>>> local;  // [rank][step][sample]
          for (int r = 0; r < R; ++r) {
            ranks.emplace_back(N, B, R, r, shuffle, seed);
            local.push_back(ranks.back().local_batches(epoch));
          }
          const int steps = (N + B - 1) / B;
          ASSERT_EQ(one.steps(), steps);
          std::vector<int> seen;
          for (int r = 0; r < R; ++r) {
            EXPECT_EQ(ranks[static_cast<size_t>(r)].steps(), steps) << "rank " << r;
            EXPECT_EQ(static_cast<int>(local[static_cast<size_t>(r)].size()), steps)
                << "rank " << r;
          }
          for (int k = 0; k < steps; ++k) {
            std::vector<int> concat;
            int smallest = 1 << 30, largest = 0;
            for (int r = 0; r < R; ++r) {
              const auto& part = local[static_cast<size_t>(r)][static_cast<size_t>(k)];
              concat.insert(concat.end(), part.begin(), part.end());
              smallest = std::min(smallest, static_cast<int>(part.size()));
              largest = std::max(largest, static_cast<int>(part.size()));
              if (k + 1 < steps)
                EXPECT_GE(part.size(), 1u) << "only the last batch may leave a rank empty";
            }
            EXPECT_LE(largest - smallest, 1) << "step " << k;
            EXPECT_EQ(concat, one.global_batch(epoch, k)) << "step " << k;
            const int b = std::min(B, N - k * B);
            EXPECT_EQ(static_cast<int>(concat.size()), b)
                << "step " << k << ": the partial batch is used";
            seen.insert(seen.end(), concat.begin(), concat.end());
          }
          // Disjoint and complete: every sample exactly once per epoch.
          std::vector<int> sorted = seen;
          std::sort(sorted.begin(), sorted.end());
          std::vector<int> all(static_cast<size_t>(N));
          std::iota(all.begin(), all.end(), 0);
          EXPECT_EQ(sorted, all);
        }
  std::cout << configurations << " valid configurations checked, " << errors << " rejected\n";
  EXPECT_GT(configurations, 100);
}

TEST(DataOrder, NoShuffleBatchKIsKBToKBPlusBMinus1) {
  const int N = 33, B = 8;
  const ShardPlan plan(N, B, 1, 0, false, 9);
  for (int epoch : {0, 1, 5})
    for (int k = 0; k < plan.steps(); ++k) {
      std::vector<int> want;
      for (int i = k * B; i < std::min(N, k * B + B); ++i) want.push_back(i);
      EXPECT_EQ(plan.global_batch(epoch, k), want) << "epoch " << epoch << " step " << k;
    }
  // And each rank's slice of it: 3 ranks, batch 8 -> [0,2) [2,5) [5,8).
  const ShardPlan r1(N, B, 3, 1, false, 9);
  EXPECT_EQ(r1.local_batches(0)[1], (std::vector<int>{10, 11, 12}));
  EXPECT_TRUE(r1.local_batches(0)[4].empty()) << "last batch {32}: b=1 < R=3, only rank 2 gets it";
  const ShardPlan r2(N, B, 3, 2, false, 9);
  EXPECT_EQ(r2.local_batches(0)[4], (std::vector<int>{32}));
}

TEST(DataOrder, ShuffledOrderDependsOnlyOnSeedAndEpoch) {
  const int N = 33;
  const auto a = epoch_order(N, true, 7, 2);
  std::vector<int> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int> all(N);
  std::iota(all.begin(), all.end(), 0);
  EXPECT_EQ(sorted, all) << "a permutation";
  EXPECT_NE(a, all) << "actually shuffled";
  EXPECT_EQ(a, epoch_order(N, true, 7, 2));
  EXPECT_NE(a, epoch_order(N, true, 7, 3)) << "another epoch, another order";
  EXPECT_NE(a, epoch_order(N, true, 8, 2)) << "another seed, another order";
  // Not on the rank count, the rank or the batch size: the global batches are slices of it.
  for (int R = 1; R <= 4; ++R)
    for (int r = 0; r < R; ++r) {
      const ShardPlan plan(N, 4, R, r, true, 7);
      EXPECT_EQ(plan.order(2), a) << "R=" << R << " r=" << r;
      EXPECT_EQ(plan.global_batch(2, 3), std::vector<int>(a.begin() + 12, a.begin() + 16));
    }
}

TEST(DataOrder, StepsPerEpochAndSlices) {
  EXPECT_EQ(steps_per_epoch(33, 8), 5);
  EXPECT_EQ(steps_per_epoch(32, 8), 4);
  EXPECT_EQ(steps_per_epoch(1, 32), 1);
  EXPECT_EQ(steps_per_epoch(0, 32), 0);
  EXPECT_THROW(steps_per_epoch(10, 0), std::invalid_argument);
  // Slices of a batch of 5 over 4 ranks: sizes 1,1,1,2, contiguous.
  EXPECT_EQ(rank_slice(5, 4, 0), (Range{0, 1}));
  EXPECT_EQ(rank_slice(5, 4, 1), (Range{1, 2}));
  EXPECT_EQ(rank_slice(5, 4, 2), (Range{2, 3}));
  EXPECT_EQ(rank_slice(5, 4, 3), (Range{3, 5}));
  // b < R (last partial batch): some ranks get nothing but still exist.
  EXPECT_EQ(rank_slice(1, 4, 0).size(), 0);
  EXPECT_EQ(rank_slice(1, 4, 3), (Range{0, 1}));
  const ShardPlan plan(33, 8, 4, 0, false, 0);
  EXPECT_EQ(plan.local_range(4).size(), 0) << "rank 0 is empty in the last batch of 33 = 4*8 + 1";
  EXPECT_EQ(plan.local_batches(0).size(), 5u) << "but it still has the step";
}

TEST(DataOrder, ClearErrors) {
  struct Case {
    int N, B, R, r;
    const char* expect;
  };
  const Case cases[] = {
      {3, 8, 4, 0, "fewer samples (3) than ranks (4): every rank needs at least one sample"},
      {1, 32, 2, 1, "fewer samples (1) than ranks (2)"},
      {0, 32, 1, 0, "no samples"},
      {100, 0, 1, 0, "--batch-size must be at least 1"},
      {100, 3, 4, 0, "--batch-size 3 is smaller than the number of ranks (4)"},
      {100, 8, 0, 0, "number of ranks must be at least 1"},
      {100, 8, 2, 2, "rank 2 is outside [0, 2)"},
  };
  for (const Case& c : cases) {
    const std::string msg = error_of(c.N, c.B, c.R, c.r);
    std::cout << "N=" << c.N << " B=" << c.B << " R=" << c.R << " r=" << c.r << ": " << msg << "\n";
    EXPECT_NE(msg.find(c.expect), std::string::npos) << "got: " << msg;
  }
  EXPECT_NE(error_of(3, 8, 4, 0).find("--train"), std::string::npos) << "names the data set";
  const ShardPlan plan(10, 4, 2, 0, false, 0);
  EXPECT_THROW(plan.global_range(3), std::out_of_range);
  EXPECT_THROW(plan.local_batches(std::vector<int>(9)), std::invalid_argument);
}

}  // namespace
}  // namespace parafine
