// GEMM epilogues: how a warpgroup's m64nBN FP32 accumulator fragment (layout: aipe/kernels/wgmma.cuh)
// becomes C.
//   element-wise operations  policies applied to every accumulator element with its (row, column):
//                            Scale, Bias, Gelu (tanh form), Silu, Residual, composed left to right with
//                            Chain<...>; the output cast is the store's element type
//   store_fragment           register store: pairs of adjacent columns straight from the fragment to
//                            global memory, guarded at the edges of M x N
//   epilogue_tma_store       through shared memory (64 x 64 boxes, 128-byte swizzle) and TMA stores; the
//                            warpgroup returns to its tensor cores while TMA writes
//   epilogue_tma_store_box   one box of that, for a store overlapped with the next tile's main loop: the
//                            finished tile waits in registers as BF16 pairs (pack_bf16) and leaves one box
//                            under each of the next tile's first K blocks
//   store_fragment_staged    for C that TMA cannot write (odd pitch): through shared memory, one row of a box
//                            per store instruction, guarded
// A fused GEMM is then main loop -> apply_fragment(acc, Chain<Bias, Gelu>{...}, ...) -> a store.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "aipe/kernels/ptx.cuh"

namespace aipe::kernels {

// ---------------------------------------------------------------------------------------------
// Element-wise operations: float operator()(float v, int row, int col) const
// ---------------------------------------------------------------------------------------------

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }

namespace epi {

struct Identity {
  __device__ __forceinline__ float operator()(float v, int, int) const { return v; }
};
// v * s (a per-tensor dequantization scale, alpha).
struct Scale {
  float s = 1.f;
  __device__ __forceinline__ float operator()(float v, int, int) const { return v * s; }
};
// v + bias[col] (one value per output column; the caller keeps col < N).
template <class T>
struct Bias {
  const T* bias = nullptr;
  __device__ __forceinline__ float operator()(float v, int, int col) const { return v + to_float(bias[col]); }
};
// GELU, tanh form (what ch09 and cuBLASLt's GELU epilogue compute): 0.5 v (1 + tanh(sqrt(2/pi) (v + 0.044715 v^3))).
struct Gelu {
  __device__ __forceinline__ float operator()(float v, int, int) const {
    return 0.5f * v * (1.f + tanhf(0.7978845608f * (v + 0.044715f * v * v * v)));
  }
};
// SiLU: v * sigmoid(v).
struct Silu {
  __device__ __forceinline__ float operator()(float v, int, int) const { return v / (1.f + __expf(-v)); }
};
// v + r[row * ld + col] (a residual stream of the output's shape; the caller keeps row < M, col < N).
template <class T>
struct Residual {
  const T* r = nullptr;
  std::size_t ld = 0;
  __device__ __forceinline__ float operator()(float v, int row, int col) const {
    return v + to_float(r[static_cast<std::size_t>(row) * ld + col]);
  }
};

// Ops applied left to right: Chain<Scale, Bias<bf16>, Gelu>{{s}, {bias}, {}} is gelu(s * v + bias).
template <class... Ops>
struct Chain;
template <>
struct Chain<> {
  __device__ __forceinline__ float operator()(float v, int, int) const { return v; }
};
template <class Op, class... Rest>
struct Chain<Op, Rest...> {
  Op op;
  Chain<Rest...> rest;
  __device__ __forceinline__ float operator()(float v, int row, int col) const { return rest(op(v, row, col), row, col); }
};

// Whether an op reads memory at (row, col): those elements must exist (row < M, col < N).
template <class Op>
inline constexpr bool kReadsMemory = true;
template <>
inline constexpr bool kReadsMemory<Identity> = false;
template <>
inline constexpr bool kReadsMemory<Scale> = false;
template <>
inline constexpr bool kReadsMemory<Gelu> = false;
template <>
inline constexpr bool kReadsMemory<Silu> = false;
template <>
inline constexpr bool kReadsMemory<Chain<>> = false;
template <class Op, class... Rest>
inline constexpr bool kReadsMemory<Chain<Op, Rest...>> = kReadsMemory<Op> || kReadsMemory<Chain<Rest...>>;

}  // namespace epi

