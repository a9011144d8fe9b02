// aipe::kernels::grouped_gemm (aipe/kernels/grouped_gemm.hpp): the expert GEMMs of an MoE layer in one launch, the
// expert of every tile and its row range read from the device offsets, so the host knows only the capacity `rows`.
//
// Two kernels, chosen from `rows` (detail::grouped_gemm_streams):
//   grouped_wgmma_kernel<Mx>   prefill. Persistent, warp-specialized: warpgroup 0 fills a ring of 6 stages of
//       128 x 64 A and 128 x 64 W (128B-swizzled, the layout WGMMA reads), warpgroups 1 and 2 each run
//       wgmma m64n128k16 on 64 rows of the 128 x 128 tile. At kernel start every CTA turns the offsets into a
//       per-expert prefix of ceil(m_e / 128) * ceil(N / 128) tiles in shared memory (scheduler.hpp's
//       GroupedTiles), then walks tiles blockIdx.x, + gridDim.x, ... Expert e's tiles start at grouped row
//       offsets[e]: a tile's rows past the expert's end are loaded (they are the next expert's, or TMA's zeros)
//       but never stored; the store is masked to [offsets[e], offsets[e + 1]) and N. The bias of expert e joins
//       in the epilogue.
//       Loads: A by TMA over [rows][K] in 128 x 64 boxes, or with `gather` by the producer's 128 threads, one
//       grouped row each, with cp.async (16-byte chunks placed where the 128-byte swizzle puts them); BF16 W by
//       TMA over [E][N][K] in 64 x 128 x 1 boxes (rows past N zero-filled per expert); MXFP4 W (Mx) by the
//       producer threads, one W row each: 32 packed bytes and 2 scales per stage, decoded exactly to BF16 times
//       2^(scale - 127) (aipe/kernels/mxfp4.cuh) and stored swizzled. Every producer thread arrives on a stage's
//       full barrier once, two stages after it filled it (its cp.async groups have landed by then; a proxy fence
//       makes its generic writes visible to WGMMA), thread 0 also announcing the TMA bytes.
//   grouped_stream_kernel<Mx>   decode (rows <= 64). Each CTA first lists the experts with rows, then takes work
//       items (active expert, 32 columns of N): the expert's rows, 4 at a time, staged as FP32 in shared memory
//       (gathered when asked), and each warp streams 4 rows of W_e once per 4 activation rows, 16 bytes per lane
//       per load (8 BF16, or one MXFP4 block of 32 with its scale), FP32 FMAs on the CUDA cores, a warp
//       reduction at the end. Experts without rows are never read: the weight bytes are those of the active
//       experts only.
#include <cuda.h>
#include <cuda_bf16.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>

#include "aipe/check.hpp"
#include "aipe/kernels/epilogue.cuh"
#include "aipe/kernels/grouped_gemm.hpp"
#include "aipe/kernels/launch.cuh"
#include "aipe/kernels/mxfp4.cuh"
#include "aipe/kernels/pipeline.cuh"
#include "aipe/kernels/ptx.cuh"
#include "aipe/kernels/scheduler.hpp"
#include "aipe/kernels/tma.hpp"
#include "aipe/kernels/wgmma.cuh"
#include "grouped_gemm_detail.hpp"

