// The problem both FP8 GEMM ladders solve (gemm_fp8.cu: per-tensor scales; gemm_fp8_blockwise.cu:
// DeepSeek-V3 1x128 / 128x128 block scales): inputs, scales, reference, tolerance, work model and the
// cuBLASLt rung. Each ladder file adds its rungs and its registration.
//
//   C[m, n] = sum_k  A8[m, k] * sa(m, k) * B8[n, k] * sb(n, k)       (FP32 accumulate, BF16 out)
//   A8: M x K row-major E4M3, B8: N x K row-major E4M3 (both K-major, as Hopper FP8 wgmma requires)
//   per-tensor: sa, sb are one float each; block: sa per (row, 128-wide K block), sb per 128x128 block
//
// Inputs: E4M3 codes rounded from uniform [-448, 448) (the full E4M3 range, what a quantizer emits);
// scales uniform in [0.25, 2) / 448 (per-tensor: fixed values of that size).
// Reference: float64 on the CPU from the regenerated, dequantized inputs when M N K <= 2^28;
// above that an FP32 cuBLAS SGEMM (pedantic math, no TF32) on FP32 copies of the dequantized
// operands, which are exact products of an E4M3 code and an FP32 scale up to one FP32 rounding.
// Tolerance: BF16 output (2^-8 relative rounding) plus the FP8 tensor cores' accumulation, which on
// Hopper keeps only ~14 mantissa bits of the running sum inside a wgmma chain (DeepSeek-V3, sec. 3.3.2).
// The absolute term is scaled to the output's RMS, since the error follows the size of the partial sums,
// not of an element that happens to cancel to ~0: 1% of the RMS with per-128 promotion (block scales);
// 4% with the whole K accumulated in the tensor cores (per-tensor, fast accumulation: cuBLASLt and our
// kernels miss the reference by the same amounts on the same elements, up to ~1.2% of the RMS on a
// dozen of 67M at 8192^3). Relative term 2e-2, norm bound 1e-2 for both (measured ~2.5e-3).
// Work: flops = 2 M N K; bytes = M K + N K (E4M3) + 2 M N (BF16) + the scales.
#pragma once
#include <cuda_fp8.h>

#include <algorithm>
#include <functional>
#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/cublas.hpp"
#include "aipe/example.hpp"
#include "aipe/kernels/fp8_dequant.hpp"
#include "aipe/kernels/gemm_fp8.cuh"
#include "aipe/kernels/tma.hpp"
#include "aipe/random.hpp"

namespace aipe::fp8 {

// The library's FP8 GEMM (aipe/kernels/gemm_fp8.cuh) and its policies, under the names the ladders use.
using kernels::fp8::BlockScaled;
using kernels::fp8::BlockScaled192;
using kernels::fp8::BlockScaledPipelined;
using kernels::fp8::BlockScaledWide;
using kernels::fp8::DirectStore;
using kernels::fp8::GemmArgs;
using kernels::fp8::GemmConfig;
using kernels::fp8::launch_gemm_ws;
using kernels::fp8::max_active_clusters;
using kernels::fp8::Scaling;
using kernels::fp8::StagedStore;
using kernels::fp8::StreamK;
using kernels::fp8::TensorScaled;
using kernels::fp8::TmaStore;
using kernels::fp8::TmaStoreOverlapped;

#if defined(__CUDACC__)
// CUDA-core reference rung: 64x64 tiles, each thread 4x4 outputs, E4M3 dequantized to FP32 (with its
// scales) on the way into shared memory.
template <Scaling S>
__global__ void __launch_bounds__(256) gemm_simt_kernel(const __nv_fp8_e4m3* __restrict__ A,
                                                        const __nv_fp8_e4m3* __restrict__ B, GemmArgs args) {
  constexpr int T = 64, TK = 32;
  __shared__ float As[TK][T + 4], Bs[TK][T + 4];
  const int M = args.M, N = args.N, K = args.K;
  const int m0 = blockIdx.y * T, n0 = blockIdx.x * T;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  float acc[4][4] = {};
  for (int k0 = 0; k0 < K; k0 += TK) {
    for (int e = threadIdx.x; e < T * TK; e += 256) {
      const int r = e / TK, k = e % TK, gk = k0 + k;
      float a = 0.f, b = 0.f;
      if (m0 + r < M && gk < K) {
        a = float(A[std::size_t(m0 + r) * K + gk]);
        if constexpr (S == Scaling::block) a *= args.sa[std::size_t(gk / 128) * M + m0 + r];
      }
      if (n0 + r < N && gk < K) {
        b = float(B[std::size_t(n0 + r) * K + gk]);
        if constexpr (S == Scaling::block) b *= args.sb[std::size_t((n0 + r) / 128) * args.ldsb + gk / 128];
      }
      As[k][r] = a;
      Bs[k][r] = b;
    }
    __syncthreads();
#pragma unroll 8
    for (int k = 0; k < TK; ++k) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) { a[i] = As[k][ty * 4 + i]; b[i] = Bs[k][tx * 4 + i]; }
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
  const float s = (S == Scaling::tensor) ? args.sa[0] * args.sb[0] : 1.f;
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) {
      const int r = m0 + ty * 4 + i, c = n0 + tx * 4 + j;
      if (r < M && c < N) args.C[std::size_t(r) * N + c] = __float2bfloat16_rn(acc[i][j] * s);
    }
}

