// ch10/gemm_bf16: a BF16 GEMM from a naive kernel to a persistent, warp-specialized TMA + WGMMA kernel,
// side by side with cuBLAS and cuBLASLt on the identical problem.
//
// Problem: C = A * B, BF16 inputs, FP32 accumulation, BF16 output.
//   A: M x K row-major (K contiguous)            -- "K-major"
//   B: stored as N x K row-major (K contiguous)   -- i.e. the K x N operand in column-major, also K-major,
//      which is what WGMMA wants for both operands and what cuBLAS calls the "TN" GEMM
//   C: M x N row-major
//
// Ladder (each rung solves the identical problem; what changed is on the right):
//   1 naive              one thread per C element, dot product straight from global memory
//   2 smem_tiles         32x32 tiles of A and B staged in shared memory, reused 32 times each
//   3 register_blocking  128x128 tile, each thread an 8x8 block of C in registers (FP32 FMA)
//   4 mma_sync           tensor cores the Ampere way: mma.sync m16n8k16 fed by ldmatrix, 4-stage cp.async ring
//   5 wgmma_tma          Hopper: TMA loads into 128B-swizzled tiles, wgmma m64n128k16 from shared memory,
//                        every warp both loads and computes (a block-wide barrier per K step)
//   6 warp_specialized   one producer warpgroup (TMA) and two consumer warpgroups (wgmma m64n256k16),
//                        128x256x64 tile, 4-stage full/empty mbarrier ring, setmaxnreg 40/232
//   7 cluster_multicast  thread-block clusters of 2 along M: the two CTAs share the B tile, each loads
//                        half of it with TMA multicast into both CTAs' shared memory
//   8 persistent         as many CTA pairs as fit at once (cudaOccupancyMaxActiveClusters) looping over tiles
//                        (a static tile scheduler), tiles taken in grouped (swizzled) order for L2 reuse; the
//                        producer loads the next tile while the consumers store this one
//   9 split_tail         at 8192^3 the 1024 cluster tiles make 15.5 waves of 66 clusters: the last wave is half
//                        empty. The tiles of that partial wave are split along K (the split count that ends it
//                        soonest: 3 here, so it takes 2/3 of a wave); each split publishes an FP32 partial and
//                        the last to finish (atomic counter) adds them and stores C. Nobody waits on anybody.
//                        Measured on the H100 it does not pay at 8192^3: writing and re-reading the FP32
//                        partials (128 KiB per CTA and split) costs more than the third of a wave it saves
//                        (docs/ch10.md); cuBLAS's stream-K style schedules avoid the partial round trip for
//                        most of the tile. Kept as the measured counter-example.
//  10 tma_epilogue       rung 8 with the epilogue handed to TMA: each consumer warpgroup converts its 64x256
//                        accumulators to BF16 into shared memory, 64x64 boxes in the 128-byte swizzle (the
//                        fragment's 4-byte writes then hit 32 distinct banks), and one thread issues a TMA store
//                        per box. The warpgroups start the next tile's wgmma as soon as the last box is in
//                        shared memory; TMA writes C meanwhile and clips the edges. Rung 8's epilogue instead
//                        issues 64 4-byte global stores per thread, each warp instruction touching 8 rows.
//                        (N % 8 != 0 leaves C's rows unaligned for TMA: that rung then stores as rung 8 does.)
//  11 multicast_x4       rung 10 with clusters of 4 CTAs along M: each CTA loads a 64-row quarter of the B tile
//                        and multicasts it to all four, so a CTA pulls 24 KiB from L2 per K step instead of
//                        32. The catch is placement: a cluster must fit in one GPC, and with 4 CTAs of one SM
//                        each only cudaOccupancyMaxActiveClusters x 4 SMs work (30 x 4 = 120 of 132 on the
//                        H100 measured), and 8192^3 then takes 17.07 waves of clusters instead of 15.5.
//                        Kept as the measured counter-example: the L2 traffic saved does not make up for
//                        the idle SMs and the extra wave.
//  12 epilogue_overlap   rung 10 with the epilogue moved under the next tile's first K step. In rung 10 both
//                        consumer warpgroups finish a tile together and write it out while the tensor cores
//                        idle. Here a warpgroup packs its finished 64x256 tile to BF16 pairs (64 registers:
//                        setmaxnreg 240 for the consumers, 24 for the producer), so the FP32 accumulator is
//                        free; it issues the next tile's first K step (4 wgmma), and only then writes the
//                        packed tile to shared memory and hands it to TMA, while that wgmma runs.
//   cublas               cublasGemmEx, BF16 in, FP32 compute, BF16 out
//   cublaslt             cublasLtMatmul, the top heuristic with a 32 MiB workspace (what frameworks call)
//
// Napkin math at 8192^3: 2*M*N*K = 1.10 TFLOP; minimum DRAM traffic 2*(MK + NK + MN) bytes = 403 MB, so the
// arithmetic intensity is ~2730 FLOP/byte: far right of the H100's ridge (~989 TFLOP/s / 3.35 TB/s = 295).
// Compute bound: at ~800 TFLOP/s the GEMM takes ~1.4 ms. A 128x256 tile with K step 64 does
// 2*128*256*64 = 4.2 MFLOP per 48 KiB of shared memory loaded, 85 FLOP per byte of shared memory.
//
// Edges: sizes need not be multiples of any tile. TMA zero-fills out-of-bounds boxes, cp.async uses a
// zero source size, the scalar rungs guard their loads; every rung guards its stores. TMA and cp.async
// need 16-byte aligned rows: K % 8 == 0 (the rungs that need it skip with that reason otherwise).
//
// Inputs, reference (CPU float64, or cuBLAS with FP32 output above M*N*K = 2^31), tolerance (BF16 output:
// 2^-8 norm-wise), work model and the cuBLAS / cuBLASLt rungs: gemm_bf16_common.cuh, shared with
// gemm_bf16_skinny.cu.
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <vector>

#include "aipe/kernels/epilogue.cuh"
#include "aipe/kernels/launch.cuh"
#include "aipe/kernels/pipeline.cuh"
#include "aipe/kernels/ptx.cuh"
#include "aipe/kernels/scheduler.hpp"
#include "aipe/kernels/tma.hpp"
#include "aipe/kernels/wgmma.cuh"
#include "gemm_bf16_common.cuh"