namespace aipe::kernels {
namespace {

// ---------------------------------------------------------------------------------------------
// MXFP4 decode (aipe/kernels/moe.hpp's format)
// ---------------------------------------------------------------------------------------------

// E2M1 code (4 bits) as FP32, exactly: magnitudes 0, 0.5, 1, 1.5, 2, 3, 4, 6. For m = code & 7 >= 2 the code's
// exponent and mantissa bits (m << 22) land in FP32's exponent and first mantissa bit with bias 127 - 1 added;
// m = 1 is the subnormal 0.5.
__device__ __forceinline__ float e2m1_to_float(std::uint32_t code) {
  const std::uint32_t m = code & 7u;
  const std::uint32_t mag = m >= 2 ? (m << 22) + 0x3F000000u : (m ? 0x3F000000u : 0u);
  return __uint_as_float(mag | ((code & 8u) << 28));
}
// E8M0 scale as FP32: 2^(s - 127), 2^-127 (s = 0) as FP32's subnormal, NaN for 255.
__device__ __forceinline__ float e8m0_to_float(std::uint32_t s) {
  return s == 255u ? __uint_as_float(0x7FC00000u) : s == 0u ? __uint_as_float(0x00400000u) : __uint_as_float(s << 23);
}
// The clamped row range of expert e: [lo, hi) within [0, rows).
__device__ __forceinline__ void expert_rows(const int* offsets, int e, int rows, int& lo, int& hi) {
  lo = min(max(__ldg(offsets + e), 0), rows);
  hi = min(max(__ldg(offsets + e + 1), lo), rows);
}

// ---------------------------------------------------------------------------------------------
// Prefill: persistent warp-specialized TMA + WGMMA
// ---------------------------------------------------------------------------------------------

constexpr int kBM = 128, kBN = 128, kBK = 64;
constexpr int kStages = 6;
constexpr int kThreads = 384;
constexpr int kLag = 2;  // a producer thread signals a stage this many stages after it filled it (< kStages - 1)
constexpr int kTileBytes = kBM * kBK * 2;  // 16 KiB, A's and W's alike
constexpr int kStageBytes = 2 * kTileBytes;
constexpr int kMaxExperts = 1024;
// [1024 alignment][stages][tile prefix: kMaxExperts + 1 ints][full, empty barriers]
constexpr std::size_t kWgmmaSmem = 1024 + std::size_t(kStages) * kStageBytes + 4 * (kMaxExperts + 4) + 16 * kStages;
static_assert(kWgmmaSmem <= 232448, "one CTA per SM: 227 KiB of shared memory");

struct WgmmaArgs {
  const bf16* a = nullptr;  // with gather: the un-permuted activations, lda apart
  long long lda = 0;
  int a_rows = 0;           // rows of `a` (gather indices outside are read as zeros)
  const int* gather = nullptr;
  const int* offsets = nullptr;
  int rows = 0, experts = 0, n = 0, k = 0;
  const std::uint8_t* w_blocks = nullptr;
  const std::uint8_t* w_scales = nullptr;
  const bf16* bias = nullptr;
  bf16* c = nullptr;
  long long ldc = 0;
};

// Offset of 16-byte chunk j of row r in a 128B-swizzled box of 128-byte rows (1024-byte aligned): what TMA writes
// with CU_TENSOR_MAP_SWIZZLE_128B and wgmma_desc_sw128 reads.
__device__ __forceinline__ int sw128(int r, int j) { return r * 128 + ((j ^ (r & 7)) << 4); }

template <bool Mx>
__global__ void __launch_bounds__(kThreads, 1)
    grouped_wgmma_kernel(const __grid_constant__ CUtensorMap tma_a, const __grid_constant__ CUtensorMap tma_w,
                         const WgmmaArgs args) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ unsigned char smem_raw[];
  unsigned char* smem =
      reinterpret_cast<unsigned char*>((reinterpret_cast<std::uintptr_t>(smem_raw) + 1023) & ~std::uintptr_t(1023));
  auto sA = [&](int s) { return smem + s * kStageBytes; };
  auto sW = [&](int s) { return smem + s * kStageBytes + kTileBytes; };
  int* tile_begin = reinterpret_cast<int*>(smem + kStages * kStageBytes);  // [experts + 1]
  const Pipeline<kStages> pipe(reinterpret_cast<std::uint64_t*>(tile_begin + kMaxExperts + 4));
  using State = PipelineState<kStages>;

  const int E = args.experts, N = args.n, K = args.k, rows = args.rows;
  const int tiles_n = (N + kBN - 1) / kBN, ktiles = (K + kBK - 1) / kBK;
  const bool gather = args.gather != nullptr;

