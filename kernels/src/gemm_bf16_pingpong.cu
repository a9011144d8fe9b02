// aipe::kernels::gemm, BF16, Schedule::pingpong: C[M][N] = epilogue(A[M][K] . B[N][K]^T) with each consumer
// warpgroup owning its own output tile and the two taking turns on the tensor cores, so that one's epilogue runs
// while the other's main loop keeps the tensor cores busy (CUTLASS's KernelTmaWarpSpecializedPingpong).
//
// Why: the cooperative kernel (gemm_bf16.cu) has both consumer warpgroups finish their tile together, so every
// tile's drain of the wgmma pipe, alpha + bias, BF16 packing (and with a serial epilogue the activation) leave the
// tensor cores idle. At k = 1024 a tile is only 16 K steps, and that idle share is what kept the fused bias + GELU
// GEMM at 0.86x cuBLASLt on the H200. Here the epilogue costs nothing as long as the other warpgroup's main loop
// (K / 64 steps) is longer than it (gemm.hpp: exposed_epilogue_steps).
//
// Kernel (one per WM x BN x CM):
//   * 384 threads: warpgroup 0 produces (one thread issues every TMA load; setmaxnreg 24), warpgroups 1 and 2
//     consume (setmaxnreg 240), each on a WM x BN tile of its own: 64 x 256 (wgmma m64n256k16), 128 x 128 (two
//     m64n128k16 per K slice; 128 FP32 accumulators per thread either way) or 128 x 192 (two m64n192k16, 192
//     accumulators: 1.5x the FLOPs per byte brought into shared memory of 64 x 256, which moves 80 B per clock
//     of TMA writes and 80 of wgmma reads at the tensor peak, past shared memory's 128).
//   * The CTA's work units (persistent grid, grouped raster as in the cooperative kernel) are dealt out
//     alternately: local unit j goes to consumer j % 2. The producer loads every unit's K steps in unit order
//     into one ring of 64-deep stages (4 of 40 KiB at 64 x 256 and 128 x 192, 6 of 32 KiB at 128 x 128); a
//     consumer skips the ring positions of the other's units (PipelineState::advance(n)).
//   * Order of the main loops, two named barriers (256 threads: one warpgroup arrives, the other syncs): consumer
//     c starts unit j's main loop once the owner of unit j - 1 has issued its last wgmma and arrived on c's
//     barrier. It then hands over as soon as it has issued its own last wgmma, before waiting for it, so the
//     other's first wgmma queues behind it with no gap. Strict alternation means a warpgroup never arrives twice
//     on a barrier the other has not yet passed.
//   * Epilogue, on the FP32 accumulators after the main loop, while the other consumer's main loop runs: scale,
//     bias (loaded before the turn), activation, residual, then the tile packed to BF16 and written box by box
//     (64 x 64, two 8 KiB slots per consumer) by TMA stores, or, where C's rows are not 16-byte aligned, by
//     guarded row-contiguous stores from shared memory (store_fragment_staged). One rounding.
//   * Clusters of 2 CTAs on vertically adjacent WM-row tiles (cluster_m = 2): both CTAs deal their units out in
//     the same order, so consumer c of each works on the two halves of one unit at the same time; each CTA loads
//     half of the B tile and multicasts it into both. A slot is free once one consumer of every CTA released it.
// Edges: TMA zero-fills the parts of A and B boxes past M, N and K and clips the C boxes it stores; the register
// path and the epilogue's loads are guarded.
#include <cuda.h>
#include <cuda_bf16.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "aipe/check.hpp"
#include "aipe/kernels/epilogue.cuh"
#include "aipe/kernels/epilogue_ops.cuh"
#include "aipe/kernels/launch.cuh"
#include "aipe/kernels/pipeline.cuh"
#include "aipe/kernels/ptx.cuh"
#include "aipe/kernels/scheduler.hpp"
#include "aipe/kernels/tma.hpp"
#include "aipe/kernels/wgmma.cuh"
#include "gemm_bf16_detail.hpp"

