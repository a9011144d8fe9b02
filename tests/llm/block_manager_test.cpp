// Paged KV block manager: slot mapping, growth across page boundaries, running out of pages, the watermark,
// reference-counted prefix sharing, LRU eviction of cached pages, hit counters, errors; then a random-operation
// property test that checks every invariant and the cache contents (through a simulated K/V store) at every step.
#include "aipe/llm/block_manager.hpp"

#include <gtest/gtest.h>

#include "error_of.hpp"

#include <functional>
#include <map>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

using aipe::llm::BlockManager;
using aipe::llm::BlockManagerConfig;
using aipe::llm::PageId;
using aipe::llm::PrefixHit;
using aipe::llm::SlotId;
using aipe::llm::TokenId;

namespace {

using aipe::test::error_of;

std::vector<TokenId> iota_tokens(std::size_t n, TokenId first) {
  std::vector<TokenId> v(n);
  std::iota(v.begin(), v.end(), first);
  return v;
}

#define SKIP_WITHOUT_PREFIX_CACHE()                                                                   \
  if (!aipe::llm::prefix_caching_available())                                                        \
  GTEST_SKIP() << "built without libxxhash (Debian: libxxhash-dev): prefix caching is unavailable"

// Admits a sequence with no prefix lookup and n slots.
std::vector<SlotId> admit_plain(BlockManager& bm, aipe::llm::SeqId id, std::int32_t n) {
  auto s = bm.admit(id, PrefixHit{}, n, n);
  if (!s) throw std::runtime_error("admit failed");
  return *s;
}

}  // namespace

TEST(BlockManager, RejectsBadConfigNamingTheField) {
  EXPECT_NE(error_of([] { BlockManager({.num_pages = 0}); }).find("num_pages"), std::string::npos);
  EXPECT_NE(error_of([] { BlockManager({.num_pages = 4, .page_size = 0}); }).find("page_size"), std::string::npos);
  EXPECT_NE(error_of([] { BlockManager({.num_pages = 4, .watermark = 1.0}); }).find("watermark"), std::string::npos);
  EXPECT_NE(error_of([] { BlockManager({.num_pages = 4, .watermark = -0.1}); }).find("watermark"), std::string::npos);
  EXPECT_NE(error_of([] { BlockManager({.num_pages = 1 << 28, .page_size = 16}); }).find("int32"), std::string::npos);
  if (!aipe::llm::prefix_caching_available()) {
    EXPECT_NE(error_of([] { BlockManager({.num_pages = 4, .enable_prefix_caching = true}); }).find("libxxhash"),
              std::string::npos);
  }
}

TEST(BlockManager, SlotsArePageTimesSizePlusOffsetAcrossPageBoundaries) {
  BlockManager bm({.num_pages = 10, .page_size = 16, .watermark = 0});
  EXPECT_EQ(bm.num_free_pages(), 10);
  // 37 tokens = 2 full pages + 5; a fresh manager hands out page 0 first.
  const auto s = admit_plain(bm, 7, 37);
  ASSERT_EQ(s.size(), 37u);
  const auto row = bm.block_table(7);
  ASSERT_EQ(row.size(), 3u);
  for (std::int32_t t = 0; t < 37; ++t) EXPECT_EQ(s[std::size_t(t)], row[std::size_t(t / 16)] * 16 + t % 16) << "t=" << t;
  EXPECT_EQ(row[0], 0);
  // Growing by 11 fills the third page exactly (48), by 1 more opens a fourth.
  const auto g = bm.append_slots(7, 11);
  ASSERT_TRUE(g);
  EXPECT_EQ(bm.block_table(7).size(), 3u);
  EXPECT_EQ((*g)[0], row[2] * 16 + 5);
  EXPECT_EQ(g->back(), row[2] * 16 + 15);
  const auto g2 = bm.append_slots(7, 1);
  ASSERT_TRUE(g2);
  ASSERT_EQ(bm.block_table(7).size(), 4u);
  EXPECT_EQ((*g2)[0], bm.block_table(7)[3] * 16);
  EXPECT_EQ(bm.num_slots(7), 49);
  EXPECT_EQ(bm.num_used_pages(), 4);
  EXPECT_DOUBLE_EQ(bm.usage(), 0.4);
  bm.check_invariants();
  // A zero-token append changes nothing.
  ASSERT_TRUE(bm.append_slots(7, 0));
  EXPECT_EQ(bm.num_slots(7), 49);
  bm.free(7);
  EXPECT_FALSE(bm.holds(7));
  EXPECT_EQ(bm.num_free_pages(), 10);
  EXPECT_EQ(bm.num_used_pages(), 0);
  bm.check_invariants();
}