  // Tiles per expert, then their prefix (warp 0, 32 experts a step).
  for (int e = threadIdx.x; e < E; e += kThreads) {
    int lo, hi;
    expert_rows(args.offsets, e, rows, lo, hi);
    tile_begin[e + 1] = (hi - lo + kBM - 1) / kBM * tiles_n;
  }
  if (threadIdx.x == 0) {
    tile_begin[0] = 0;
    // full: one arrival per producer thread (thread 0's comes with the TMA bytes announced); empty: one per
    // consumer warpgroup.
    pipe.init(128, 2);
    fence_barrier_init();
  }
  __syncthreads();
  if (threadIdx.x < 32) {
    const int lane = threadIdx.x;
    int carry = 0;
    for (int base = 0; base < E; base += 32) {
      const int e = base + lane;
      int v = e < E ? tile_begin[e + 1] : 0;
#pragma unroll
      for (int d = 1; d < 32; d *= 2) {
        const int o = __shfl_up_sync(0xffffffffu, v, d);
        if (lane >= d) v += o;
      }
      if (e < E) tile_begin[e + 1] = v + carry;
      carry += __shfl_sync(0xffffffffu, v, 31);
    }
  }
  __syncthreads();
  const GroupedTiles tiles{E, tiles_n, 0, tile_begin};
  const int total = tile_begin[E];

