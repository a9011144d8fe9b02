// Host side of paged decode attention: the paged-cache shape rules, the block-table content check, the decode
// argument checks and the split planner (every rule a std::invalid_argument naming the field).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "aipe/kernels/attention/decode.hpp"
#include "aipe/kernels/attention/paged.hpp"

namespace {

namespace att = aipe::kernels::attention;

// Fake, aligned device pointers: the checks never dereference them.
alignas(16) char g_k[16], g_v[16], g_q[16], g_o[16];
int g_table[4], g_ctx[4];

att::PagedKvCache good_cache() {
  return {.k = g_k, .v = g_v, .num_pages = 100, .page_size = 16, .kv_heads = 8, .d = 128,
          .block_table = g_table, .max_pages_per_seq = 300, .context_lens = g_ctx};
}

att::DecodeArgs good_args() {
  att::DecodeArgs a;
  a.q = reinterpret_cast<const __nv_bfloat16*>(g_q);
  a.out = reinterpret_cast<__nv_bfloat16*>(g_o);
  a.cache = good_cache();
  a.batch = 4;
  a.q_len = 1;
  a.heads = 32;
  return a;
}

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

TEST(AttentionPaged, OffsetIsTokenMajorThenHead) {
  // (page 2, slot 3, kv_head 1, i 5) with 16-token pages, 8 KV heads of 128
  EXPECT_EQ(att::paged_offset(2, 3, 1, 5, 16, 8, 128), ((2u * 16 + 3) * 8 + 1) * 128 + 5);
  EXPECT_EQ(good_cache().elements(), 100u * 16 * 8 * 128);
  EXPECT_EQ(good_cache().capacity(), 300 * 16);
}

TEST(AttentionPaged, ShapeRulesNameTheField) {
  EXPECT_NO_THROW(att::check_paged_kv(good_cache(), 4));
  auto c = good_cache();
  c.page_size = 24;
  EXPECT_NE(error_of([&] { att::check_paged_kv(c, 4); }).find("page_size"), std::string::npos);
  c = good_cache();
  c.page_size = 512;
  EXPECT_NE(error_of([&] { att::check_paged_kv(c, 4); }).find("page_size"), std::string::npos);
  c = good_cache();
  c.d = 96;
  EXPECT_NE(error_of([&] { att::check_paged_kv(c, 4); }).find("d must be 64 or 128"), std::string::npos);
  c = good_cache();
  c.block_table = nullptr;
  EXPECT_NE(error_of([&] { att::check_paged_kv(c, 4); }).find("block_table"), std::string::npos);
  c = good_cache();
  c.k = g_k + 2;
  EXPECT_NE(error_of([&] { att::check_paged_kv(c, 4); }).find("aligned"), std::string::npos);
  c = good_cache();
  c.kv_heads = 0;
  EXPECT_NE(error_of([&] { att::check_paged_kv(c, 4); }).find("kv_heads"), std::string::npos);
  EXPECT_NE(error_of([&] { att::check_paged_kv(good_cache(), 0); }).find("batch"), std::string::npos);
}

TEST(AttentionPaged, BlockTableContents) {
  // Two sequences, pages of 16, 3 entries each: 17 tokens use 2 pages, 48 use 3; the unused entry is not checked.
  const std::vector<int> table = {4, 0, -7, 1, 2, 3};
  EXPECT_NO_THROW(att::check_block_table(table, std::vector<int>{17, 48}, 3, 16, 5));
  EXPECT_NE(error_of([&] { att::check_block_table(table, std::vector<int>{33, 48}, 3, 16, 5); })
                .find("block_table[0][2] = -7"),
            std::string::npos);
  EXPECT_NE(error_of([&] { att::check_block_table(table, std::vector<int>{17, 49}, 3, 16, 5); })
                .find("context_lens[1] = 49"),
            std::string::npos);
  EXPECT_NE(error_of([&] { att::check_block_table(table, std::vector<int>{17, 48}, 3, 16, 4); })
                .find("block_table[0][0] = 4"),
            std::string::npos);
  EXPECT_NE(error_of([&] { att::check_block_table(table, std::vector<int>{-1, 0}, 3, 16, 5); }).find("context_lens[0]"),
            std::string::npos);
  EXPECT_NE(error_of([&] { att::check_block_table({table.data(), 5}, std::vector<int>{1, 1}, 3, 16, 5); })
                .find("entries"),
            std::string::npos);
  // Shared pages (prefix caching) are legal.
  EXPECT_NO_THROW(att::check_block_table(std::vector<int>{1, 1}, std::vector<int>{16, 16}, 1, 16, 2));
}

TEST(AttentionPaged, DecodeArgumentRules) {
  EXPECT_NO_THROW(att::check_decode_args(good_args()));
  auto a = good_args();
  a.heads = 30;
  EXPECT_NE(error_of([&] { att::check_decode_args(a); }).find("multiple of kv_heads"), std::string::npos);
  a = good_args();
  a.q_len = 5;
  EXPECT_NE(error_of([&] { att::check_decode_args(a); }).find("q_len"), std::string::npos);
  a = good_args();
  a.q_len = 0;
  EXPECT_NE(error_of([&] { att::check_decode_args(a); }).find("q_len"), std::string::npos);
  a = good_args();
  a.window = -1;
  EXPECT_NE(error_of([&] { att::check_decode_args(a); }).find("window"), std::string::npos);
  a = good_args();
  a.max_context = 300 * 16 + 1;
  EXPECT_NE(error_of([&] { att::check_decode_args(a); }).find("max_context"), std::string::npos);
  a = good_args();
  a.q = nullptr;
  EXPECT_NE(error_of([&] { att::check_decode_args(a); }).find("q and out"), std::string::npos);
  a = good_args();
  a.scale = -1.f;
  EXPECT_NE(error_of([&] { att::check_decode_args(a); }).find("scale"), std::string::npos);
  a = good_args();
  a.schedule.num_splits = -2;
  EXPECT_NE(error_of([&] { att::check_decode_args(a); }).find("num_splits"), std::string::npos);
  a = good_args();
  a.schedule.stages = 5;
  EXPECT_NE(error_of([&] { att::check_decode_args(a); }).find("stages"), std::string::npos);
  a = good_args();
  a.q_row_stride = 32 * 128 + 8;  // a fused QKV row: fine
  EXPECT_NO_THROW(att::check_decode_args(a));
  a.q_row_stride = 32 * 128 - 8;  // shorter than one token's queries
  EXPECT_NE(error_of([&] { att::check_decode_args(a); }).find("q_row_stride"), std::string::npos);
  a.q_row_stride = 32 * 128 + 4;  // rows not 16-byte aligned
  EXPECT_NE(error_of([&] { att::check_decode_args(a); }).find("q_row_stride"), std::string::npos);
  a = good_args();
  a.total_context = -1;
  EXPECT_NE(error_of([&] { att::check_decode_args(a); }).find("total_context"), std::string::npos);
}

TEST(AttentionPaged, AppendArgumentRules) {
  alignas(16) static char buf[64];
  std::int64_t slots[1];
  att::AppendKvArgs a{.k_new = reinterpret_cast<const __nv_bfloat16*>(buf),
                      .v_new = reinterpret_cast<const __nv_bfloat16*>(buf + 16),
                      .slot_mapping = slots,
                      .k_cache = reinterpret_cast<__nv_bfloat16*>(buf + 32),
                      .v_cache = reinterpret_cast<__nv_bfloat16*>(buf + 48),
                      .tokens = 1, .num_pages = 1, .page_size = 16, .kv_heads = 1, .d = 64};
  EXPECT_NO_THROW(att::check_append_kv_args(a));
  auto b = a;
  b.d = 60;
  EXPECT_NE(error_of([&] { att::check_append_kv_args(b); }).find("multiple of 8"), std::string::npos);
  b = a;
  b.slot_mapping = nullptr;
  EXPECT_NE(error_of([&] { att::check_append_kv_args(b); }).find("slot_mapping"), std::string::npos);
  b = a;
  b.kv_row_stride = 64 + 8;
  EXPECT_NO_THROW(att::check_append_kv_args(b));
  b.kv_row_stride = 60;
  EXPECT_NE(error_of([&] { att::check_append_kv_args(b); }).find("kv_row_stride"), std::string::npos);
  b = a;
  b.tokens = -1;
  EXPECT_NE(error_of([&] { att::check_append_kv_args(b); }).find("tokens"), std::string::npos);
}

// 132 SMs, 2 CTAs each: 264 slots.
att::SplitPlan plan(int ctas_per_split, int max_context, int requested = 0, long long work_tokens = 0) {
  return att::plan_splits({.sm_count = 132, .ctas_per_sm = 2, .ctas_per_split = ctas_per_split,
                           .max_context = max_context, .tile_tokens = 64, .requested = requested,
                           .work_tokens = work_tokens});
}

TEST(AttentionPaged, SplitPlannerFillsTheMachine) {
  // batch 64 x 8 KV heads = 512 CTAs over contexts in [2048, 4096] (work taken as 3/4 of 512 x 4096): 5,958 tokens
  // per slot, a quarter of it is 24 tiles -> 3 splits of 1,536 tokens.
  EXPECT_EQ(plan(512, 4096).num_splits, 3);
  EXPECT_EQ(plan(512, 4096).tokens_per_split, 24 * 64);
  // the same work given exactly: the same plan.
  EXPECT_EQ(plan(512, 4096, 0, 512ll * 3072).tokens_per_split, 24 * 64);
  // batch 8 x 8 = 64 CTAs over 32K: the same work in 22 splits of 1,536 tokens.
  EXPECT_EQ(plan(64, 32768).num_splits, 22);
  // a log-uniform batch (64 x 8 CTAs, 377K tokens in all, the longest 32K): splits of 45 tiles, 12 of them.
  EXPECT_EQ(plan(512, 32768, 0, 8ll * 377000).tokens_per_split, 45 * 64);
  EXPECT_EQ(plan(512, 32768, 0, 8ll * 377000).num_splits, 12);
  // one sequence of one KV head: splits of the 8-tile minimum, 65 tiles -> 9 splits.
  EXPECT_EQ(plan(1, 4097).num_splits, 9);
  EXPECT_EQ(plan(1, 4097).tokens_per_split, 8 * 64);
  // never more than 128 splits.
  EXPECT_EQ(plan(1, 1 << 20).num_splits, 128);
  // short contexts are never split below 8 tiles: 300 tokens = 5 tiles -> 1 split.
  EXPECT_EQ(plan(8, 300).num_splits, 1);
  // every token is covered: num_splits * tokens_per_split >= the context, and no split is empty.
  for (int ctx : {1, 63, 64, 65, 1000, 4097, 32768, 100000})
    for (int ctas : {1, 7, 64, 512, 5000}) {
      const auto p = plan(ctas, ctx);
      EXPECT_GE(std::int64_t(p.num_splits) * p.tokens_per_split, ctx) << ctx << " " << ctas;
      EXPECT_LT(std::int64_t(p.num_splits - 1) * p.tokens_per_split, std::max(ctx, 1)) << ctx << " " << ctas;
      EXPECT_EQ(p.tokens_per_split % 64, 0);
    }
}

TEST(AttentionPaged, SplitPlannerHonoursARequest) {
  EXPECT_EQ(plan(512, 4096, 3).num_splits, 3);
  EXPECT_EQ(plan(512, 4096, 3).tokens_per_split, 22 * 64);  // 64 tiles / 3 -> 22 tiles a split
  EXPECT_THROW(plan(8, 4096, 0, -1), std::invalid_argument);
  EXPECT_EQ(plan(512, 100, 7).num_splits, 2);               // only 2 tiles to split
  EXPECT_EQ(plan(512, 0, 4).num_splits, 1);
  EXPECT_THROW(plan(0, 4096), std::invalid_argument);
  EXPECT_THROW(plan(8, 4096, -1), std::invalid_argument);
}

}  // namespace
