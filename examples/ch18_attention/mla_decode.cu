// ch18/mla_decode: DeepSeek-V2/V3 multi-head latent attention at decode time, in the absorbed form FlashMLA
// computes (aipe/kernels/attention/mla.hpp). Every query head of a sequence attends over one shared latent KV
// head of 576 values a token (512 latent + 64 RoPE), V being the first 512: one cache read can serve all
// 128 heads, and whether it does is the whole ladder.
//
// Ladder:
//   1 naive       CUDA cores, one CTA per (query row, sequence): 4 warps taking every 4th key through the block
//                 table, a lane holding 18 of the 576 dims, a warp-wide dot product and an online softmax per
//                 key. Each of the 128 heads reads the whole cache again (from L2, mostly): 128x the bytes
//   2 head_tiled  kernels::attention::mla_decode, one split, one stage: a CTA takes 64 query rows and streams
//                 the sequence's pages once for all of them, S = Q K^T (d 576) and O += P V (512) on mma.sync
//                 tensor cores; each page loaded with cp.async, waited for, then used
//   3 split_kv    + flash decoding: the context cut into splits, partial O and LSE merged by
//                 kernels::attention::combine_splits; the count (metric `splits`) from plan_mla_decode's time
//                 model, which weighs the SMs' balance against the partial outputs (2 KiB a row a split)
//   4 pipelined   + two page tiles in shared memory: the next page lands under this page's math
//   5 fp8_kv      the same over FlashMLA's FP8 cache (656 B a token: E4M3 latent with one FP32 scale per 128
//                 values, BF16 RoPE), dequantized in shared memory: 57% of the BF16 bytes. Its GB/s column
//                 counts the BF16 problem's bytes; the metric `kv_read_gbps` counts what it read
//
// Problem: batch sequences, context lengths drawn per sequence in [context/2, context] (seeded; not multiples
// of the 64-token page), pages handed out in a random order, heads query heads, q_len new tokens per sequence
// (causal between them, bottom-right). Q and the latent cache uniform BF16 in [-1, 1); scale 1/sqrt(576).
// `splits` forces the split count of rungs 3-5 (0: the planner's; at the small test size the planner splits,
// so the combine path is verified there).
// Reference: a plain FP32 device kernel (one CTA per row, exact two-pass softmax, scores in shared memory)
// over the same paged BF16 cache. Tolerance: |err| <= 3e-3 + 2e-2 |ref| and 1e-2 in norm (outputs are
// averages of [-1, 1) values, rounded to BF16, and the tensor-core rungs round P to BF16 before P V). fp8_kv
// against the same BF16 reference with an FP8 tolerance, |err| <= 1e-2 + 1e-1 |ref| and 5e-2 in norm: E4M3
// keeps 3 mantissa bits (~2.5% rms per latent value).
// Work: bytes = the cache rows read once per sequence, sum(ctx) x 1,152 B, plus Q (576 x 2 B) and O (512 x 2 B)
// per query row; FLOPs = 2 x (576 + 512) per (query row, visible key). Napkin math at the defaults (64 x ~3,070
// tokens, 128 heads, q_len 1): 244 MB for 55 GFLOP, 225 FLOP/B. At ~4.8 TB/s the DRAM floor is ~51 us; at the
// H200's dense BF16 spec (989 TFLOP/s) the compute floor is ~55 us: with 128 heads MLA decode sits on the ridge
// of the roofline, and below the spec peak (mma.sync, redundant work) it is compute-bound. With 16 heads
// (--size heads=16, 30 FLOP/B) or FP8 pages the bytes set the time.
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/kernels/attention/decode.hpp"
#include "aipe/kernels/attention/mla.hpp"
#include "aipe/random.hpp"
#include "aipe/registry.hpp"
#include "aipe/verify_device.cuh"