// Applies `op` to every element of a warpgroup's m64nBN fragment. row0: the thread's first row
// (tile row + 16 warp + lane / 4), col0: its first column (tile column + 2 (lane % 4)). Elements outside
// M x N are left alone when the op reads memory (they are never stored).
template <int BN, class Op>
__device__ __forceinline__ void apply_fragment(float (&acc)[BN / 2], const Op& op, int row0, int col0, int M, int N) {
#pragma unroll
  for (int j = 0; j < BN / 8; ++j)
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int row = row0 + 8 * h, col = col0 + 8 * j + e;
        float& v = acc[4 * j + 2 * h + e];
        if constexpr (epi::kReadsMemory<Op>) {
          if (row < M && col < N) v = op(v, row, col);
        } else {
          v = op(v, row, col);
        }
      }
}

// ---------------------------------------------------------------------------------------------
// Register store
// ---------------------------------------------------------------------------------------------

template <class T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <>
__device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }

// Two adjacent columns of one row as one store where the pair is aligned (N even), else one by one.
template <class T>
__device__ __forceinline__ void store_pair(T* dst, float v0, float v1, bool pair, bool second) {
  if (pair) {
    if constexpr (sizeof(T) == 2) {
      if constexpr (std::is_same_v<T, __nv_bfloat16>) *reinterpret_cast<__nv_bfloat162*>(dst) = __floats2bfloat162_rn(v0, v1);
      else *reinterpret_cast<__half2*>(dst) = __floats2half2_rn(v0, v1);
    } else {
      *reinterpret_cast<float2*>(dst) = make_float2(v0, v1);
    }
  } else {
    dst[0] = from_float<T>(v0);
    if (second) dst[1] = from_float<T>(v1);
  }
}

// Writes a warpgroup's 64 x BN fragment, whose tile starts at (row0, col0), to C (M x N, row pitch ldc
// elements) as T: pairs of adjacent columns straight from the registers (4-byte stores for 16-bit T: 8 rows
// x 16 bytes a warp). A tile inside M x N with an even pitch is stored without guards; an edge tile checks
// every pair (one by one where the pitch is odd or the pair straddles N).
template <int BN, class T>
__device__ __forceinline__ void store_fragment(const float (&acc)[BN / 2], T* C, std::size_t ldc, int M, int N, int row0,
                                               int col0) {
  const int t = threadIdx.x % 128;
  const int r = row0 + 16 * (t / 32) + (t % 32) / 4;
  const int c = col0 + 2 * (t % 4);
  const bool pairs = ldc % 2 == 0;
  if (row0 + 64 <= M && col0 + BN <= N && pairs) {  // interior tile: no guards
    T* p0 = C + static_cast<std::size_t>(r) * ldc + c;
    T* p1 = p0 + 8 * ldc;
#pragma unroll
    for (int j = 0; j < BN / 8; ++j) {
      store_pair<T>(p0 + 8 * j, acc[4 * j + 0], acc[4 * j + 1], true, true);
      store_pair<T>(p1 + 8 * j, acc[4 * j + 2], acc[4 * j + 3], true, true);
    }
    return;
  }
#pragma unroll
  for (int j = 0; j < BN / 8; ++j)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int row = r + 8 * h, col = c + 8 * j;
      if (row >= M || col >= N) continue;
      store_pair<T>(C + static_cast<std::size_t>(row) * ldc + col, acc[4 * j + 2 * h], acc[4 * j + 2 * h + 1],
                    pairs && col + 1 < N, col + 1 < N);
    }
}

// ---------------------------------------------------------------------------------------------
// TMA-store epilogue
// ---------------------------------------------------------------------------------------------

// An m64nBN FP32 accumulator fragment as BF16 pairs: p[2j + h] = (acc[4j + 2h], acc[4j + 2h + 1]), the
// two adjacent columns 8j + 2(lane % 4) + {0, 1} of row 16 warp + lane / 4 + 8h. Half the registers,
// which is what lets a warpgroup keep a finished tile while its accumulator starts the next one.
template <int BN>
__device__ __forceinline__ void pack_bf16(const float (&acc)[BN / 2], std::uint32_t (&p)[BN / 4]) {
#pragma unroll
  for (int i = 0; i < BN / 4; ++i) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(acc[2 * i], acc[2 * i + 1]);
    p[i] = *reinterpret_cast<const std::uint32_t*>(&v);
  }
}

