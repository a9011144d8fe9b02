// aipe::kernels::attention::decode and append_kv on the GPU, against the plain FP32 device reference
// (attention/reference.cuh) run on a contiguous copy of the paged cache gathered by a trivial kernel.
// Awkward sizes throughout: pages of 16 and 64 tokens over contexts 0, 1, 17, 1000, 4097 (never a multiple of
// the page or of the 64-token tile), pages of a sequence in a random order, q_len 1 and 3, GQA 4 and 8, MQA,
// sinks, a sliding window, 1 to 7 forced splits, the unpipelined schedule, BF16 and FP8 E4M3 caches. Outputs and LSE are poisoned (NaN)
// before every call; unused block-table entries point at a page of NaN, so a read past a context fails too.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/device.hpp"
#include "aipe/kernels/attention/decode.hpp"
#include "aipe/kernels/attention/decode_mask.cuh"
#include "aipe/kernels/attention/reference.cuh"
#include "aipe/random.hpp"
#include "aipe/verify.hpp"
#include "aipe/verify_device.cuh"

namespace {

namespace att = aipe::kernels::attention;
using bf16 = __nv_bfloat16;

// Contiguous [b][max_ctx][kv_heads][d] copy of the paged cache; zeros past each context.
__global__ void gather_kernel(const bf16* paged, bf16* contig, const int* table, const int* ctx, int max_pages,
                              int page, int max_ctx, int row_elems) {
  const int b = blockIdx.y, t = blockIdx.x;
  bf16* dst = contig + (std::size_t(b) * max_ctx + t) * row_elems;
  const bool in = t < ctx[b];
  const bf16* src = in ? paged + (std::size_t(table[b * max_pages + t / page]) * page + t % page) * row_elems : nullptr;
  for (int i = threadIdx.x; i < row_elems; i += blockDim.x) dst[i] = in ? src[i] : __float2bfloat16(0.f);
}

// The E4M3 cache as the kernel sees it, back in BF16 for the reference: e4m3 x its (page, kv head) scale.
__global__ void dequantize_kernel(const __nv_fp8_storage_t* q8, const float* scale, bf16* out, std::size_t n, int d,
                                  int kv_heads, std::size_t page_elems) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x) {
    const __half_raw h = __nv_cvt_fp8_to_halfraw(q8[i], __NV_E4M3);
    const float s = scale[(i / page_elems) * kv_heads + (i / d) % kv_heads];
    out[i] = __float2bfloat16_rn(__half2float(__half(h)) * s);
  }
}

struct Case {
  int q_len = 1, heads = 32, kv_heads = 8, d = 128, page = 16;
  std::vector<int> contexts;  // one per sequence
  bool sinks = false;
  int window = 0;
  int splits = 0;
  bool pipelined = true;
  int stages = 0;
  bool plan_for_capacity = false;
  int q_extra = 0;  // > 0: q read in place from rows of (heads + q_extra) * d elements (a fused QKV output)  // a table 8x longer than needed and max_context = its capacity (the engine's graphs)
  bool fp8 = false;  // E4M3 cache with per-(page, kv head) scales; the reference reads it dequantized
  std::string describe() const {
    std::ostringstream o;
    o << "q_len " << q_len << ", heads " << heads << "/" << kv_heads << ", d " << d << ", page " << page
      << ", splits " << splits << (pipelined ? "" : ", unpipelined") << ", stages " << stages << ", window " << window
      << (sinks ? ", sinks" : "") << (fp8 ? ", fp8" : "") << (plan_for_capacity ? ", planned for capacity" : "")
      << (q_extra ? ", q in fused QKV rows" : "") << ", contexts";
    for (int c : contexts) o << " " << c;
    return o.str();
  }
};