namespace aipe::kernels::detail {
namespace {

constexpr CUtensorMapDataType kBf16 = CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
// Named barriers: 0 is __syncthreads, 1 and 2 each consumer's epilogue (128 threads), 3 and 4 "consumer c may
// start its main loop" (kOrderBar + c, 256 threads).
constexpr int kEpiBar = 1, kOrderBar = 3;

template <int WM, int BN>
struct PpCfg {
  static constexpr int kFrags = WM / 64;  // m64 wgmma per K slice
  static_assert(kFrags * BN <= 384 && BN % 64 == 0, "at most 192 FP32 accumulators per consumer thread");
  static constexpr int kBoxes = BN / 64;  // 64 x 64 boxes of C per fragment
  static constexpr int kBRows = BN / 2;   // rows of one B box: each CTA's multicast half, or one of two loads
  static constexpr int kABytes = WM * kBK * 2;   // 8 KiB (WM 64) or 16 KiB (WM 128)
  static constexpr int kBBytes = BN * kBK * 2;   // 32, 24 or 16 KiB (BN 256, 192, 128)
  static constexpr int kStageBytes = kABytes + kBBytes;
  static constexpr int kEpiBytes = 2 * 16384;     // per consumer two 8 KiB slots of 64 x 64 boxes
  static constexpr int kBarBytes = 256;           // room for the full and empty barriers
  // As many stages as fit: 4 at 64 x 256 and 128 x 192, 6 at 128 x 128.
  static constexpr int kStages = int((kSmemLimit - 1024 - kEpiBytes - kBarBytes) / kStageBytes);
  static_assert(kStages >= 3 && 2 * kStages * 8 <= kBarBytes, "a ring of at least three stages");
  // [1024 alignment][stages][epilogue slots][full, empty barriers]
  static constexpr std::size_t kSmem = 1024 + std::size_t(kStages) * kStageBytes + kEpiBytes + kBarBytes;
  static_assert(kSmem <= kSmemLimit, "one CTA per SM: 227 KiB of shared memory");
  static_assert(kABytes % 1024 == 0 && kStageBytes % 1024 == 0 && (kBRows * 128) % 1024 == 0,
                "128B-swizzled tiles start on 1024 bytes");
};

template <int WM, int BN, int CM>
__global__ void __launch_bounds__(kThreads, 1)
    gemm_bf16_pingpong_kernel(const __grid_constant__ CUtensorMap tma_a, const __grid_constant__ CUtensorMap tma_b,
                              const __grid_constant__ CUtensorMap tma_c, const KernelArgs args) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using Cf = PpCfg<WM, BN>;
  constexpr int kStages = Cf::kStages, kFrags = Cf::kFrags;
  extern __shared__ unsigned char smem_raw[];
  unsigned char* smem =
      reinterpret_cast<unsigned char*>((reinterpret_cast<std::uintptr_t>(smem_raw) + 1023) & ~std::uintptr_t(1023));
  auto sA = [&](int s) { return smem + s * Cf::kStageBytes; };
  auto sB = [&](int s) { return smem + s * Cf::kStageBytes + Cf::kABytes; };
  unsigned char* sEpi = smem + kStages * Cf::kStageBytes;
  const Pipeline<kStages> pipe(reinterpret_cast<std::uint64_t*>(sEpi + Cf::kEpiBytes));  // full, empty barriers
  using State = PipelineState<kStages>;

  const int M = args.M, N = args.N, K = args.K;
  const int wg = warpgroup_index();
  const int rank = CM > 1 ? static_cast<int>(cluster_ctarank()) : 0;
  const int ktiles = (K + kBK - 1) / kBK;
  const int tiles_m = (M + WM - 1) / WM, tiles_n = (N + BN - 1) / BN;
  const int units_m = (tiles_m + CM - 1) / CM, units = units_m * tiles_n;  // a unit: CM tiles stacked in M
  const TileRaster raster{units_m, tiles_n, kBandRows / (WM * CM), true};
  const int first_unit = blockIdx.x / CM, unit_stride = gridDim.x / CM;
  // This CTA's units: first_unit + j unit_stride for j < local_units (the same count in both CTAs of a cluster).
  const int local_units = first_unit < units ? (units - first_unit + unit_stride - 1) / unit_stride : 0;
  const bool tma_store = args.tma_store;

  if (threadIdx.x == 0) {
    tma_prefetch_descriptor(&tma_a);
    tma_prefetch_descriptor(&tma_b);
    if (tma_store) tma_prefetch_descriptor(&tma_c);
    // full: the producer's arrive.expect_tx, TMA's bytes complete the phase; empty: one consumer warpgroup (the
    // slot's owner) of every CTA of the cluster.
    pipe.init(1, CM);
    fence_barrier_init();
  }
  if constexpr (CM > 1) cluster_sync();  // the peer's barriers exist before any multicast or remote arrive
  else __syncthreads();