namespace {

using aipe::ch10::bf16;
namespace kn = aipe::kernels;
constexpr CUtensorMapDataType kBf16 = CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;

// Stores one or two adjacent BF16 results of row `row` at columns col, col+1, guarded against the edges.
__device__ __forceinline__ void store_pair(bf16* C, int M, int N, int row, int col, float v0, float v1) {
  if (row >= M || col >= N) return;
  bf16* p = C + static_cast<std::size_t>(row) * N + col;
  if (col + 1 < N && (N % 2 == 0)) {
    *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(v0, v1);
  } else {
    p[0] = __float2bfloat16_rn(v0);
    if (col + 1 < N) p[1] = __float2bfloat16_rn(v1);
  }
}

// ------------------------------------------------------------------------------------------------
// 1 naive: thread (x, y) computes C[y][x]. Neighbouring threads read B rows K elements apart.
// ------------------------------------------------------------------------------------------------
__global__ void gemm_naive(const bf16* __restrict__ A, const bf16* __restrict__ B, bf16* __restrict__ C, int M, int N,
                           int K) {
  const int n = blockIdx.x * blockDim.x + threadIdx.x;
  const int m = blockIdx.y * blockDim.y + threadIdx.y;
  if (m >= M || n >= N) return;
  const bf16* a = A + static_cast<std::size_t>(m) * K;
  const bf16* b = B + static_cast<std::size_t>(n) * K;
  float acc = 0.f;
  for (int k = 0; k < K; ++k) acc += __bfloat162float(a[k]) * __bfloat162float(b[k]);
  C[static_cast<std::size_t>(m) * N + n] = __float2bfloat16_rn(acc);
}

// ------------------------------------------------------------------------------------------------
// 2 smem_tiles: 32x32 threads; each K step stages a 32x32 tile of A and of B (as float) in shared memory.
// Rows padded to 33 floats so the column walk over Bs hits 32 different banks.
// ------------------------------------------------------------------------------------------------
constexpr int T2 = 32;
__global__ void __launch_bounds__(T2* T2) gemm_smem_tiles(const bf16* __restrict__ A, const bf16* __restrict__ B,
                                                         bf16* __restrict__ C, int M, int N, int K) {
  __shared__ float As[T2][T2 + 1];  // [m][k]
  __shared__ float Bs[T2][T2 + 1];  // [n][k]
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int m0 = blockIdx.y * T2, n0 = blockIdx.x * T2;
  float acc = 0.f;
  for (int k0 = 0; k0 < K; k0 += T2) {
    const int k = k0 + tx;
    As[ty][tx] = (m0 + ty < M && k < K) ? __bfloat162float(A[static_cast<std::size_t>(m0 + ty) * K + k]) : 0.f;
    Bs[ty][tx] = (n0 + ty < N && k < K) ? __bfloat162float(B[static_cast<std::size_t>(n0 + ty) * K + k]) : 0.f;
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < T2; ++kk) acc += As[ty][kk] * Bs[tx][kk];
    __syncthreads();
  }
  if (m0 + ty < M && n0 + tx < N) C[static_cast<std::size_t>(m0 + ty) * N + n0 + tx] = __float2bfloat16_rn(acc);
}

