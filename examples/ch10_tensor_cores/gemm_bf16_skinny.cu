// ch10/gemm_bf16_skinny: the decode-shaped GEMM of LLM inference, C = A * W^T with few rows of A
// (tokens, M = 16..256) and a large weight W (N x K = 4096..16384 squared), BF16 in, FP32 accumulate,
// BF16 out, against cuBLAS / cuBLASLt.
//
// Layouts (as in ch10/gemm_bf16): A is M x K row-major, W is N x K row-major (K-major; the K x N operand
// in column-major), C is M x N row-major.
//
// Why a separate kernel: a 128 x 256 output tile (the square GEMM's) covers all of M = 16 with 87% of
// its rows empty, and N / 256 tiles give 32 CTAs for N = 8192: a quarter of the SMs stream the weights.
// The problem is memory bound (at M = 64, N = K = 8192: 134 MB of weights for 8.6 GFLOP, 64 FLOP/byte,
// under the H100's ridge of ~295), so what matters is keeping every SM's memory pipe full.
//
// Ladder:
//   1 swap_ab          C^T = W * A^T: the weight rows fill WGMMA's M = 64 side (two consumer warpgroups,
//                      128 rows of W per CTA), the few tokens ride on WGMMA's N side (M rounded up to
//                      64 / 128 / 256; TMA zero-fills the missing rows, so they cost no DRAM bytes).
//                      Warp-specialized: one TMA producer, an mbarrier ring of up to 8 stages.
//   2 swap_ab_split_k  the same kernel with K split across CTAs so that the grid covers every SM
//                      (splits = ceil(SMs / CTAs along N)); FP32 partial tiles then one small kernel that
//                      sums them and rounds to BF16. The partials are extra traffic the rung pays for
//                      (not counted in the work model, which holds the minimum bytes).
//   3 cluster_multicast
//                      rung 2 in clusters of 2 CTAs along N. Every CTA needs the same token tile (all M
//                      rows, the same K step); each CTA of a pair loads half of its rows and multicasts it
//                      into both CTAs' shared memory (TMA .multicast::cluster), so the tokens cross
//                      L2 -> SM once per pair. At M = 256 the token tile is twice the W tile, so a CTA's
//                      bytes per K step fall from 48 to 32 KiB. A slot is refilled only when the consumers
//                      of both CTAs released it (remote mbarrier arrives).
//   4 split_k_dsmem    K in two halves on a cluster of 2 CTAs (same 128 rows of W), summed through
//                      distributed shared memory: the CTA that does not own a warp's rows writes that warp's
//                      FP32 fragment into the owner's idle ring (map_shared_rank), a cluster barrier, the
//                      owner adds and stores BF16. Rung 2's FP32 partials never reach global memory and its
//                      second kernel goes away; the price is a fixed split of 2 (grid 2 x N / 128: one wave
//                      up to N = 8448 on 132 SMs, two above).
//   cublas             cublasGemmEx (BF16 in, FP32 compute)
//   cublaslt           cublasLtMatmul, top heuristic, 32 MiB workspace
//
// Napkin math: bytes = 2 (MK + NK + MN), dominated by the weight's 2NK; flops = 2MNK. At ~3 TB/s the
// weight of N = K = 8192 takes ~45 us: that is the bar, whatever M is up to ~256.
// Inputs, reference and tolerance, work model and the cuBLAS / cuBLASLt rungs: gemm_bf16_common.cuh,
// shared with ch10/gemm_bf16 (there B is the weight W: N x K row-major).
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include <cooperative_groups.h>

#include "aipe/kernels/launch.cuh"
#include "aipe/kernels/pipeline.cuh"
#include "aipe/kernels/ptx.cuh"
#include "aipe/kernels/tma.hpp"
#include "aipe/kernels/wgmma.cuh"
#include "gemm_bf16_common.cuh"