namespace {

namespace att = aipe::kernels::attention;
using bf16 = __nv_bfloat16;

constexpr int kD = att::kMlaDimQk;   // 576
constexpr int kDv = att::kMlaDimV;   // 512
constexpr int kPage = att::kMlaPageTokens;
constexpr int kPairs = kD / 64;      // 9 BF16 pairs a lane: dims 2 lane + 64 j (+1), j < 8 the V dims
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr float kLog2e = 1.4426950408889634f;

struct NaiveParams {
  const bf16* q;
  bf16* out;
  const bf16* kv;  // [pages][64][576]
  const int* table;
  const int* ctx;
  int max_pages, q_len, heads;
  float scale_log2;
};

// Rung 1. Grid (q_len x heads, batch); warp w takes keys w, w + 4, ...; row r = qi * heads + h.
__global__ void __launch_bounds__(kThreads) naive_mla(const NaiveParams p) {
  __shared__ float sm[kWarps], sl[kWarps], so[kWarps][kDv];
  const int r = blockIdx.x, b = blockIdx.y;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int rows = p.q_len * p.heads;
  const int ctx = p.ctx[b], last = ctx - p.q_len + r / p.heads;  // the last key this row sees
  const bf16* qrow = p.q + (std::size_t(b) * rows + r) * kD;
  float2 q[kPairs], o[kPairs - 1];
#pragma unroll
  for (int j = 0; j < kPairs; ++j) q[j] = __bfloat1622float2(reinterpret_cast<const __nv_bfloat162*>(qrow)[lane + 32 * j]);
#pragma unroll
  for (int j = 0; j < kPairs - 1; ++j) o[j] = make_float2(0.f, 0.f);
  float m = -INFINITY, l = 0.f;
  for (int t = warp; t <= last; t += kWarps) {
    const int page = p.table[std::size_t(b) * p.max_pages + t / kPage];
    const auto* row = reinterpret_cast<const __nv_bfloat162*>(p.kv + (std::size_t(page) * kPage + t % kPage) * kD);
    float2 k[kPairs];
    float s = 0.f;
#pragma unroll
    for (int j = 0; j < kPairs; ++j) {
      k[j] = __bfloat1622float2(row[lane + 32 * j]);
      s = fmaf(q[j].x, k[j].x, fmaf(q[j].y, k[j].y, s));
    }
#pragma unroll
    for (int w = 16; w > 0; w >>= 1) s += __shfl_xor_sync(0xffffffffu, s, w);
    s *= p.scale_log2;
    const float m_new = fmaxf(m, s);
    const float alpha = exp2f(m - m_new), e = exp2f(s - m_new);
    l = l * alpha + e;
#pragma unroll
    for (int j = 0; j < kPairs - 1; ++j) {
      o[j].x = fmaf(e, k[j].x, o[j].x * alpha);
      o[j].y = fmaf(e, k[j].y, o[j].y * alpha);
    }
    m = m_new;
  }
  if (lane == 0) {
    sm[warp] = m;
    sl[warp] = l;
  }
#pragma unroll
  for (int j = 0; j < kPairs - 1; ++j) {
    so[warp][2 * lane + 64 * j] = o[j].x;
    so[warp][2 * lane + 64 * j + 1] = o[j].y;
  }
  __syncthreads();
  float M = -INFINITY;
#pragma unroll
  for (int w = 0; w < kWarps; ++w) M = fmaxf(M, sm[w]);
  for (int c = threadIdx.x; c < kDv; c += kThreads) {
    float L = 0.f, acc = 0.f;
    if (M != -INFINITY)
#pragma unroll
      for (int w = 0; w < kWarps; ++w) {
        const float f = exp2f(sm[w] - M);
        L += sl[w] * f;
        acc += so[w][c] * f;
      }
    p.out[(std::size_t(b) * rows + r) * kDv + c] = __float2bfloat16_rn(L > 0.f ? acc / L : 0.f);
  }
}

// The reference: one CTA of 256 threads per (row, sequence). Pass 1: a warp per key, the row's scores into
// shared memory; the exact max and sum; pass 2: a thread per output column over all keys. FP32 throughout.
__global__ void __launch_bounds__(256) reference_mla(const NaiveParams p, float* ref) {
  extern __shared__ float s[];  // [ctx] scores, then [8] scratch
  const int r = blockIdx.x, b = blockIdx.y;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int rows = p.q_len * p.heads;
  const int n = max(0, min(p.ctx[b], p.ctx[b] - p.q_len + r / p.heads + 1));  // visible keys
  float* scratch = s + max(n, 1);
  const bf16* qrow = p.q + (std::size_t(b) * rows + r) * kD;
  auto key = [&](int t) {
    return p.kv + (std::size_t(p.table[std::size_t(b) * p.max_pages + t / kPage]) * kPage + t % kPage) * kD;
  };
  for (int t = warp; t < n; t += 8) {
    const bf16* k = key(t);
    float acc = 0.f;
    for (int i = lane; i < kD; i += 32) acc += __bfloat162float(qrow[i]) * __bfloat162float(k[i]);
    for (int w = 16; w > 0; w >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, w);
    if (lane == 0) s[t] = acc * (p.scale_log2 / kLog2e);
  }
  __syncthreads();
  float mx = -INFINITY;
  for (int t = threadIdx.x; t < n; t += 256) mx = fmaxf(mx, s[t]);
  for (int w = 16; w > 0; w >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, w));
  if (lane == 0) scratch[warp] = mx;
  __syncthreads();
  mx = -INFINITY;
  for (int w = 0; w < 8; ++w) mx = fmaxf(mx, scratch[w]);
  __syncthreads();  // scratch is rewritten below
  float sum = 0.f;
  for (int t = threadIdx.x; t < n; t += 256) {
    s[t] = expf(s[t] - mx);
    sum += s[t];
  }
  for (int w = 16; w > 0; w >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, w);
  if (lane == 0) scratch[warp] = sum;
  __syncthreads();
  sum = 0.f;
  for (int w = 0; w < 8; ++w) sum += scratch[w];
  for (int c = threadIdx.x; c < kDv; c += 256) {
    float acc = 0.f;
    for (int t = 0; t < n; ++t) acc += s[t] * __bfloat162float(key(t)[c]);
    ref[(std::size_t(b) * rows + r) * kDv + c] = n > 0 ? acc / sum : 0.f;
  }
}