  if (wg == 0) {
    setmaxnreg_dec<24>();
    if (threadIdx.x == 0) {
      State st;
      for (int j = 0; j < local_units; ++j) {
        int um, tn;
        raster(first_unit + j * unit_stride, um, tn);
        const int m0 = (um * CM + rank) * WM, n0 = tn * BN;
        for (int kt = 0; kt < ktiles; ++kt) {
          const int s = st.index;
          pipe.producer_acquire(st);  // the slot is free in every CTA that receives it
          pipe.producer_expect_tx(st, Cf::kStageBytes);
          std::uint64_t* bar = pipe.full_bar(st);
          tma_load_2d(sA(s), &tma_a, bar, kt * kBK, m0);  // tma_a: boxes of WM rows
          // tma_b: boxes of BN / 2 rows, both loaded here or one by each CTA of the pair and multicast.
          constexpr int kRows = Cf::kBRows;
          if constexpr (CM == 1) {
            tma_load_2d(sB(s), &tma_b, bar, kt * kBK, n0);
            tma_load_2d(sB(s) + kRows * kBK * 2, &tma_b, bar, kt * kBK, n0 + kRows);
          } else {
            static_assert(CM == 2, "B is cut in two halves, one per CTA of the pair");
            tma_load_2d_multicast(sB(s) + rank * kRows * kBK * 2, &tma_b, bar, kt * kBK, n0 + rank * kRows,
                                  (1u << CM) - 1);
          }
          st.advance();
        }
      }
    }
  } else {
    setmaxnreg_inc<240>();
    const int c = wg - 1;  // consumer c takes the CTA's units c, c + 2, c + 4, ...
    const int t = threadIdx.x % 128;
    const std::uint64_t desc_a0 = wgmma_desc_sw128(sA(0)), desc_b0 = wgmma_desc_sw128(sB(0));
    State st;
    st.advance(c * ktiles);  // unit 1's slots come after unit 0's
    unsigned char* epi_slots = sEpi + c * 16384;
    float acc[kFrags][BN / 2];  // fragment f: rows 64 f .. 64 f + 63 of the tile
    std::uint32_t bias[BN / 8];
    for (int j = c; j < local_units; j += 2) {
      int um, tn;
      raster(first_unit + j * unit_stride, um, tn);
      const int row0 = (um * CM + rank) * WM, col0 = tn * BN;  // this consumer's WM x BN tile
      load_bias_pairs<BN>(bias, args.epi, N, col0);  // before the turn: the loads land while it waits
#pragma unroll
      for (int f = 0; f < kFrags; ++f)
#pragma unroll
        for (int i = 0; i < BN / 2; ++i) acc[f][i] = 0.f;
      // The tensor cores are this consumer's once the previous unit's owner issued its whole main loop.
      if (j > 0) named_barrier_sync(kOrderBar + c, 256);
      int prev = -1;  // the slot whose wgmma group may still be reading shared memory
      for (int kt = 0; kt < ktiles; ++kt) {
        const int s = st.index;
        pipe.consumer_wait(st);
#pragma unroll
        for (int f = 0; f < kFrags; ++f) fence_regs(acc[f]);
        wgmma_fence();
        // Slot s's descriptors: stage 0's plus the slot offset in the 16-byte units of the address field;
        // fragment f reads A's rows 64 f .. 64 f + 63 (8 KiB further).
        const std::uint64_t da = desc_a0 + static_cast<std::uint32_t>(s * (Cf::kStageBytes >> 4));
        const std::uint64_t db = desc_b0 + static_cast<std::uint32_t>(s * (Cf::kStageBytes >> 4));
#pragma unroll
        for (int kk = 0; kk < kBK / 16; ++kk)
#pragma unroll
          for (int f = 0; f < kFrags; ++f) wgmma_ss<BN>(acc[f], da + f * ((64 * 128) >> 4) + 2 * kk, db + 2 * kk, 1);
        wgmma_commit();
        wgmma_wait<1>();  // the step before this one is done: its slot goes back
#pragma unroll
        for (int f = 0; f < kFrags; ++f) fence_regs(acc[f]);
        if (prev >= 0 && t == 0) pipe.template consumer_release<CM>(prev);
        prev = s;
        st.advance();
      }
      // Every wgmma of this unit is issued: the other consumer may queue its own behind them.
      if (j + 1 < local_units) named_barrier_arrive(kOrderBar + (1 - c), 256);
      wgmma_wait<0>();
#pragma unroll
      for (int f = 0; f < kFrags; ++f) fence_regs(acc[f]);
      if (prev >= 0 && t == 0) pipe.template consumer_release<CM>(prev);
      st.advance(ktiles);  // the other consumer's unit
      // The epilogue, under the other consumer's main loop.
#pragma unroll
      for (int f = 0; f < kFrags; ++f) {
        apply_epilogue<BN>(acc[f], bias, args.epi, M, N, row0 + 64 * f, col0);
        if (tma_store) {
          // The boxes alternate between the two slots by their index within the fragment; with an odd count
          // (BN 192) the next fragment's box 0 would reuse the slot of the box just issued: wait for its read.
          if (Cf::kBoxes % 2 == 1 && t == 0) bulk_wait_read<0>();
          std::uint32_t packed[BN / 4];
          pack_bf16<BN>(acc[f], packed);
          epilogue_tma_store<BN>(packed, epi_slots, &tma_c, row0 + 64 * f, col0, kEpiBar + c);
        } else {
          std::uint32_t packed[BN / 4];
          pack_bf16<BN>(acc[f], packed);
          store_fragment_staged<BN>(packed, epi_slots, args.C, std::size_t(args.ldc), M, N, row0 + 64 * f, col0,
                                    kEpiBar + c);
        }
      }
    }
    if (tma_store && t == 0) bulk_wait<0>();  // this consumer's stores have left shared memory and landed
  }
  // No CTA may exit while its peer can still multicast into its shared memory or arrive on its barriers.
  if constexpr (CM > 1) cluster_sync();
#else
  (void)tma_a; (void)tma_b; (void)tma_c; (void)args;
  __trap();
#endif
}

template <int WM, int BN, int CM>
void launch(const Matrix<const bf16>& a, const Matrix<const bf16>& b, const KernelArgs& args, const CUtensorMap& tc,
            int grid, cudaStream_t stream) {
  // A in boxes of WM rows x 64 K; B in boxes of BN / 2 rows (two loads per stage, or each CTA's multicast half).
  const CUtensorMap ta = matrix_map(kBf16, a.data, a.rows, a.cols, a.ld, WM, kBK);
  const CUtensorMap tb = matrix_map(kBf16, b.data, b.rows, b.cols, b.ld, PpCfg<WM, BN>::kBRows, kBK);
  if constexpr (CM == 1) {
    gemm_bf16_pingpong_kernel<WM, BN, 1><<<grid, kThreads, PpCfg<WM, BN>::kSmem, stream>>>(ta, tb, tc, args);
    AIPE_CHECK_LAUNCH();
  } else {
    launch_in_clusters(gemm_bf16_pingpong_kernel<WM, BN, CM>, dim3(grid), kThreads, PpCfg<WM, BN>::kSmem, CM, stream,
                       ta, tb, tc, args);
  }
}

}  // namespace