// ------------------------------------------------------------------------------------------------
// 3 register_blocking: 128x128 tile, K step 16, 256 threads each owning an 8x8 block of C.
// Tiles stored transposed ([k][m], [k][n]) so a thread reads its 8 A and 8 B values as float4 pairs.
// Per K step a thread does 64 FMA for 16 shared loads (vs 1 FMA per 2 loads in rung 2).
// ------------------------------------------------------------------------------------------------
constexpr int R_BM = 128, R_BN = 128, R_BK = 16, R_TM = 8, R_TN = 8;
__global__ void __launch_bounds__(256) gemm_register_blocking(const bf16* __restrict__ A, const bf16* __restrict__ B,
                                                              bf16* __restrict__ C, int M, int N, int K) {
  __shared__ __align__(16) float As[R_BK][R_BM];
  __shared__ __align__(16) float Bs[R_BK][R_BN];
  const int tid = threadIdx.x;
  const int tm = tid / 16, tn = tid % 16;
  const int m0 = blockIdx.y * R_BM, n0 = blockIdx.x * R_BN;
  // Loader: thread t loads row t/2, K chunk 8*(t%2) of each tile (128 rows x 16 K = 256 chunks of 8).
  const int lr = tid / 2, lk = (tid % 2) * 8;
  const bool vec_ok = (K % 8) == 0;
  float acc[R_TM][R_TN] = {};
  for (int k0 = 0; k0 < K; k0 += R_BK) {
    auto load_row = [&](const bf16* src, int rows, int r0, float (*dst)[128]) {
      const int r = r0 + lr, k = k0 + lk;
      float v[8];
      if (r < rows && vec_ok && k + 8 <= K) {
        const uint4 raw = *reinterpret_cast<const uint4*>(src + static_cast<std::size_t>(r) * K + k);
        const bf16* h = reinterpret_cast<const bf16*>(&raw);
#pragma unroll
        for (int j = 0; j < 8; ++j) v[j] = __bfloat162float(h[j]);
      } else {
#pragma unroll
        for (int j = 0; j < 8; ++j)
          v[j] = (r < rows && k + j < K) ? __bfloat162float(src[static_cast<std::size_t>(r) * K + k + j]) : 0.f;
      }
#pragma unroll
      for (int j = 0; j < 8; ++j) dst[lk + j][lr] = v[j];
    };
    load_row(A, M, m0, As);
    load_row(B, N, n0, Bs);
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < R_BK; ++kk) {
      float a[R_TM], b[R_TN];
      *reinterpret_cast<float4*>(&a[0]) = *reinterpret_cast<const float4*>(&As[kk][tm * R_TM]);
      *reinterpret_cast<float4*>(&a[4]) = *reinterpret_cast<const float4*>(&As[kk][tm * R_TM + 4]);
      *reinterpret_cast<float4*>(&b[0]) = *reinterpret_cast<const float4*>(&Bs[kk][tn * R_TN]);
      *reinterpret_cast<float4*>(&b[4]) = *reinterpret_cast<const float4*>(&Bs[kk][tn * R_TN + 4]);
#pragma unroll
      for (int i = 0; i < R_TM; ++i)
#pragma unroll
        for (int j = 0; j < R_TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < R_TM; ++i)
#pragma unroll
    for (int j = 0; j < R_TN; j += 2)
      store_pair(C, M, N, m0 + tm * R_TM + i, n0 + tn * R_TN + j, acc[i][j], acc[i][j + 1]);
}

// ------------------------------------------------------------------------------------------------
// 4 mma_sync: 128x128x32 tile, 8 warps as 2 (M) x 4 (N), warp tile 64x32 = 4 x 4 mma.sync m16n8k16.
// Shared rows padded to 40 BF16 (80 bytes): the 8 row addresses of one ldmatrix phase land on 8
// distinct 16-byte bank groups. 4-stage cp.async ring: loads for step k+3 fly while step k computes.
// ------------------------------------------------------------------------------------------------
constexpr int S_BM = 128, S_BN = 128, S_BK = 32, S_PAD = 8, S_LD = S_BK + S_PAD, S_STAGES = 4;
constexpr int S_STAGE_ELEMS = (S_BM + S_BN) * S_LD;
constexpr std::size_t S_SMEM = static_cast<std::size_t>(S_STAGES) * S_STAGE_ELEMS * sizeof(bf16);

// cp.async with a zero source size writes 16 zero bytes without reading global memory (edge tiles).
using kn::cp_async_16;
using kn::cp_async_commit;
using kn::cp_async_wait;
__device__ __forceinline__ void ldmatrix_x4(std::uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(kn::smem_u32(p)));
}
__device__ __forceinline__ void mma_bf16_16816(float (&d)[4], const std::uint32_t (&a)[4], std::uint32_t b0,
                                               std::uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__global__ void __launch_bounds__(256) gemm_mma_sync(const bf16* __restrict__ A, const bf16* __restrict__ B,
                                                     bf16* __restrict__ C, int M, int N, int K) {
  extern __shared__ __align__(128) unsigned char smem_raw[];
  bf16* smem = reinterpret_cast<bf16*>(smem_raw);
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int wm = warp / 4, wn = warp % 4;  // warp tile origin: (64*wm, 32*wn)
  const int m0 = blockIdx.y * S_BM, n0 = blockIdx.x * S_BN;
  const int ktiles = (K + S_BK - 1) / S_BK;

  // Each stage: A rows [0,128) then B rows [0,128), S_LD elements each. 512 chunks of 16 B per operand:
  // thread t copies chunks t and t+256 (row = c/4, K chunk = c%4).
  auto load_stage = [&](int stage, int kt) {
    bf16* sa = smem + stage * S_STAGE_ELEMS;
    bf16* sb = sa + S_BM * S_LD;
    const int k0 = kt * S_BK;
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int c = tid + i * 256, r = c / 4, kc = (c % 4) * 8;
      const int k = k0 + kc;
      const bool ka = k < K;  // K % 8 == 0, so a chunk is wholly in or out
      const int ra = m0 + r, rb = n0 + r;
      cp_async_16(sa + r * S_LD + kc, A + (ra < M && ka ? static_cast<std::size_t>(ra) * K + k : 0), ra < M && ka);
      cp_async_16(sb + r * S_LD + kc, B + (rb < N && ka ? static_cast<std::size_t>(rb) * K + k : 0), rb < N && ka);
    }
  };

  float acc[4][4][4] = {};  // [m16 block][n8 block][fragment]
#pragma unroll
  for (int s = 0; s < S_STAGES - 1; ++s) {
    if (s < ktiles) load_stage(s, s);
    cp_async_commit();
  }
  for (int kt = 0; kt < ktiles; ++kt) {
    cp_async_wait<S_STAGES - 2>();  // stage kt has landed (for this thread's copies) ...
    __syncthreads();                // ... and for everyone's; everyone is also done with stage kt-1
    const int next = kt + S_STAGES - 1;
    if (next < ktiles) load_stage(next % S_STAGES, next);
    cp_async_commit();

    const bf16* sa = smem + (kt % S_STAGES) * S_STAGE_ELEMS;
    const bf16* sb = sa + S_BM * S_LD;
#pragma unroll
    for (int kk = 0; kk < S_BK; kk += 16) {
      std::uint32_t af[4][4], bfr[2][4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        // matrices: (rows 0-7, k 0-7), (rows 8-15, k 0-7), (rows 0-7, k 8-15), (rows 8-15, k 8-15)
        const int r = wm * 64 + i * 16 + (lane % 8) + ((lane / 8) % 2) * 8;
        ldmatrix_x4(af[i], sa + r * S_LD + kk + (lane / 16) * 8);
      }
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        // matrices: (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15)
        const int r = wn * 32 + j * 16 + (lane % 8) + (lane / 16) * 8;
        ldmatrix_x4(bfr[j], sb + r * S_LD + kk + ((lane / 8) % 2) * 8);
      }
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) mma_bf16_16816(acc[i][j], af[i], bfr[j / 2][(j % 2) * 2], bfr[j / 2][(j % 2) * 2 + 1]);
    }
  }
  cp_async_wait<0>();
  // Fragment: d0,d1 at (lane/4, 2*(lane%4) + {0,1}); d2,d3 eight rows below.
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int r = m0 + wm * 64 + i * 16 + lane / 4, c = n0 + wn * 32 + j * 8 + 2 * (lane % 4);
      store_pair(C, M, N, r, c, acc[i][j][0], acc[i][j][1]);
      store_pair(C, M, N, r + 8, c, acc[i][j][2], acc[i][j][3]);
    }
}

// ------------------------------------------------------------------------------------------------
// Hopper tiles: A and B come through TMA in boxes of 128 rows x 64 K (16 KiB, 128-byte swizzle).
// ------------------------------------------------------------------------------------------------
constexpr int H_BK = 64;           // one 128-byte swizzle row of BF16
constexpr int H_BOX_ROWS = 128;    // TMA box rows for both operands
constexpr int H_BOX_BYTES = H_BOX_ROWS * H_BK * 2;


// 5 wgmma_tma: 128x128x64 tile, 2 warpgroups (each 64x128 of C), 4-stage TMA ring. Thread 0 issues
// TMA and also computes; a __syncthreads per K step guards the slot it refills. The ring is spelled out
// here (slot kt % STAGES, parity (kt / STAGES) & 1): it is the lesson before rungs 6-12 hand it to
// kn::Pipeline.
constexpr int W5_BM = 128, W5_BN = 128, W5_STAGES = 4;
constexpr int W5_STAGE_BYTES = (W5_BM + W5_BN) * H_BK * 2;  // 32 KiB
constexpr std::size_t W5_SMEM = 1024 + static_cast<std::size_t>(W5_STAGES) * W5_STAGE_BYTES + 64;

