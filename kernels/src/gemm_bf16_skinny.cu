// The decode-shaped BF16 GEMM behind aipe::kernels::gemm for few tokens (gemm.hpp: SkinnyConfig, gemm_skinny):
// C[M][N] = alpha A[M][K] B[N][K]^T (+ bias[n]) with M = 1..256, computed as C^T = B A^T ("swap-AB").
//
// Why: with M = 8 a 128 x 256 tile of the square kernel is 94% empty rows, and N / 256 tiles give 16 CTAs at
// N = 4096: 12% of the SMs stream the weight. Decode is a weight stream (2 N K bytes for 2 M N K FLOPs: M FLOP
// per byte, far below the ridge), so the aim is every SM's memory pipe full.
//
// Kernel gemm_swap_ab<MP, CM, DS> (384 threads, one CTA per SM: ~200 KiB of ring):
//   * warpgroup 0: one thread issues the TMA loads of a ring of 64-deep K stages, each stage 128 rows of B
//     (16 KiB) and the MP-row token tile of A (MP x 64 BF16; rows >= M zero-filled by TMA, no DRAM bytes);
//   * warpgroups 1 and 2: wgmma m64nMPk16, B's 64 rows on the M side, the tokens on the N side: acc[MP / 2]
//     per thread is a 64 x MP block of C^T;
//   * grid (CTAs along N, splits): CTA (x, y) walks K steps [y kps, (y + 1) kps). splits == 1: BF16 out with
//     alpha and the bias; else FP32 partials P[y][m][n] and reduce_splits adds them, alpha and the bias (once);
//   * CM = 2: clusters of 2 along N share the token tile: each CTA loads half of its rows and multicasts it;
//   * DS: grid (2, CTAs along N) in clusters of 2 along x, each CTA half of K; the CTA that does not own a
//     warp's rows (owner = warp / 2) writes its FP32 fragment into the owner's idle ring through distributed
//     shared memory, a cluster barrier, the owner adds and stores: no partials in DRAM, no second kernel.
//   * launched as a programmatic dependent launch (PDL): while the kernel before it drains, each CTA sends the
//     first ring of its weight tiles to L2, then waits for that kernel before it reads A (decode is a chain of
//     such GEMMs and small kernels: their boundaries are where the weight stream would otherwise stop).
// Token tiles MP in {8, 16, 32, 64, 128, 256} (skinny_token_tile): 6 instances of each switch, not 32.
#include <cuda.h>
#include <cuda_bf16.h>

#include <cooperative_groups.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>

#include "aipe/buffer.hpp"
#include "aipe/check.hpp"
#include "aipe/kernels/launch.cuh"
#include "aipe/kernels/pipeline.cuh"
#include "aipe/kernels/ptx.cuh"
#include "aipe/kernels/tma.hpp"
#include "aipe/kernels/wgmma.cuh"
#include "gemm_skinny_launch.hpp"

namespace aipe::kernels {
namespace {

namespace cg = cooperative_groups;
constexpr CUtensorMapDataType kBf16 = CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
constexpr int kBK = 64;   // one 128-byte swizzled row of BF16
constexpr int kRowsW = 128;  // rows of B per CTA: two consumer warpgroups of 64
constexpr int kWBytes = kRowsW * kBK * 2;
constexpr int kSmemBudget = 200 * 1024;
constexpr int kThreads = 384;

template <int MP>
struct SkinnyCfg {
  static constexpr int kABytes = MP * kBK * 2;
  static constexpr int kStageBytes = kWBytes + kABytes;
  static constexpr int kStages = std::min(8, kSmemBudget / kStageBytes);  // 8 x 17 KiB at MP = 8; 4 x 48 at 256
  static constexpr std::size_t kSmem = 1024 + std::size_t(kStages) * kStageBytes + 2 * kStages * 8;
};

struct SkinnyArgs {
  bf16* C = nullptr;
  long long ldc = 0;
  float* P = nullptr;  // FP32 partials [splits][M][N] (reduce split), else null: the kernel writes C
  const bf16* bias = nullptr;
  float alpha = 1.f;
  int M = 0, N = 0, K = 0, kt_per_split = 1;
};

template <int MP, int CM, bool DS>
__global__ void __launch_bounds__(kThreads, 1)
    gemm_swap_ab(const __grid_constant__ CUtensorMap tma_w, const __grid_constant__ CUtensorMap tma_a,
                 const SkinnyArgs args) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using Cfg = SkinnyCfg<MP>;
  extern __shared__ unsigned char smem_raw[];
  unsigned char* smem =
      reinterpret_cast<unsigned char*>((reinterpret_cast<std::uintptr_t>(smem_raw) + 1023) & ~std::uintptr_t(1023));
  auto sW = [&](int s) { return smem + s * Cfg::kStageBytes; };
  auto sA = [&](int s) { return smem + s * Cfg::kStageBytes + kWBytes; };
  const Pipeline<Cfg::kStages> pipe(reinterpret_cast<std::uint64_t*>(smem + Cfg::kStages * Cfg::kStageBytes));
  using State = PipelineState<Cfg::kStages>;
  const int M = args.M, N = args.N, K = args.K;
  const int wg = threadIdx.x / 128;
  const int split = DS ? blockIdx.x : blockIdx.y;  // DS: also the CTA's rank in its cluster
  const int n0 = (DS ? blockIdx.y : blockIdx.x) * kRowsW;
  const int ktiles = (K + kBK - 1) / kBK;
  const int kt0 = split * args.kt_per_split, kt1 = min(ktiles, kt0 + args.kt_per_split);
  static_assert(CM == 1 || CM == 2, "pairs of CTAs share the token tile");
  static_assert(!(DS && CM > 1), "a cluster either shares the token tile or sums the K halves");
  static_assert(CM == 1 || MP >= 16, "each CTA's multicast half is at least one 8-row swizzle atom");
  const int rank = CM > 1 ? int(cluster_ctarank()) : 0;