// Writes one warpgroup's m64nBN fragment (packed by pack_bf16) to C as BF16 through TMA stores.
// The 64 x BN tile leaves in BN/64 boxes of 64 rows x 64 columns (8 KiB each, 128-byte swizzle: row r's
// 16-byte chunk c sits at c ^ (r % 8), so the fragment's 4-byte writes hit 32 distinct banks per warp).
// The boxes alternate between two 8 KiB slots of `epi` (16 KiB, 1024-byte aligned, owned by this
// warpgroup): before a slot is rewritten, the stores of the box before last (the previous tile's, at the
// first boxes) must have finished reading it; the stores themselves run on while the warpgroup goes back
// to its tensor cores. `map`: C as a row-major BF16 tensor map with 64 x 64 boxes, SWIZZLE_128B; TMA
// drops whatever falls outside M x N. `bar_id`: a named barrier private to this warpgroup. Thread 0 of
// the warpgroup issues (and so owns) every bulk group: it must call bulk_wait<0>() before the CTA exits.
//
// Box b alone (columns 64b .. 64b+63 of the tile, slot b % 2): one step of epilogue_tma_store. `b` must be
// a constant once inlined (the fragment's registers need compile-time indices): a literal, an unrolled
// loop's index, or epilogue_tma_store_box_at's switch.
// `op` runs on the box once it is whole in shared memory, before TMA reads it: op(slot, t) with the slot's
// 8 KiB and the thread's index in the warpgroup, between two barriers of the warpgroup. KeepBox (no operation,
// no extra barrier) stores the packed values as they are; a caller that parks a tile before its last element-wise
// operation applies that operation there, in 16-byte chunks whose registers a small loop reuses, rather than
// on the fragment, whose 16 pairs at once would need more registers than a consumer holding both the next tile's
// accumulators and the parked tile has left.
struct KeepBox {
  static constexpr bool kActive = false;
  __device__ __forceinline__ void operator()(unsigned char*, int) const {}
};
template <int BN, class BoxOp = KeepBox>
__device__ __forceinline__ void epilogue_tma_store_box(const std::uint32_t (&p)[BN / 4], unsigned char* epi,
                                                       const void* map, int row0, int col0, int bar_id, int b,
                                                       const BoxOp& op = {}) {
  static_assert(BN % 64 == 0, "the tile leaves in 64-column boxes");
  const int t = threadIdx.x % 128, warp = t / 32, lane = t % 32;
  unsigned char* slot = epi + (b & 1) * 8192;
  if (t == 0) bulk_wait_read<1>();  // the last group (the other slot) may still be reading
  named_barrier_sync(bar_id, 128);
#pragma unroll
  for (int jj = 0; jj < 8; ++jj) {
    const int j = 8 * b + jj;  // fragment column group: columns 8j .. 8j+7 of the tile
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = 16 * warp + lane / 4 + 8 * h;
      *reinterpret_cast<std::uint32_t*>(slot + r * 128 + ((jj ^ (r & 7)) << 4) + 4 * (lane % 4)) = p[2 * j + h];
    }
  }
  if constexpr (BoxOp::kActive) {
    named_barrier_sync(bar_id, 128);  // the whole box is written (bar.sync orders shared memory among its threads)
    op(slot, t);
  }
  fence_proxy_async();              // this thread's writes, visible to the TMA unit ...
  named_barrier_sync(bar_id, 128);  // ... for every thread of the warpgroup
  if (t == 0) {
    tma_store_2d(map, slot, col0 + 64 * b, row0);
    bulk_commit();
  }
}

// The same with b known only at run time: a caller that spreads a tile's boxes over time (one box under
// each of the next tile's first K blocks), so that a box's slot has long been read by TMA when it comes round.
template <int BN>
__device__ __forceinline__ void epilogue_tma_store_box_at(const std::uint32_t (&p)[BN / 4], unsigned char* epi,
                                                          const void* map, int row0, int col0, int bar_id, int b) {
  static_assert(BN == 128 || BN == 256, "two or four boxes");
  switch (b) {
    case 0: epilogue_tma_store_box<BN>(p, epi, map, row0, col0, bar_id, 0); break;
    case 1: epilogue_tma_store_box<BN>(p, epi, map, row0, col0, bar_id, 1); break;
    case 2: if constexpr (BN == 256) epilogue_tma_store_box<BN>(p, epi, map, row0, col0, bar_id, 2); break;
    default: if constexpr (BN == 256) epilogue_tma_store_box<BN>(p, epi, map, row0, col0, bar_id, 3); break;
  }
}