std::size_t pingpong_smem_max() {
  return std::max({PpCfg<64, 256>::kSmem, PpCfg<128, 128>::kSmem, PpCfg<128, 192>::kSmem});
}

void prepare_pingpong_kernels() {
  kernels::set_max_dynamic_smem(gemm_bf16_pingpong_kernel<64, 256, 2>, PpCfg<64, 256>::kSmem);
  kernels::set_max_dynamic_smem(gemm_bf16_pingpong_kernel<64, 256, 1>, PpCfg<64, 256>::kSmem);
  kernels::set_max_dynamic_smem(gemm_bf16_pingpong_kernel<128, 128, 2>, PpCfg<128, 128>::kSmem);
  kernels::set_max_dynamic_smem(gemm_bf16_pingpong_kernel<128, 128, 1>, PpCfg<128, 128>::kSmem);
  kernels::set_max_dynamic_smem(gemm_bf16_pingpong_kernel<128, 192, 2>, PpCfg<128, 192>::kSmem);
  kernels::set_max_dynamic_smem(gemm_bf16_pingpong_kernel<128, 192, 1>, PpCfg<128, 192>::kSmem);
}

void launch_pingpong(const TileConfig& t, const Matrix<const bf16>& a, const Matrix<const bf16>& b,
                     const KernelArgs& args, const CUtensorMap& tc, int grid, cudaStream_t stream) {
  if (t.schedule != Schedule::pingpong) throw std::logic_error("launch_pingpong: " + to_string(t) + " is not ping-pong");
  if (t.bm == 64 && t.bn == 256) {
    if (t.cluster_m == 2) launch<64, 256, 2>(a, b, args, tc, grid, stream);
    else launch<64, 256, 1>(a, b, args, tc, grid, stream);
  } else if (t.bm == 128 && t.bn == 128) {
    if (t.cluster_m == 2) launch<128, 128, 2>(a, b, args, tc, grid, stream);
    else launch<128, 128, 1>(a, b, args, tc, grid, stream);
  } else if (t.bm == 128 && t.bn == 192) {
    if (t.cluster_m == 2) launch<128, 192, 2>(a, b, args, tc, grid, stream);
    else launch<128, 192, 1>(a, b, args, tc, grid, stream);
  } else {
    throw std::logic_error("launch_pingpong: no kernel for " + to_string(t));
  }
}

}  // namespace aipe::kernels::detail