class Problem {
 public:
  Problem(const Case& c, std::uint64_t seed) : c_(c) {
    batch_ = int(c.contexts.size());
    max_ctx_ = std::max(1, *std::max_element(c.contexts.begin(), c.contexts.end()));
    max_pages_ = (max_ctx_ + c.page - 1) / c.page + 1;  // one spare entry per row, never to be read
    if (c.plan_for_capacity) max_pages_ *= 8;
    int used = 0;
    for (int x : c.contexts) used += (x + c.page - 1) / c.page;
    num_pages_ = used + 1;  // the last page is the NaN page
    std::vector<int> perm(used);
    std::iota(perm.begin(), perm.end(), 0);
    std::mt19937 rng{static_cast<unsigned>(seed)};
    std::shuffle(perm.begin(), perm.end(), rng);
    table_h_.assign(std::size_t(batch_) * max_pages_, num_pages_ - 1);
    for (int b = 0, next = 0; b < batch_; ++b)
      for (int i = 0; i < (c.contexts[b] + c.page - 1) / c.page; ++i) table_h_[b * max_pages_ + i] = perm[next++];
    att::check_block_table(table_h_, c.contexts, max_pages_, c.page, num_pages_);

    const std::size_t row = std::size_t(c.kv_heads) * c.d;
    const std::size_t page_elems = std::size_t(c.page) * row;
    k_ = aipe::DeviceBuffer<bf16>(num_pages_ * page_elems);
    v_ = aipe::DeviceBuffer<bf16>(num_pages_ * page_elems);
    aipe::fill_uniform(k_.get(), k_.size(), aipe::sub_seed(seed, 1), -1.f, 1.f, nullptr);
    aipe::fill_uniform(v_.get(), v_.size(), aipe::sub_seed(seed, 2), -1.f, 1.f, nullptr);
    AIPE_CUDA(cudaMemset(k_.get() + (num_pages_ - 1) * page_elems, 0xFF, page_elems * sizeof(bf16)));
    AIPE_CUDA(cudaMemset(v_.get() + (num_pages_ - 1) * page_elems, 0xFF, page_elems * sizeof(bf16)));
    if (c.fp8) {
      // The kernel reads E4M3 + scales; k_ and v_ become their dequantized values (the NaN page stays NaN).
      k8_ = aipe::DeviceBuffer<__nv_fp8_storage_t>(k_.size());
      v8_ = aipe::DeviceBuffer<__nv_fp8_storage_t>(v_.size());
      ks_ = aipe::DeviceBuffer<float>(std::size_t(num_pages_) * c.kv_heads);
      vs_ = aipe::DeviceBuffer<float>(ks_.size());
      att::quantize_pages_e4m3({.k = k_.get(), .v = v_.get(), .k8 = k8_.get(), .v8 = v8_.get(), .k_scale = ks_.get(),
                                .v_scale = vs_.get(), .num_pages = num_pages_, .page_size = c.page,
                                .kv_heads = c.kv_heads, .d = c.d},
                               nullptr);
      dequantize_kernel<<<256, 256>>>(k8_.get(), ks_.get(), k_.get(), k_.size(), c.d, c.kv_heads, page_elems);
      dequantize_kernel<<<256, 256>>>(v8_.get(), vs_.get(), v_.get(), v_.size(), c.d, c.kv_heads, page_elems);
      AIPE_CHECK_LAUNCH();
    }
    q_stride_ = std::int64_t(c.heads + c.q_extra) * c.d;
    q_ = aipe::DeviceBuffer<bf16>(std::size_t(batch_) * c.q_len * q_stride_);
    aipe::fill_uniform(q_.get(), q_.size(), aipe::sub_seed(seed, 3), -3.f, 3.f, nullptr);  // peaked softmax
    out_ = aipe::DeviceBuffer<bf16>(std::size_t(batch_) * c.q_len * c.heads * c.d);
    lse_ = aipe::DeviceBuffer<float>(std::size_t(batch_) * c.heads * c.q_len);
    table_ = aipe::DeviceBuffer<int>(table_h_.size());
    ctx_ = aipe::DeviceBuffer<int>(batch_);
    AIPE_CUDA(cudaMemcpy(table_.get(), table_h_.data(), table_.bytes(), cudaMemcpyHostToDevice));
    AIPE_CUDA(cudaMemcpy(ctx_.get(), c.contexts.data(), ctx_.bytes(), cudaMemcpyHostToDevice));
    if (c.sinks) {
      sinks_ = aipe::DeviceBuffer<float>(c.heads);
      aipe::fill_uniform(sinks_.get(), sinks_.size(), aipe::sub_seed(seed, 4), -2.f, 3.f, nullptr);
    }
    reference();
  }