namespace {

namespace cg = cooperative_groups;
using aipe::ch10::bf16;
namespace kn = aipe::kernels;
constexpr CUtensorMapDataType kBf16 = CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;

constexpr int SK_BK = 64;        // one 128-byte swizzled row of BF16
constexpr int SK_BN = 128;       // rows of W per CTA: two consumer warpgroups of 64
constexpr int SK_W_BYTES = SK_BN * SK_BK * 2;
constexpr int SK_SMEM_BUDGET = 200 * 1024;
constexpr int kDsmemSplits = 2;  // split_k_dsmem: K halves on the two CTAs of a cluster (the kernel's owner = warp / 2)

template <int MP>
struct SkinnyCfg {
  static constexpr int A_BYTES = MP * SK_BK * 2;
  static constexpr int STAGE_BYTES = SK_W_BYTES + A_BYTES;
  static constexpr int STAGES = std::min(8, SK_SMEM_BUDGET / STAGE_BYTES);
  static constexpr std::size_t SMEM = 1024 + static_cast<std::size_t>(STAGES) * STAGE_BYTES + 2 * STAGES * 8;
};

// grid: (ceil(N / 128), splits). CTA (x, y) computes C^T rows [128x, 128x + 128) over K tiles
// [y * kt_per_split, (y + 1) * kt_per_split). splits == 1: BF16 straight into C; else FP32 partials
// into P[y][m][n]. CM = 2: clusters of 2 CTAs along x (grid.x even; a CTA past N loads zeros and stores
// nothing) share the token tile: `tma_a` then has boxes of MP / 2 rows, CTA r of the pair loads rows
// [r MP/2, (r+1) MP/2) and multicasts them into both.
// DS (split K summed in distributed shared memory): grid (2, ceil(N / 128)) in clusters of 2 along x; CTA
// (r, y) computes C^T rows [128y, 128y + 128) over the r-th half of the K tiles. Then each CTA finishes
// half of the rows: warps 0-1 of both consumer warpgroups belong to CTA 0, warps 2-3 to CTA 1. A warp
// that does not own its rows writes its FP32 fragment into the owner's shared memory (the ring, idle by
// then) through the cluster's shared-memory window (map_shared_rank); after a cluster barrier the owner
// adds it to its own and stores BF16. No partials in global memory and no second kernel.
template <int MP, int CM = 1, bool DS = false>
__global__ void __launch_bounds__(384, 1) gemm_swap_ab(const __grid_constant__ CUtensorMap tma_w,
                                                       const __grid_constant__ CUtensorMap tma_a, bf16* C,
                                                       float* P, int M, int N, int K, int kt_per_split) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using Cfg = SkinnyCfg<MP>;
  extern __shared__ unsigned char smem_raw[];
  unsigned char* smem =
      reinterpret_cast<unsigned char*>((reinterpret_cast<std::uintptr_t>(smem_raw) + 1023) & ~std::uintptr_t(1023));
  auto sW = [&](int s) { return smem + s * Cfg::STAGE_BYTES; };
  auto sA = [&](int s) { return smem + s * Cfg::STAGE_BYTES + SK_W_BYTES; };
  const kn::Pipeline<Cfg::STAGES> pipe(reinterpret_cast<std::uint64_t*>(smem + Cfg::STAGES * Cfg::STAGE_BYTES));
  using State = kn::PipelineState<Cfg::STAGES>;
  const int wg = threadIdx.x / 128;
  const int split = DS ? blockIdx.x : blockIdx.y;  // DS: also the CTA's rank in its cluster
  const int n0 = (DS ? blockIdx.y : blockIdx.x) * SK_BN;
  const int ktiles = (K + SK_BK - 1) / SK_BK;
  const int kt0 = split * kt_per_split, kt1 = min(ktiles, kt0 + kt_per_split);
  static_assert(CM == 1 || CM == 2, "pairs of CTAs share the token tile");
  static_assert(!(DS && CM > 1), "a cluster either shares the token tile or sums the K halves");
  const int rank = CM > 1 ? int(kn::cluster_ctarank()) : 0;

  if (threadIdx.x == 0) {
    kn::tma_prefetch_descriptor(&tma_w);
    kn::tma_prefetch_descriptor(&tma_a);
    pipe.init(1, 2 * CM);  // empty: one arrive per consumer warpgroup of every CTA of the cluster
    kn::fence_barrier_init();
  }
  if constexpr (CM > 1) kn::cluster_sync();  // the peer's barriers exist before any multicast or remote arrive
  else __syncthreads();