  if (threadIdx.x == 0) {
    tma_prefetch_descriptor(&tma_w);
    tma_prefetch_descriptor(&tma_a);
    pipe.init(1, 2 * CM);  // empty: one arrive per consumer warpgroup of every CTA of the cluster
    fence_barrier_init();
    // Launched with PDL, the CTA may be running while the kernel before it finishes (the previous GEMM's last
    // tiles, a norm): the first ring's worth of this CTA's weight tiles goes to L2 meanwhile. An L2 prefetch
    // writes neither global nor shared memory, so it is safe before the dependency wait whatever wrote B.
    for (int kt = kt0; kt < min(kt1, kt0 + Cfg::kStages); ++kt) tma_prefetch_2d(&tma_w, kt * kBK, n0);
  }
  // A (the activations) and C are the previous kernels' output and input: nothing touches them before this.
  grid_dependency_wait();
  launch_dependents();
  if constexpr (CM > 1) cluster_sync();  // the peer's barriers exist before any multicast or remote arrive
  else __syncthreads();

  if (wg == 0) {
    setmaxnreg_dec<40>();
    if (threadIdx.x == 0) {
      State st;
      for (int kt = kt0; kt < kt1; ++kt) {
        const int s = st.index;
        pipe.producer_acquire(st);
        pipe.producer_expect_tx(st, Cfg::kStageBytes);  // a CTA past N still receives its (zero-filled) box
        std::uint64_t* bar = pipe.full_bar(st);
        tma_load_2d(sW(s), &tma_w, bar, kt * kBK, n0);
        // Tokens [0, MP): with CM = 2 the peer's multicast delivers the other half into this CTA's slot.
        if constexpr (CM == 1) tma_load_2d(sA(s), &tma_a, bar, kt * kBK, 0);
        else tma_load_2d_multicast(sA(s) + rank * (MP / 2) * 128, &tma_a, bar, kt * kBK, rank * (MP / 2), 0x3);
        st.advance();
      }
    }
    if constexpr (DS) {  // the consumers' two cluster barriers count every thread of both CTAs
      cluster_sync();
      cluster_sync();
    }
  } else {
    setmaxnreg_inc<232>();
    const int c = wg - 1;  // consumer: rows 64 c .. 64 c + 63 of the CTA's 128 rows of B
    // The first K step overwrites acc (scale_d = 0): zeroing it before the loop puts non-wgmma definitions of
    // the accumulators inside the first pipeline stage at small MP, and ptxas then serializes every wgmma (C7515).
    float acc[MP / 2];
    State st;
    int prev = -1;  // the slot whose wgmma group may still read shared memory
    for (int kt = kt0; kt < kt1; ++kt) {
      const int s = st.index;
      pipe.consumer_wait(st);
      fence_regs(acc);
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < kBK / 16; ++kk)
        wgmma_ss<MP>(acc, wgmma_desc_sw128(sW(s) + c * 64 * 128) + 2 * kk, wgmma_desc_sw128(sA(s)) + 2 * kk,
                     kt > kt0 || kk > 0 ? 1 : 0);
      wgmma_commit();
      wgmma_wait<1>();
      fence_regs(acc);
      if (prev >= 0 && threadIdx.x % 128 == 0) pipe.template consumer_release<CM>(prev);
      prev = s;
      st.advance();
    }
    wgmma_wait<0>();
    fence_regs(acc);
    if (prev >= 0 && threadIdx.x % 128 == 0) pipe.template consumer_release<CM>(prev);
    if (kt0 >= kt1) {  // an empty split (dsmem with a single K step) contributes zeros
#pragma unroll
      for (int i = 0; i < MP / 2; ++i) acc[i] = 0.f;
    }
    // Fragment of C^T: acc[4j + 2h + e] is B row (n) 16 warp + lane / 4 + 8 h, token (m) 8 j + 2 (lane % 4) + e.
    const int t = threadIdx.x % 128;
    const int n = n0 + c * 64 + 16 * (t / 32) + (t % 32) / 4;
    const int m = 2 * (t % 4);
    float* part = !DS && args.P ? args.P + static_cast<std::size_t>(blockIdx.y) * M * N : nullptr;
    auto store = [&] {
      float b[2] = {0.f, 0.f};  // bias of columns n and n + 8: added where the result is final
      if (!part && args.bias) {
#pragma unroll
        for (int h = 0; h < 2; ++h)
          if (n + 8 * h < N) b[h] = __bfloat162float(args.bias[n + 8 * h]);
      }
#pragma unroll
      for (int j = 0; j < MP / 8; ++j)
#pragma unroll
        for (int h = 0; h < 2; ++h)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int row = m + 8 * j + e, col = n + 8 * h;
            if (row < M && col < N) {
              const float v = acc[4 * j + 2 * h + e];
              if (part) part[static_cast<std::size_t>(row) * N + col] = v;
              else args.C[static_cast<std::size_t>(row) * args.ldc + col] = __float2bfloat16_rn(args.alpha * v + b[h]);
            }
          }
    };
    if constexpr (DS) {
      // Warp w's rows belong to CTA w / 2. The exchange buffer (float4 [consumer][warp % 2][MP / 8][lane],
      // 256 MP bytes) overlays the ring, which both CTAs have finished reading at barrier 1.
      static_assert(256 * MP <= Cfg::kStages * Cfg::kStageBytes, "the exchange buffer fits in the ring");
      const int warp = t / 32, lane = t % 32, owner = warp / 2;
      const int slot = (c * 2 + warp % 2) * (MP / 8);
      cluster_sync();  // 1: both CTAs are done with their rings
      if (owner != split) {
        float4* dst = reinterpret_cast<float4*>(cg::this_cluster().map_shared_rank(smem, owner)) + slot * 32 + lane;
#pragma unroll
        for (int i = 0; i < MP / 8; ++i)
          dst[i * 32] = make_float4(acc[4 * i], acc[4 * i + 1], acc[4 * i + 2], acc[4 * i + 3]);
      }
      cluster_sync();  // 2: the halves have arrived (release / acquire at cluster scope)
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
  if constexpr (CM > 1) cluster_sync();
#else
  (void)tma_w; (void)tma_a; (void)args;
  __trap();
#endif
}

// C[m][n] = BF16(alpha sum_s P[s][m][n] + bias[n]): the split-K partials (packed M x N) into C (pitch ldc).
__global__ void reduce_splits(const float* __restrict__ P, const SkinnyArgs args, int splits) {
  pdl_begin();  // launched with launch_pdl
  const std::size_t mn = std::size_t(args.M) * args.N;
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < mn; i += std::size_t(gridDim.x) * blockDim.x) {
    float acc = 0.f;
    for (int s = 0; s < splits; ++s) acc += P[s * mn + i];
    const std::size_t row = i / args.N, col = i % args.N;
    const float b = args.bias ? __bfloat162float(args.bias[col]) : 0.f;
    args.C[row * args.ldc + col] = __float2bfloat16_rn(args.alpha * acc + b);
  }
}