template <Scaling S>
inline void launch_gemm_simt(const __nv_fp8_e4m3* A, const __nv_fp8_e4m3* B, const GemmArgs& g, cudaStream_t s) {
  const dim3 grid((g.N + 63) / 64, (g.M + 63) / 64);
  gemm_simt_kernel<S><<<grid, 256, 0, s>>>(A, B, g);
  AIPE_CHECK_LAUNCH();
}
#endif  // __CUDACC__

template <Scaling S>
class Fp8GemmProblem : public aipe::Example {
 public:
  static std::vector<aipe::Axis> axes() {
    return {{.name = "m", .def = 8192, .quick = 4096, .small = 333, .help = "rows of A and C (tokens)"},
            {.name = "n", .def = 8192, .quick = 4096, .small = 472, .help = "rows of B, columns of C (output features)"},
            {.name = "k",
             .def = 8192,
             .quick = 4096,
             .small = S == Scaling::block ? 512 : 208,
             .help = S == Scaling::block ? "inner dimension, a multiple of 128 (one scale per 128)"
                                         : "inner dimension, a multiple of 16 (TMA rows are 16-byte aligned)",
             .min = 16}};
  }

  void setup(aipe::Context& ctx) override {
    M_ = int(ctx.size("m"));
    N_ = int(ctx.size("n"));
    K_ = int(ctx.size("k"));
    if (K_ % 16 != 0) throw aipe::BadInput("k must be a multiple of 16 (E4M3 rows are TMA boxes with 16-byte strides), got " + std::to_string(K_));
    if (S == Scaling::block && K_ % 128 != 0)
      throw aipe::BadInput("k must be a multiple of 128 for 1x128 / 128x128 block scales, got " + std::to_string(K_));
    const int kb = (K_ + 127) / 128, nb = (N_ + 127) / 128;
    ldsb_ = kb;
    a_ = aipe::DeviceBuffer<__nv_fp8_e4m3>(std::size_t(M_) * K_);
    b_ = aipe::DeviceBuffer<__nv_fp8_e4m3>(std::size_t(N_) * K_);
    c_ = aipe::DeviceBuffer<__nv_bfloat16>(std::size_t(M_) * N_);
    const std::size_t nsa = S == Scaling::block ? std::size_t(kb) * M_ : 1;
    const std::size_t nsb = S == Scaling::block ? std::size_t(nb) * ldsb_ : 1;
    sa_ = aipe::DeviceBuffer<float>(nsa);
    sb_ = aipe::DeviceBuffer<float>(nsb);
    const auto seed_a = aipe::sub_seed(ctx.seed(), 1), seed_b = aipe::sub_seed(ctx.seed(), 2);
    const auto seed_sa = aipe::sub_seed(ctx.seed(), 3), seed_sb = aipe::sub_seed(ctx.seed(), 4);
    aipe::fill_uniform(a_.get(), a_.size(), seed_a, -448.f, 448.f, ctx.stream());
    aipe::fill_uniform(b_.get(), b_.size(), seed_b, -448.f, 448.f, ctx.stream());
    if (S == Scaling::block) {
      aipe::fill_uniform(sa_.get(), nsa, seed_sa, 0.25f / 448, 2.f / 448, ctx.stream());
      aipe::fill_uniform(sb_.get(), nsb, seed_sb, 0.25f / 448, 2.f / 448, ctx.stream());
    } else {
      const float sa = 1.5f / 448, sb = 0.75f / 448;
      AIPE_CUDA(cudaMemcpyAsync(sa_.get(), &sa, 4, cudaMemcpyHostToDevice, ctx.stream()));
      AIPE_CUDA(cudaMemcpyAsync(sb_.get(), &sb, 4, cudaMemcpyHostToDevice, ctx.stream()));
    }
    ctx.output(c_.get(), c_.bytes());
    args_.M = M_; args_.N = N_; args_.K = K_;
    args_.C = c_.get(); args_.sa = sa_.get(); args_.sb = sb_.get(); args_.ldsb = ldsb_;
    std::vector<float> hsa(nsa), hsb(nsb);
    AIPE_CUDA(cudaMemcpyAsync(hsa.data(), sa_.get(), nsa * 4, cudaMemcpyDeviceToHost, ctx.stream()));
    AIPE_CUDA(cudaMemcpyAsync(hsb.data(), sb_.get(), nsb * 4, cudaMemcpyDeviceToHost, ctx.stream()));
    AIPE_CUDA(cudaStreamSynchronize(ctx.stream()));

    constexpr int BN = S == Scaling::block ? 128 : 256;
    // E4M3 operands as bytes: 128-byte (128-element) K boxes, one swizzle row.
    constexpr auto kU8 = CU_TENSOR_MAP_DATA_TYPE_UINT8;
    tmap_a_ = kernels::matrix_map(kU8, a_.get(), M_, K_, K_, 128, 128);
    tmap_b_ = kernels::matrix_map(kU8, b_.get(), N_, K_, K_, BN, 128);
    tmap_b_half_ = kernels::matrix_map(kU8, b_.get(), N_, K_, K_, BN / 2, 128);  // each CTA of a pair loads half of B
    // C for the TMA-store epilogue: 64 x 64 BF16 boxes; TMA needs 16-byte rows (N % 8 == 0), otherwise the
    // kernel stores from registers and this map is never read.
    if (N_ % 8 == 0) tmap_c_ = kernels::matrix_map(CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, c_.get(), M_, N_, N_, 64, 64);
    tiles_ = ((M_ + 127) / 128) * ((N_ + BN - 1) / BN);
    units2_ = ((M_ + 255) / 256) * ((N_ + BN - 1) / BN);  // pairs of tiles stacked in M
    units2_256_ = ((M_ + 255) / 256) * ((N_ + 255) / 256);  // ... of 128 x 256 tiles
    sms_ = ctx.device().sm_count;
#if AIPE_HAVE_SM90A
    clusters_ = max_active_clusters<Main, DirectStore, 2>();
    clusters_staged_ = max_active_clusters<Main, StagedStore, 2>();
    clusters_tma_ = max_active_clusters<Main, TmaStore, 2>();
    if constexpr (S == Scaling::tensor) clusters_overlap_ = max_active_clusters<Main, TmaStoreOverlapped, 2>();
    if constexpr (S == Scaling::block) {
      clusters_pp_ = max_active_clusters<BlockScaledPipelined, TmaStore, 2>();
      clusters_wide_ = max_active_clusters<BlockScaledWide, TmaStore, 2>();
      clusters_192_ = max_active_clusters<BlockScaled192, TmaStore, 2>();
      units2_192_ = ((M_ + 255) / 256) * ((N_ + 191) / 192);
      tmap_b_96_ = kernels::matrix_map(kU8, b_.get(), N_, K_, K_, 96, 128);  // half of a 192-row B tile
    }
    clusters_sk_ = max_active_clusters<Main256, TmaStore, 2, StreamK>();
    // Stream-K: a 64 x 256 FP32 partial slot and a flag per consumer warpgroup of the grid (17 MB at 66
    // clusters); the flags are zero at rest (each reader clears the one it consumed).
    const std::size_t slots = std::size_t(std::max(clusters_sk_, 0)) * 2 * GemmConfig<256, S>::kConsumers;
    partials_ = aipe::DeviceBuffer<float>(std::max<std::size_t>(slots, 1) * 64 * 256);
    flags_ = aipe::DeviceBuffer<int>(std::max<std::size_t>(slots, 1));
    AIPE_CUDA(cudaMemsetAsync(flags_.get(), 0, flags_.bytes(), ctx.stream()));
    AIPE_CUDA(cudaStreamSynchronize(ctx.stream()));
#endif

    reference(ctx, hsa, hsb, seed_a, seed_b);
    setup_cublaslt(ctx);
  }