__global__ void __launch_bounds__(256, 1) gemm_wgmma_tma(const __grid_constant__ CUtensorMap tma_a,
                                                         const __grid_constant__ CUtensorMap tma_b, bf16* C, int M,
                                                         int N, int K) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ unsigned char smem_raw[];
  unsigned char* smem = reinterpret_cast<unsigned char*>((reinterpret_cast<std::uintptr_t>(smem_raw) + 1023) & ~std::uintptr_t(1023));
  auto sA = [&](int s) { return smem + s * W5_STAGE_BYTES; };
  auto sB = [&](int s) { return smem + s * W5_STAGE_BYTES + W5_BM * H_BK * 2; };
  std::uint64_t* full = reinterpret_cast<std::uint64_t*>(smem + W5_STAGES * W5_STAGE_BYTES);
  const int tid = threadIdx.x, wg = tid / 128;
  const int m0 = blockIdx.y * W5_BM, n0 = blockIdx.x * W5_BN;
  const int ktiles = (K + H_BK - 1) / H_BK;
  if (tid == 0) {
    kn::tma_prefetch_descriptor(&tma_a);
    kn::tma_prefetch_descriptor(&tma_b);
    for (int s = 0; s < W5_STAGES; ++s) kn::mbar_init(&full[s], 1);
    kn::fence_barrier_init();
  }
  __syncthreads();
  auto issue = [&](int s, int kt) {
    kn::mbar_arrive_expect_tx(&full[s], W5_STAGE_BYTES);
    kn::tma_load_2d(sA(s), &tma_a, &full[s], kt * H_BK, m0);
    kn::tma_load_2d(sB(s), &tma_b, &full[s], kt * H_BK, n0);
  };
  if (tid == 0)
    for (int s = 0; s < W5_STAGES && s < ktiles; ++s) issue(s, s);

  float acc[W5_BN / 2] = {};
  for (int kt = 0; kt < ktiles; ++kt) {
    const int s = kt % W5_STAGES;
    kn::mbar_wait(&full[s], (kt / W5_STAGES) & 1);
    kn::fence_regs(acc);
    kn::wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < H_BK / 16; ++kk)
      kn::wgmma_ss<W5_BN>(acc, kn::wgmma_desc_sw128(sA(s) + wg * 64 * 128) + 2 * kk,
                              kn::wgmma_desc_sw128(sB(s)) + 2 * kk, 1);
    kn::wgmma_commit();
    kn::wgmma_wait<0>();
    kn::fence_regs(acc);
    __syncthreads();  // both warpgroups are done reading slot s
    if (tid == 0 && kt + W5_STAGES < ktiles) issue(s, kt + W5_STAGES);
  }
  kn::store_fragment<W5_BN>(acc, C, std::size_t(N), M, N, m0 + wg * 64, n0);
#else
  (void)M; (void)N; (void)K; (void)C;
  __trap();
#endif
}

// 6-9: producer warpgroup + 2 consumer warpgroups, 128x256x64 tile (each consumer 64x256 of C:
// 128 FP32 accumulators per thread), 4-stage ring of 48 KiB slots guarded by full/empty mbarriers.
//   CM         cluster size along M (1 or 2); with 2 the CTA pair shares B: each loads half, multicast
//   PERSISTENT grid of (co-resident) clusters looping over work items in grouped order; otherwise one
//              tile per CTA in launch order (M fastest)
//   plan       the work items (kn::SplitTailPlan); with splits > 1 the tiles of the last, partial wave are split along K
constexpr int WS_BM = 128, WS_BN = 256, WS_STAGES = 4;
constexpr int WS_A_BYTES = WS_BM * H_BK * 2;  // 16 KiB
constexpr int WS_B_BYTES = WS_BN * H_BK * 2;  // 32 KiB
constexpr int WS_STAGE_BYTES = WS_A_BYTES + WS_B_BYTES;
constexpr std::size_t WS_SMEM = 1024 + static_cast<std::size_t>(WS_STAGES) * WS_STAGE_BYTES + 2 * WS_STAGES * 8 + 16;
constexpr int WS_EPI_BYTES = 2 * 16384;  // tma_epilogue: two 8 KiB box slots per consumer warpgroup
constexpr std::size_t WS_SMEM_EPI = WS_SMEM + WS_EPI_BYTES;
constexpr int WS_GROUP_ROWS = 16;  // tile rows (of 128) per raster group of the persistent rungs: 2048 rows
constexpr int WS_PART = 64 * WS_BN;  // FP32 partial of one consumer warpgroup, in fragment order

// The tile order (kn::TileRaster: M fastest in launch order; grouped bands for the persistent rungs) and the
// work items with a split tail (kn::SplitTailPlan: the last partial wave's units cut along K, partials in
// `ws` laid out [tail unit][cta rank][consumer][split][WS_PART], counters [tail unit][cta rank][consumer]).
using kn::named_barrier_sync;