TEST(BlockManager, OutOfPagesReturnsNulloptAndChangesNothing) {
  BlockManager bm({.num_pages = 5, .page_size = 4, .watermark = 0});
  admit_plain(bm, 1, 9);  // 3 pages
  admit_plain(bm, 2, 5);  // 2 pages: all 5 used
  EXPECT_EQ(bm.num_allocatable_pages(), 0);
  EXPECT_FALSE(bm.can_append(1, 4));  // 9 + 4 = 13 > 12 slots of 3 pages
  EXPECT_TRUE(bm.can_append(1, 3));   // 12 fits the third page
  EXPECT_FALSE(bm.append_slots(1, 4));
  EXPECT_EQ(bm.num_slots(1), 9);
  EXPECT_EQ(bm.block_table(1).size(), 3u);
  ASSERT_TRUE(bm.append_slots(1, 3));
  EXPECT_FALSE(bm.can_admit(PrefixHit{}, 1));
  EXPECT_FALSE(bm.admit(3, PrefixHit{}, 1, 1));
  EXPECT_FALSE(bm.holds(3));
  bm.check_invariants();
  bm.free(2);
  EXPECT_TRUE(bm.can_admit(PrefixHit{}, 8));
  EXPECT_FALSE(bm.can_admit(PrefixHit{}, 9));
  bm.check_invariants();
}

TEST(BlockManager, WatermarkHoldsBackAdmissionsButNotGrowth) {
  // 20 pages, watermark 0.1 -> 2 pages stay free for admissions.
  BlockManager bm({.num_pages = 20, .page_size = 8, .watermark = 0.1});
  EXPECT_EQ(bm.watermark_pages(), 2);
  admit_plain(bm, 1, 8 * 17);  // 17 pages: 3 left
  EXPECT_TRUE(bm.can_admit(PrefixHit{}, 8));    // leaves 2
  EXPECT_FALSE(bm.can_admit(PrefixHit{}, 9));   // would leave 1
  EXPECT_FALSE(bm.admit(2, PrefixHit{}, 9, 9));
  EXPECT_TRUE(bm.can_append(1, 24));            // growth may use the watermark's pages
  ASSERT_TRUE(bm.append_slots(1, 24));
  EXPECT_EQ(bm.num_free_pages(), 0);
  bm.check_invariants();
}

TEST(BlockManager, ErrorsNameTheSequenceOrProblem) {
  BlockManager bm({.num_pages = 4, .page_size = 4, .watermark = 0});
  admit_plain(bm, 1, 3);
  EXPECT_NE(error_of([&] { bm.admit(1, PrefixHit{}, 1, 1); }).find("sequence 1 already holds"), std::string::npos);
  EXPECT_NE(error_of([&] { bm.free(9); }).find("sequence 9 holds no pages"), std::string::npos);
  EXPECT_NE(error_of([&] { bm.append_slots(9, 1); }).find("sequence 9"), std::string::npos);
  EXPECT_NE(error_of([&] { bm.append_slots(1, -1); }).find("n must be >= 0"), std::string::npos);
  EXPECT_NE(error_of([&] { (void)bm.block_table(9); }).find("sequence 9"), std::string::npos);
  const auto t = iota_tokens(3, 0);
  EXPECT_NE(error_of([&] { bm.mark_computed(1, t, 4); }).find("num_computed 4"), std::string::npos);
  EXPECT_NE(error_of([&] { (void)bm.ref_count(4); }).find("page 4"), std::string::npos);
  PrefixHit bogus;
  bogus.pages = {0};
  bogus.hashes = {1};
  bogus.num_tokens = 4;
  EXPECT_NE(error_of([&] { bm.admit(2, bogus, 1, 5); }).find("no longer cached"), std::string::npos);
  bogus.num_tokens = 3;
  EXPECT_NE(error_of([&] { bm.admit(2, bogus, 1, 5); }).find("malformed"), std::string::npos);
  EXPECT_FALSE(bm.holds(2));
  bm.check_invariants();
}