  att::DecodeArgs args() {
    att::DecodeArgs a;
    a.q = q_.get();
    a.out = out_.get();
    a.lse = lse_.get();
    a.cache = {.k = k_.get(), .v = v_.get(), .num_pages = num_pages_, .page_size = c_.page,
               .kv_heads = c_.kv_heads, .d = c_.d, .block_table = table_.get(), .max_pages_per_seq = max_pages_,
               .context_lens = ctx_.get()};
    if (c_.fp8) {
      a.cache.k = k8_.get();
      a.cache.v = v8_.get();
      a.cache.dtype = att::KvDType::fp8_e4m3;
      a.cache.k_scale = ks_.get();
      a.cache.v_scale = vs_.get();
    }
    a.batch = batch_;
    a.q_len = c_.q_len;
    a.heads = c_.heads;
    a.max_context = c_.plan_for_capacity ? max_pages_ * c_.page : max_ctx_;
    if (!c_.plan_for_capacity)  // the planner's work hint; planned for capacity, it is left unknown
      a.total_context = std::accumulate(c_.contexts.begin(), c_.contexts.end(), 0ll);
    a.sinks = c_.sinks ? sinks_.get() : nullptr;
    a.window = c_.window;
    if (c_.q_extra > 0) a.q_row_stride = q_stride_;
    a.schedule = {.num_splits = c_.splits, .pipelined = c_.pipelined, .stages = c_.stages};
    return a;
  }

  // Runs decode (outputs poisoned first) and compares O and LSE with the reference.
  void run_and_check() {
    att::DecodeArgs a = args();
    const att::DecodePlan plan = att::decode_plan(a);
    if (c_.splits > 0) EXPECT_LE(plan.split.num_splits, c_.splits);
    aipe::DeviceBuffer<unsigned char> ws(plan.workspace_bytes);
    a.workspace = ws.get();
    a.workspace_bytes = ws.bytes();
    AIPE_CUDA(cudaMemset(out_.get(), 0xFF, out_.bytes()));
    AIPE_CUDA(cudaMemset(lse_.get(), 0xFF, lse_.bytes()));
    att::decode(a, nullptr);
    AIPE_CUDA(cudaDeviceSynchronize());
    const std::string what = c_.describe() + " (" + std::to_string(plan.split.num_splits) + " splits of " +
                             std::to_string(plan.split.tokens_per_split) + " tokens)";
    // BF16 output of an average of BF16 values: the output's rounding (2^-9 relative) and P rounded to BF16
    // before P.V; outputs are small (averages of [-1, 1) values), so the absolute term is below BF16's default.
    const aipe::Tolerance tol{.abs = 3e-3, .rel = 2e-2, .norm_rel = 1e-2};
    const aipe::VerifyResult r = aipe::compare_on_device(out_.size(), out_.get(), ref_o_.get(), tol, nullptr);
    EXPECT_TRUE(r.ok) << what << ": O " << r.message();
    const std::vector<float> lse = aipe::to_host(lse_, nullptr), ref = aipe::to_host(ref_lse_, nullptr);
    // LSE: FP32 arithmetic on the same inputs, 2e-3. FP8: the reference reads the dequantized cache rounded to BF16
    // (e4m3 x scale has more than BF16's 8 significant bits), the kernel the exact e4m3 x scale: every score then
    // differs by ~1.1e-3 rms (|q| |k| 2^-9 / sqrt(3) per term, summed over d and scaled by 1/sqrt(d)), and the LSE,
    // a softmax-weighted mean of those differences, by as much for short contexts (measured: up to 5e-3). 1e-2.
    const float lse_abs = c_.fp8 ? 1e-2f : 2e-3f;
    int bad = 0;
    for (std::size_t i = 0; i < lse.size(); ++i) {
      const bool both_empty = std::isinf(ref[i]) && ref[i] < 0 && std::isinf(lse[i]) && lse[i] < 0;
      if (both_empty) continue;
      if (!(std::fabs(lse[i] - ref[i]) <= lse_abs + 1e-3f * std::fabs(ref[i])) && bad++ < 5)
        ADD_FAILURE() << what << ": LSE[" << i << "] expected " << ref[i] << ", got " << lse[i];
    }
    EXPECT_EQ(bad, 0) << what << ": " << bad << " LSE values wrong of " << lse.size();
  }