  aipe::Work work() const override {
    const double m = M_, n = N_, k = K_;
    return {m * k + n * k + 2 * m * n + 4.0 * (sa_.size() + sb_.size()), 2 * m * n * k, aipe::ComputeUnit::fp8};
  }

  aipe::VerifyResult verify(aipe::Context& ctx) override {
    std::vector<__nv_bfloat16> out = aipe::to_host(c_, ctx.stream());
    aipe::Tolerance tol = aipe::tolerance_for(aipe::DType::bf16);
    tol.abs = (S == Scaling::block ? 1e-2 : 4e-2) * ref_rms_;  // see the header: relative to the output's RMS
    auto r = aipe::compare(
        out.size(), [&](std::size_t i) { return double(__bfloat162float(out[i])); },
        [&](std::size_t i) { return double(ref_[i]); }, tol);
    r.note = ref_note_;
    return r;
  }

 protected:
  // The cuBLASLt rung: D^T = B8 . A8^T in cuBLAS's column-major terms (TRANSA = T, TRANSB = N).
  void run_cublaslt(cudaStream_t s) {
    const float alpha = 1.f, beta = 0.f;
    AIPE_CUBLAS(cublasLtMatmul(lt_, desc_, &alpha, b_.get(), la_, a_.get(), lb_, &beta, c_.get(), lc_, c_.get(), lc_,
                               &algo_, ws_.get(), ws_.size(), s));
  }
  std::string cublaslt_skip() const { return lt_reason_; }