  if (wg == 0) {
    kn::setmaxnreg_dec<40>();
    if (threadIdx.x == 0) {
      State st;
      for (int kt = kt0; kt < kt1; ++kt) {
        const int s = st.index;
        pipe.producer_acquire(st);
        pipe.producer_expect_tx(st, Cfg::STAGE_BYTES);
        std::uint64_t* bar = pipe.full_bar(st);
        kn::tma_load_2d(sW(s), &tma_w, bar, kt * SK_BK, n0);
        // A rows [0, MP): a box of at most 256 rows; rows >= M are zero-filled. The full barrier expects
        // the whole token tile either way: with CM = 2 the peer's multicast delivers the other half.
        if constexpr (CM == 1) kn::tma_load_2d(sA(s), &tma_a, bar, kt * SK_BK, 0);
        else kn::tma_load_2d_multicast(sA(s) + rank * (MP / 2) * 128, &tma_a, bar, kt * SK_BK, rank * (MP / 2), 0x3);
        st.advance();
      }
    }
    if constexpr (DS) {  // the consumers' two cluster barriers count every thread of both CTAs
      kn::cluster_sync();
      kn::cluster_sync();
    }
  } else {
    kn::setmaxnreg_inc<232>();
    // A slot goes back to the producer of every CTA that wrote into it.
    auto release = [&](int slot) { pipe.template consumer_release<CM>(slot); };
    const int c = wg - 1;
    float acc[MP / 2];
#pragma unroll
    for (int i = 0; i < MP / 2; ++i) acc[i] = 0.f;
    State st;
    int prev = -1;
    for (int kt = kt0; kt < kt1; ++kt) {
      const int s = st.index;
      pipe.consumer_wait(st);
      kn::fence_regs(acc);
      kn::wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < SK_BK / 16; ++kk)
        kn::wgmma_ss<MP>(acc, kn::wgmma_desc_sw128(sW(s) + c * 64 * 128) + 2 * kk,
                         kn::wgmma_desc_sw128(sA(s)) + 2 * kk, 1);
      kn::wgmma_commit();
      kn::wgmma_wait<1>();
      kn::fence_regs(acc);
      if (prev >= 0 && threadIdx.x % 128 == 0) release(prev);
      prev = s;
      st.advance();
    }
    kn::wgmma_wait<0>();
    kn::fence_regs(acc);
    if (prev >= 0 && threadIdx.x % 128 == 0) release(prev);
    // Fragment of C^T: d[4j + 2h + e] is W row (n) 16*warp + lane/4 + 8h, token (m) 8j + 2*(lane%4) + e.
    const int t = threadIdx.x % 128;
    const int n = n0 + c * 64 + 16 * (t / 32) + (t % 32) / 4;
    const int m = 2 * (t % 4);
    float* part = !DS && gridDim.y > 1 ? P + static_cast<std::size_t>(blockIdx.y) * M * N : nullptr;
    auto store = [&] {
#pragma unroll
      for (int j = 0; j < MP / 8; ++j)
#pragma unroll
        for (int h = 0; h < 2; ++h)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int row = m + 8 * j + e, col = n + 8 * h;
            if (row < M && col < N) {
              const std::size_t idx = static_cast<std::size_t>(row) * N + col;
              if (part) part[idx] = acc[4 * j + 2 * h + e];
              else C[idx] = __float2bfloat16_rn(acc[4 * j + 2 * h + e]);
            }
          }
    };
    if constexpr (DS) {
      // Warp w's rows belong to CTA w / 2. The exchange buffer (float4 [consumer][warp % 2][MP / 8][lane],
      // 256 MP bytes) overlays the ring, which every CTA of the cluster has finished reading at barrier 1.
      static_assert(256 * MP <= Cfg::STAGES * Cfg::STAGE_BYTES, "the exchange buffer fits in the ring");
      static_assert(kDsmemSplits == 2, "the rows are split between the two CTAs of a cluster by warp / 2");
      const int warp = t / 32, lane = t % 32, owner = warp / 2;
      const int slot = (c * 2 + warp % 2) * (MP / 8);
      kn::cluster_sync();  // 1: both CTAs are done with their rings
      if (owner != split) {
        float4* dst = reinterpret_cast<float4*>(cg::this_cluster().map_shared_rank(smem, owner)) + slot * 32 + lane;
#pragma unroll
        for (int i = 0; i < MP / 8; ++i)
          dst[i * 32] = make_float4(acc[4 * i], acc[4 * i + 1], acc[4 * i + 2], acc[4 * i + 3]);
      }
      kn::cluster_sync();  // 2: the halves have arrived (release / acquire at cluster scope)
      if (owner == split) {
        const float4* src = reinterpret_cast<const float4*>(smem) + slot * 32 + lane;
#pragma unroll
        for (int i = 0; i < MP / 8; ++i) {
          const float4 v = src[i * 32];
          acc[4 * i] += v.x;
          acc[4 * i + 1] += v.y;
          acc[4 * i + 2] += v.z;
          acc[4 * i + 3] += v.w;
        }
        store();
      }
    } else {
      store();
    }
  }
  // No CTA may leave while its peer can still multicast into its shared memory or arrive on its barriers.
  if constexpr (CM > 1) kn::cluster_sync();