TEST(BlockManager, PrefixHitSharesFullComputedPagesByReferenceCount) {
  SKIP_WITHOUT_PREFIX_CACHE();
  BlockManager bm({.num_pages = 16, .page_size = 16, .watermark = 0, .enable_prefix_caching = true});
  const auto a = iota_tokens(40, 100);  // 2 full pages + 8
  EXPECT_TRUE(bm.find_cached_prefix(a).pages.empty());
  admit_plain(bm, 1, 40);
  // Nothing is shared until the K/V is written.
  EXPECT_TRUE(bm.find_cached_prefix(a).pages.empty());
  bm.mark_computed(1, a, 20);  // only page 0 is full and computed
  EXPECT_EQ(bm.find_cached_prefix(a).num_tokens, 16);
  bm.mark_computed(1, a, 40);
  // Same first 32 tokens, then different ones: both full pages hit.
  auto b = a;
  b.resize(35);
  b[33] = 7;
  const PrefixHit hit = bm.find_cached_prefix(b);
  ASSERT_EQ(hit.num_tokens, 32);
  EXPECT_EQ(hit.pages[0], bm.block_table(1)[0]);
  EXPECT_EQ(hit.pages[1], bm.block_table(1)[1]);
  const auto slots = bm.admit(2, hit, 3, 35);
  ASSERT_TRUE(slots);
  // B's new tokens go to a fresh page of its own, never into the shared ones.
  const auto row_b = bm.block_table(2);
  ASSERT_EQ(row_b.size(), 3u);
  EXPECT_NE(row_b[2], bm.block_table(1)[2]);
  EXPECT_EQ((*slots)[0], row_b[2] * 16);
  EXPECT_EQ(bm.ref_count(row_b[0]), 2);
  EXPECT_EQ(bm.ref_count(row_b[1]), 2);
  EXPECT_EQ(bm.ref_count(row_b[2]), 1);
  EXPECT_EQ(bm.num_used_pages(), 4);
  EXPECT_EQ(bm.prefix_stats().queried_tokens, 40u + 35u);
  EXPECT_EQ(bm.prefix_stats().hit_tokens, 32u);
  EXPECT_NEAR(bm.prefix_stats().hit_rate(), 32.0 / 75.0, 1e-12);
  bm.check_invariants();
  // Freeing A leaves the shared pages held by B; its private third page goes back to the free list.
  bm.free(1);
  EXPECT_EQ(bm.ref_count(row_b[0]), 1);
  EXPECT_EQ(bm.num_cached_pages(), 0);
  EXPECT_EQ(bm.num_used_pages(), 3);
  bm.free(2);
  // Now the two hashed pages are cached (evictable), the rest free.
  EXPECT_EQ(bm.num_cached_pages(), 2);
  EXPECT_EQ(bm.num_used_pages(), 0);
  EXPECT_EQ(bm.num_free_pages(), 14);
  EXPECT_EQ(bm.find_cached_prefix(a).num_tokens, 32);
  bm.check_invariants();
}

TEST(BlockManager, FullyCachedPromptStillComputesItsLastPage) {
  SKIP_WITHOUT_PREFIX_CACHE();
  BlockManager bm({.num_pages = 8, .page_size = 4, .watermark = 0, .enable_prefix_caching = true});
  const auto a = iota_tokens(8, 1);  // exactly 2 pages
  admit_plain(bm, 1, 8);
  bm.mark_computed(1, a, 8);
  // The whole prompt is cached, but its last token's logits are needed: the hit stops one page short.
  EXPECT_EQ(bm.find_cached_prefix(a).num_tokens, 4);
  EXPECT_EQ(bm.find_cached_prefix(iota_tokens(9, 1)).num_tokens, 8);
  EXPECT_EQ(bm.find_cached_prefix(iota_tokens(1, 1)).num_tokens, 0);
}

TEST(BlockManager, HashesChainThePrefixNotJustThePage) {
  SKIP_WITHOUT_PREFIX_CACHE();
  BlockManager bm({.num_pages = 8, .page_size = 4, .watermark = 0, .enable_prefix_caching = true});
  const std::vector<TokenId> a = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  admit_plain(bm, 1, 9);
  bm.mark_computed(1, a, 9);
  // Same second page (5..8), different first page: no hit at all, the second page's K/V depends on the first.
  const std::vector<TokenId> b = {9, 2, 3, 4, 5, 6, 7, 8, 9};
  EXPECT_EQ(bm.find_cached_prefix(b).num_tokens, 0);
  EXPECT_NE(aipe::llm::page_hash(aipe::llm::kRootHash, std::span(a).subspan(4, 4)),
            aipe::llm::page_hash(aipe::llm::page_hash(aipe::llm::kRootHash, std::span(a).first(4)),
                                 std::span(a).subspan(4, 4)));
}