  // The persistent cluster rungs: a grid of min(units, resident clusters) pairs of CTAs on vertically
  // adjacent tiles that share B through TMA multicast (`tb`: the box each CTA loads, half of B's tile),
  // tiles in bands of 8 rows.
  template <class Mainloop, class Epi = DirectStore>
  void run_pairs(const CUtensorMap& tb, int units, int clusters, cudaStream_t s) {
    auto g = args_;
    g.group_m = 8;
    launch_gemm_ws<Mainloop, Epi, 2>(tmap_a_, tb, tmap_c_, g, 2 * std::max(1, std::min(units, clusters)), s);
  }
  static std::string pairs_skip(int clusters) {
    return clusters < 1 ? "no cluster of 2 CTAs with this kernel's shared memory fits on the device" : "";
  }
  static constexpr int kBN = S == Scaling::block ? 128 : 256;
  // The mainloop of this ladder's 128 x kBN tiles: per-tensor scales, or 1x128 / 128x128 block scales.
  using Main = std::conditional_t<S == Scaling::tensor, TensorScaled<256>, BlockScaled>;
  void run_cluster(cudaStream_t s) { run_pairs<Main>(tmap_b_half_, units2_, clusters_, s); }
  // ... with the epilogue staged through shared memory (16-byte stores).
  void run_staged(cudaStream_t s) { run_pairs<Main, StagedStore>(tmap_b_half_, units2_, clusters_staged_, s); }
  // ... with the epilogue handed to TMA stores (the warpgroups do not wait for global memory).
  void run_tma_epilogue(cudaStream_t s) { run_pairs<Main, TmaStore>(tmap_b_half_, units2_, clusters_tma_, s); }
  // Per-tensor only: the TMA-store epilogue one tile later, under the next tile's first K block.
  void run_epilogue_overlap(cudaStream_t s) {
    if constexpr (S == Scaling::tensor) run_pairs<Main, TmaStoreOverlapped>(tmap_b_half_, units2_, clusters_overlap_, s);
    else throw std::logic_error("the overlapped epilogue exists for per-tensor scales only");
  }
  // The 128 x 256-tile rungs the K serpentine and stream-K build on: per-tensor, rung 7 (the overlapped
  // epilogue); block scales, tile_128x256 (the overlapped epilogue is per-tensor only). Each CTA of a pair
  // multicasts one 128-row half of B: tmap_b_half_'s box per-tensor (BN 256), tmap_b_'s with block scales (BN 128).
  using Main256 = std::conditional_t<S == Scaling::tensor, TensorScaled<256>, BlockScaledWide>;
  using Epi256 = std::conditional_t<S == Scaling::tensor, TmaStoreOverlapped, TmaStore>;
  const CUtensorMap& b_half256() const { return S == Scaling::tensor ? tmap_b_half_ : tmap_b_; }
  int clusters256() const { return S == Scaling::tensor ? clusters_overlap_ : clusters_wide_; }
  // The 128 x 256-tile rung with the K serpentine (odd waves walk K backward; GemmArgs::k_serpentine).
  void run_k_serpentine(cudaStream_t s) {
    auto g = args_;
    g.group_m = 8;
    g.k_serpentine = true;
    launch_gemm_ws<Main256, Epi256, 2>(tmap_a_, b_half256(), tmap_c_, g, 2 * std::max(1, std::min(units2_256_, clusters256())), s);
  }
  // The 128 x 256-tile mainloop with the TMA-store epilogue and a stream-K tail. Every resident cluster runs
  // (also when there are fewer units than clusters: then every unit's K is cut between clusters).
  void run_stream_k(cudaStream_t s) {
    auto g = args_;
    g.group_m = 8;
    g.partials = partials_.get();
    g.flags = flags_.get();
    launch_gemm_ws<Main256, TmaStore, 2, StreamK>(tmap_a_, b_half256(), tmap_c_, g, 2 * clusters_sk_, s);
  }
  // Block scales only: the TMA-epilogue rung with pipelined promotion (K block kb+1 on the tensor cores while
  // K block kb is promoted on the CUDA cores), and the 128x256-tile rung (two weight blocks per tile,
  // promoted one half at a time; each CTA of a pair multicasts one 128-row half of B: tmap_b_'s box).
  void run_pipelined_promotion(cudaStream_t s) {
    if constexpr (S == Scaling::block) run_pairs<BlockScaledPipelined, TmaStore>(tmap_b_half_, units2_, clusters_pp_, s);
    else throw std::logic_error("pipelined promotion exists for block scales only");
  }
  void run_wide_tile(cudaStream_t s) {
    if constexpr (S == Scaling::block) run_pairs<BlockScaledWide, TmaStore>(tmap_b_, units2_256_, clusters_wide_, s);
    else throw std::logic_error("the 128x256-tile block-scaled rung exists for block scales only");
  }
  // Block scales only: rung 8's schedule on 128x192 tiles (one and a half weight blocks; each CTA of a pair
  // multicasts 96 rows of B).
  void run_tile_192(cudaStream_t s) {
    if constexpr (S == Scaling::block) run_pairs<BlockScaled192, TmaStore>(tmap_b_96_, units2_192_, clusters_192_, s);
    else throw std::logic_error("the 128x192-tile block-scaled rung exists for block scales only");
  }
  std::string cluster_skip() const { return pairs_skip(clusters_); }