  const int wg = warpgroup_index();
  if (wg == 0) {
    const int t = threadIdx.x;  // this thread's A row and W row of every tile
    if (t == 0) {  // the maps in use (an unused one is all zeros)
      if (!Mx) tma_prefetch_descriptor(&tma_w);
      if (!gather) tma_prefetch_descriptor(&tma_a);
    }
    const std::uint32_t tma_bytes = (gather ? 0 : kTileBytes) + (Mx ? 0 : kTileBytes);
    const int kblocks = K / 32;
    State st, done;
    int pending = 0;
    auto signal = [&] {
      fence_proxy_async();  // this thread's st.shared and cp.async writes, seen by WGMMA
      mbar_arrive(pipe.full_bar(done));
      done.advance();
    };
    for (int u = blockIdx.x; u < total; u += gridDim.x) {
      const GroupedTile tile = tiles(u);
      int lo, hi;
      expert_rows(args.offsets, tile.problem, rows, lo, hi);
      const int row0 = lo + tile.tm * kBM, n0 = tile.tn * kBN;
      // This thread's gathered source row (gather), -1 past the expert's rows or outside `a`.
      int src = -1;
      if (gather && row0 + t < hi) {
        const int g = __ldg(args.gather + row0 + t);
        src = g >= 0 && g < args.a_rows ? g : -1;
      }
      const bf16* a_row = args.a + (src >= 0 ? std::size_t(src) * args.lda : 0);
      const int n = n0 + t;
      const std::size_t wrow = std::size_t(tile.problem) * N + n;  // MXFP4 row of W_e, valid when n < N
      for (int kt = 0; kt < ktiles; ++kt) {
        const int s = st.index;
        // MXFP4: this stage's packed bytes and scales, loaded before the slot is waited for.
        uint4 raw[2] = {make_uint4(0, 0, 0, 0), make_uint4(0, 0, 0, 0)};
        std::uint32_t sc[2] = {0, 0};
        if constexpr (Mx) {
#pragma unroll
          for (int b = 0; b < 2; ++b) {
            const int kb = 2 * kt + b;
            if (n < N && kb < kblocks) {
              raw[b] = __ldg(reinterpret_cast<const uint4*>(args.w_blocks) + wrow * kblocks + kb);
              sc[b] = __ldg(args.w_scales + wrow * kblocks + kb);
            }
          }
        }
        pipe.producer_acquire(st);
        if (t == 0 && tma_bytes) {
          std::uint64_t* bar = pipe.full_bar(st);
          mbar_expect_tx(bar, tma_bytes);
          if (!gather) tma_load_2d(sA(s), &tma_a, bar, kt * kBK, row0);
          if constexpr (!Mx) tma_load_3d(sW(s), &tma_w, bar, kt * kBK, n0, tile.problem);
        }
        if (gather) {
#pragma unroll
          for (int j = 0; j < 8; ++j) {
            const int kc = kt * kBK + 8 * j;
            const bool valid = src >= 0 && kc < K;
            cp_async_16(sA(s) + sw128(t, j), valid ? a_row + kc : args.a, valid);
          }
        }
        cp_async_commit();
        if constexpr (Mx) {
#pragma unroll
          for (int b = 0; b < 2; ++b) {
            const __nv_bfloat162 scale = mxfp4::e8m0_to_bf16x2(sc[b]);
            const std::uint32_t words[4] = {raw[b].x, raw[b].y, raw[b].z, raw[b].w};
#pragma unroll
            for (int q = 0; q < 4; ++q) {  // 8 elements: chunk 4 b + q of the 64-element row
              const uint4 v = mxfp4::e2m1x8_to_bf16x8(words[q], scale);
              *reinterpret_cast<uint4*>(sW(s) + sw128(t, 4 * b + q)) = v;
            }
          }
        }
        st.advance();
        if (++pending > kLag) {
          cp_async_wait<kLag>();
          signal();
          --pending;
        }
      }
    }
    cp_async_wait<0>();
    while (pending-- > 0) signal();
  } else {
    const int c = wg - 1;  // consumer: rows 64 c .. 64 c + 63 of the tile
    const int t = threadIdx.x % 128;
    const std::uint64_t desc_a0 = wgmma_desc_sw128(sA(0) + c * 64 * 128), desc_w0 = wgmma_desc_sw128(sW(0));
    State st;
    for (int u = blockIdx.x; u < total; u += gridDim.x) {
      const GroupedTile tile = tiles(u);
      int lo, hi;
      expert_rows(args.offsets, tile.problem, rows, lo, hi);
      const int row0 = lo + tile.tm * kBM + c * 64, col0 = tile.tn * kBN;
      float acc[kBN / 2];
#pragma unroll
      for (int i = 0; i < kBN / 2; ++i) acc[i] = 0.f;
      int prev = -1;  // the slot whose wgmma group may still be reading shared memory
      for (int kt = 0; kt < ktiles; ++kt) {
        const int s = st.index;
        pipe.consumer_wait(st);
        fence_regs(acc);
        wgmma_fence();
        const std::uint64_t da = desc_a0 + static_cast<std::uint32_t>(s * (kStageBytes >> 4));
        const std::uint64_t dw = desc_w0 + static_cast<std::uint32_t>(s * (kStageBytes >> 4));
#pragma unroll
        for (int kk = 0; kk < kBK / 16; ++kk) wgmma_ss<kBN>(acc, da + 2 * kk, dw + 2 * kk, 1);
        wgmma_commit();
        wgmma_wait<1>();
        fence_regs(acc);
        if (prev >= 0 && t == 0) pipe.consumer_release(prev);
        prev = s;
        st.advance();
      }
      wgmma_wait<0>();
      fence_regs(acc);
      if (prev >= 0 && t == 0) pipe.consumer_release(prev);
      const int r = row0 + 16 * (t / 32) + (t % 32) / 4, cc = col0 + 2 * (t % 4);
      if (args.bias) apply_fragment<kBN>(acc, epi::Bias<bf16>{args.bias + std::size_t(tile.problem) * N}, r, cc, hi, N);
      store_fragment<kBN>(acc, args.c, std::size_t(args.ldc), hi, N, row0, col0);
    }
  }
#else
  (void)tma_a; (void)tma_w; (void)args;
  __trap();
#endif
}

// ---------------------------------------------------------------------------------------------
// Decode: weight streaming on the CUDA cores
// ---------------------------------------------------------------------------------------------

constexpr int kStreamThreads = 256;                    // 8 warps
constexpr int kColsPerWarp = 4;                        // W rows each warp streams at once
constexpr int kStreamCols = 8 * kColsPerWarp;          // 32 columns of N per work item
constexpr int kStreamRows = 4;                         // activation rows per pass over the weights
constexpr int kStreamKChunk = 2048;                    // K elements of the staged rows (32 KiB of FP32)

struct StreamArgs {
  const bf16* a = nullptr;
  long long lda = 0;
  int a_rows = 0;
  const int* gather = nullptr;
  const int* offsets = nullptr;
  int rows = 0, experts = 0, n = 0, k = 0;
  const bf16* w = nullptr;
  long long w_stride = 0;
  const std::uint8_t* w_blocks = nullptr;
  const std::uint8_t* w_scales = nullptr;
  const bf16* bias = nullptr;
  bf16* c = nullptr;
  long long ldc = 0;
};

__device__ __forceinline__ uint4 ld_stream_u4(const void* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}
__device__ __forceinline__ float bf16_lo(std::uint32_t p) { return __uint_as_float(p << 16); }
__device__ __forceinline__ float bf16_hi(std::uint32_t p) { return __uint_as_float(p & 0xFFFF0000u); }

template <bool Mx>
__global__ void __launch_bounds__(kStreamThreads, 2) grouped_stream_kernel(const StreamArgs args) {
  __shared__ __align__(16) float xs[kStreamRows][kStreamKChunk];  // the pass's activation rows, FP32
  __shared__ int active[kMaxExperts], act_lo[kMaxExperts], act_m[kMaxExperts];
  __shared__ int n_active;

  const int E = args.experts, N = args.n, K = args.k;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  // The experts that have rows, in expert order (warp 0, 32 experts a step).
  if (warp == 0) {
    int count = 0;
    for (int base = 0; base < E; base += 32) {
      const int e = base + lane;
      int lo = 0, hi = 0;
      if (e < E) expert_rows(args.offsets, e, args.rows, lo, hi);
      const unsigned has = __ballot_sync(0xffffffffu, hi > lo);
      if (hi > lo) {
        const int slot = count + __popc(has & ((1u << lane) - 1u));
        active[slot] = e;
        act_lo[slot] = lo;
        act_m[slot] = hi - lo;
      }
      count += __popc(has);
    }
    if (lane == 0) n_active = count;
  }
  __syncthreads();
  const int slices = (N + kStreamCols - 1) / kStreamCols;
  const int items = n_active * slices;
  for (int item = blockIdx.x; item < items; item += gridDim.x) {
    const int a_idx = item / slices, e = active[a_idx], lo = act_lo[a_idx], m = act_m[a_idx];
    const int n_base = (item % slices) * kStreamCols + warp * kColsPerWarp;
    for (int r0 = 0; r0 < m; r0 += kStreamRows) {
      const int nr = min(kStreamRows, m - r0);
      float acc[kColsPerWarp][kStreamRows];
#pragma unroll
      for (int c = 0; c < kColsPerWarp; ++c)
#pragma unroll
        for (int r = 0; r < kStreamRows; ++r) acc[c][r] = 0.f;
      for (int k0 = 0; k0 < K; k0 += kStreamKChunk) {
        const int kc = min(kStreamKChunk, K - k0);
        __syncthreads();  // the previous chunk's readers are done
        // Stage rows r0 .. r0 + nr of the expert, K elements k0 .. k0 + kc, as FP32 (8 per thread a step).
        for (int i = threadIdx.x; i < nr * (kc / 8); i += kStreamThreads) {
          const int r = i / (kc / 8), k8 = (i % (kc / 8)) * 8;
          int src = lo + r0 + r;
          if (args.gather) src = __ldg(args.gather + src);
          uint4 v = make_uint4(0, 0, 0, 0);
          if (src >= 0 && src < args.a_rows)
            v = __ldg(reinterpret_cast<const uint4*>(args.a + std::size_t(src) * args.lda + k0 + k8));
          float4* d = reinterpret_cast<float4*>(&xs[r][k8]);
          d[0] = make_float4(bf16_lo(v.x), bf16_hi(v.x), bf16_lo(v.y), bf16_hi(v.y));
          d[1] = make_float4(bf16_lo(v.z), bf16_hi(v.z), bf16_lo(v.w), bf16_hi(v.w));
        }
        __syncthreads();
        if constexpr (!Mx) {
          // Lane covers 8 elements, the warp 256 per step.
          for (int kk = lane * 8; kk < kc; kk += 256) {
            uint4 wv[kColsPerWarp];
#pragma unroll
            for (int c = 0; c < kColsPerWarp; ++c) {
              const int n = n_base + c;
              wv[c] = n < N ? ld_stream_u4(args.w + std::size_t(e) * args.w_stride + std::size_t(n) * K + k0 + kk)
                            : make_uint4(0, 0, 0, 0);
            }
#pragma unroll
            for (int r = 0; r < kStreamRows; ++r) {
              if (r >= nr) break;
              const float4 x0 = *reinterpret_cast<const float4*>(&xs[r][kk]);
              const float4 x1 = *reinterpret_cast<const float4*>(&xs[r][kk + 4]);
#pragma unroll
              for (int c = 0; c < kColsPerWarp; ++c) {
                float s = acc[c][r];
                s = fmaf(bf16_lo(wv[c].x), x0.x, s);
                s = fmaf(bf16_hi(wv[c].x), x0.y, s);
                s = fmaf(bf16_lo(wv[c].y), x0.z, s);
                s = fmaf(bf16_hi(wv[c].y), x0.w, s);
                s = fmaf(bf16_lo(wv[c].z), x1.x, s);
                s = fmaf(bf16_hi(wv[c].z), x1.y, s);
                s = fmaf(bf16_lo(wv[c].w), x1.z, s);
                s = fmaf(bf16_hi(wv[c].w), x1.w, s);
                acc[c][r] = s;
              }
            }
          }
        } else {
          // Lane covers one block of 32 elements (16 bytes and a scale), the warp 1024 per step.
          const int kblocks = K / 32;
          for (int kk = lane * 32; kk < kc; kk += 1024) {
            const int kb = (k0 + kk) / 32;
            uint4 wv[kColsPerWarp];
            float scale[kColsPerWarp];
#pragma unroll
            for (int c = 0; c < kColsPerWarp; ++c) {
              const int n = n_base + c;
              const std::size_t blk = (std::size_t(e) * N + n) * kblocks + kb;
              wv[c] = n < N ? ld_stream_u4(args.w_blocks + blk * 16) : make_uint4(0, 0, 0, 0);
              scale[c] = n < N ? e8m0_to_float(__ldg(args.w_scales + blk)) : 0.f;
            }
            // Column by column: 8 codes decoded at a time, each used for every staged row; the block's sum in
            // E2M1 units (exact products) is scaled once.
#pragma unroll
            for (int c = 0; c < kColsPerWarp; ++c) {
              const std::uint32_t words[4] = {wv[c].x, wv[c].y, wv[c].z, wv[c].w};
              float s[kStreamRows] = {};
#pragma unroll
              for (int q = 0; q < 4; ++q) {
                float w8[8];
#pragma unroll
                for (int i = 0; i < 8; ++i) w8[i] = e2m1_to_float(words[q] >> (4 * i));
#pragma unroll
                for (int r = 0; r < kStreamRows; ++r) {
                  if (r >= nr) break;
                  const float4 x0 = *reinterpret_cast<const float4*>(&xs[r][kk + 8 * q]);
                  const float4 x1 = *reinterpret_cast<const float4*>(&xs[r][kk + 8 * q + 4]);
                  s[r] = fmaf(w8[0], x0.x, s[r]);
                  s[r] = fmaf(w8[1], x0.y, s[r]);
                  s[r] = fmaf(w8[2], x0.z, s[r]);
                  s[r] = fmaf(w8[3], x0.w, s[r]);
                  s[r] = fmaf(w8[4], x1.x, s[r]);
                  s[r] = fmaf(w8[5], x1.y, s[r]);
                  s[r] = fmaf(w8[6], x1.z, s[r]);
                  s[r] = fmaf(w8[7], x1.w, s[r]);
                }
              }
#pragma unroll
              for (int r = 0; r < kStreamRows; ++r) acc[c][r] = fmaf(s[r], scale[c], acc[c][r]);
            }
          }
        }
      }
      // Sum over the lanes; lane c * kStreamRows + r stores (row r, column c).
#pragma unroll
      for (int c = 0; c < kColsPerWarp; ++c)
#pragma unroll
        for (int r = 0; r < kStreamRows; ++r)
#pragma unroll
          for (int o = 16; o > 0; o /= 2) acc[c][r] += __shfl_xor_sync(0xffffffffu, acc[c][r], o);
#pragma unroll
      for (int c = 0; c < kColsPerWarp; ++c)
#pragma unroll
        for (int r = 0; r < kStreamRows; ++r) {
          const int n = n_base + c;
          if (lane == c * kStreamRows + r && r < nr && n < N) {
            float v = acc[c][r];
            if (args.bias) v += __bfloat162float(args.bias[std::size_t(e) * N + n]);
            args.c[std::size_t(lo + r0 + r) * args.ldc + n] = __float2bfloat16_rn(v);
          }
        }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Host side
// ---------------------------------------------------------------------------------------------

struct DeviceState {
  int sms = 0;
  int stream_ctas = 0;  // resident streaming CTAs
};

const DeviceState& device_state() {
  static std::mutex mu;
  static std::map<int, DeviceState> states;
  int device = 0;
  AIPE_CUDA(cudaGetDevice(&device));
  const std::lock_guard<std::mutex> lock(mu);
  if (auto it = states.find(device); it != states.end()) return it->second;
  cudaDeviceProp p{};
  AIPE_CUDA(cudaGetDeviceProperties(&p, device));
  if (p.major != 9 || p.minor != 0)
    throw std::runtime_error("kernels::grouped_gemm needs a Hopper GPU (sm_90a); device " + std::to_string(device) +
                             " is cc " + std::to_string(p.major) + "." + std::to_string(p.minor));
  if (p.sharedMemPerBlockOptin < kWgmmaSmem)
    throw std::runtime_error("kernels::grouped_gemm needs " + std::to_string(kWgmmaSmem) +
                             " B of shared memory per block; device " + std::to_string(device) + " allows " +
                             std::to_string(p.sharedMemPerBlockOptin));
  set_max_dynamic_smem(grouped_wgmma_kernel<false>, kWgmmaSmem);
  set_max_dynamic_smem(grouped_wgmma_kernel<true>, kWgmmaSmem);
  DeviceState st;
  st.sms = p.multiProcessorCount;
  int per_sm = 0;
  AIPE_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, grouped_stream_kernel<true>, kStreamThreads, 0));
  st.stream_ctas = std::max(1, per_sm) * p.multiProcessorCount;
  return states.emplace(device, st).first->second;
}

void launch_stream(const GroupedGemmArgs& g, const DeviceState& d, cudaStream_t stream) {
  StreamArgs s;
  s.a = g.a.data;
  s.lda = g.a.ld;
  s.a_rows = static_cast<int>(std::min<std::int64_t>(g.a.rows, 1ll << 30));
  s.gather = g.gather;
  s.offsets = g.offsets;
  s.rows = g.rows;
  s.experts = g.experts;
  s.n = g.n;
  s.k = g.k;
  s.w = g.w;
  s.w_stride = g.w_expert_stride ? g.w_expert_stride : std::int64_t(g.n) * g.k;
  s.w_blocks = g.w_blocks;
  s.w_scales = g.w_scales;
  s.bias = g.bias;
  s.c = g.c.data;
  s.ldc = g.c.ld;
  // Work items: (active expert, 32 columns); at most min(experts, rows) experts are active.
  const std::int64_t items = std::int64_t(std::min(g.experts, g.rows)) * ((g.n + kStreamCols - 1) / kStreamCols);
  const int grid = static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(items, d.stream_ctas)));
  if (g.w) grouped_stream_kernel<false><<<grid, kStreamThreads, 0, stream>>>(s);
  else grouped_stream_kernel<true><<<grid, kStreamThreads, 0, stream>>>(s);
  AIPE_CHECK_LAUNCH();
}