// TMA_EPI (rung 10): the consumers hand each finished tile to TMA through shared memory (tma_c: C in
// 64 x 64 boxes) instead of storing it from registers; needs N % 8 == 0 (16-byte rows), else the
// register path below.
// OVERLAP (rung 12, with TMA_EPI): a finished tile is packed to BF16 pairs (64 registers; the FP32
// accumulator is free again) and written out only after the next tile's first K step is on the tensor
// cores, under that wgmma. Whole-K items only (no split plan).
template <int CM, bool PERSISTENT, bool TMA_EPI = false, bool OVERLAP = false>
__global__ void __launch_bounds__(384, 1) gemm_ws(const __grid_constant__ CUtensorMap tma_a,
                                                  const __grid_constant__ CUtensorMap tma_b,
                                                  const __grid_constant__ CUtensorMap tma_c, bf16* C, int M, int N,
                                                  int K, const kn::SplitTailPlan plan) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ unsigned char smem_raw[];
  unsigned char* smem = reinterpret_cast<unsigned char*>((reinterpret_cast<std::uintptr_t>(smem_raw) + 1023) & ~std::uintptr_t(1023));
  auto sA = [&](int s) { return smem + s * WS_STAGE_BYTES; };
  auto sB = [&](int s) { return smem + s * WS_STAGE_BYTES + WS_A_BYTES; };
  // [stages][TMA_EPI: 2 consumers x 16 KiB of epilogue slots, 1024-aligned][barriers][flags]
  unsigned char* sEpi = smem + WS_STAGES * WS_STAGE_BYTES;
  std::uint64_t* bars = reinterpret_cast<std::uint64_t*>(sEpi + (TMA_EPI ? WS_EPI_BYTES : 0));
  const kn::Pipeline<WS_STAGES> pipe(bars);  // full[WS_STAGES], empty[WS_STAGES]
  using State = kn::PipelineState<WS_STAGES>;
  int* last_flag = reinterpret_cast<int*>(bars + 2 * WS_STAGES);  // [consumer]: "I finish this split tile"
  const int wg = kn::warpgroup_index();
  const std::uint32_t rank = CM > 1 ? kn::cluster_ctarank() : 0;
  const int ktiles = (K + H_BK - 1) / H_BK;
  const int tiles_m = (M + WS_BM - 1) / WS_BM, tiles_n = (N + WS_BN - 1) / WS_BN;
  const kn::TileRaster map{(tiles_m + CM - 1) / CM, tiles_n, PERSISTENT ? WS_GROUP_ROWS / CM : 0, true};
  const int first_item = blockIdx.x / CM;
  const int item_stride = PERSISTENT ? gridDim.x / CM : plan.items;

  if (threadIdx.x == 0) {
    kn::tma_prefetch_descriptor(&tma_a);
    kn::tma_prefetch_descriptor(&tma_b);
    if constexpr (TMA_EPI) kn::tma_prefetch_descriptor(&tma_c);
    // full: the producer's arrive.expect_tx, TMA bytes complete it; empty: one arrive per consumer
    // warpgroup of every CTA in the cluster.
    pipe.init(1, 2 * CM);
    kn::fence_barrier_init();
  }
  if constexpr (CM > 1) kn::cluster_sync();  // peers' barriers exist before any multicast or remote arrive
  else __syncthreads();

  if (wg == 0) {
    // Producer warpgroup: one thread issues every TMA; the others just hand their registers back.
    kn::setmaxnreg_dec<OVERLAP ? 24 : 40>();
    if (threadIdx.x == 0) {
      State st;
      for (int it = first_item; it < plan.items; it += item_stride) {
        const kn::SplitItem w = kn::split_item(plan, it, ktiles);
        int um, tn;
        map(w.unit, um, tn);
        const int m0 = (um * CM + static_cast<int>(rank)) * WS_BM, n0 = tn * WS_BN;
        for (int kt = w.kb; kt < w.ke; ++kt) {
          const int s = st.index;
          pipe.producer_acquire(st);  // the slot is free in every CTA that will receive it
          pipe.producer_expect_tx(st, WS_STAGE_BYTES);
          std::uint64_t* bar = pipe.full_bar(st);
          kn::tma_load_2d(sA(s), &tma_a, bar, kt * H_BK, m0);
          if constexpr (CM == 1) {
            kn::tma_load_2d(sB(s), &tma_b, bar, kt * H_BK, n0);
            kn::tma_load_2d(sB(s) + H_BOX_BYTES, &tma_b, bar, kt * H_BK, n0 + H_BOX_ROWS);
          } else {
            // B is cut in CM slices of WS_BN / CM rows (tma_b's box), one per CTA, each multicast to all.
            static_assert(CM == 2 || CM == 4, "B's 256 rows split evenly over the cluster");
            constexpr int kRows = WS_BN / CM;
            kn::tma_load_2d_multicast(sB(s) + rank * kRows * H_BK * 2, &tma_b, bar, kt * H_BK,
                                      n0 + static_cast<int>(rank) * kRows, (1u << CM) - 1);
          }
          st.advance();
        }
      }
    }
  } else {
    kn::setmaxnreg_inc<OVERLAP ? 240 : 232>();
    const int c = wg - 1;  // consumer index: rows 64*c .. 64*c+63 of the tile
    const int t = threadIdx.x % 128;
    const std::uint64_t desc_a0 = kn::wgmma_desc_sw128(sA(0) + c * 64 * 128), desc_b0 = kn::wgmma_desc_sw128(sB(0));
    State st;
    static_assert(!OVERLAP || TMA_EPI, "the overlapped epilogue is the TMA-store epilogue, one tile later");
    std::uint32_t packed[OVERLAP ? WS_BN / 4 : 1];  // OVERLAP: the previous tile as BF16 pairs
    int pending = -1;                               // ... its item, or -1
    auto store_packed = [&] {
      if constexpr (OVERLAP) {
        int pm, pn;
        map(kn::split_item(plan, pending, ktiles).unit, pm, pn);
        kn::epilogue_tma_store<WS_BN>(packed, sEpi + c * 16384, &tma_c, (pm * CM + static_cast<int>(rank)) * WS_BM + c * 64,
                                      pn * WS_BN, 1 + c);
      }
      pending = -1;
    };
    for (int it = first_item; it < plan.items; it += item_stride) {
      const kn::SplitItem w = kn::split_item(plan, it, ktiles);
      float acc[WS_BN / 2];
#pragma unroll
      for (int i = 0; i < WS_BN / 2; ++i) acc[i] = 0.f;
      int prev = -1;  // slot whose wgmma group may still be reading shared memory
      for (int kt = w.kb; kt < w.ke; ++kt) {
        const int s = st.index;
        pipe.consumer_wait(st);
        kn::fence_regs(acc);
        kn::wgmma_fence();
        // Slot s's descriptors: stage 0's plus the slot offset in the 16-byte units of the address field.
        const std::uint64_t da = desc_a0 + static_cast<std::uint32_t>(s * (WS_STAGE_BYTES >> 4));
        const std::uint64_t db = desc_b0 + static_cast<std::uint32_t>(s * (WS_STAGE_BYTES >> 4));
#pragma unroll
        for (int kk = 0; kk < H_BK / 16; ++kk) kn::wgmma_ss<WS_BN>(acc, da + 2 * kk, db + 2 * kk, 1);
        kn::wgmma_commit();
        if constexpr (OVERLAP)  // the previous tile leaves while this tile's first K step runs
          if (kt == w.kb && pending >= 0) store_packed();
        // Keep this step's group in flight; the previous one is done: release its slot.
        kn::wgmma_wait<1>();
        kn::fence_regs(acc);
        if (prev >= 0 && t == 0) pipe.template consumer_release<CM>(prev);
        prev = s;
        st.advance();
      }
      kn::wgmma_wait<0>();
      kn::fence_regs(acc);
      if (prev >= 0 && t == 0) pipe.template consumer_release<CM>(prev);
      if (!OVERLAP && w.split >= 0) {
        // Split tile: publish this partial (fragment order: register i of thread t at i*128 + t, so each
        // warp writes 128 contiguous bytes), then count in; the last of `splits` arrivals reduces.
        const std::size_t slot = (static_cast<std::size_t>(w.tail) * CM + rank) * 2 + c;
        float* base = plan.ws + slot * plan.splits * WS_PART;
        float* mine = base + static_cast<std::size_t>(w.split) * WS_PART;
#pragma unroll
        for (int i = 0; i < WS_BN / 2; ++i) mine[i * 128 + t] = acc[i];
        __threadfence();
        named_barrier_sync(1 + c, 128);
        if (t == 0) {
          const int old = atomicAdd(plan.counters + slot, 1);
          const int last = old == plan.splits - 1;
          if (last) plan.counters[slot] = 0;  // every split has arrived: ready for the next launch
          last_flag[c] = last;
        }
        named_barrier_sync(1 + c, 128);
        if (!last_flag[c]) continue;
        __threadfence();
        for (int j = 0; j < plan.splits; ++j) {
          if (j == w.split) continue;
          const float* other = base + static_cast<std::size_t>(j) * WS_PART;
#pragma unroll
          for (int i = 0; i < WS_BN / 2; ++i) acc[i] += __ldcg(other + i * 128 + t);
        }
      }
      if (OVERLAP && N % 8 == 0 && w.split < 0) {
        if constexpr (OVERLAP) kn::pack_bf16<WS_BN>(acc, packed);
        pending = it;
        continue;
      }
      // The tile's corner, computed here rather than held in registers through the K loop.
      int um, tn;
      map(w.unit, um, tn);
      const int m0 = (um * CM + static_cast<int>(rank)) * WS_BM, n0 = tn * WS_BN;
      if (TMA_EPI && N % 8 == 0)
        kn::epilogue_tma_store<WS_BN>(acc, sEpi + c * 16384, &tma_c, m0 + c * 64, n0, 1 + c);
      else
        kn::store_fragment<WS_BN>(acc, C, std::size_t(N), M, N, m0 + c * 64, n0);
    }
    if (pending >= 0) store_packed();
    if constexpr (TMA_EPI)
      if (t == 0) kn::bulk_wait<0>();  // this warpgroup's last stores are out of shared memory and done
  }
  // No CTA may exit while its peer can still multicast into its shared memory or arrive on its barriers.
  if constexpr (CM > 1) kn::cluster_sync();
