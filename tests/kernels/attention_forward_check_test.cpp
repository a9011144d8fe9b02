// The host side of attention::forward that needs no GPU: check_forward_args rejects every problem the kernel
// cannot take with a std::invalid_argument naming the rule, and accepts the ones it can; the SlidingWindow mask's
// block classification agrees with its element test on every block of a few awkward shapes (the kernel skips
// what classify calls empty and drops the per-element test on what it calls full); the kernel's tile order covers
// every tile once, and the KV range it walks per row block is exactly the tiles with a visible element.
#include <gtest/gtest.h>

#include <climits>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "aipe/kernels/attention/forward.hpp"
#include "aipe/kernels/attention/forward_schedule.hpp"
#include "aipe/kernels/attention/masks.cuh"

namespace {

namespace at = aipe::kernels::attention;

alignas(16) unsigned char g_buf[256];

// A valid problem: Q, O [2][333][5][64] and K, V [2][300][5][64] packed.
at::ForwardArgs valid() {
  at::ForwardArgs a;
  a.q = g_buf;
  a.k = g_buf + 16;
  a.v = g_buf + 32;
  a.o = g_buf + 48;
  a.batch = 2;
  a.heads = 5;
  a.kv_heads = 5;
  a.seq_q = 333;
  a.seq_kv = 300;
  a.d = 64;
  a.q_head = 64;
  a.q_row = 5 * 64;
  a.q_batch = 333 * 5 * 64;
  a.kv_head = 64;
  a.kv_row = 5 * 64;
  a.kv_batch = 300 * 5 * 64;
  return a;
}

// The message of the std::invalid_argument check_forward_args throws, or "" if it accepts.
std::string rejection(const at::ForwardArgs& a) {
  try {
    at::check_forward_args(a);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

TEST(AttentionForwardArgs, AcceptsTheShapesTheKernelIsBuiltFor) {
  EXPECT_EQ(rejection(valid()), "");
  at::ForwardArgs a = valid();
  a.d = 128;
  a.q_head = a.kv_head = 128;
  a.q_row = a.kv_row = 5 * 128;
  a.q_batch = 333 * 5 * 128;
  a.kv_batch = 300 * 5 * 128;
  a.mask = at::MaskKind::causal;
  EXPECT_EQ(rejection(a), "");
  a.dtype = at::DType::fp16;
  EXPECT_EQ(rejection(a), "");
  a.dtype = at::DType::bf16;
  a.d = 256;
  a.q_head = a.kv_head = 256;
  a.q_row = a.kv_row = 5 * 256;
  a.q_batch = 333 * 5 * 256;
  a.kv_batch = 300 * 5 * 256;
  EXPECT_EQ(rejection(a), "");
  a = valid();
  a.cu_seqlens_q = a.cu_seqlens_kv = reinterpret_cast<const int*>(g_buf);
  a.total_q = 1000;
  a.total_kv = 900;
  a.q_batch = a.kv_batch = 3;  // ignored for packed batches
  EXPECT_EQ(rejection(a), "");
  a = valid();
  a.heads = 8;
  a.kv_heads = 1;  // MQA: one KV head, its stride unused
  a.kv_head = 0;
  a.mask = at::MaskKind::sliding_window;
  a.window = 1;
  EXPECT_EQ(rejection(a), "");
}

TEST(AttentionForwardArgs, RejectsWhatTheKernelCannotTakeNamingTheRule) {
  struct Case {
    const char* rule;
    void (*edit)(at::ForwardArgs&);
  };
  const Case cases[] = {
      {"unknown dtype", [](at::ForwardArgs& a) { a.dtype = static_cast<at::DType>(9); }},
      {"d = 96 is not built for BF16", [](at::ForwardArgs& a) { a.d = 96; }},
      {"d = 256 is not built for FP16", [](at::ForwardArgs& a) { a.dtype = at::DType::fp16; a.d = 256; a.q_head = a.kv_head = 256; }},
      {"at least 1", [](at::ForwardArgs& a) { a.seq_kv = 0; }},
      {"at least 1", [](at::ForwardArgs& a) { a.batch = -1; }},
      {"multiple of kv_heads", [](at::ForwardArgs& a) { a.kv_heads = 2; }},
      {"need both cu_seqlens_q and cu_seqlens_kv",
       [](at::ForwardArgs& a) { a.cu_seqlens_q = reinterpret_cast<const int*>(g_buf); }},
      {"total_q >= seq_q", [](at::ForwardArgs& a) {
         a.cu_seqlens_q = a.cu_seqlens_kv = reinterpret_cast<const int*>(g_buf);
         a.total_q = 100;
         a.total_kv = 1000;
       }},
      {"q is null", [](at::ForwardArgs& a) { a.q = nullptr; }},
      {"v is not 16-byte aligned", [](at::ForwardArgs& a) { a.v = g_buf + 8; }},
      {"o is null", [](at::ForwardArgs& a) { a.o = nullptr; }},
      {"lse is not 4-byte aligned", [](at::ForwardArgs& a) { a.lse = reinterpret_cast<float*>(g_buf + 2); }},
      {"q_row stride 324 is not a multiple of 8", [](at::ForwardArgs& a) { a.q_row = 324; }},
      {"kv_batch stride -8 is negative", [](at::ForwardArgs& a) { a.kv_batch = -8; }},
      {"kv_head stride 32 is smaller than d", [](at::ForwardArgs& a) { a.kv_head = 32; }},
      {"scale", [](at::ForwardArgs& a) { a.scale = -1.f; }},
      {"scale", [](at::ForwardArgs& a) { a.scale = INFINITY; }},
      {"window >= 1", [](at::ForwardArgs& a) { a.mask = at::MaskKind::sliding_window; a.window = 0; }},
      {"unknown mask", [](at::ForwardArgs& a) { a.mask = static_cast<at::MaskKind>(7); }},
  };
  for (const Case& c : cases) {
    at::ForwardArgs a = valid();
    c.edit(a);
    const std::string why = rejection(a);
    EXPECT_NE(why.find(c.rule), std::string::npos) << "expected a rejection naming \"" << c.rule << "\", got \""
                                                   << why << "\"";
  }
}

TEST(AttentionForwardArgs, SlidingWindowElementRule) {
  const auto w = at::SlidingWindow::bottom_right(77, 300, 128);  // offset 223
  EXPECT_TRUE(w(0, 0, 0, 223));   // the diagonal
  EXPECT_FALSE(w(0, 0, 0, 224));  // after it
  EXPECT_TRUE(w(0, 0, 0, 96));    // 127 positions back
  EXPECT_FALSE(w(0, 0, 0, 95));   // 128 back: outside the window
  const auto causal = at::SlidingWindow::bottom_right(1000, 1000, INT_MAX);
  EXPECT_TRUE(causal(0, 0, 999, 0));
  EXPECT_FALSE(causal(0, 0, 5, 6));
}

// classify over every (64-row, 128-key) block of a few shapes against the element test of every position.
TEST(AttentionForwardArgs, SlidingWindowClassifyAgreesWithTheElementTest) {
  struct Shape {
    int sq, sk, window;
  };
  const Shape shapes[] = {{333, 333, INT_MAX}, {77, 300, INT_MAX}, {300, 77, INT_MAX}, {1000, 1000, 128},
                          {257, 1031, 200},   {130, 130, 1}};
  for (const Shape& s : shapes) {
    const auto m = at::SlidingWindow::bottom_right(s.sq, s.sk, s.window);
    for (int q0 = 0; q0 < s.sq; q0 += 64)
      for (int k0 = 0; k0 < s.sk; k0 += 128) {
        const int q1 = q0 + 64, k1 = k0 + 128;  // a block may reach past the ends, as the kernel's do
        int seen = 0, total = 0;
        for (int q = q0; q < q1; ++q)
          for (int k = k0; k < k1; ++k) {
            seen += m(0, 0, q, k) ? 1 : 0;
            ++total;
          }
        const at::TileClass c = m.classify(0, 0, q0, q1, k0, k1);
        const at::TileClass want =
            seen == 0 ? at::TileClass::empty : seen == total ? at::TileClass::full : at::TileClass::partial;
        EXPECT_EQ(static_cast<int>(c), static_cast<int>(want))
            << "sq " << s.sq << " sk " << s.sk << " window " << s.window << " block q " << q0 << " kv " << k0;
      }
  }
}

namespace sm90 = aipe::kernels::attention::sm90;

TEST(AttentionForwardSchedule, EveryTileOnceInBothOrders) {
  for (const bool lf : {false, true}) {
    sm90::Params p;
    p.batch = 3;
    p.heads = 5;
    p.mblocks = 7;
    p.tiles = p.mblocks * p.heads * p.batch;
    p.longest_first = lf;
    std::vector<int> seen(std::size_t(p.tiles), 0);
    int prev_mb = p.mblocks;
    for (int u = 0; u < p.tiles; ++u) {
      const sm90::Tile t = sm90::tile_of(p, u);
      ASSERT_TRUE(t.mb >= 0 && t.mb < p.mblocks && t.h >= 0 && t.h < p.heads && t.b >= 0 && t.b < p.batch) << u;
      ++seen[std::size_t((t.b * p.heads + t.h) * p.mblocks + t.mb)];
      if (lf) {
        EXPECT_LE(t.mb, prev_mb) << "longest-first order must never go back to a later row block, at " << u;
        prev_mb = t.mb;
      }
    }
    for (std::size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], 1) << "tile " << i << " longest_first " << lf;
  }
}

// kv_range's [jb, je) against brute force: the KV tiles holding at least one key that some row of the block sees.
template <bool Masked, int BN>
void expect_exact_kv_range(int sq, int skv, int window) {
  sm90::Params p;
  p.window = window;
  const sm90::Seq seq{0, 0, sq, skv};
  const at::SlidingWindow m{skv - sq, window};
  for (int mb = 0; mb * sm90::kBM < sq + 2 * sm90::kBM; ++mb) {  // and row blocks past the end: empty
    int first = -1, last = -1;
    for (int q = mb * sm90::kBM; q < (mb + 1) * sm90::kBM && q < sq; ++q)
      for (int kv = 0; kv < skv; ++kv)
        if (!Masked || m(0, 0, q, kv)) {
          const int j = kv / BN;
          if (first < 0 || j < first) first = j;
          if (j > last) last = j;
        }
    int jb = 0, je = 0;
    sm90::kv_range<Masked, BN>(p, seq, mb, jb, je);
    const std::string where = "sq " + std::to_string(sq) + " skv " + std::to_string(skv) + " window " +
                              std::to_string(window) + " BN " + std::to_string(BN) + " row block " + std::to_string(mb);
    if (first < 0) {
      EXPECT_LE(je, jb) << where << ": nothing visible, yet [" << jb << ", " << je << ")";
    } else {
      EXPECT_EQ(jb, first) << where;
      EXPECT_EQ(je, last + 1) << where;
    }
  }
}

TEST(AttentionForwardSchedule, KvRangeIsExactlyTheVisibleTiles) {
  const int big = INT_MAX;
  for (const auto& [sq, skv, w] : std::vector<std::tuple<int, int, int>>{
           {333, 333, big}, {77, 300, big}, {300, 77, big}, {1000, 1000, 128}, {700, 1111, 128}, {250, 400, 100},
           {129, 257, big}, {1, 1, big}, {130, 130, 1}}) {
    expect_exact_kv_range<true, 128>(sq, skv, w);
    expect_exact_kv_range<true, 64>(sq, skv, w);
    expect_exact_kv_range<false, 128>(sq, skv, w);
  }
}

TEST(AttentionForwardSchedule, VarlenSequenceBounds) {
  const int cu_q[] = {0, 130, 131, 464}, cu_kv[] = {0, 200, 201, 534};
  sm90::Params p;
  p.cu_q = cu_q;
  p.cu_kv = cu_kv;
  const sm90::Seq s = sm90::seq_of(p, 2);
  EXPECT_EQ(s.q0, 131);
  EXPECT_EQ(s.kv0, 201);
  EXPECT_EQ(s.sq, 333);
  EXPECT_EQ(s.skv, 333);
  EXPECT_EQ(sm90::seq_of(p, 1).offset(), 0);
  p.cu_q = p.cu_kv = nullptr;
  p.seq_q = 77;
  p.seq_kv = 300;
  EXPECT_EQ(sm90::seq_of(p, 5).offset(), 223);
  EXPECT_EQ(sm90::seq_of(p, 5).q0, 0);
}

}  // namespace