void launch_wgmma(const GroupedGemmArgs& g, const DeviceState& d, cudaStream_t stream) {
  constexpr CUtensorMapDataType kBf16 = CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
  WgmmaArgs w;
  w.a = g.a.data;
  w.lda = g.a.ld;
  w.a_rows = static_cast<int>(std::min<std::int64_t>(g.a.rows, 1ll << 30));
  w.gather = g.gather;
  w.offsets = g.offsets;
  w.rows = g.rows;
  w.experts = g.experts;
  w.n = g.n;
  w.k = g.k;
  w.w_blocks = g.w_blocks;
  w.w_scales = g.w_scales;
  w.bias = g.bias;
  w.c = g.c.data;
  w.ldc = g.c.ld;
  // A over the grouped rows [rows][K] in 128 x 64 boxes (unused with gather).
  const CUtensorMap ta = g.gather ? CUtensorMap{} : matrix_map(kBf16, g.a.data, g.rows, g.k, g.a.ld, kBM, kBK);
  // W over [E][N][K] in 64 x 128 x 1 boxes: a tile's rows past N are zeros, not the next expert's.
  CUtensorMap tw{};
  if (g.w) {
    TensorMapSpec spec;
    spec.dtype = kBf16;
    spec.base = g.w;
    spec.rank = 3;
    const std::int64_t stride = g.w_expert_stride ? g.w_expert_stride : std::int64_t(g.n) * g.k;
    spec.dims = {std::uint64_t(g.k), std::uint64_t(g.n), std::uint64_t(g.experts), 1, 1};
    spec.strides = {std::uint64_t(g.k) * 2, std::uint64_t(stride) * 2, 0, 0};
    spec.box = {kBK, kBN, 1, 1, 1};
    tw = make_tensor_map(spec);
  }
  // Tiles: sum over experts of ceil(m_e / 128) * tiles_n <= (ceil(rows / 128) + experts) * tiles_n.
  const std::int64_t tiles_n = (g.n + kBN - 1) / kBN;
  const std::int64_t max_tiles = ((g.rows + kBM - 1) / kBM + g.experts) * tiles_n;
  const int grid = static_cast<int>(std::min<std::int64_t>(max_tiles, d.sms));
  if (g.w) grouped_wgmma_kernel<false><<<grid, kThreads, kWgmmaSmem, stream>>>(ta, tw, w);
  else grouped_wgmma_kernel<true><<<grid, kThreads, kWgmmaSmem, stream>>>(ta, tw, w);
  AIPE_CHECK_LAUNCH();
}

}  // namespace

void grouped_gemm(const GroupedGemmArgs& args, cudaStream_t stream) {
  check_grouped_gemm_args(args);
  if (args.rows == 0) return;
#if !AIPE_HAVE_SM90A
  (void)stream;
  throw std::runtime_error(
      "kernels::grouped_gemm: this build has no sm_90a code (set CMAKE_CUDA_ARCHITECTURES to include 90a)");
#else
  const DeviceState& d = device_state();
  if (detail::grouped_gemm_streams(args.rows)) launch_stream(args, d, stream);
  else launch_wgmma(args, d, stream);
#endif
}

}  // namespace aipe::kernels