// Split-K partials: one workspace per (device, stream), sized for the largest split any shape gets
// (splits x N <= resident CTAs x 128, M <= 256), allocated once: never freed or regrown while a captured graph
// or an earlier kernel on that stream may still use it.
float* workspace(int device, cudaStream_t stream, int device_ctas) {
  static std::mutex mu;
  // Never destroyed: freeing at process exit could follow the CUDA context's teardown.
  static auto* buffers = new std::map<std::pair<int, cudaStream_t>, DeviceBuffer<float>>();
  const std::lock_guard<std::mutex> lock(mu);
  auto& b = (*buffers)[{device, stream}];
  if (b.size() == 0) {
    // The first split call on a stream may come while it is being captured into a CUDA graph (a decode step):
    // cudaMalloc is not a stream operation, but global capture mode refuses it as potentially unsafe, so this
    // thread relaxes the mode for the one allocation (the CUDA documentation's cudaThreadExchangeStreamCaptureMode
    // idiom) and restores it.
    cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
    AIPE_CUDA(cudaThreadExchangeStreamCaptureMode(&mode));
    try {
      b = DeviceBuffer<float>(std::size_t(device_ctas + 2) * kRowsW * kSkinnyMaxM);
    } catch (...) {
      cudaThreadExchangeStreamCaptureMode(&mode);
      throw;
    }
    AIPE_CUDA(cudaThreadExchangeStreamCaptureMode(&mode));
  }
  return b.get();
}