  // A tensor-core rung: needs sm_90a code; `skip` (if any) says why it cannot run on this device.
  static aipe::Variant hopper(std::string name, std::string summary, std::function<void(cudaStream_t)> run,
                              std::function<std::string()> skip = {}) {
    return {.name = std::move(name),
            .summary = std::move(summary),
            .launch = std::move(run),
            .requires_ = {.sm90a = true},
            .skip_if = std::move(skip)};
  }
  // The rungs both ladders share, in ladder order: CUDA cores; one CTA per tile; persistent; clusters of 2;
  // the two epilogues through shared memory. Summaries that differ between the ladders are the arguments.
  std::vector<aipe::Variant> shared_rungs(const char* simt_summary, const char* ws_name, const char* ws_summary,
                                          const char* pers_summary, const char* clus_summary) {
    return {{.name = "simt",
             .summary = simt_summary,
             .launch = [this](cudaStream_t s) { launch_gemm_simt<S>(a_.get(), b_.get(), args_, s); },
             .budget_s = 1},  // ~0.3 s a run at 8192^3: a few samples tell the story
            hopper(ws_name, ws_summary, [this](cudaStream_t s) { run_single(0, tiles_, s); }),
            hopper("persistent", pers_summary, [this](cudaStream_t s) { run_single(8, std::min(tiles_, sms_), s); }),
            hopper("cluster_multicast", clus_summary, [this](cudaStream_t s) { run_cluster(s); },
                   [this] { return cluster_skip(); }),
            hopper("staged_epilogue", "epilogue through shared memory: 16-byte coalesced stores of whole row segments",
                   [this](cudaStream_t s) { run_staged(s); }, [this] { return staged_skip(); }),
            hopper("tma_epilogue",
                   "epilogue through shared memory and TMA stores: the warpgroups do not wait for global memory",
                   [this](cudaStream_t s) { run_tma_epilogue(s); }, [this] { return tma_epilogue_skip(); })};
  }
  // One CTA per tile (grid = tiles, row-by-row order) or a persistent grid (bands of `group_m` tile rows).
  void run_single(int group_m, int grid, cudaStream_t s) {
    auto g = args_;
    g.group_m = group_m;
    launch_gemm_ws<Main>(tmap_a_, tmap_b_, tmap_c_, g, grid, s);
  }
  std::string staged_skip() const { return pairs_skip(clusters_staged_); }
  std::string tma_epilogue_skip() const { return pairs_skip(clusters_tma_); }
  std::string epilogue_overlap_skip() const { return pairs_skip(clusters_overlap_); }
  std::string k_serpentine_skip() const { return pairs_skip(clusters256()); }
  std::string stream_k_skip() const { return pairs_skip(clusters_sk_); }
  std::string pipelined_promotion_skip() const { return pairs_skip(clusters_pp_); }
  std::string wide_tile_skip() const { return pairs_skip(clusters_wide_); }
  std::string tile_192_skip() const { return pairs_skip(clusters_192_); }