#else
  (void)C; (void)P; (void)M; (void)N; (void)K; (void)kt_per_split;
  __trap();
#endif
}

// Sums the split-K partials P[s][i] and rounds to BF16.
__global__ void reduce_splits(const float* __restrict__ P, bf16* __restrict__ C, std::size_t mn, int splits) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < mn;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    float acc = 0.f;
    for (int s = 0; s < splits; ++s) acc += P[s * mn + i];
    C[i] = __float2bfloat16_rn(acc);
  }
}

class GemmBf16Skinny final : public aipe::ch10::Bf16GemmProblem {
 public:
  aipe::ExampleInfo info() const override {
    return {"ch10/gemm_bf16_skinny",
            "Decode-shaped BF16 GEMM (M = 16..256 tokens): swap A and B for WGMMA, split K, share tokens in clusters, vs cuBLAS",
            "With a handful of tokens a GEMM is a weight stream: the bytes of W set the time, not the FLOPs. The "
            "square GEMM's 128x256 tile wastes most of its rows and leaves most SMs idle. Swapping the operands "
            "(C^T = W A^T) puts the weight rows on WGMMA's 64-row side and the tokens on its narrow N side; "
            "splitting K across CTAs then gives every SM a share of the weight to stream, at the price of FP32 "
            "partial sums that a second small kernel adds up. At larger M every CTA also reloads the same token tile; "
            "CTA pairs in a cluster load half of it each and multicast it to both. Last, the two K halves of a "
            "cluster of 2 CTAs are summed through distributed shared memory, with no partials in global memory.",
            {{.name = "m",
              .def = 64,
              .quick = 32,
              .small = 37,
              .help = "tokens: rows of A and C (16..256 are decode shapes)",
              .min = 1,
              .max = 256},
             {.name = "n", .def = 8192, .quick = 4096, .small = 1000, .help = "rows of the weight W, columns of C"},
             {.name = "k", .def = 8192, .quick = 4096, .small = 1000, .help = "inner dimension", .min = 8, .max = 1 << 20}},
            {}};
  }

  std::vector<aipe::Variant> variants() override {
    using Out = std::map<std::string, double>;
    const auto ctas_n = [this] { return double((n_ + SK_BN - 1) / SK_BN); };
    return {{.name = "swap_ab",
             .summary = "W rows on WGMMA's M side, tokens on its N side; one CTA per 128 rows of W",
             .launch = [this](cudaStream_t s) { launch_swap_ab(s, 1); },
             .requires_ = {.sm90a = true},
             .skip_if = [this] { return tma_skip_; },
             .metrics = [ctas_n](double, Out& out) { out["ctas"] = ctas_n(); }},
            {.name = "swap_ab_split_k",
             .summary = "K split across CTAs to cover every SM; FP32 partials summed by a 2nd kernel",
             .launch = [this](cudaStream_t s) { launch_swap_ab(s, splits_); },
             .requires_ = {.sm90a = true},
             .skip_if = [this] { return tma_skip_; },
             .metrics =
                 [this, ctas_n](double, Out& out) {
                   out["ctas"] = ctas_n() * splits_;
                   out["k_splits"] = splits_;
                   out["partial_bytes"] = partial_bytes();
                 }},
            {.name = "cluster_multicast",
             .summary = "rung 2 in clusters of 2 CTAs along N that share the token tile through TMA multicast",
             .launch = [this](cudaStream_t s) { launch_multicast(s); },
             .requires_ = {.sm90a = true},
             .skip_if = [this] { return tma_skip_.empty() ? cluster_skip_ : tma_skip_; },
             .metrics =
                 [this](double, Out& out) {
                   out["ctas"] = double(pair_grid_x()) * splits_;
                   out["k_splits"] = splits_;
                   out["partial_bytes"] = partial_bytes();
                 }},
            {.name = "split_k_dsmem",
             .summary = "K in two halves on a cluster of 2 CTAs, summed through distributed shared memory: no "
                        "partials, no 2nd kernel",
             .launch = [this](cudaStream_t s) { launch_dsmem(s); },
             .requires_ = {.sm90a = true},
             .skip_if = [this] { return tma_skip_.empty() ? dsmem_skip_ : tma_skip_; },
             .metrics =
                 [ctas_n](double, Out& out) {
                   out["ctas"] = kDsmemSplits * ctas_n();
                   out["k_splits"] = kDsmemSplits;
                 }},
            cublas_rung(),
            cublaslt_rung()};
  }

