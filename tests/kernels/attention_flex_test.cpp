// The host side of attention::forward_flex that needs no GPU: the mask combinators' and PrefixLM's block
// classification against their element tests on every block of awkward shapes (empty must mean no element
// visible, full every element; PrefixLM's is exact), the score modifiers' values, the standard ALiBi slopes, and
// the kernel's tile walk over a block map (FlexMods: exactly the tiles some row of the CTA sees, downwards, the
// per-element mask wherever a consumer's rows are not all visible), and check_flex_args rejecting what the functor kernels cannot take with std::invalid_argument naming the rule.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "aipe/kernels/attention/forward_flex.hpp"
#include "aipe/kernels/attention/forward_schedule.hpp"
#include "aipe/kernels/attention/masks.cuh"
#include "aipe/kernels/attention/score_mods.cuh"

namespace {

namespace at = aipe::kernels::attention;

// The exact class of block [q0, q1) x [kv0, kv1) by asking about every element.
template <class Mask>
at::TileClass brute(const Mask& m, int q0, int q1, int kv0, int kv1) {
  bool any = false, all = true;
  for (int q = q0; q < q1; ++q)
    for (int kv = kv0; kv < kv1; ++kv) {
      const bool v = m(0, 0, q, kv);
      any = any || v;
      all = all && v;
    }
  return !any ? at::TileClass::empty : all ? at::TileClass::full : at::TileClass::partial;
}

// Over every 64 x 128 block (clipped at the ends) of seq_q x seq_kv: classify never claims empty or full
// wrongly, and (exact) equals the brute-force class.
template <class Mask>
void expect_sound(const Mask& m, int seq_q, int seq_kv, bool exact, const char* what) {
  for (int q0 = 0; q0 < seq_q; q0 += at::kMapRows)
    for (int kv0 = 0; kv0 < seq_kv; kv0 += at::kMapKeys) {
      const int q1 = std::min(q0 + at::kMapRows, seq_q), kv1 = std::min(kv0 + at::kMapKeys, seq_kv);
      const at::TileClass c = m.classify(0, 0, q0, q1, kv0, kv1), want = brute(m, q0, q1, kv0, kv1);
      SCOPED_TRACE(std::string(what) + " block q " + std::to_string(q0) + " kv " + std::to_string(kv0) + " of " +
                   std::to_string(seq_q) + " x " + std::to_string(seq_kv));
      if (exact || c != at::TileClass::partial) {
        EXPECT_EQ(int(c), int(want));
      }
    }
}

TEST(AttentionFlexMasks, ClassifyAgreesWithTheElementTest) {
  const int shapes[][2] = {{1000, 1000}, {777, 1000}, {1000, 777}, {65, 129}, {300, 77}};
  for (const auto& s : shapes) {
    const int sq = s[0], skv = s[1];
    const at::Causal causal = at::Causal::bottom_right(sq, skv);
    const at::SlidingWindow window = at::SlidingWindow::bottom_right(sq, skv, 200);
    for (const int prefix : {0, 1, 100, 128, 300, 5000}) {
      const at::PrefixLM plm = at::PrefixLM::bottom_right(sq, skv, prefix);
      expect_sound(plm, sq, skv, false, "prefix-LM");  // the union of two partial blocks may be full
      expect_sound(at::mask_or(window, plm), sq, skv, false, "window | prefix-LM");
      expect_sound(at::mask_and(window, at::mask_not(plm)), sq, skv, false, "window & !prefix-LM");
    }
    expect_sound(at::mask_and(causal, at::mask_not(window)), sq, skv, false, "causal & !window");
    expect_sound(at::mask_not(causal), sq, skv, true, "!causal");
  }
}

TEST(AttentionFlexMasks, ElementTestsAreTheDefinitions) {
  const at::PrefixLM plm = at::PrefixLM::bottom_right(10, 12, 4);  // offset 2
  EXPECT_TRUE(plm(0, 0, 0, 3));    // inside the prefix, ahead of the diagonal
  EXPECT_TRUE(plm(0, 0, 0, 2));    // the diagonal
  EXPECT_FALSE(plm(0, 0, 0, 4));   // past both
  EXPECT_TRUE(plm(0, 0, 5, 7));
  EXPECT_FALSE(plm(0, 0, 5, 8));
  const int ids[] = {0, 0, 0, 1, 1, 2, 7, 7, 7, 7};  // batch 1 of two sequences of 5
  const at::Document doc{.q_ids = ids, .kv_ids = ids, .seq_q = 5, .seq_kv = 5};
  EXPECT_TRUE(doc(0, 0, 0, 2));
  EXPECT_FALSE(doc(0, 0, 2, 3));
  EXPECT_TRUE(doc(0, 0, 4, 3));
  EXPECT_FALSE(doc(1, 0, 0, 1));  // batch 1: ids 2 | 7 7 7 7
  EXPECT_TRUE(doc(1, 0, 1, 4));
  const auto both = at::mask_and(at::Causal{0}, doc);
  EXPECT_FALSE(both(0, 0, 0, 2));  // same document, but ahead
  EXPECT_TRUE(both(0, 0, 2, 0));
  EXPECT_EQ(int(both.classify(0, 0, 0, 5, 0, 5)), int(at::TileClass::partial));  // data: never claimed
  EXPECT_EQ(int(at::mask_and(at::Causal{0}, doc).classify(0, 0, 0, 2, 3, 5)), int(at::TileClass::empty));
}

TEST(AttentionFlexScoreMods, ValuesAndComposition) {
  const float slopes[] = {0.5f, 0.25f};
  const at::Alibi alibi{.slopes = slopes, .offset = 3};
  EXPECT_FLOAT_EQ(alibi(1.f, 0, 0, 10, 13), 1.f);              // on the diagonal (kv = q + offset): no bias
  EXPECT_FLOAT_EQ(alibi(1.f, 0, 1, 10, 5), 1.f - 0.25f * 8);  // 8 keys before the diagonal
  const at::SoftCap cap = at::SoftCap::of(30.f);
  EXPECT_NEAR(cap(0.f, 0, 0, 0, 0), 0.f, 1e-7);
  EXPECT_NEAR(cap(1000.f, 0, 0, 0, 0), 30.f, 1e-4);
  EXPECT_NEAR(cap(-15.f, 0, 0, 0, 0), 30.f * std::tanh(-0.5f), 1e-5);
  const auto both = at::compose(alibi, cap);  // ALiBi first, then the cap
  EXPECT_NEAR(both(50.f, 0, 0, 10, 11), 30.f * std::tanh((50.f - 0.5f * 2) / 30.f), 1e-4);
  EXPECT_TRUE(at::NoScoreMod::kIdentity);
  EXPECT_FALSE((decltype(both)::kIdentity));
}

TEST(AttentionFlexScoreMods, StandardAlibiSlopes) {
  const std::vector<float> s8 = at::alibi_slopes(8);
  ASSERT_EQ(s8.size(), 8u);
  for (int i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(s8[i], std::exp2(-float(i + 1)));
  // 12 heads: the 8 above, then every other slope of 16 heads: 2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5.
  const std::vector<float> s12 = at::alibi_slopes(12);
  ASSERT_EQ(s12.size(), 12u);
  for (int i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(s12[i], s8[i]);
  for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(s12[8 + i], std::exp2(-0.5f - float(i)));
  EXPECT_FLOAT_EQ(at::alibi_slopes(1)[0], 1.f / 256);
  EXPECT_THROW(at::alibi_slopes(0), std::invalid_argument);
}

// The block map of `m` by brute force on the host (one head), as build_block_map computes it on the device.
template <class Mask>
std::vector<std::uint8_t> host_map(const Mask& m, int sq, int skv) {
  const at::BlockMap shape = at::BlockMap::shape(1, 1, sq, skv);
  std::vector<std::uint8_t> map(shape.bytes());
  for (int qb = 0; qb < shape.q_blocks; ++qb)
    for (int kb = 0; kb < shape.kv_blocks; ++kb)
      map[std::size_t(qb) * shape.kv_blocks + kb] = std::uint8_t(
          brute(m, qb * at::kMapRows, std::min((qb + 1) * at::kMapRows, sq), kb * at::kMapKeys,
                std::min((kb + 1) * at::kMapKeys, skv)));
  return map;
}

// Over every CTA row block: range, visited and below walk exactly the tiles with a visible element for some row
// of the 128, from the last down; needs_mask is false only where every element of a consumer's rows is visible.
template <class Mask>
void expect_exact_walk(const Mask& m, int sq, int skv, bool dense) {
  namespace sm90 = at::sm90;
  const std::vector<std::uint8_t> map = host_map(m, sq, skv);
  const at::BlockMap shape = at::BlockMap::shape(1, 1, sq, skv);
  const sm90::FlexMods<Mask, at::NoScoreMod> mods{.m = m,
                                                  .s = {},
                                                  .map = dense ? nullptr : map.data(),
                                                  .map_heads = 1,
                                                  .q_blocks = shape.q_blocks,
                                                  .kv_blocks = shape.kv_blocks};
  sm90::Params p;
  p.seq_q = sq;
  p.seq_kv = skv;
  const sm90::Seq seq{0, 0, sq, skv};
  for (int mb = 0; mb * sm90::kBM < sq; ++mb) {
    SCOPED_TRACE("row block " + std::to_string(mb) + (dense ? " dense" : " block map"));
    const int q0 = mb * sm90::kBM, q1 = std::min(q0 + sm90::kBM, sq);
    std::vector<int> want;
    for (int j = shape.kv_blocks - 1; j >= 0; --j)
      if (dense || brute(m, q0, q1, j * 128, std::min(j * 128 + 128, skv)) != at::TileClass::empty) want.push_back(j);
    int jb = -1, je = -1;
    mods.template range<128>(p, seq, 0, 0, mb, jb, je);
    std::vector<int> got;
    const int n = mods.visited(0, 0, mb, jb, je);
    for (int i = 0, j = je - 1; i < n; ++i, j = mods.below(0, 0, mb, jb, j)) got.push_back(j);
    EXPECT_EQ(got, want);
    if (!got.empty()) {
      EXPECT_EQ(got.front(), je - 1);
      EXPECT_EQ(got.back(), jb);
    }
    for (const int j : got)
      for (int c = 0; c < 2; ++c) {
        const int r0 = q0 + 64 * c, r1 = std::min(r0 + 64, sq);
        if (r0 >= sq) continue;  // a consumer past the sequence: nothing it computes is stored
        const bool all = j * 128 + 128 <= skv && brute(m, r0, r1, j * 128, j * 128 + 128) == at::TileClass::full;
        EXPECT_EQ(mods.template needs_mask<128>(m, seq, 0, 0, mb, c, r0, j), dense || !all)
            << "tile " << j << " consumer " << c;
      }
  }
}

TEST(AttentionFlexWalk, VisitsExactlyTheTilesTheMaskOpens) {
  const int shapes[][2] = {{1000, 777}, {777, 1000}, {1000, 1000}, {65, 129}, {300, 77}};
  for (const auto& s : shapes) {
    const int sq = s[0], skv = s[1];
    SCOPED_TRACE(std::to_string(sq) + " x " + std::to_string(skv));
    const auto wp = at::mask_or(at::SlidingWindow::bottom_right(sq, skv, 150), at::PrefixLM::bottom_right(sq, skv, 260));
    for (const bool dense : {false, true}) {
      expect_exact_walk(wp, sq, skv, dense);
      expect_exact_walk(at::Causal::bottom_right(sq, skv), sq, skv, dense);
      expect_exact_walk(at::SlidingWindow::bottom_right(sq, skv, 40), sq, skv, dense);
    }
  }
}

alignas(16) unsigned char g_buf[256];

at::FlexArgs valid() {
  at::FlexArgs f;
  at::ForwardArgs& a = f.attn;
  a.q = g_buf;
  a.k = g_buf + 16;
  a.v = g_buf + 32;
  a.o = g_buf + 48;
  a.batch = 2, a.heads = 6, a.kv_heads = 2, a.seq_q = 1000, a.seq_kv = 777, a.d = 128;
  a.q_head = 128, a.q_row = 6 * 128, a.q_batch = 1000 * 6 * 128;
  a.kv_head = 128, a.kv_row = 2 * 128, a.kv_batch = 777 * 2 * 128;
  f.block_map = at::BlockMap::shape(2, 1, 1000, 777);
  f.block_map.classes = g_buf + 64;
  return f;
}

std::string rejection(const at::FlexArgs& a) {
  try {
    at::check_flex_args(a);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

TEST(AttentionFlexArgs, AcceptsAndRejectsWithTheRule) {
  EXPECT_EQ(rejection(valid()), "");
  EXPECT_EQ(at::BlockMap::shape(2, 1, 1000, 777).q_blocks, 16);  // ceil(1000 / 64)
  EXPECT_EQ(at::BlockMap::shape(2, 1, 1000, 777).kv_blocks, 7);  // ceil(777 / 128)
  EXPECT_EQ(at::BlockMap::shape(2, 3, 1000, 777).bytes(), 2u * 3 * 16 * 7);
  at::FlexArgs f = valid();
  f.block_map.classes = nullptr;  // dense
  EXPECT_EQ(rejection(f), "");
  f = valid();
  f.block_map.heads = 6;  // a per-head map
  EXPECT_EQ(rejection(f), "");
  f = valid();
  f.attn.d = 64, f.attn.q_head = 64, f.attn.kv_head = 64;
  EXPECT_EQ(rejection(f), "");

  auto expect_rejected = [](const at::FlexArgs& a, const std::string& needle) {
    const std::string r = rejection(a);
    EXPECT_NE(r.find(needle), std::string::npos) << "message: '" << r << "', expected it to mention " << needle;
  };
  f = valid();
  f.attn.dtype = at::DType::fp16;
  expect_rejected(f, "BF16");
  f = valid();
  f.attn.d = 256, f.attn.q_head = 256, f.attn.kv_head = 256;
  expect_rejected(f, "d = 256");
  f = valid();
  f.attn.mask = at::MaskKind::causal;
  expect_rejected(f, "attn.mask");
  f = valid();
  static const int cu[3] = {0, 500, 1000};
  f.attn.cu_seqlens_q = cu;
  expect_rejected(f, "variable-length");
  f = valid();
  f.block_map.kv_blocks = 6;
  expect_rejected(f, "block_map");
  f = valid();
  f.block_map.heads = 2;
  expect_rejected(f, "block_map");
  f = valid();
  f.block_map.batch = 1;
  expect_rejected(f, "block_map");
  f = valid();
  f.attn.heads = 5;  // not a multiple of kv_heads: forward()'s own rule
  expect_rejected(f, "kv_heads");
}

}  // namespace