#else
  (void)M; (void)N; (void)K; (void)C; (void)plan;
  __trap();
#endif
}

// ------------------------------------------------------------------------------------------------
// Host side
// ------------------------------------------------------------------------------------------------
class GemmBf16 final : public aipe::ch10::Bf16GemmProblem {
 public:
  aipe::ExampleInfo info() const override {
    return {"ch10/gemm_bf16",
            "BF16 GEMM: naive -> tiles -> registers -> mma.sync -> TMA+WGMMA -> warp specialization -> clusters -> "
            "persistent -> TMA-store epilogue, vs cuBLAS",
            "A GEMM moves from bandwidth-bound to compute-bound only when every byte loaded is reused many times. "
            "Shared-memory tiles and register blocking raise reuse on the FP32 pipes; mma.sync moves the math to "
            "the tensor cores; Hopper then changes how the tensor cores are fed: TMA copies swizzled tiles "
            "without threads, WGMMA multiplies straight from shared memory for a whole warpgroup, a producer "
            "warpgroup keeps a ring of stages full while two consumer warpgroups compute, clusters halve the L2 "
            "traffic for B through multicast, and a persistent kernel overlaps each tile's epilogue with the next "
            "tile's loads and walks tiles in an L2-friendly order, and a TMA-store epilogue hands each finished "
            "tile to the copy engine so the tensor cores restart at once; the last rung keeps the finished tile as "
            "BF16 in registers and stores it while the next tile's first wgmma runs. Two measured counter-examples (splitting "
            "the last wave along K, clusters of 4) show what does not pay. The last rungs stand beside cuBLAS and "
            "cuBLASLt on the identical problem.",
            {{.name = "m", .def = 8192, .quick = 4096, .small = 1000, .help = "rows of A and C"},
             {.name = "n", .def = 8192, .quick = 4096, .small = 1480, .help = "columns of C (rows of the stored N x K B)"},
             {.name = "k", .def = 8192, .quick = 4096, .small = 520, .help = "inner dimension", .min = 1, .max = 1 << 20}},
            {}};
  }