  void setup(aipe::Context& ctx) override {
    setup_problem(ctx, "ch10/gemm_bf16_skinny");  // A, the weight (B), C, the reference, the library rungs
    mp_ = m_ <= 64 ? 64 : m_ <= 128 ? 128 : 256;

    // Split K so that (CTAs along N) x splits fills the SMs in one wave (one CTA per SM: the ring takes
    // ~200 KiB of shared memory), each split at least 4 K tiles.
    const std::int64_t ctas_n = (n_ + SK_BN - 1) / SK_BN, ktiles = (k_ + SK_BK - 1) / SK_BK;
    std::int64_t splits = std::max<std::int64_t>(1, ctx.device().sm_count / ctas_n);
    splits = std::min(splits, std::max<std::int64_t>(1, ktiles / 4));
    kt_per_split_ = static_cast<int>((ktiles + splits - 1) / splits);
    splits_ = static_cast<int>((ktiles + kt_per_split_ - 1) / kt_per_split_);  // no empty split
    ktiles_ = static_cast<int>(ktiles);
    partial_ = aipe::DeviceBuffer<float>(splits_ > 1 ? static_cast<std::size_t>(splits_ * m_ * n_) : 0);

    tma_skip_.clear();
    cluster_skip_.clear();
    dsmem_skip_.clear();
    if (k_ % 8) tma_skip_ = "TMA needs 16-byte aligned rows: K % 8 == 0";
    if (tma_skip_.empty() && AIPE_HAVE_SM90A && ctx.device().cc() >= 90) {
      tma_w_ = kn::matrix_map(kBf16, b_.get(), n_, k_, k_, SK_BN, SK_BK);
      tma_a_ = kn::matrix_map(kBf16, a_.get(), m_, k_, k_, static_cast<std::uint32_t>(mp_), SK_BK);
      const std::size_t need = smem_bytes();
      if (ctx.device().smem_per_block_optin_bytes < need)
        tma_skip_ = "needs " + std::to_string(need) + " B of shared memory per block";
      else {
        // Rung 3: each CTA of a pair loads half of the token tile's rows.
        tma_a_half_ = kn::matrix_map(kBf16, a_.get(), m_, k_, k_, static_cast<std::uint32_t>(mp_ / 2), SK_BK);
        // Each instance may use the ring's shared memory; the cluster rungs need a pair of such CTAs to fit.
        auto allow = [](auto kernel, std::size_t smem) { kn::set_max_dynamic_smem(kernel, smem); };
        auto pair_skip = [](auto kernel, std::size_t smem) {
          return kn::cluster_occupancy(kernel, 384, smem, 2) < 1
                     ? std::string("no cluster of 2 CTAs with this kernel's shared memory fits on the device")
                     : std::string();
        };
        with_mp([&](auto mp) {
          constexpr int MP = decltype(mp)::value;
          constexpr std::size_t smem = SkinnyCfg<MP>::SMEM;
          allow(gemm_swap_ab<MP>, smem);
          allow(gemm_swap_ab<MP, 2>, smem);
          allow(gemm_swap_ab<MP, 1, true>, smem);
          cluster_skip_ = pair_skip(gemm_swap_ab<MP, 2>, smem);
          dsmem_skip_ = pair_skip(gemm_swap_ab<MP, 1, true>, smem);
        });
      }
    }
  }