template <int BN>
__device__ __forceinline__ void epilogue_tma_store(const std::uint32_t (&p)[BN / 4], unsigned char* epi,
                                                   const void* map, int row0, int col0, int bar_id) {
#pragma unroll
  for (int b = 0; b < BN / 64; ++b) epilogue_tma_store_box<BN>(p, epi, map, row0, col0, bar_id, b);
}

template <int BN>
__device__ __forceinline__ void epilogue_tma_store(const float (&acc)[BN / 2], unsigned char* epi,
                                                   const void* map, int row0, int col0, int bar_id) {
  std::uint32_t p[BN / 4];
  pack_bf16<BN>(acc, p);
  epilogue_tma_store<BN>(p, epi, map, row0, col0, bar_id);
}

// ---------------------------------------------------------------------------------------------
// Staged register store: rows of C whose pitch or base TMA cannot write (an odd N, say)
// ---------------------------------------------------------------------------------------------

// Writes one warpgroup's m64nBN fragment (packed by pack_bf16) to C, BF16, M x N with any row pitch ldc, through
// shared memory so that each store instruction writes one row: store_fragment's stores from the fragment touch
// 8 rows per warp instruction (4 threads x 4 bytes per row), a row-contiguous store 128 bytes of one. Box by box
// (64 x 64, the fragment's columns 64b .. 64b + 63), in one 8 KiB slot of `epi` (1024-byte aligned, this
// warpgroup's), 128-byte swizzled as epilogue_tma_store_box writes it so both the fragment's writes and the rows'
// reads are free of bank conflicts. Warp w then stores rows 16w .. 16w + 15 of the box: lane l columns 2l, 2l + 1,
// one 4-byte store where the pair is 4-byte aligned in C (row * ldc + column even), else two 2-byte stores;
// guarded by M and N. `bar_id`: a named barrier private to this warpgroup.
template <int BN>
__device__ __forceinline__ void store_fragment_staged(const std::uint32_t (&p)[BN / 4], unsigned char* epi,
                                                      __nv_bfloat16* C, std::size_t ldc, int M, int N, int row0,
                                                      int col0, int bar_id) {
  static_assert(BN % 64 == 0, "the tile leaves in 64-column boxes");
  const int t = threadIdx.x % 128, warp = t / 32, lane = t % 32;
#pragma unroll
  for (int b = 0; b < BN / 64; ++b) {
    named_barrier_sync(bar_id, 128);  // the previous box's rows have been read out of the slot
#pragma unroll
    for (int jj = 0; jj < 8; ++jj) {
      const int j = 8 * b + jj;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int r = 16 * warp + lane / 4 + 8 * h;
        *reinterpret_cast<std::uint32_t*>(epi + r * 128 + ((jj ^ (r & 7)) << 4) + 4 * (lane % 4)) = p[2 * j + h];
      }
    }
    named_barrier_sync(bar_id, 128);  // the whole box is in shared memory
    const int c = col0 + 64 * b + 2 * lane;
#pragma unroll 4
    for (int i = 0; i < 16; ++i) {
      const int r = 16 * warp + i, row = row0 + r;
      if (row >= M || c >= N) continue;
      const std::uint32_t v = *reinterpret_cast<const std::uint32_t*>(epi + r * 128 + (((lane / 4) ^ (r & 7)) << 4) +
                                                                      4 * (lane % 4));
      __nv_bfloat16* dst = C + static_cast<std::size_t>(row) * ldc + c;
      const __nv_bfloat162 pair = *reinterpret_cast<const __nv_bfloat162*>(&v);
      if (c + 1 < N && (reinterpret_cast<std::uintptr_t>(dst) & 3) == 0) {
        *reinterpret_cast<__nv_bfloat162*>(dst) = pair;
      } else {
        dst[0] = pair.x;
        if (c + 1 < N) dst[1] = pair.y;
      }
    }
  }
}

}  // namespace aipe::kernels