  int M_ = 0, N_ = 0, K_ = 0, ldsb_ = 0, tiles_ = 0, units2_ = 0, sms_ = 0, clusters_ = 0, clusters_staged_ = 0, clusters_tma_ = 0, clusters_overlap_ = 0, clusters_sk_ = 0, clusters_pp_ = 0,
      clusters_wide_ = 0, units2_256_ = 0, clusters_192_ = 0, units2_192_ = 0;
  aipe::DeviceBuffer<__nv_fp8_e4m3> a_, b_;
  aipe::DeviceBuffer<__nv_bfloat16> c_;
  aipe::DeviceBuffer<float> sa_, sb_;
  aipe::DeviceBuffer<float> partials_;  // stream-K partial tiles
  aipe::DeviceBuffer<int> flags_;       // stream-K hand-over flags
  GemmArgs args_;
  CUtensorMap tmap_a_{}, tmap_b_{}, tmap_b_half_{}, tmap_b_96_{}, tmap_c_{};

 private:
  void reference(aipe::Context& ctx, const std::vector<float>& hsa, const std::vector<float>& hsb,
                 std::uint64_t seed_a, std::uint64_t seed_b) {
    const std::size_t mn = std::size_t(M_) * N_;
    ref_.assign(mn, 0.f);
    auto scale_a = [&](int m, int k) { return S == Scaling::block ? hsa[std::size_t(k / 128) * M_ + m] : hsa[0]; };
    auto scale_b = [&](int n, int k) { return S == Scaling::block ? hsb[std::size_t(n / 128) * ldsb_ + k / 128] : hsb[0]; };
    if (double(M_) * N_ * K_ <= double(1 << 28)) {
      ref_note_ = "reference: float64 on the CPU";
      std::vector<double> A(std::size_t(M_) * K_), B(std::size_t(N_) * K_);
      for (int m = 0; m < M_; ++m)
        for (int k = 0; k < K_; ++k)
          A[std::size_t(m) * K_ + k] =
              double(float(__nv_fp8_e4m3(aipe::uniform_at(seed_a, std::size_t(m) * K_ + k, -448.f, 448.f)))) * scale_a(m, k);
      for (int n = 0; n < N_; ++n)
        for (int k = 0; k < K_; ++k)
          B[std::size_t(n) * K_ + k] =
              double(float(__nv_fp8_e4m3(aipe::uniform_at(seed_b, std::size_t(n) * K_ + k, -448.f, 448.f)))) * scale_b(n, k);
      for (int m = 0; m < M_; ++m)
        for (int n = 0; n < N_; ++n) {
          double acc = 0;
          const double* a = &A[std::size_t(m) * K_];
          const double* b = &B[std::size_t(n) * K_];
          for (int k = 0; k < K_; ++k) acc += a[k] * b[k];
          ref_[std::size_t(m) * N_ + n] = float(acc);
        }
    } else {
      ref_note_ = "reference: FP32 cuBLAS SGEMM on the dequantized operands";
      aipe::DeviceBuffer<float> af(std::size_t(M_) * K_), bf(std::size_t(N_) * K_), cf(mn);
      using kernels::fp8::ScaleLayout;
      const bool block = S == Scaling::block;
      kernels::fp8::dequantize_e4m3(a_.get(), af.get(), M_, K_, args_.sa, block ? ScaleLayout::row_1x128 : ScaleLayout::tensor,
                                    0, ctx.stream());
      kernels::fp8::dequantize_e4m3(b_.get(), bf.get(), N_, K_, args_.sb, block ? ScaleLayout::block_128 : ScaleLayout::tensor,
                                    args_.ldsb, ctx.stream());
      auto h = aipe::CublasHandle::create();
      AIPE_CUBLAS(cublasSetStream(h, ctx.stream()));
      AIPE_CUBLAS(cublasSetMathMode(h, CUBLAS_PEDANTIC_MATH));
      const float one = 1.f, zero = 0.f;
      AIPE_CUBLAS(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, N_, M_, K_, &one, bf.get(), K_, af.get(), K_, &zero, cf.get(), N_));
      AIPE_CUDA(cudaMemcpyAsync(ref_.data(), cf.get(), mn * 4, cudaMemcpyDeviceToHost, ctx.stream()));
      AIPE_CUDA(cudaStreamSynchronize(ctx.stream()));
    }
    double sq = 0;
    for (float v : ref_) sq += double(v) * v;
    ref_rms_ = std::sqrt(sq / double(mn));
  }

  void setup_cublaslt(aipe::Context& ctx) {
    (void)ctx;
    lt_reason_.clear();
    if (S == Scaling::block && ldsb_ % 4 != 0) {
      // cuBLASLt pads the K-block dimension of a 128x128 scale tensor to a multiple of 4.
      lt_reason_ = "cuBLASLt's 128x128 scale layout pads ceil(k/128) to a multiple of 4; k/128 = " + std::to_string(ldsb_);
      return;
    }
    lt_ = aipe::CublasLtHandle::create();
    desc_ = aipe::lt_matmul_desc(CUBLAS_COMPUTE_32F, CUDA_R_32F, CUBLAS_OP_T, CUBLAS_OP_N);
    aipe::lt_set(desc_, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, static_cast<const void*>(sb_.get()));  // cuBLAS's A: our B
    aipe::lt_set(desc_, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, static_cast<const void*>(sa_.get()));  // cuBLAS's B: our A
    if (S == Scaling::block) {
      aipe::lt_set(desc_, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, std::int32_t(CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F));
      aipe::lt_set(desc_, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, std::int32_t(CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F));
    } else {
      // Same numerics as our per-tensor kernel: the whole K is accumulated inside the tensor cores
      // ("fast accumulation"), no periodic promotion to CUDA-core FP32.
      aipe::lt_set(desc_, CUBLASLT_MATMUL_DESC_FAST_ACCUM, std::int8_t(1));
    }
    la_ = aipe::lt_layout(CUDA_R_8F_E4M3, K_, N_, K_);
    lb_ = aipe::lt_layout(CUDA_R_8F_E4M3, K_, M_, K_);
    lc_ = aipe::lt_layout(CUDA_R_16BF, N_, M_, N_);
    ws_ = aipe::DeviceBuffer<unsigned char>(64u << 20);
    const auto algos = aipe::lt_heuristics(lt_, desc_, la_, lb_, lc_, lc_, ws_.size(), 1, &lt_reason_);
    if (!algos.empty()) algo_ = algos[0].algo;
  }

  std::vector<float> ref_;
  double ref_rms_ = 1;
  std::string ref_note_, lt_reason_;
  aipe::CublasLtHandle lt_;
  aipe::LtMatmulDesc desc_;
  aipe::LtLayout la_, lb_, lc_;
  cublasLtMatmulAlgo_t algo_{};
  aipe::DeviceBuffer<unsigned char> ws_;
};

}  // namespace aipe::fp8