 private:
  // DRAM traffic of the split rungs' FP32 partials (written once, read once), beyond the work model.
  double partial_bytes() const { return splits_ > 1 ? 8.0 * splits_ * double(m_) * double(n_) : 0.0; }
  // Calls f(std::integral_constant<int, MP>) with the token-tile height this problem uses (64, 128 or
  // 256 rows): the one place that maps mp_ to a kernel instance.
  template <class F>
  void with_mp(F&& f) const {
    if (mp_ == 64) f(std::integral_constant<int, 64>{});
    else if (mp_ == 128) f(std::integral_constant<int, 128>{});
    else f(std::integral_constant<int, 256>{});
  }

  std::size_t smem_bytes() const {
    std::size_t bytes = 0;
    with_mp([&](auto mp) { bytes = SkinnyCfg<decltype(mp)::value>::SMEM; });
    return bytes;
  }
  // CTAs along N, rounded up to whole pairs.
  unsigned pair_grid_x() const { return static_cast<unsigned>(((n_ + SK_BN - 1) / SK_BN + 1) / 2 * 2); }

  // Rung 3: rung 2's split and reduction, the GEMM kernel in clusters of 2 along N.
  void launch_multicast(cudaStream_t s) {
    const dim3 grid(pair_grid_x(), static_cast<unsigned>(splits_));
    float* P = splits_ > 1 ? partial_.get() : nullptr;
    const int M = int(m_), N = int(n_), K = int(k_), kps = splits_ > 1 ? kt_per_split_ : ktiles_;
    with_mp([&](auto mp) {
      constexpr int MP = decltype(mp)::value;
      kn::launch_in_clusters(gemm_swap_ab<MP, 2>, grid, 384, SkinnyCfg<MP>::SMEM, 2, s, tma_w_, tma_a_half_, c_.get(), P,
                             M, N, K, kps);
    });
    reduce(s, splits_);
  }

  // Rung 4: the swap_ab kernel on grid (2, CTAs along N) in clusters of 2, each CTA half of K.
  void launch_dsmem(cudaStream_t s) {
    const dim3 grid(kDsmemSplits, static_cast<unsigned>((n_ + SK_BN - 1) / SK_BN));
    const int M = int(m_), N = int(n_), K = int(k_), kps = (ktiles_ + kDsmemSplits - 1) / kDsmemSplits;
    with_mp([&](auto mp) {
      constexpr int MP = decltype(mp)::value;
      kn::launch_in_clusters(gemm_swap_ab<MP, 1, true>, grid, 384, SkinnyCfg<MP>::SMEM, kDsmemSplits, s, tma_w_, tma_a_, c_.get(),
                             static_cast<float*>(nullptr), M, N, K, kps);
    });
  }

  void reduce(cudaStream_t s, int splits) {
    if (splits > 1) {
      const std::size_t mn = static_cast<std::size_t>(m_ * n_);
      const int blocks = static_cast<int>(std::min<std::size_t>((mn + 255) / 256, 4096));
      reduce_splits<<<blocks, 256, 0, s>>>(partial_.get(), c_.get(), mn, splits);
      AIPE_CHECK_LAUNCH();
    }
  }

  void launch_swap_ab(cudaStream_t s, int splits) {
    const int kps = splits > 1 ? kt_per_split_ : ktiles_;
    const dim3 grid(static_cast<unsigned>((n_ + SK_BN - 1) / SK_BN), static_cast<unsigned>(splits));
    float* P = splits > 1 ? partial_.get() : nullptr;
    const int M = int(m_), N = int(n_), K = int(k_);
    with_mp([&](auto mp) {
      constexpr int MP = decltype(mp)::value;
      gemm_swap_ab<MP><<<grid, 384, SkinnyCfg<MP>::SMEM, s>>>(tma_w_, tma_a_, c_.get(), P, M, N, K, kps);
    });
    AIPE_CHECK_LAUNCH();
    reduce(s, splits);
  }

  std::int64_t mp_ = 64;
  int splits_ = 1, kt_per_split_ = 1, ktiles_ = 1;
  aipe::DeviceBuffer<float> partial_;
  CUtensorMap tma_w_{}, tma_a_{}, tma_a_half_{};
  std::string tma_skip_, cluster_skip_, dsmem_skip_;
};

}  // namespace

AIPE_REGISTER_EXAMPLE(GemmBf16Skinny);
