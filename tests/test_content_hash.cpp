// The persistent cache's content hashes (core/content_hash.hpp, SampleSource::content_hash):
// streaming in any pieces gives the one-shot hash; one changed byte, pixel or sample index
// changes it; a subset hashes its samples as the whole does.
#include <gtest/gtest.h>

#include <iostream>
#include <memory>
#include <numeric>
#include <vector>

#include "parafine/core/content_hash.hpp"
#include "parafine/data/sample_source.hpp"
#include "parafine/data/subset_source.hpp"

namespace parafine {
namespace {

TEST(ContentHash, StreamingInPiecesEqualsOneShot) {
  std::vector<unsigned char> bytes(1000);
  std::iota(bytes.begin(), bytes.end(), 0);
  const std::uint64_t whole = content_hash(bytes.data(), bytes.size());
  for (std::size_t piece : {1u, 3u, 7u, 8u, 13u, 999u}) {
    ContentHasher h;
    for (std::size_t at = 0; at < bytes.size(); at += piece)
      h.update(bytes.data() + at, std::min(piece, bytes.size() - at));
    EXPECT_EQ(h.digest(), whole) << "pieces of " << piece << " bytes";
  }
  std::cout << "hash of 1000 bytes: " << hex64(whole) << "\n";
}

TEST(ContentHash, OneByteOrTheLengthChangesIt) {
  std::vector<unsigned char> bytes(37, 5);
  const std::uint64_t base = content_hash(bytes.data(), bytes.size());
  for (std::size_t k = 0; k < bytes.size(); ++k) {
    std::vector<unsigned char> changed = bytes;
    changed[k] ^= 1;
    EXPECT_NE(content_hash(changed.data(), changed.size()), base) << "byte " << k;
  }
  EXPECT_NE(content_hash(bytes.data(), bytes.size() - 1), base) << "one byte shorter";
  EXPECT_NE(content_hash(bytes.data(), bytes.size(), 1), base) << "another seed";
  EXPECT_EQ(hex64(0x0123456789abcdefull), "0123456789abcdef");
}

TEST(ContentHash, InMemorySourceHashesEachSamplesPixels) {
  const int n = 3, h = 4, w = 5;
  std::vector<unsigned char> pixels(static_cast<std::size_t>(n) * h * w * 3, 100);
  const InMemorySource a(n, h, w, pixels, {0, 1, 0}, 2);
  pixels[static_cast<std::size_t>(h) * w * 3 + 7] = 101;  // one value of sample 1
  const InMemorySource b(n, h, w, pixels, {0, 1, 0}, 2);
  EXPECT_EQ(a.content_hash(0), b.content_hash(0));
  EXPECT_NE(a.content_hash(1), b.content_hash(1)) << "a changed pixel";
  EXPECT_EQ(a.content_hash(2), b.content_hash(2));
  EXPECT_NE(a.content_hash(0), a.content_hash(2)) << "equal pixels at another index";
  EXPECT_THROW(a.content_hash(3), std::out_of_range);

  auto whole = std::make_shared<InMemorySource>(n, h, w, pixels, std::vector<int>{0, 1, 0}, 2);
  const SubsetSource subset(whole, {2, 0});
  EXPECT_EQ(subset.content_hash(0), whole->content_hash(2));
  EXPECT_EQ(subset.content_hash(1), whole->content_hash(0));
  EXPECT_NE(subset.identity(), whole->identity());
  std::cout << "subset identity: " << subset.identity() << "\n";
}

}  // namespace
}  // namespace parafine