 private:
  void reference() {
    const int row_elems = c_.kv_heads * c_.d;
    aipe::DeviceBuffer<bf16> kc(std::size_t(batch_) * max_ctx_ * row_elems), vc(kc.size());
    gather_kernel<<<dim3(max_ctx_, batch_), 128>>>(k_.get(), kc.get(), table_.get(), ctx_.get(), max_pages_, c_.page,
                                                  max_ctx_, row_elems);
    gather_kernel<<<dim3(max_ctx_, batch_), 128>>>(v_.get(), vc.get(), table_.get(), ctx_.get(), max_pages_, c_.page,
                                                  max_ctx_, row_elems);
    AIPE_CHECK_LAUNCH();
    ref_o_ = aipe::DeviceBuffer<float>(out_.size());
    ref_lse_ = aipe::DeviceBuffer<float>(lse_.size());
    att::ReferenceArgs<bf16> r;
    r.q = q_.get();
    r.k = kc.get();
    r.v = vc.get();
    r.q_head = c_.d;
    r.q_row = q_stride_;
    r.q_batch = r.q_row * c_.q_len;
    r.kv_head = c_.d;
    r.kv_row = row_elems;
    r.kv_batch = std::int64_t(max_ctx_) * row_elems;
    r.batch = batch_;
    r.heads = c_.heads;
    r.kv_heads = c_.kv_heads;
    r.seq_q = c_.q_len;
    r.seq_kv = max_ctx_;
    r.d = c_.d;
    r.scale = 1.f / std::sqrt(float(c_.d));
    r.sinks = c_.sinks ? sinks_.get() : nullptr;
    r.o = ref_o_.get();
    r.lse = ref_lse_.get();
    att::reference_attention(r, att::DecodeMask{.ctx = ctx_.get(), .q_len = c_.q_len, .window = c_.window});
    AIPE_CUDA(cudaDeviceSynchronize());
  }

  Case c_;
  int batch_ = 0, max_ctx_ = 0, max_pages_ = 0, num_pages_ = 0;
  std::int64_t q_stride_ = 0;
  std::vector<int> table_h_;
  aipe::DeviceBuffer<bf16> k_, v_, q_, out_;
  aipe::DeviceBuffer<float> lse_, sinks_, ref_o_, ref_lse_;
  aipe::DeviceBuffer<int> table_, ctx_;
  aipe::DeviceBuffer<__nv_fp8_storage_t> k8_, v8_;
  aipe::DeviceBuffer<float> ks_, vs_;
};

#define SKIP_WITHOUT_GPU()                                                   \
  do {                                                                       \
    if (auto why = aipe::gpu_unavailable_reason()) GTEST_SKIP() << *why;     \
  } while (0)

const std::vector<int> kAwkward = {1, 17, 1000, 4097, 333};

TEST(AttentionDecode, Page16Gqa4Decode) {
  SKIP_WITHOUT_GPU();
  Problem(Case{.contexts = kAwkward}, 11).run_and_check();
}

TEST(AttentionDecode, Page64Gqa8D64MultiToken) {
  SKIP_WITHOUT_GPU();
  Problem(Case{.q_len = 3, .heads = 64, .kv_heads = 8, .d = 64, .page = 64, .contexts = {17, 4097, 1, 1000}}, 12)
      .run_and_check();
}

TEST(AttentionDecode, MqaThreeRowBlocks) {
  SKIP_WITHOUT_GPU();  // 16 heads x q_len 3 = 48 rows on one KV head: three 16-row blocks
  Problem(Case{.q_len = 3, .heads = 16, .kv_heads = 1, .d = 128, .page = 16, .contexts = {1000, 17, 4097}}, 13)
      .run_and_check();
}

TEST(AttentionDecode, MhaGroupOfOne) {
  SKIP_WITHOUT_GPU();
  Problem(Case{.q_len = 1, .heads = 6, .kv_heads = 6, .d = 64, .page = 16, .contexts = {4097, 1000, 17}}, 14)
      .run_and_check();
}