TEST(BlockManager, IdenticalPagesComputedTwiceKeepOneInTheCache) {
  SKIP_WITHOUT_PREFIX_CACHE();
  BlockManager bm({.num_pages = 8, .page_size = 4, .watermark = 0, .enable_prefix_caching = true});
  const auto a = iota_tokens(6, 3);
  // Both admitted before either is computed: no hit, two private copies of the same content.
  admit_plain(bm, 1, 6);
  admit_plain(bm, 2, 6);
  bm.mark_computed(1, a, 6);
  bm.mark_computed(2, a, 6);
  EXPECT_EQ(bm.find_cached_prefix(a).pages.at(0), bm.block_table(1)[0]);
  bm.check_invariants();
  bm.free(1);
  bm.free(2);
  EXPECT_EQ(bm.num_cached_pages(), 1);  // the registered copy; the duplicate went back to the free list
  EXPECT_EQ(bm.num_free_pages(), 7);
  bm.check_invariants();
}

TEST(BlockManager, EvictsLeastRecentlyFreedCachedPagesTailFirst) {
  SKIP_WITHOUT_PREFIX_CACHE();
  BlockManager bm({.num_pages = 6, .page_size = 2, .watermark = 0, .enable_prefix_caching = true});
  const auto a = iota_tokens(7, 10);  // pages a0 a1 a2 full, a3 partial
  const auto b = iota_tokens(5, 50);  // pages b0 b1 full, b2 partial
  admit_plain(bm, 1, 7);
  bm.mark_computed(1, a, 7);
  bm.free(1);  // cached, LRU order: a2 a1 a0 (tail of the prefix evicted first)
  admit_plain(bm, 2, 5);
  bm.mark_computed(2, b, 5);
  bm.free(2);  // then b1 b0
  EXPECT_EQ(bm.num_cached_pages(), 5);
  EXPECT_EQ(bm.num_free_pages(), 1);
  // A new 6-slot sequence needs 3 pages: the free one, then evictions of a2 and a1 (the oldest cached).
  admit_plain(bm, 3, 6);
  EXPECT_EQ(bm.prefix_stats().evictions, 2u);
  EXPECT_EQ(bm.find_cached_prefix(a).num_tokens, 2);  // a0 survives
  EXPECT_EQ(bm.find_cached_prefix(b).num_tokens, 4);  // b0 b1 survive
  bm.check_invariants();
  // A hit on a cached page takes it out of the LRU: it cannot be evicted under the sequence, so the new page
  // this admission needs comes from evicting a0, the only other cached page.
  const PrefixHit hb = bm.find_cached_prefix(b);
  ASSERT_TRUE(bm.admit(4, hb, 1, 5));
  EXPECT_EQ(bm.num_cached_pages(), 0);
  EXPECT_EQ(bm.prefix_stats().evictions, 3u);
  EXPECT_EQ(bm.ref_count(hb.pages[0]), 1);
  EXPECT_EQ(bm.find_cached_prefix(b).num_tokens, 4);  // still registered: held, not evicted
  EXPECT_EQ(bm.find_cached_prefix(a).num_tokens, 0);
  bm.check_invariants();
}

TEST(BlockManager, WithoutPrefixCachingNothingIsShared) {
  BlockManager bm({.num_pages = 8, .page_size = 4, .watermark = 0});
  const auto a = iota_tokens(9, 1);
  admit_plain(bm, 1, 9);
  bm.mark_computed(1, a, 9);
  EXPECT_TRUE(bm.find_cached_prefix(a).pages.empty());
  bm.free(1);
  EXPECT_EQ(bm.num_cached_pages(), 0);
  EXPECT_EQ(bm.num_free_pages(), 8);
}

