// aipe::kernels::attention::mla_decode on the GPU against the float32 CPU reference (mla_reference) over host
// copies of the same cache: for the FP8 format the reference dequantizes the very bytes the kernel read
// (quantize_mla_fp8's output, copied back). Awkward sizes: contexts 1, 700, 4097 (never a page multiple), 128,
// 80 and 16 heads (two, two and a half, a quarter of a 64-row tile), q_len 1 and 2, pages in a random order,
// planned, forced and no splits, the unpipelined schedule. Outputs and LSE are poisoned (NaN) before every call;
// unused block-table entries point at a page of NaN, so a read past a context fails the test.
#include <cuda_bf16.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/device.hpp"
#include "aipe/kernels/attention/mla.hpp"
#include "aipe/random.hpp"
#include "aipe/verify.hpp"

namespace {

namespace att = aipe::kernels::attention;
using bf16 = __nv_bfloat16;

float bf16_to_float(bf16 x) {
  std::uint16_t bits;
  std::memcpy(&bits, &x, 2);
  const std::uint32_t u = std::uint32_t(bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

struct Case {
  int q_len = 1, heads = 128;
  std::vector<int> contexts;
  bool fp8 = false;
  int splits = 0;  // 0: the planner's
  bool pipelined = true;
  std::string describe() const {
    std::ostringstream o;
    o << "q_len " << q_len << ", heads " << heads << (fp8 ? ", fp8" : ", bf16") << ", splits " << splits
      << (pipelined ? "" : ", unpipelined") << ", contexts";
    for (int c : contexts) o << " " << c;
    return o.str();
  }
};

void run_case(const Case& c, std::uint64_t seed) {
  constexpr int P = att::kMlaPageTokens, D = att::kMlaDimQk, DV = att::kMlaDimV;
  const int batch = int(c.contexts.size());
  const int max_ctx = std::max(1, *std::max_element(c.contexts.begin(), c.contexts.end()));
  const int max_pages = (max_ctx + P - 1) / P + 1;  // one spare entry per row, never to be read
  int used = 0;
  for (int x : c.contexts) used += (x + P - 1) / P;
  const int num_pages = used + 1;  // the last page is the NaN page
  std::vector<int> perm(used);
  std::iota(perm.begin(), perm.end(), 0);
  std::mt19937 rng{static_cast<unsigned>(seed)};
  std::shuffle(perm.begin(), perm.end(), rng);
  std::vector<int> table(std::size_t(batch) * max_pages, num_pages - 1);
  for (int b = 0, next = 0; b < batch; ++b)
    for (int i = 0; i < (c.contexts[b] + P - 1) / P; ++i) table[std::size_t(b) * max_pages + i] = perm[next++];

  const std::size_t tokens = std::size_t(num_pages) * P;
  aipe::DeviceBuffer<bf16> kv(tokens * D);
  aipe::fill_uniform(kv.get(), kv.size(), aipe::sub_seed(seed, 1), -1.f, 1.f, nullptr);
  AIPE_CUDA(cudaMemset(kv.get() + (tokens - P) * D, 0xFF, std::size_t(P) * D * sizeof(bf16)));
  aipe::DeviceBuffer<unsigned char> kv8;
  std::vector<float> kv_h(tokens * D);
  if (c.fp8) {
    kv8 = aipe::DeviceBuffer<unsigned char>(tokens * att::kMlaFp8TokenBytes);
    att::quantize_mla_fp8(kv.get(), kv8.get(), std::int64_t(tokens), nullptr);
    const std::vector<unsigned char> raw = aipe::to_host(kv8, nullptr);
    for (std::size_t t = 0; t < tokens; ++t)
      att::dequantize_mla_fp8_row(raw.data() + t * att::kMlaFp8TokenBytes, kv_h.data() + t * D);
  } else {
    const std::vector<bf16> h = aipe::to_host(kv, nullptr);
    for (std::size_t i = 0; i < h.size(); ++i) kv_h[i] = bf16_to_float(h[i]);
  }
  const std::size_t rows = std::size_t(batch) * c.q_len * c.heads;
  aipe::DeviceBuffer<bf16> q(rows * D), out(rows * DV);
  aipe::fill_uniform(q.get(), q.size(), aipe::sub_seed(seed, 2), -2.f, 2.f, nullptr);  // a peaked softmax
  aipe::DeviceBuffer<float> lse(rows);
  aipe::DeviceBuffer<int> table_d(table.size()), ctx_d(batch);
  AIPE_CUDA(cudaMemcpy(table_d.get(), table.data(), table_d.bytes(), cudaMemcpyHostToDevice));
  AIPE_CUDA(cudaMemcpy(ctx_d.get(), c.contexts.data(), ctx_d.bytes(), cudaMemcpyHostToDevice));
  std::vector<float> q_h;
  for (bf16 x : aipe::to_host(q, nullptr)) q_h.push_back(bf16_to_float(x));

  att::MlaDecodeArgs a;
  a.q = q.get();
  a.out = out.get();
  a.lse = lse.get();
  a.kv = c.fp8 ? static_cast<const void*>(kv8.get()) : static_cast<const void*>(kv.get());
  a.format = c.fp8 ? att::MlaKvFormat::fp8_flashmla : att::MlaKvFormat::bf16;
  a.num_pages = num_pages;
  a.block_table = table_d.get();
  a.max_pages_per_seq = max_pages;
  a.context_lens = ctx_d.get();
  a.batch = batch;
  a.q_len = c.q_len;
  a.heads = c.heads;
  a.max_context = max_ctx;
  a.total_context = std::accumulate(c.contexts.begin(), c.contexts.end(), 0ll);
  a.schedule = {.num_splits = c.splits, .pipelined = c.pipelined};
  const att::MlaDecodePlan plan = att::mla_decode_plan(a);
  aipe::DeviceBuffer<unsigned char> ws(std::max<std::size_t>(plan.workspace_bytes, 16));
  a.workspace = ws.get();
  a.workspace_bytes = ws.bytes();
  AIPE_CUDA(cudaMemset(out.get(), 0xFF, out.bytes()));
  AIPE_CUDA(cudaMemset(lse.get(), 0xFF, lse.bytes()));
  att::mla_decode(a, nullptr);
  AIPE_CUDA(cudaDeviceSynchronize());

  std::vector<float> ref_o, ref_lse;
  att::mla_reference({.q = q_h, .kv = kv_h, .block_table = table, .context_lens = c.contexts,
                      .max_pages_per_seq = max_pages, .q_len = c.q_len, .heads = c.heads},
                     ref_o, ref_lse);
  const std::string what = c.describe() + " (" + std::to_string(plan.split.num_splits) + " splits of " +
                           std::to_string(plan.split.tokens_per_split) + " tokens)";
  const std::vector<bf16> o_h = aipe::to_host(out, nullptr);
  // Outputs are averages of [-1, 1) values: BF16 output rounding (2^-9 relative), P rounded to BF16 before
  // P V, and for FP8 the dequantized value e4m3 x scale rounded to BF16 in shared memory (the reference keeps
  // it exact). The same tolerance as the paged decode's BF16 cases.
  const aipe::Tolerance tol{.abs = 3e-3, .rel = 2e-2, .norm_rel = 1e-2};
  const aipe::VerifyResult r =
      aipe::compare(o_h.size(), [&](std::size_t i) { return double(bf16_to_float(o_h[i])); },
                    [&](std::size_t i) { return double(ref_o[i]); }, tol);
  EXPECT_TRUE(r.ok) << what << ": O " << r.message();
  const std::vector<float> l_h = aipe::to_host(lse, nullptr);
  int bad = 0;
  for (std::size_t i = 0; i < l_h.size(); ++i) {
    const bool both_empty = std::isinf(ref_lse[i]) && ref_lse[i] < 0 && std::isinf(l_h[i]) && l_h[i] < 0;
    if (both_empty) continue;
    // FP32 sums of 576 products on both sides, the kernel's from BF16-rounded P only in O: 5e-3 (FP8: the
    // BF16 rounding of each dequantized key, ~1e-3 rms per score).
    if (!(std::fabs(l_h[i] - ref_lse[i]) <= 5e-3f + 1e-3f * std::fabs(ref_lse[i])) && bad++ < 5)
      ADD_FAILURE() << what << ": LSE[" << i << "] expected " << ref_lse[i] << ", got " << l_h[i];
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " LSE values wrong of " << l_h.size();
}

#define SKIP_WITHOUT_GPU()                                               \
  do {                                                                   \
    if (auto why = aipe::gpu_unavailable_reason()) GTEST_SKIP() << *why; \
  } while (0)

const std::vector<int> kContexts = {1, 700, 4097};

TEST(AttentionMla, Bf16Heads128Decode) {
  SKIP_WITHOUT_GPU();
  run_case({.q_len = 1, .heads = 128, .contexts = kContexts}, 21);
}

TEST(AttentionMla, Bf16Heads128TwoTokensCausal) {
  SKIP_WITHOUT_GPU();
  run_case({.q_len = 2, .heads = 128, .contexts = kContexts}, 22);
}

TEST(AttentionMla, Bf16Heads16) {
  SKIP_WITHOUT_GPU();
  run_case({.q_len = 1, .heads = 16, .contexts = kContexts}, 23);
  run_case({.q_len = 2, .heads = 16, .contexts = {2, 1, 130}}, 24);
}

TEST(AttentionMla, Bf16Heads80OneSplitUnpipelined) {
  SKIP_WITHOUT_GPU();
  run_case({.q_len = 2, .heads = 80, .contexts = kContexts, .splits = 1, .pipelined = false}, 25);
}

TEST(AttentionMla, Bf16ForcedSplits) {
  SKIP_WITHOUT_GPU();
  run_case({.q_len = 1, .heads = 128, .contexts = kContexts, .splits = 7}, 26);
  run_case({.q_len = 2, .heads = 16, .contexts = {0, 4097, 65}, .splits = 3, .pipelined = false}, 27);
}

TEST(AttentionMla, Fp8Heads128) {
  SKIP_WITHOUT_GPU();
  run_case({.q_len = 1, .heads = 128, .contexts = kContexts, .fp8 = true}, 28);
  run_case({.q_len = 2, .heads = 128, .contexts = kContexts, .fp8 = true, .splits = 1}, 29);
}

TEST(AttentionMla, Fp8Heads16TwoTokens) {
  SKIP_WITHOUT_GPU();
  run_case({.q_len = 2, .heads = 16, .contexts = kContexts, .fp8 = true}, 30);
}

TEST(AttentionMla, SplitsWithoutWorkspaceThrow) {
  SKIP_WITHOUT_GPU();
  aipe::DeviceBuffer<bf16> q(att::kMlaDimQk), out(att::kMlaDimV), kv(std::size_t(att::kMlaPageTokens) * att::kMlaDimQk);
  aipe::DeviceBuffer<int> table(64), ctx(1);
  att::MlaDecodeArgs a;
  a.q = q.get();
  a.out = out.get();
  a.kv = kv.get();
  a.num_pages = 1;
  a.block_table = table.get();
  a.max_pages_per_seq = 64;
  a.context_lens = ctx.get();
  a.batch = 1;
  a.heads = 1;
  a.schedule.num_splits = 4;
  try {
    att::mla_decode(a, nullptr);
    ADD_FAILURE() << "4 splits without a workspace were launched";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("workspace"), std::string::npos) << e.what();
  }
}

TEST(AttentionMla, QuantizeRoundTripsWithinE4m3) {
  SKIP_WITHOUT_GPU();
  constexpr int D = att::kMlaDimQk;
  const std::int64_t tokens = 37;
  aipe::DeviceBuffer<bf16> kv(std::size_t(tokens) * D);
  aipe::fill_uniform(kv.get(), kv.size(), 77, -3.f, 3.f, nullptr);
  AIPE_CUDA(cudaMemset(kv.get(), 0, 128 * sizeof(bf16)));  // an all-zero group: scale 1, values 0
  aipe::DeviceBuffer<unsigned char> kv8(std::size_t(tokens) * att::kMlaFp8TokenBytes);
  AIPE_CUDA(cudaMemset(kv8.get(), 0xFF, kv8.bytes()));
  att::quantize_mla_fp8(kv.get(), kv8.get(), tokens, nullptr);
  const std::vector<unsigned char> raw = aipe::to_host(kv8, nullptr);
  const std::vector<bf16> src = aipe::to_host(kv, nullptr);
  std::vector<float> row(D);
  float scale0;
  std::memcpy(&scale0, raw.data() + att::kMlaDimV, 4);
  EXPECT_EQ(scale0, 1.f);
  for (std::int64_t t = 0; t < tokens; ++t) {
    att::dequantize_mla_fp8_row(raw.data() + t * att::kMlaFp8TokenBytes, row.data());
    for (int i = 0; i < D; ++i) {
      const float x = bf16_to_float(src[t * D + i]);
      // E4M3: 3 mantissa bits, half an ulp 2^-4 relative; values far below the group's amax hit subnormals,
      // whose step is amax / 448 x 2^-9. RoPE values are copied exactly.
      const float tolv = i < att::kMlaDimV ? std::fabs(x) / 16.f + 3.f / 448.f / 512.f : 0.f;
      ASSERT_LE(std::fabs(row[i] - x), tolv) << "token " << t << " value " << i;
    }
  }
}

}  // namespace