TEST(AttentionDecode, SinksAndWindow) {
  SKIP_WITHOUT_GPU();  // the gpt-oss shape: 64/8 heads of 64; a context of 0 sees only the sink
  for (int q_len : {1, 3})
    for (int window : {0, 128, 5000})
      Problem(Case{.q_len = q_len, .heads = 64, .kv_heads = 8, .d = 64, .page = 16,
                   .contexts = {0, 1, 17, 1000, 4097}, .sinks = true, .window = window},
              20 + window + q_len)
          .run_and_check();
}

TEST(AttentionDecode, WindowWithoutSinksPage64) {
  SKIP_WITHOUT_GPU();
  Problem(Case{.q_len = 3, .page = 64, .contexts = {4097, 1000, 130}, .window = 100}, 30).run_and_check();
}

TEST(AttentionDecode, ForcedSplitsAndUnpipelined) {
  SKIP_WITHOUT_GPU();
  for (int splits : {1, 2, 3, 7})
    for (bool pipelined : {true, false})
      for (int d : {64, 128})
        Problem(Case{.q_len = 1 + splits % 3, .d = d, .page = splits % 2 ? 16 : 64, .contexts = {1000, 4097, 17, 1},
                     .sinks = splits == 3, .splits = splits, .pipelined = pipelined},
                40 + splits)
            .run_and_check();
}

TEST(AttentionDecode, ManySequencesAutoSplits) {
  SKIP_WITHOUT_GPU();  // 3 sequences of ~4K: the planner splits them to fill the SMs; 70 short ones: it does not
  Problem(Case{.contexts = {4097, 3000, 4000}}, 50).run_and_check();
  std::vector<int> many(70);
  for (int i = 0; i < 70; ++i) many[i] = 1 + (i * 397) % 1500;
  Problem(Case{.contexts = many}, 51).run_and_check();
}

TEST(AttentionDecode, Fp8Cache) {
  SKIP_WITHOUT_GPU();  // against the reference on the dequantized cache: the kernel's arithmetic, not FP8's error
  for (int d : {64, 128})
    for (int page : {16, 64})
      for (int q_len : {1, 3})
        Problem(Case{.q_len = q_len, .heads = d == 64 ? 64 : 32, .kv_heads = 8, .d = d, .page = page,
                     .contexts = kAwkward, .fp8 = true},
                70 + d + page + q_len)
            .run_and_check();
}

TEST(AttentionDecode, Fp8SplitsSinksWindowUnpipelined) {
  SKIP_WITHOUT_GPU();
  for (int splits : {0, 3})
    for (bool pipelined : {true, false})
      Problem(Case{.q_len = 2, .heads = 16, .kv_heads = 2, .d = 128, .page = 16, .contexts = {0, 1, 17, 1000, 4097},
                   .sinks = true, .window = splits ? 300 : 0, .splits = splits, .pipelined = pipelined, .fp8 = true},
              80 + splits)
          .run_and_check();
  Problem(Case{.q_len = 3, .heads = 8, .kv_heads = 1, .d = 64, .page = 64, .contexts = {4097, 17}, .splits = 5,
               .fp8 = true},
          85)
      .run_and_check();
}

TEST(AttentionDecode, PagesOf8And256FullRowBlock) {
  SKIP_WITHOUT_GPU();  // q_len 4 x group 4 = 16 rows, one full m16 tile; pages smaller than a warp's 16 keys, and larger than a tile
  for (bool fp8 : {false, true}) {
    Problem(Case{.q_len = 4, .page = 8, .contexts = {4097, 1, 1000, 17}, .fp8 = fp8}, 90).run_and_check();
    Problem(Case{.q_len = 2, .d = 64, .page = 256, .contexts = {17, 1000, 4097}, .fp8 = fp8}, 91).run_and_check();
  }
}

TEST(AttentionDecode, EveryRingDepth) {
  SKIP_WITHOUT_GPU();
  for (int stages : {2, 3, 4})
    for (bool fp8 : {false, true})
      for (int d : {64, 128})
        Problem(Case{.q_len = 2, .d = d, .page = 16, .contexts = {4097, 1000, 17, 1, 0}, .sinks = true, .splits = 2,
                     .stages = stages, .fp8 = fp8},
                100 + stages)
            .run_and_check();
}