class MlaDecode final : public aipe::Example {
 public:
  aipe::ExampleInfo info() const override {
    return {"ch18/mla_decode",
            "MLA decode (DeepSeek absorbed latent attention): naive, head-tiled mma.sync, split-KV, pipelined, FP8",
            "Absorbed multi-head latent attention gives every query head of a sequence the same single latent KV "
            "head of 576 values a token. Read once per head, the cache costs 128 times its size; read once per "
            "tile of 64 heads, the heads become the M side of tensor-core tiles and the work turns from a GEMV "
            "into a small GEMM, 225 FLOPs per byte at 128 heads. Splitting the context fills the SMs when the "
            "batch does not, double-buffered page tiles hide the load, and FlashMLA's FP8 page format "
            "(E4M3 latent with per-128 scales, BF16 RoPE) cuts the bytes to 57%.",
            {{.name = "batch", .def = 64, .quick = 32, .small = 3, .help = "sequences", .max = 65535},
             {.name = "context",
              .def = 4096,
              .quick = 2048,
              .small = 1100,
              .help = "longest context; each sequence's is drawn in [context/2, context]",
              .max = 1 << 20},
             {.name = "heads", .def = 128, .quick = 128, .small = 80, .help = "query heads", .max = 256},
             {.name = "q_len", .def = 1, .quick = 1, .small = 1, .help = "new tokens per sequence (1 or 2)",
              .max = 2},
             {.name = "splits", .def = 0, .quick = 0, .small = 0,
              .help = "context splits of rungs 3-5; 0: the planner's choice", .min = 0, .max = 128}},
            {}};
  }

  std::vector<aipe::Variant> variants() override {
    auto splits_of = [this](const att::MlaDecodePlan* plan) {
      return [plan](double, std::map<std::string, double>& out) { out["splits"] = plan->split.num_splits; };
    };
    return {{.name = "naive",
             .summary = "CUDA cores: one CTA per (query row, sequence), every head reads the whole cache",
             .launch = [this](cudaStream_t s) { launch_naive(s); },
             .budget_s = 2},
            {.name = "head_tiled",
             .summary = "kernels::attention::mla_decode, 1 split, 1 stage: 64 heads share each page on mma.sync",
             .launch = [this](cudaStream_t s) { att::mla_decode(args(1, false, false), s); }},
            {.name = "split_kv",
             .summary = "+ the context in splits filling the SMs, merged by their LSEs",
             .launch = [this](cudaStream_t s) { att::mla_decode(args(splits_, false, false), s); },
             .metrics = splits_of(&split_plan_)},
            {.name = "pipelined",
             .summary = "+ two page tiles in shared memory: the next page lands under this one's math",
             .launch = [this](cudaStream_t s) { att::mla_decode(args(splits_, true, false), s); },
             .metrics = splits_of(&piped_plan_)},
            {.name = "fp8_kv",
             .summary = "the same over FlashMLA's 656-byte FP8 pages, dequantized in shared memory",
             .launch = [this](cudaStream_t s) { att::mla_decode(args(splits_, true, true), s); },
             .metrics = [this](double ms, std::map<std::string, double>& out) {
               out["splits"] = fp8_plan_.split.num_splits;
               out["kv_read_gbps"] = fp8_bytes_ / (ms * 1e-3) / 1e9;
             }}};
  }

