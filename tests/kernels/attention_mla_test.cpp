// Host side of MLA decode: the argument checks (each a std::invalid_argument naming the argument), the split
// plan, the E4M3 decoder and FP8 row layout, and the float32 reference on cases small enough to work by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "aipe/kernels/attention/mla.hpp"

namespace {

namespace att = aipe::kernels::attention;

// Fake, aligned device pointers: the checks never dereference them.
alignas(16) char g_q[16], g_o[16], g_kv[16];
int g_table[4], g_ctx[4];

att::MlaDecodeArgs good_args() {
  att::MlaDecodeArgs a;
  a.q = reinterpret_cast<const __nv_bfloat16*>(g_q);
  a.out = reinterpret_cast<__nv_bfloat16*>(g_o);
  a.kv = g_kv;
  a.num_pages = 100;
  a.block_table = g_table;
  a.max_pages_per_seq = 64;
  a.context_lens = g_ctx;
  a.batch = 4;
  a.q_len = 1;
  a.heads = 128;
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

TEST(AttentionMla, ArgumentChecksNameTheArgument) {
  EXPECT_NO_THROW(att::check_mla_decode_args(good_args()));
  struct Bad {
    const char* field;
    void (*edit)(att::MlaDecodeArgs&);
  };
  const Bad cases[] = {
      {"q must", [](att::MlaDecodeArgs& a) { a.q = nullptr; }},
      {"out must", [](att::MlaDecodeArgs& a) { a.out = nullptr; }},
      {"kv must", [](att::MlaDecodeArgs& a) { a.kv = nullptr; }},
      {"block_table", [](att::MlaDecodeArgs& a) { a.block_table = nullptr; }},
      {"context_lens", [](att::MlaDecodeArgs& a) { a.context_lens = nullptr; }},
      {"q_len", [](att::MlaDecodeArgs& a) { a.q_len = 3; }},
      {"q_len", [](att::MlaDecodeArgs& a) { a.q_len = 0; }},
      {"heads", [](att::MlaDecodeArgs& a) { a.heads = 0; }},
      {"heads", [](att::MlaDecodeArgs& a) { a.heads = 257; }},
      {"batch", [](att::MlaDecodeArgs& a) { a.batch = 0; }},
      {"num_pages", [](att::MlaDecodeArgs& a) { a.num_pages = 0; }},
      {"max_pages_per_seq", [](att::MlaDecodeArgs& a) { a.max_pages_per_seq = 0; }},
      {"max_context", [](att::MlaDecodeArgs& a) { a.max_context = 64 * 64 + 1; }},
      {"total_context", [](att::MlaDecodeArgs& a) { a.total_context = -1; }},
      {"scale", [](att::MlaDecodeArgs& a) { a.scale = -1.f; }},
      {"scale", [](att::MlaDecodeArgs& a) { a.scale = std::numeric_limits<float>::quiet_NaN(); }},
      {"num_splits", [](att::MlaDecodeArgs& a) { a.schedule.num_splits = -2; }},
      {"16-byte", [](att::MlaDecodeArgs& a) { a.kv = g_kv + 4; }},
      {"format", [](att::MlaDecodeArgs& a) { a.format = static_cast<att::MlaKvFormat>(7); }},
  };
  for (const Bad& c : cases) {
    att::MlaDecodeArgs a = good_args();
    c.edit(a);
    const std::string e = error_of([&] { att::check_mla_decode_args(a); });
    EXPECT_NE(e.find(c.field), std::string::npos) << "expected an error naming '" << c.field << "', got '" << e << "'";
  }
}

TEST(AttentionMla, PlanTilesRowsAndSplitsOnlyWhenTheGridIsSmall) {
  att::MlaDecodeArgs a = good_args();
  a.max_context = 4096;
  a.total_context = 4 * 4096;
  att::MlaDecodePlan p = att::plan_mla_decode(a, 132);
  EXPECT_EQ(p.row_tiles, 2);  // 128 rows
  EXPECT_GT(p.split.num_splits, 1);  // 8 CTAs for 132 SMs
  EXPECT_EQ(p.split.tokens_per_split % att::kMlaPageTokens, 0);
  EXPECT_GE(p.split.num_splits * p.split.tokens_per_split, 4096);
  EXPECT_EQ(p.workspace_bytes, std::size_t(p.split.num_splits) * 4 * 128 * (512 + 1) * sizeof(float));
  a.q_len = 2;
  a.heads = 80;
  EXPECT_EQ(att::plan_mla_decode(a, 132).row_tiles, 3);  // 160 rows
  a.schedule.num_splits = 1;
  p = att::plan_mla_decode(a, 132);
  EXPECT_EQ(p.split.num_splits, 1);
  EXPECT_EQ(p.workspace_bytes, 0u);
  a = good_args();
  a.batch = 4096;  // 8,192 CTAs: no split needed
  a.max_context = 4096;
  a.total_context = 4096ll * 4096;
  EXPECT_EQ(att::plan_mla_decode(a, 132).split.num_splits, 1);
  EXPECT_NE(error_of([&] { att::plan_mla_decode(good_args(), 0); }).find("sm_count"), std::string::npos);
}

// The ladder's default (batch 64, contexts in [2048, 4096], 128 heads): 128 CTAs on 132 SMs, unbalanced by the
// ragged lengths; two splits even them out for 2 partial outputs a row, more would cost more in partial O
// than they save. 128 sequences fill the SMs twice over: no split.
TEST(AttentionMla, PlanWeighsThePartialOutputs) {
  att::MlaDecodeArgs a = good_args();
  a.max_pages_per_seq = 64;
  a.max_context = 4096;
  a.batch = 64;
  a.total_context = 64ll * 3072;
  EXPECT_EQ(att::plan_mla_decode(a, 132).split.num_splits, 2);
  a.batch = 128;
  a.total_context = 128ll * 3072;
  EXPECT_EQ(att::plan_mla_decode(a, 132).split.num_splits, 1);
  a.batch = 64;
  a.total_context = 64ll * 3072;
  a.heads = 16;  // one row tile a sequence: 64 CTAs
  EXPECT_EQ(att::plan_mla_decode(a, 132).split.num_splits, 3);
  a.schedule.num_splits = 5;  // a request is honoured
  EXPECT_EQ(att::plan_mla_decode(a, 132).split.num_splits, 5);
}

TEST(AttentionMla, E4m3DecodesNormalsSubnormalsAndNan) {
  EXPECT_EQ(att::e4m3_to_float(0x00), 0.f);
  EXPECT_EQ(att::e4m3_to_float(0x38), 1.f);           // exponent 7 = bias
  EXPECT_EQ(att::e4m3_to_float(0xB8), -1.f);
  EXPECT_EQ(att::e4m3_to_float(0x7E), 448.f);         // the largest finite: 2^8 x 1.75
  EXPECT_EQ(att::e4m3_to_float(0x01), std::ldexp(1.f, -9));  // the smallest subnormal
  EXPECT_EQ(att::e4m3_to_float(0x3C), 1.5f);
  EXPECT_TRUE(std::isnan(att::e4m3_to_float(0x7F)));
  EXPECT_TRUE(std::isnan(att::e4m3_to_float(0xFF)));
}

TEST(AttentionMla, Fp8RowIsLatentThenScalesThenRope) {
  std::uint8_t row[att::kMlaFp8TokenBytes] = {};
  for (int i = 0; i < 512; ++i) row[i] = 0x38;  // 1.0
  const float scales[4] = {0.5f, 2.f, 4.f, 8.f};
  std::memcpy(row + 512, scales, sizeof scales);
  const std::uint16_t rope_bits = 0x4040;  // BF16 3.0
  for (int i = 0; i < 64; ++i) std::memcpy(row + 528 + 2 * i, &rope_bits, 2);
  std::vector<float> out(att::kMlaDimQk);
  att::dequantize_mla_fp8_row(row, out.data());
  EXPECT_EQ(out[0], 0.5f);
  EXPECT_EQ(out[127], 0.5f);
  EXPECT_EQ(out[128], 2.f);
  EXPECT_EQ(out[300], 4.f);
  EXPECT_EQ(out[511], 8.f);
  EXPECT_EQ(out[512], 3.f);
  EXPECT_EQ(out[575], 3.f);
}

// Two pages; sequence 0 has 2 tokens on page 1, sequence 1 one token on page 0.
TEST(AttentionMla, ReferenceByHand) {
  constexpr int D = att::kMlaDimQk, P = att::kMlaPageTokens;
  std::vector<float> kv(2 * P * D, 0.f);
  auto tok = [&](int page, int slot) { return kv.data() + (std::size_t(page) * P + slot) * D; };
  for (int i = 0; i < D; ++i) {
    tok(1, 0)[i] = 1.f;                  // key of sequence 0, token 0
    tok(1, 1)[i] = i < 512 ? 3.f : 0.f;  // token 1: score 0 against q = e_575
    tok(0, 0)[i] = 2.f;
  }
  const int heads = 1, q_len = 2;
  std::vector<float> q(2 * q_len * heads * D, 0.f);
  for (int r = 0; r < 4; ++r) q[r * D + 575] = 1.f;  // scores: 1 x scale against key 0, 0 against key 1
  const std::vector<int> table = {1, 0, 0, 0}, ctx = {2, 1};
  std::vector<float> out, lse;
  att::mla_reference({.q = q, .kv = kv, .block_table = table, .context_lens = ctx, .max_pages_per_seq = 2,
                      .q_len = q_len, .heads = heads, .scale = 1.f},
                     out, lse);
  ASSERT_EQ(out.size(), 4u * 512);
  // Sequence 0, token 0 (position 0) sees key 0 only: O = V_0 = 1, LSE = score 1.
  EXPECT_FLOAT_EQ(out[0], 1.f);
  EXPECT_FLOAT_EQ(lse[0], 1.f);
  // Token 1 sees both: weights e/(e+1), 1/(e+1).
  const float e = std::exp(1.f);
  EXPECT_FLOAT_EQ(out[512 + 7], (e * 1.f + 3.f) / (e + 1.f));
  EXPECT_FLOAT_EQ(lse[1], std::log(e + 1.f));
  // Sequence 1 has 1 token, 2 new ones: token 0 (position -1) sees nothing, token 1 sees key 0 (V = 2).
  EXPECT_EQ(out[2 * 512], 0.f);
  EXPECT_TRUE(std::isinf(lse[2]) && lse[2] < 0);
  EXPECT_FLOAT_EQ(out[3 * 512 + 100], 2.f);
  EXPECT_FLOAT_EQ(lse[3], 2.f);  // q . k = 2 at dim 575
}

TEST(AttentionMla, ReferenceRejectsABadTable) {
  std::vector<float> kv(64 * 576), q(576), out, lse;
  const std::vector<int> table = {3}, ctx = {5};
  EXPECT_NE(error_of([&] {
              att::mla_reference({.q = q, .kv = kv, .block_table = table, .context_lens = ctx, .max_pages_per_seq = 1,
                                  .q_len = 1, .heads = 1},
                                 out, lse);
            }).find("block_table"),
            std::string::npos);
}

}  // namespace