TEST(AttentionDecode, PlannedForTheTableCapacity) {
  SKIP_WITHOUT_GPU();  // splits sized for 8x the longest context: most CTAs find their split empty and leave
  for (bool fp8 : {false, true})
    for (int window : {0, 200})
      Problem(Case{.q_len = 2, .contexts = {4097, 1000, 17, 1, 0, 333}, .sinks = window > 0, .window = window,
                   .plan_for_capacity = true, .fp8 = fp8},
              110 + window)
          .run_and_check();
}

TEST(AttentionDecode, QueriesReadInPlaceFromFusedQkvRows) {
  SKIP_WITHOUT_GPU();  // rows of (heads + 2 kv_heads) d elements, q first: the engine's fused projection
  for (bool fp8 : {false, true}) {
    Problem(Case{.q_len = 1, .contexts = {4097, 1000, 17}, .q_extra = 16, .fp8 = fp8}, 120).run_and_check();
    Problem(Case{.q_len = 3, .heads = 64, .kv_heads = 8, .d = 64, .page = 64, .contexts = {1, 1000}, .splits = 3,
                 .q_extra = 16, .fp8 = fp8},
            121)
        .run_and_check();
  }
}

TEST(AttentionDecode, WorkspaceTooSmallIsAnError) {
  SKIP_WITHOUT_GPU();
  Problem p(Case{.contexts = {4097, 1000}, .splits = 4}, 60);
  att::DecodeArgs a = p.args();
  ASSERT_GT(att::decode_plan(a).workspace_bytes, 0u);
  EXPECT_THROW(att::decode(a, nullptr), std::invalid_argument);
  a.heads = 30;  // not a multiple of 8 KV heads
  EXPECT_THROW(att::decode_plan(a), std::invalid_argument);
  a = p.args();
  a.schedule.stages = 1;  // 1 is spelled pipelined = false
  EXPECT_THROW(att::decode_plan(a), std::invalid_argument);
  a = p.args();
  a.cache.dtype = att::KvDType::fp8_e4m3;  // without scales
  EXPECT_THROW(att::decode_plan(a), std::invalid_argument);
}

TEST(AttentionDecode, AppendWritesItsSlotsOnly) {
  SKIP_WITHOUT_GPU();
  const int num_pages = 7, page = 16, kv_heads = 3, d = 64, tokens = 29;
  const std::size_t row = std::size_t(kv_heads) * d, cache = std::size_t(num_pages) * page * row;
  aipe::DeviceBuffer<bf16> kn(tokens * row), vn(tokens * row), kc(cache), vc(cache);
  aipe::fill_uniform(kn.get(), kn.size(), 71, -1.f, 1.f, nullptr);
  aipe::fill_uniform(vn.get(), vn.size(), 72, -1.f, 1.f, nullptr);
  AIPE_CUDA(cudaMemset(kc.get(), 0xFF, kc.bytes()));
  AIPE_CUDA(cudaMemset(vc.get(), 0xFF, vc.bytes()));
  // Distinct random slots, every fourth token padding (-1), one slot past the cache (skipped too).
  std::vector<int> all(num_pages * page);
  std::iota(all.begin(), all.end(), 0);
  std::mt19937 rng(7);
  std::shuffle(all.begin(), all.end(), rng);
  std::vector<std::int64_t> slots(tokens);
  for (int i = 0; i < tokens; ++i) slots[i] = i % 4 == 3 ? -1 : all[i];
  slots[5] = std::int64_t(num_pages) * page;
  aipe::DeviceBuffer<std::int64_t> sm(tokens);
  AIPE_CUDA(cudaMemcpy(sm.get(), slots.data(), sm.bytes(), cudaMemcpyHostToDevice));
  att::append_kv({.k_new = kn.get(), .v_new = vn.get(), .slot_mapping = sm.get(), .k_cache = kc.get(),
                  .v_cache = vc.get(), .tokens = tokens, .num_pages = num_pages, .page_size = page,
                  .kv_heads = kv_heads, .d = d},
                 nullptr);
  const auto hkn = aipe::to_host(kn, nullptr), hvn = aipe::to_host(vn, nullptr);
  const auto hkc = aipe::to_host(kc, nullptr), hvc = aipe::to_host(vc, nullptr);
  auto bits = [](bf16 x) { return *reinterpret_cast<const std::uint16_t*>(&x); };
  std::vector<int> owner(num_pages * page, -1);
  for (int i = 0; i < tokens; ++i)
    if (slots[i] >= 0 && slots[i] < num_pages * page) owner[slots[i]] = i;
  int bad = 0;
  for (int s = 0; s < num_pages * page; ++s)
    for (std::size_t e = 0; e < row; ++e) {
      const std::uint16_t want_k = owner[s] < 0 ? 0xFFFF : bits(hkn[owner[s] * row + e]);
      const std::uint16_t want_v = owner[s] < 0 ? 0xFFFF : bits(hvn[owner[s] * row + e]);
      if ((bits(hkc[s * row + e]) != want_k || bits(hvc[s * row + e]) != want_v) && bad++ < 5)
        ADD_FAILURE() << "slot " << s << " element " << e << ": expected K/V bits " << want_k << "/" << want_v
                      << ", got " << bits(hkc[s * row + e]) << "/" << bits(hvc[s * row + e]);
    }
  EXPECT_EQ(bad, 0);
}

