// The host side of attention::forward that needs no GPU: check_forward_args rejects every problem the kernel
// cannot take with a std::invalid_argument naming the rule, and accepts the ones it can; the SlidingWindow mask's
// block classification agrees with its element test on every block of a few awkward shapes (the kernel skips
// what classify calls empty and drops the per-element test on what it calls full).
#include <gtest/gtest.h>

#include <climits>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "aipe/kernels/attention/forward.hpp"
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

}  // namespace