// Random admits (with prefix lookups over a few shared prompt stems), growth, computation and frees against a
// simulated K/V store whose contents are a function of the prefix: at every step all invariants hold and every
// computed position of every held sequence reads back the value its own prefix implies, with and without the
// prefix cache.
namespace {

struct SimSeq {
  std::vector<TokenId> tokens;
  std::int32_t computed = 0;
};

std::uint64_t chain(std::uint64_t prev, TokenId t) { return (prev ^ std::uint64_t(t)) * 0x100000001b3ull + 7; }

void random_ops(bool caching, std::uint32_t seed) {
  constexpr std::int32_t P = 4, N = 40;
  BlockManager bm({.num_pages = N, .page_size = P, .watermark = 0.05, .enable_prefix_caching = caching});
  std::vector<std::uint64_t> kv(std::size_t(N * P), 0);
  std::map<aipe::llm::SeqId, SimSeq> seqs;
  std::mt19937 rng(seed);
  const std::vector<std::vector<TokenId>> stems = {iota_tokens(13, 1), iota_tokens(9, 100), iota_tokens(21, 200)};
  aipe::llm::SeqId next = 1;
  std::uint64_t hits = 0;
  for (int step = 0; step < 3000; ++step) {
    const int op = int(rng() % 4);
    if (op == 0 || seqs.empty()) {  // admit: a stem prefix plus a random tail
      SimSeq s;
      const auto& stem = stems[rng() % stems.size()];
      s.tokens.assign(stem.begin(), stem.begin() + std::ptrdiff_t(rng() % (stem.size() + 1)));
      for (int k = int(rng() % 7) + 1; k > 0; --k) s.tokens.push_back(TokenId(rng() % 5));
      const PrefixHit hit = bm.find_cached_prefix(s.tokens);
      const auto n = std::int32_t(s.tokens.size()) - hit.num_tokens;
      const bool can = bm.can_admit(hit, n);  // asked before admit() changes anything
      ASSERT_EQ(can, bool(bm.admit(next, hit, n, std::int32_t(s.tokens.size())))) << step;
      if (bm.holds(next)) {
        s.computed = hit.num_tokens;
        hits += std::uint64_t(hit.num_tokens);
        seqs.emplace(next, std::move(s));
      }
      ++next;
    } else if (op == 1) {  // compute everything that has a slot (the model step), then grow by one token
      auto it = std::next(seqs.begin(), std::ptrdiff_t(rng() % seqs.size()));
      SimSeq& s = it->second;
      const auto row = bm.block_table(it->first);
      const auto slot = [&](std::int32_t t) { return std::size_t(row[std::size_t(t / P)]) * P + std::size_t(t % P); };
      std::uint64_t v = s.computed ? kv[slot(s.computed - 1)] : 0;
      for (std::int32_t t = s.computed; t < bm.num_slots(it->first); ++t) kv[slot(t)] = v = chain(v, s.tokens[std::size_t(t)]);
      s.computed = bm.num_slots(it->first);
      bm.mark_computed(it->first, s.tokens, s.computed);
      s.tokens.push_back(TokenId(rng() % 5));
      const bool can = bm.can_append(it->first, 1);
      ASSERT_EQ(can, bool(bm.append_slots(it->first, 1))) << step;
      if (!can) {
        bm.free(it->first);
        seqs.erase(it);
      }
    } else {  // finish
      auto it = std::next(seqs.begin(), std::ptrdiff_t(rng() % seqs.size()));
      bm.free(it->first);
      seqs.erase(it);
    }
    ASSERT_NO_THROW(bm.check_invariants()) << "step " << step;
    ASSERT_EQ(bm.num_free_pages() + bm.num_cached_pages() + bm.num_used_pages(), N);
    for (const auto& [id, s] : seqs) {
      const auto row = bm.block_table(id);
      std::uint64_t v = 0;
      for (std::int32_t t = 0; t < s.computed; ++t) {
        v = chain(v, s.tokens[std::size_t(t)]);
        ASSERT_EQ(kv[std::size_t(row[std::size_t(t / P)]) * P + std::size_t(t % P)], v)
            << "step " << step << " sequence " << id << " position " << t;
      }
    }
  }
  for (const auto& [id, s] : seqs) bm.free(id);
  bm.check_invariants();
  EXPECT_EQ(bm.num_used_pages(), 0);
  EXPECT_EQ(bm.num_free_pages() + bm.num_cached_pages(), N);
  if (caching) EXPECT_GT(hits, 0u) << "the stems should have produced prefix hits";
  else EXPECT_EQ(bm.num_cached_pages(), 0);
}

}  // namespace

TEST(BlockManager, RandomOperationsKeepInvariantsAndContentsWithoutPrefixCache) { random_ops(false, 12345); }

TEST(BlockManager, RandomOperationsKeepInvariantsAndContentsWithPrefixCache) {
  SKIP_WITHOUT_PREFIX_CACHE();
  random_ops(true, 12345);
}