  std::vector<aipe::Variant> variants() override {
    using Out = std::map<std::string, double>;
    // A Hopper rung: sm_90a code, TMA's alignment and shared memory (tma_skip_), then its own reason if any.
    auto hopper = [this](std::string name, std::string summary, std::function<void(cudaStream_t)> f,
                         std::function<std::string()> own_skip, std::function<void(double, Out&)> metrics) {
      return aipe::Variant{.name = std::move(name),
                           .summary = std::move(summary),
                           .launch = std::move(f),
                           .requires_ = {.sm90a = true},
                           .skip_if = [this, own_skip = std::move(own_skip)] {
                             return !tma_skip_.empty() || !own_skip ? tma_skip_ : own_skip();
                           },
                           .metrics = std::move(metrics)};
    };
    auto clusters = [this](double, Out& out) { out["max_active_clusters"] = max_clusters_; };
    // The TMA-epilogue rungs: clusters of 2 over the CM = 2 work units.
    auto epi_metrics = [this](double, Out& out) {
      out["max_active_clusters"] = max_clusters_epi_;
      out["ctas"] = 2.0 * std::min<std::int64_t>(max_clusters_epi_, units2());
    };
    auto epi_skip = [this] { return epi_skip_; };
    return {
        {.name = "naive",
         .summary = "one thread per output, operands straight from global memory",
         .launch = [this](cudaStream_t s) { launch_naive(s); },
         .budget_s = 1.0},  // ~1 s per launch at 8192^3: a few samples of the identical problem
        {.name = "smem_tiles",
         .summary = "32x32 tiles staged in shared memory, each element reused 32 times",
         .launch = [this](cudaStream_t s) { launch_smem(s); },
         .budget_s = 1.0},
        {.name = "register_blocking",
         .summary = "128x128 tile, 8x8 outputs per thread in registers (FP32 FMA)",
         .launch = [this](cudaStream_t s) { launch_regblock(s); }},
        {.name = "mma_sync",
         .summary = "tensor cores: mma.sync m16n8k16 + ldmatrix, 4-stage cp.async pipeline",
         .launch = [this](cudaStream_t s) { launch_mma(s); },
         .requires_ = {.min_cc = 80},
         .skip_if = [this] { return k_ % 8 ? std::string("cp.async copies 16-byte rows: needs K % 8 == 0") : ""; }},
        hopper("wgmma_tma", "TMA loads 128B-swizzled tiles, wgmma m64n128k16 from shared memory",
               [this](cudaStream_t s) { launch_wgmma_tma(s); }, {}, {}),
        hopper("warp_specialized", "producer warpgroup + 2 consumer warpgroups, 128x256 tile, mbarrier ring, setmaxnreg",
               [this](cudaStream_t s) { launch_ws<1, false>(s); }, {}, {}),
        hopper("cluster_multicast", "clusters of 2 CTAs share B through TMA multicast",
               [this](cudaStream_t s) { launch_ws<2, false>(s); }, {}, clusters),
        hopper("persistent", "persistent CTAs, static tile scheduler, grouped raster for L2 reuse",
               [this](cudaStream_t s) { launch_ws<2, true>(s); }, {},
               [this](double, Out& out) {
                 out["max_active_clusters"] = max_clusters_;
                 out["ctas"] = 2.0 * std::min<std::int64_t>(max_clusters_, units2());
               }),
        hopper("split_tail", "tiles of the last, partial wave split along K; the last CTA to finish a tile reduces",
               [this](cudaStream_t s) { launch_ws<2, true, false, true>(s); }, {},
               [this](double, Out& out) {
                 out["max_active_clusters"] = max_clusters_;
                 out["ctas"] = 2.0 * std::min(max_clusters_, split_plan_.items);
                 out["tail_tiles"] = 2.0 * (split_plan_.units - split_plan_.full_units);
                 out["tail_splits"] = split_plan_.splits;
                 // Waves of the grid, in units of one whole-K tile per cluster: ceil(units / clusters) without the split.
                 const double P = max_clusters_, tail = split_plan_.units - split_plan_.full_units;
                 out["waves"] = split_plan_.full_units / P + std::ceil(tail * split_plan_.splits / P) / split_plan_.splits;
               }),
        hopper("tma_epilogue", "persistent, epilogue through shared memory and TMA stores that overlap the next tile",
               [this](cudaStream_t s) { launch_ws<2, true, true>(s); }, epi_skip, epi_metrics),
        hopper("multicast_x4", "rung 10 with clusters of 4 CTAs along M: each loads a quarter of B for all four",
               [this](cudaStream_t s) { launch_ws<4, true, true>(s); }, [this] { return x4_skip_; },
               [this](double, Out& out) {
                 out["max_active_clusters"] = max_clusters_x4_;
                 out["ctas"] = 4.0 * std::min<std::int64_t>(max_clusters_x4_, ((m_ + 511) / 512) * ((n_ + WS_BN - 1) / WS_BN));
               }),
        hopper("epilogue_overlap",
               "rung 10, the finished tile kept as BF16 in registers and stored under the next tile's first K step",
               [this](cudaStream_t s) { launch_ws<2, true, true, false, true>(s); }, epi_skip, epi_metrics),
        cublas_rung(),
        cublaslt_rung()};
  }

  void setup(aipe::Context& ctx) override {
    setup_problem(ctx, "ch10/gemm_bf16");  // A, B, C, the reference and the library rungs
    sm_count_ = ctx.device().sm_count;

    // Hopper rungs: tensor maps (128 x 64 boxes, 128B swizzle) and shared-memory opt-in.
    tma_skip_.clear();
    const std::size_t optin = ctx.device().smem_per_block_optin_bytes;
    if (k_ % 8) tma_skip_ = "TMA needs 16-byte aligned rows: K % 8 == 0";
    else if (optin < WS_SMEM) tma_skip_ = "needs " + std::to_string(WS_SMEM) + " B of shared memory per block";
    if (tma_skip_.empty() && AIPE_HAVE_SM90A && ctx.device().cc() >= 90) {
      tma_a_ = kn::matrix_map(kBf16, a_.get(), m_, k_, k_, H_BOX_ROWS, H_BK);
      tma_b_ = kn::matrix_map(kBf16, b_.get(), n_, k_, k_, H_BOX_ROWS, H_BK);
      AIPE_CUDA(cudaFuncSetAttribute(gemm_wgmma_tma, cudaFuncAttributeMaxDynamicSharedMemorySize, int(W5_SMEM)));
      AIPE_CUDA(cudaFuncSetAttribute(gemm_ws<1, false>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(WS_SMEM)));
      AIPE_CUDA(cudaFuncSetAttribute(gemm_ws<2, false>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(WS_SMEM)));
      AIPE_CUDA(cudaFuncSetAttribute(gemm_ws<2, true>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(WS_SMEM)));
      // C through TMA: 64 x 64 boxes (128 bytes of BF16 per row, 128B swizzle); rows must be 16-byte aligned.
      if (n_ % 8 == 0) tma_c_ = kn::matrix_map(kBf16, c_.get(), m_, n_, n_, 64, 64);
      // How many CTA pairs the GPU can hold at once (GPCs with an odd SM count leave one SM idle): the
      // persistent grid is exactly that many clusters, so no cluster waits for a second wave.
      max_clusters_ = kn::cluster_occupancy(gemm_ws<2, true>, 384, WS_SMEM, 2);
      if (max_clusters_ < 1) tma_skip_ = "no cluster of 2 CTAs with " + std::to_string(WS_SMEM) + " B of shared memory fits";
      else plan_split_tail();
      // The epilogue rung needs 32 KiB more shared memory per CTA; it is still one CTA per SM.
      epi_skip_.clear();
      x4_skip_.clear();
      max_clusters_epi_ = max_clusters_x4_ = 0;
      if (optin < WS_SMEM_EPI) {
        epi_skip_ = x4_skip_ = "needs " + std::to_string(WS_SMEM_EPI) + " B of shared memory per block";
      } else {
        AIPE_CUDA(cudaFuncSetAttribute(gemm_ws<2, true, true>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       int(WS_SMEM_EPI)));
        AIPE_CUDA(cudaFuncSetAttribute(gemm_ws<2, true, true, true>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       int(WS_SMEM_EPI)));
        max_clusters_epi_ = kn::cluster_occupancy(gemm_ws<2, true, true>, 384, WS_SMEM_EPI, 2);
        if (max_clusters_epi_ < 1)
          epi_skip_ = "no cluster of 2 CTAs with " + std::to_string(WS_SMEM_EPI) + " B of shared memory fits";
        // Clusters of 4: B in 64-row slices, one per CTA. GPCs whose SM count is not a multiple of 4
        // leave the remainder idle: the grid is what cudaOccupancyMaxActiveClusters says fits.
        tma_b4_ = kn::matrix_map(kBf16, b_.get(), n_, k_, k_, WS_BN / 4, H_BK);
        AIPE_CUDA(cudaFuncSetAttribute(gemm_ws<4, true, true>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       int(WS_SMEM_EPI)));
        max_clusters_x4_ = kn::cluster_occupancy(gemm_ws<4, true, true>, 384, WS_SMEM_EPI, 4);
        if (max_clusters_x4_ < 1)
          x4_skip_ = "no cluster of 4 CTAs with " + std::to_string(WS_SMEM_EPI) + " B of shared memory fits";
      }
    }
    if (ctx.device().cc() >= 80)
      AIPE_CUDA(cudaFuncSetAttribute(gemm_mma_sync, cudaFuncAttributeMaxDynamicSharedMemorySize, int(S_SMEM)));

  }