  void setup(aipe::Context& ctx) override {
    batch_ = int(ctx.size("batch"));
    context_ = int(ctx.size("context"));
    heads_ = int(ctx.size("heads"));
    q_len_ = int(ctx.size("q_len"));
    splits_ = int(ctx.size("splits"));
    const cudaStream_t st = ctx.stream();

    contexts_.resize(batch_);
    const int lo = std::max(1, context_ / 2);
    sum_ctx_ = 0;
    int used = 0;
    for (int b = 0; b < batch_; ++b) {
      contexts_[b] = lo + int(aipe::bits_at(aipe::sub_seed(ctx.seed(), 1), b) % unsigned(context_ - lo + 1));
      sum_ctx_ += contexts_[b];
      used += (contexts_[b] + kPage - 1) / kPage;
    }
    max_pages_ = (context_ + kPage - 1) / kPage;
    num_pages_ = used;
    std::vector<int> perm(used);
    std::iota(perm.begin(), perm.end(), 0);
    std::mt19937 rng{static_cast<unsigned>(aipe::sub_seed(ctx.seed(), 2))};
    std::shuffle(perm.begin(), perm.end(), rng);
    std::vector<int> table(std::size_t(batch_) * max_pages_, 0);
    for (int b = 0, next = 0; b < batch_; ++b)
      for (int i = 0; i < (contexts_[b] + kPage - 1) / kPage; ++i) table[std::size_t(b) * max_pages_ + i] = perm[next++];
    att::check_block_table(table, contexts_, max_pages_, kPage, num_pages_);
    table_ = aipe::DeviceBuffer<int>(table.size());
    ctx_ = aipe::DeviceBuffer<int>(batch_);
    AIPE_CUDA(cudaMemcpyAsync(table_.get(), table.data(), table_.bytes(), cudaMemcpyHostToDevice, st));
    AIPE_CUDA(cudaMemcpyAsync(ctx_.get(), contexts_.data(), ctx_.bytes(), cudaMemcpyHostToDevice, st));

    const std::size_t tokens = std::size_t(num_pages_) * kPage;
    kv_ = aipe::DeviceBuffer<bf16>(tokens * kD);
    aipe::fill_uniform(kv_.get(), kv_.size(), aipe::sub_seed(ctx.seed(), 3), -1.f, 1.f, st);
    kv8_ = aipe::DeviceBuffer<unsigned char>(tokens * att::kMlaFp8TokenBytes);
    att::quantize_mla_fp8(kv_.get(), kv8_.get(), std::int64_t(tokens), st);
    const std::size_t rows = std::size_t(batch_) * q_len_ * heads_;
    q_ = aipe::DeviceBuffer<bf16>(rows * kD);
    aipe::fill_uniform(q_.get(), q_.size(), aipe::sub_seed(ctx.seed(), 4), -1.f, 1.f, st);
    out_ = aipe::DeviceBuffer<bf16>(rows * kDv);
    ctx.output(out_.get(), out_.bytes());

    ref_ = aipe::DeviceBuffer<float>(rows * kDv);
    const std::size_t smem = (std::size_t(context_) + 8) * sizeof(float);
    int dev = 0, optin = 0;
    AIPE_CUDA(cudaGetDevice(&dev));
    AIPE_CUDA(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    if (smem > std::size_t(optin))
      throw aipe::BadInput("ch18/mla_decode: the reference keeps a row's scores in shared memory; context " +
                           std::to_string(context_) + " does not fit");
    AIPE_CUDA(cudaFuncSetAttribute(reference_mla, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    reference_mla<<<dim3(unsigned(q_len_ * heads_), unsigned(batch_)), 256, smem, st>>>(naive_params(), ref_.get());
    AIPE_CHECK_LAUNCH();

    split_plan_ = att::mla_decode_plan(args(splits_, false, false));
    piped_plan_ = att::mla_decode_plan(args(splits_, true, false));
    fp8_plan_ = att::mla_decode_plan(args(splits_, true, true));
    ws_ = aipe::DeviceBuffer<unsigned char>(std::max(
        {split_plan_.workspace_bytes, piped_plan_.workspace_bytes, fp8_plan_.workspace_bytes, std::size_t(16)}));
    fp8_bytes_ = double(sum_ctx_) * att::kMlaFp8TokenBytes + double(rows) * (kD + kDv) * 2;
    AIPE_CUDA(cudaStreamSynchronize(st));
  }

  aipe::Work work() const override {
    const double rows = double(batch_) * q_len_ * heads_;
    const double bytes = double(sum_ctx_) * kD * 2 + rows * (kD + kDv) * 2;
    // Visible keys summed over rows: each sequence's row of token qi sees ctx - q_len + qi + 1 keys.
    double keys = 0;
    for (int c : contexts_)
      for (int qi = 0; qi < q_len_; ++qi) keys += double(heads_) * std::max(0, c - q_len_ + qi + 1);
    return {bytes, 2.0 * (kD + kDv) * keys, aipe::ComputeUnit::bf16};
  }

  aipe::VerifyResult verify(aipe::Context& ctx) override {
    const bool fp8 = ctx.variant() == "fp8_kv";
    const aipe::Tolerance tol = fp8 ? aipe::Tolerance{.abs = 1e-2, .rel = 1e-1, .norm_rel = 5e-2}
                                    : aipe::Tolerance{.abs = 3e-3, .rel = 2e-2, .norm_rel = 1e-2};
    return aipe::compare_on_device(out_.size(), out_.get(), ref_.get(), tol, ctx.stream());
  }

 private:
  NaiveParams naive_params() const {
    return {.q = q_.get(),
            .out = out_.get(),
            .kv = kv_.get(),
            .table = table_.get(),
            .ctx = ctx_.get(),
            .max_pages = max_pages_,
            .q_len = q_len_,
            .heads = heads_,
            .scale_log2 = kLog2e / std::sqrt(float(kD))};
  }

  void launch_naive(cudaStream_t s) {
    naive_mla<<<dim3(unsigned(q_len_ * heads_), unsigned(batch_)), kThreads, 0, s>>>(naive_params());
    AIPE_CHECK_LAUNCH();
  }

  att::MlaDecodeArgs args(int splits, bool pipelined, bool fp8) {
    att::MlaDecodeArgs a;
    a.q = q_.get();
    a.out = out_.get();
    a.kv = fp8 ? static_cast<const void*>(kv8_.get()) : static_cast<const void*>(kv_.get());
    a.format = fp8 ? att::MlaKvFormat::fp8_flashmla : att::MlaKvFormat::bf16;
    a.num_pages = num_pages_;
    a.block_table = table_.get();
    a.max_pages_per_seq = max_pages_;
    a.context_lens = ctx_.get();
    a.batch = batch_;
    a.q_len = q_len_;
    a.heads = heads_;
    a.max_context = context_;
    a.total_context = sum_ctx_;
    a.workspace = ws_.get();
    a.workspace_bytes = ws_.bytes();
    a.schedule = {.num_splits = splits, .pipelined = pipelined};
    return a;
  }

  int batch_ = 0, context_ = 0, heads_ = 0, q_len_ = 0, splits_ = 0, max_pages_ = 0, num_pages_ = 0;
  long long sum_ctx_ = 0;
  std::vector<int> contexts_;
  att::MlaDecodePlan split_plan_{}, piped_plan_{}, fp8_plan_{};
  double fp8_bytes_ = 0;
  aipe::DeviceBuffer<int> table_, ctx_;
  aipe::DeviceBuffer<bf16> kv_, q_, out_;
  aipe::DeviceBuffer<float> ref_;
  aipe::DeviceBuffer<unsigned char> kv8_, ws_;
};

}  // namespace

AIPE_REGISTER_EXAMPLE(MlaDecode);