TEST(AttentionDecode, AppendFromFusedQkvRows) {
  SKIP_WITHOUT_GPU();  // k_new = qkv + heads d, v_new = qkv + (heads + kv_heads) d, rows of (heads + 2 kv_heads) d
  const int num_pages = 5, page = 16, heads = 12, kv_heads = 3, d = 128, tokens = 21;
  const std::size_t row = std::size_t(kv_heads) * d, total = std::size_t(heads + 2 * kv_heads) * d;
  const std::size_t cache = std::size_t(num_pages) * page * row;
  aipe::DeviceBuffer<bf16> qkv(tokens * total), kc(cache), vc(cache);
  aipe::fill_uniform(qkv.get(), qkv.size(), 73, -1.f, 1.f, nullptr);
  AIPE_CUDA(cudaMemset(kc.get(), 0xFF, kc.bytes()));
  AIPE_CUDA(cudaMemset(vc.get(), 0xFF, vc.bytes()));
  std::vector<std::int64_t> slots(tokens);
  for (int i = 0; i < tokens; ++i) slots[i] = (i * 37) % (num_pages * page);  // distinct: 37 is prime to 80
  aipe::DeviceBuffer<std::int64_t> sm(tokens);
  AIPE_CUDA(cudaMemcpy(sm.get(), slots.data(), sm.bytes(), cudaMemcpyHostToDevice));
  att::append_kv({.k_new = qkv.get() + heads * d, .v_new = qkv.get() + (heads + kv_heads) * d,
                  .slot_mapping = sm.get(), .k_cache = kc.get(), .v_cache = vc.get(), .tokens = tokens,
                  .num_pages = num_pages, .page_size = page, .kv_heads = kv_heads, .d = d,
                  .kv_row_stride = std::int64_t(total)},
                 nullptr);
  const auto h = aipe::to_host(qkv, nullptr), hk = aipe::to_host(kc, nullptr), hv = aipe::to_host(vc, nullptr);
  auto bits = [](bf16 x) { return *reinterpret_cast<const std::uint16_t*>(&x); };
  int bad = 0;
  for (int i = 0; i < tokens; ++i)
    for (std::size_t e = 0; e < row; ++e) {
      const std::uint16_t wk = bits(h[i * total + heads * d + e]), wv = bits(h[i * total + (heads + kv_heads) * d + e]);
      const std::uint16_t gk = bits(hk[slots[i] * row + e]), gv = bits(hv[slots[i] * row + e]);
      if ((gk != wk || gv != wv) && bad++ < 5)
        ADD_FAILURE() << "token " << i << " element " << e << ": expected K/V bits " << wk << "/" << wv << ", got " << gk
                      << "/" << gv;
    }
  EXPECT_EQ(bad, 0);
  att::AppendKvArgs bad_stride{.k_new = qkv.get(), .v_new = qkv.get(), .slot_mapping = sm.get(), .k_cache = kc.get(),
                               .v_cache = vc.get(), .tokens = tokens, .num_pages = num_pages, .page_size = page,
                               .kv_heads = kv_heads, .d = d, .kv_row_stride = std::int64_t(row) - 8};
  EXPECT_THROW(att::append_kv(bad_stride, nullptr), std::invalid_argument);
}

}  // namespace