 private:
  std::int64_t units2() const {  // cluster work units of the CM = 2 rungs
    return ((m_ + 2 * WS_BM - 1) / (2 * WS_BM)) * ((n_ + WS_BN - 1) / WS_BN);
  }
  int M() const { return int(m_); }
  int N() const { return int(n_); }
  int K() const { return int(k_); }

  void launch_naive(cudaStream_t s) {
    const dim3 block(32, 8), grid((N() + 31) / 32, (M() + 7) / 8);
    gemm_naive<<<grid, block, 0, s>>>(a_.get(), b_.get(), c_.get(), M(), N(), K());
    AIPE_CHECK_LAUNCH();
  }
  void launch_smem(cudaStream_t s) {
    const dim3 block(T2, T2), grid((N() + T2 - 1) / T2, (M() + T2 - 1) / T2);
    gemm_smem_tiles<<<grid, block, 0, s>>>(a_.get(), b_.get(), c_.get(), M(), N(), K());
    AIPE_CHECK_LAUNCH();
  }
  void launch_regblock(cudaStream_t s) {
    const dim3 grid((N() + R_BN - 1) / R_BN, (M() + R_BM - 1) / R_BM);
    gemm_register_blocking<<<grid, 256, 0, s>>>(a_.get(), b_.get(), c_.get(), M(), N(), K());
    AIPE_CHECK_LAUNCH();
  }
  void launch_mma(cudaStream_t s) {
    const dim3 grid((N() + S_BN - 1) / S_BN, (M() + S_BM - 1) / S_BM);
    gemm_mma_sync<<<grid, 256, S_SMEM, s>>>(a_.get(), b_.get(), c_.get(), M(), N(), K());
    AIPE_CHECK_LAUNCH();
  }
  void launch_wgmma_tma(cudaStream_t s) {
    const dim3 grid((N() + W5_BN - 1) / W5_BN, (M() + W5_BM - 1) / W5_BM);
    gemm_wgmma_tma<<<grid, 256, W5_SMEM, s>>>(tma_a_, tma_b_, c_.get(), M(), N(), K());
    AIPE_CHECK_LAUNCH();
  }
  // Splits the tail: the units left after whole waves of the persistent grid are cut into `splits` K
  // ranges (1..4, at least 4 K tiles each), choosing the count that ends the last wave soonest.
  void plan_split_tail() {
    const int units = static_cast<int>(units2()), P = max_clusters_;
    const int ktiles = static_cast<int>((k_ + H_BK - 1) / H_BK);
    split_plan_ = kn::plan_split_tail(units, P, ktiles, 4, 4);
    if (split_plan_.splits > 1) {
      const int tail = units - split_plan_.full_units, best = split_plan_.splits;
      split_ws_ = aipe::DeviceBuffer<float>(static_cast<std::size_t>(tail) * 2 * 2 * best * WS_PART);
      split_counters_ = aipe::DeviceBuffer<int>(static_cast<std::size_t>(tail) * 2 * 2);
      AIPE_CUDA(cudaMemset(split_counters_.get(), 0, split_counters_.bytes()));
      split_plan_.ws = split_ws_.get();
      split_plan_.counters = split_counters_.get();
    }
  }

  template <int CM, bool PERSISTENT, bool TMA_EPI = false, bool SPLIT = false, bool OVERLAP = false>
  void launch_ws(cudaStream_t s) {
    static_assert(!(SPLIT && OVERLAP), "the overlapped epilogue takes whole-K tiles only");
    const int tiles_m = (M() + WS_BM - 1) / WS_BM, tiles_n = (N() + WS_BN - 1) / WS_BN;
    const int units = ((tiles_m + CM - 1) / CM) * tiles_n;
    const int ktiles = (K() + H_BK - 1) / H_BK;
    kn::SplitTailPlan plan{units, units, 1, ktiles, units, nullptr, nullptr};
    if (SPLIT) plan = split_plan_;
    int clusters = plan.items;
    if (PERSISTENT) clusters = std::min(plan.items, CM == 4 ? max_clusters_x4_ : TMA_EPI ? max_clusters_epi_ : max_clusters_);
    kn::launch_in_clusters(gemm_ws<CM, PERSISTENT, TMA_EPI, OVERLAP>, clusters * CM, 384,
                           TMA_EPI ? WS_SMEM_EPI : WS_SMEM, CM, s, tma_a_, CM == 4 ? tma_b4_ : tma_b_, tma_c_,
                           c_.get(), M(), N(), K(), plan);
  }

 private:
  int sm_count_ = 1;
  int max_clusters_ = 1, max_clusters_epi_ = 0, max_clusters_x4_ = 0;
  kn::SplitTailPlan split_plan_{};
  aipe::DeviceBuffer<float> split_ws_;
  aipe::DeviceBuffer<int> split_counters_;
  CUtensorMap tma_a_{}, tma_b_{}, tma_b4_{}, tma_c_{};
  std::string tma_skip_, epi_skip_, x4_skip_;
};

}  // namespace

AIPE_REGISTER_EXAMPLE(GemmBf16);