template <int MP, int CM, bool DS>
void launch_one(const Matrix<const bf16>& a, const Matrix<const bf16>& b, const SkinnyArgs& args,
                const SkinnyConfig& cfg, cudaStream_t stream) {
  constexpr auto kernel = gemm_swap_ab<MP, CM, DS>;
  set_max_dynamic_smem(kernel, SkinnyCfg<MP>::kSmem);
  const CUtensorMap tw = matrix_map(kBf16, b.data, b.rows, b.cols, b.ld, kRowsW, kBK);
  const CUtensorMap ta = matrix_map(kBf16, a.data, a.rows, a.cols, a.ld, MP / CM, kBK);
  const unsigned ctas_n = static_cast<unsigned>((b.rows + kRowsW - 1) / kRowsW);
  if constexpr (DS) {
    launch_in_clusters_pdl(kernel, dim3(2, ctas_n), kThreads, SkinnyCfg<MP>::kSmem, 2, stream, tw, ta, args);
  } else if constexpr (CM == 2) {
    const dim3 grid((ctas_n + 1) / 2 * 2, static_cast<unsigned>(cfg.splits));
    launch_in_clusters_pdl(kernel, grid, kThreads, SkinnyCfg<MP>::kSmem, 2, stream, tw, ta, args);
  } else {
    launch_pdl(kernel, dim3(ctas_n, static_cast<unsigned>(cfg.splits)), dim3(kThreads), SkinnyCfg<MP>::kSmem, stream,
               tw, ta, args);
  }
}

template <int MP>
void launch_tile(const Matrix<const bf16>& a, const Matrix<const bf16>& b, const SkinnyArgs& args,
                 const SkinnyConfig& cfg, cudaStream_t stream) {
  if (cfg.dsmem) launch_one<MP, 1, true>(a, b, args, cfg, stream);
  else if constexpr (MP >= 16) {
    if (cfg.multicast) launch_one<MP, 2, false>(a, b, args, cfg, stream);
    else launch_one<MP, 1, false>(a, b, args, cfg, stream);
  } else {
    launch_one<MP, 1, false>(a, b, args, cfg, stream);  // choose_skinny gives multicast a tile of 16 or more
  }
}

}  // namespace

void launch_skinny(const Matrix<const bf16>& a, const Matrix<const bf16>& b, const Matrix<bf16>& c,
                   const Epilogue& epi, const SkinnyConfig& cfg, int device_ctas, cudaStream_t stream) {
  SkinnyArgs args;
  args.C = c.data;
  args.ldc = c.ld;
  args.bias = epi.has_bias() ? epi.bias() : nullptr;
  args.alpha = epi.alpha();
  args.M = int(a.rows);
  args.N = int(b.rows);
  args.K = int(a.cols);
  args.kt_per_split = cfg.kt_per_split;
  const bool partials = cfg.splits > 1 && !cfg.dsmem;
  if (partials) {
    int device = 0;
    AIPE_CUDA(cudaGetDevice(&device));
    args.P = workspace(device, stream, device_ctas);
  }
  switch (cfg.token_tile) {
    case 8: launch_tile<8>(a, b, args, cfg, stream); break;
    case 16: launch_tile<16>(a, b, args, cfg, stream); break;
    case 32: launch_tile<32>(a, b, args, cfg, stream); break;
    case 64: launch_tile<64>(a, b, args, cfg, stream); break;
    case 128: launch_tile<128>(a, b, args, cfg, stream); break;
    case 256: launch_tile<256>(a, b, args, cfg, stream); break;
    default: throw std::logic_error("kernels::gemm_skinny: no kernel for a token tile of " + std::to_string(cfg.token_tile));
  }
  if (partials) {
    const std::size_t mn = std::size_t(args.M) * args.N;
    const int blocks = static_cast<int>(std::min<std::size_t>((mn + 255) / 256, 4096));
    launch_pdl(reduce_splits, dim3(blocks), dim3(256), 0, stream, args.P, args, cfg.splits);
    AIPE_CHECK_LAUNCH();
  }
}

}  // namespace aipe::kernels
