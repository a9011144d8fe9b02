// ch07/copy_ladder: copying n floats, from one scalar per thread to the Hopper bulk-copy engine.
//
// Ladder (every rung copies the identical n floats; every rung verified bit for bit first):
//   1 scalar         one 4-byte load and store per thread per iteration, grid-stride
//   2 vec4           16-byte float4 accesses: a quarter of the instructions for the same bytes
//   3 vec4_ilp4      four independent float4 loads issued before the first store: 64 B in flight per thread
//   4 streaming      as vec4_ilp4 with streaming hints: ld.global.nc.L1::no_allocate (read-only, skip L1)
//                    and st.global.cs (evict-first): the copy never re-reads, so it should not cache
//   5 tma_bulk       cp.async.bulk global->shared completing on an mbarrier, then cp.async.bulk
//                    shared->global (bulk_group), several chunks deep per block: one thread per block
//                    drives the copy engine, no register round trip at all (sm_90). Knobs (axes):
//                    bulk_kib (chunk size), bulk_stages (chunks in flight per block), bulk_order
//                    (round-robin or contiguous chunks per block), bulk_evict_first (L2 policy); the
//                    defaults are the best of a sweep on an H100 against memcpy in the same run. On the
//                    H200 (ee7af80) every setting tried sat near 3940 GB/s vs memcpy ~4255: 16 KiB x 8
//                    stages 3939, 32 KiB x 6 3938, 96 KiB x 2 3947, the default 64 KiB x 3 3932
//   6 block_chunks   no persistent loop at all: one block per contiguous 16 KiB chunk (512 threads x
//                    two 16-byte loads, both issued before either store, kept in program order by
//                    volatile asm), tens of thousands of blocks: the hardware's block scheduler hands out
//                    DRAM in address order, the way memcpy's own kernel does
//   7 wide_chunks    block_chunks with its knobs as axes, for the H200's deeper memory system:
//                    chunk_kib per block (8-256), chunk_threads, hence chunk_kib / (threads x 16 B) loads
//                    in flight per thread (1-16; 16 allows up to 768 threads, 192 KiB per block);
//                    chunk_policy (cache hints: 0 plain, 1 st.global.cs, 2 ld.global.nc.L2::256B +
//                    st.global.cs, 3 stores under an L2 evict-first createpolicy, 4 st.global.L1::no_allocate);
//                    chunk_pair32 = 1 gives each thread 32 contiguous bytes (two adjacent float4: sm_90 has
//                    no 32-byte ld.global.v8, that is sm_100+); chunk_order = 1 deals the chunks to blocks
//                    from both halves of the array alternately (two address streams instead of one
//                    moving window). Why: HBM3e at 4.8 TB/s and ~0.8 us needs ~4 MB in flight, ~30 KB
//                    per SM. Default 128 KiB x 1024 threads (8 loads per thread, one block per SM), the
//                    best of the first H200 sweep (measured on the H200 at ee7af80, each against memcpy
//                    in the same process, docs/results/h200-ch07-copy-sweep-ee7af80/): 128 KiB x 1024
//                    4185 GB/s vs memcpy 4251 (0.984x); 16 KiB x 512 4155; 64 KiB x 1024 4134; 64 KiB x
//                    512 4133; 8 KiB x 256 4128; 32 KiB x 512 4110. Counter-examples from the same sweep
//                    (32 KiB x 512 unless said): 64 KiB x 256 (16 loads) 4092, 32 KiB x 256 4080;
//                    st.global.cs 4067, evict-first stores 4073, st.L1::no_allocate 4066 (write hints
//                    do not help: the writes are whole sectors and never re-read either way);
//                    ld.nc.L2::256B + st.cs 3846 (the read-only path with its 256 B L2 prefetch costs
//                    more than it saves on a stream that is already one full sector per lane); pair32
//                    3302 (each warp instruction then covers half of 32 separate 32-byte sectors);
//                    two address streams 4093
//   8 sliced         a persistent grid of exactly slice_blocks_per_sm x SMs blocks, each walking ONE
//                    contiguous slice of n / grid floats in steps of slice_unroll float4 per thread
//                    (vec4_ilp4 deals its tiles round-robin instead): each block streams its own DRAM
//                    pages, against everyone moving through one window of the array together. A
//                    counter-example on the H200 (ee7af80): 3240 GB/s (unroll 8), 3327 (unroll 8, one
//                    block per SM) vs memcpy ~4255: many distant streams lose to one moving window
//   9 pipelined      a block walks several chunks with two register sets: the loads of chunk j+1 are
//                    issued before the stores of chunk j, so a block never waits on its own loads with
//                    nothing else queued (wide_chunks drains once per chunk) and each SM sends a steady
//                    read/write mix instead of per-block bursts. pipe_kib per chunk x pipe_threads,
//                    pipe_chunks consecutive chunks per block (0 = a persistent grid, chunks round-robin)
//  10 pipelined_pairs  rung 9's kernel with 2 consecutive chunks per block (pipe_kib x pipe_threads, default
//                    64 KiB x 1024: 128 KiB per block, as wide_chunks' best), a rung of its own so the
//                    suite at default sizes measures it. Why: in the H200 round-2 sweep pipelined with
//                    pipe_chunks = 2 was the best SM copy, 0.988x memcpy, against wide_chunks' 0.983-0.985x
//                    and the persistent pipelined grid's 0.934-0.965x: one block per chunk pair keeps the
//                    block scheduler handing out DRAM in address order (what the persistent grid loses),
//                    and each block overlaps its second chunk's loads with its first chunk's stores (what
//                    wide_chunks lacks: it drains once per block). Measured in the final run
//  11 memcpy         cudaMemcpyAsync device-to-device: the library ceiling (the copy engines: no SM
//                    kernel appears in a profile of it, tests/fixtures/ncu_h100_copy_ladder_memcpy_no_kernel.csv)
//
// Problem: dst[i] = src[i], i < n. Default n = 256 Mi floats (1 GiB each way), far past the 50 MB L2.
// Napkin math: bytes = 2 * 4 * n (read once, write once), 0 FLOPs. At ~3.0 TB/s a GiB copy takes
// ~0.7 ms. Little's law: ~3 TB/s x ~1 us of DRAM latency = ~3 MB in flight across the GPU, ~23 KB per
// SM: a scalar-per-thread copy with 2048 threads/SM has only 8 KB in flight; four float4 per thread
// has 128 KB; the bulk-copy rung has (stages - 1) x chunk per block in flight (its metrics report it).
// Reference: src regenerated from (seed, i) on the device; the comparison is bitwise (aipe::compare_on_device).
// n is any size: vector rungs copy the last n % 4 floats with scalar accesses, the bulk rung moves
// whole 16-byte units (its size granule) and leaves the last < 4 floats to ordinary stores.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "aipe/buffer.hpp"
#include "aipe/kernels/ptx.cuh"
#include "aipe/random.hpp"
#include "aipe/registry.hpp"
#include "aipe/verify_device.cuh"

namespace {

constexpr int kThreads = 256;

__global__ void copy_scalar(const float* __restrict__ src, float* __restrict__ dst, std::size_t n) {
  const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += stride) dst[i] = src[i];
}

// The last n % 4 floats, shared by the vector rungs.
__device__ __forceinline__ void copy_tail(const float* __restrict__ src, float* __restrict__ dst, std::size_t n) {
  const std::size_t t = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x;
  const std::size_t i = (n & ~std::size_t(3)) + t;
  if (i < n) dst[i] = src[i];
}

__global__ void copy_vec4(const float* __restrict__ src, float* __restrict__ dst, std::size_t n) {
  const std::size_t n4 = n / 4;
  const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
  const float4* s = reinterpret_cast<const float4*>(src);
  float4* d = reinterpret_cast<float4*>(dst);
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n4; i += stride) d[i] = s[i];
  copy_tail(src, dst, n);
}

__device__ __forceinline__ float4 ld_plain(const float4* p) { return *p; }
__device__ __forceinline__ void st_plain(float4* p, float4 v) { *p = v; }
using aipe::kernels::ld_ordered;  // volatile asm: kept in program order (loads before stores)
using aipe::kernels::ld_stream;
using aipe::kernels::st_ordered;
using aipe::kernels::st_stream;

// Each thread loads kIlp float4 that are blockDim apart (so each load instruction stays coalesced
// across the warp) before storing any of them.
template <int kIlp, bool kStream>
__global__ void copy_vec4_ilp(const float* __restrict__ src, float* __restrict__ dst, std::size_t n) {
  const std::size_t n4 = n / 4;
  const float4* s = reinterpret_cast<const float4*>(src);
  float4* d = reinterpret_cast<float4*>(dst);
  const std::size_t tile = std::size_t(blockDim.x) * kIlp;  // float4s per block per iteration
  const std::size_t grid_stride = tile * gridDim.x;
  std::size_t base = blockIdx.x * tile + threadIdx.x;
  for (; base + (kIlp - 1) * blockDim.x < n4; base += grid_stride) {  // full tiles: no bounds checks
    float4 v[kIlp];
#pragma unroll
    for (int k = 0; k < kIlp; ++k) v[k] = kStream ? ld_stream(s + base + k * blockDim.x) : ld_plain(s + base + k * blockDim.x);
#pragma unroll
    for (int k = 0; k < kIlp; ++k) kStream ? st_stream(d + base + k * blockDim.x, v[k]) : st_plain(d + base + k * blockDim.x, v[k]);
  }
  for (int k = 0; k < kIlp; ++k)  // the one partial tile (at most one per thread)
    if (base + k * blockDim.x < n4) d[base + k * blockDim.x] = s[base + k * blockDim.x];
  copy_tail(src, dst, n);
}

// ---- rung 6: one contiguous chunk per block ------------------------------------------------------
constexpr int kChunkThreads = 512;
constexpr int kChunkUnroll = 2;  // float4 per thread per chunk: 512 x 2 x 16 B = 16 KiB per block

__global__ void __launch_bounds__(kChunkThreads) copy_block_chunks(const float* __restrict__ src, float* __restrict__ dst,
                                                                   std::size_t n) {
  const std::size_t n4 = n / 4;
  const float4* s = reinterpret_cast<const float4*>(src);
  float4* d = reinterpret_cast<float4*>(dst);
  const std::size_t base = blockIdx.x * std::size_t(kChunkThreads) * kChunkUnroll + threadIdx.x;
  if (base + (kChunkUnroll - 1) * kChunkThreads < n4) {  // a full chunk: loads first, then stores
    float4 v[kChunkUnroll];
#pragma unroll
    for (int k = 0; k < kChunkUnroll; ++k) v[k] = ld_ordered(s + base + k * kChunkThreads);
#pragma unroll
    for (int k = 0; k < kChunkUnroll; ++k) st_ordered(d + base + k * kChunkThreads, v[k]);
  } else {  // the last, partial chunk
    for (int k = 0; k < kChunkUnroll; ++k)
      if (base + k * kChunkThreads < n4) d[base + k * kChunkThreads] = s[base + k * kChunkThreads];
  }
  if (blockIdx.x == 0) {  // the last n % 4 floats
    const std::size_t i = 4 * n4 + threadIdx.x;
    if (i < n) dst[i] = src[i];
  }
}

// ---- rung 7: one contiguous chunk per block, knobs as axes -------------------------------------
// Cache policies of the wide_chunks rung (axis chunk_policy).
enum class Policy : int { plain = 0, store_cs = 1, nc256_cs = 2, store_evict_first = 3, store_no_l1 = 4 };
constexpr int kPolicies = 5;

template <Policy P>
__device__ __forceinline__ float4 ld_policy(const float4* p) {
  float4 v;
  if constexpr (P == Policy::nc256_cs)
    asm volatile("ld.global.nc.L1::no_allocate.L2::256B.v4.f32 {%0,%1,%2,%3}, [%4];"
                 : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w)
                 : "l"(p));
  else
    asm volatile("ld.global.v4.f32 {%0,%1,%2,%3}, [%4];" : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w) : "l"(p));
  return v;
}
template <Policy P>
__device__ __forceinline__ void st_policy(float4* p, float4 v, std::uint64_t policy) {
  if constexpr (P == Policy::store_cs || P == Policy::nc256_cs)
    asm volatile("st.global.cs.v4.f32 [%0], {%1,%2,%3,%4};" ::"l"(p), "f"(v.x), "f"(v.y), "f"(v.z), "f"(v.w) : "memory");
  else if constexpr (P == Policy::store_evict_first)
    asm volatile("st.global.L2::cache_hint.v4.f32 [%0], {%1,%2,%3,%4}, %5;" ::"l"(p), "f"(v.x), "f"(v.y), "f"(v.z),
                 "f"(v.w), "l"(policy)
                 : "memory");
  else if constexpr (P == Policy::store_no_l1)
    asm volatile("st.global.L1::no_allocate.v4.f32 [%0], {%1,%2,%3,%4};" ::"l"(p), "f"(v.x), "f"(v.y), "f"(v.z), "f"(v.w)
                 : "memory");
  else
    asm volatile("st.global.v4.f32 [%0], {%1,%2,%3,%4};" ::"l"(p), "f"(v.x), "f"(v.y), "f"(v.z), "f"(v.w) : "memory");
}

// Block b copies float4s [b*U*T, (b+1)*U*T). Load k of thread t: warp-strided, k*T + t (each
// instruction coalesced across the warp), or with pair32, 2t + (k & 1) + (k >> 1)*2T (each thread's
// 32 contiguous bytes). All U loads are issued before the first store (volatile asm keeps the order).
// 16 float4 in flight need 64 data registers: such blocks are capped at 768 threads (85 registers
// per thread fit the 64 Ki register file), so the compiler need not spill; 768 x 16 x 16 B = 192 KiB
// per block, the largest chunk that registers alone can hold on one SM.
constexpr int wide_max_threads(int unroll) { return unroll >= 16 ? 768 : 1024; }

template <int U, Policy P>
__global__ void __launch_bounds__(wide_max_threads(U)) copy_wide_chunks(const float* __restrict__ src, float* __restrict__ dst,
                                                         std::size_t n, bool pair32, bool two_streams) {
  const std::size_t n4 = n / 4;
  const float4* s = reinterpret_cast<const float4*>(src);
  float4* d = reinterpret_cast<float4*>(dst);
  const unsigned T = blockDim.x;
  // Chunk of this block: b in address order, or with two_streams b/2 from the first half (even b) and
  // half + b/2 from the second (odd b), half = ceil(C/2): a bijection on [0, C) for any C.
  const std::size_t half = (gridDim.x + 1) / 2;
  const std::size_t chunk = two_streams ? (blockIdx.x % 2 ? half + blockIdx.x / 2 : blockIdx.x / 2) : blockIdx.x;
  const std::size_t base = chunk * std::size_t(U) * T;
  std::uint64_t policy = 0;
  if constexpr (P == Policy::store_evict_first)
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(policy));
  auto at = [&](int k) {
    return base + (pair32 ? 2 * threadIdx.x + (k & 1) + std::size_t(k >> 1) * 2 * T : std::size_t(k) * T + threadIdx.x);
  };
  if (base + std::size_t(U) * T <= n4) {  // a full chunk
    float4 v[U];
#pragma unroll
    for (int k = 0; k < U; ++k) v[k] = ld_policy<P>(s + at(k));
#pragma unroll
    for (int k = 0; k < U; ++k) st_policy<P>(d + at(k), v[k], policy);
  } else {  // the last, partial chunk
    for (int k = 0; k < U; ++k)
      if (at(k) < n4) d[at(k)] = s[at(k)];
  }
  if (blockIdx.x == 0) {  // the last n % 4 floats
    const std::size_t i = 4 * n4 + threadIdx.x;
    if (i < n) dst[i] = src[i];
  }
}

using WideKernel = void (*)(const float*, float*, std::size_t, bool, bool);
template <int U>
WideKernel wide_kernel_for(int policy) {
  switch (static_cast<Policy>(policy)) {
    case Policy::store_cs: return copy_wide_chunks<U, Policy::store_cs>;
    case Policy::nc256_cs: return copy_wide_chunks<U, Policy::nc256_cs>;
    case Policy::store_evict_first: return copy_wide_chunks<U, Policy::store_evict_first>;
    case Policy::store_no_l1: return copy_wide_chunks<U, Policy::store_no_l1>;
    default: return copy_wide_chunks<U, Policy::plain>;
  }
}
// nullptr for an unroll that is not instantiated.
WideKernel wide_kernel(int unroll, int policy) {
  switch (unroll) {
    case 1: return wide_kernel_for<1>(policy);
    case 2: return wide_kernel_for<2>(policy);
    case 4: return wide_kernel_for<4>(policy);
    case 8: return wide_kernel_for<8>(policy);
    case 16: return wide_kernel_for<16>(policy);
    default: return nullptr;
  }
}

// ---- rung 8: a persistent grid, one contiguous slice per block ----------------------------------
// Block b owns float4s [b*n4/grid, (b+1)*n4/grid) and walks it in tiles of U x blockDim.
template <int U>
__global__ void __launch_bounds__(512) copy_sliced(const float* __restrict__ src, float* __restrict__ dst, std::size_t n) {
  const std::size_t n4 = n / 4;
  const float4* s = reinterpret_cast<const float4*>(src);
  float4* d = reinterpret_cast<float4*>(dst);
  const std::size_t lo = blockIdx.x * n4 / gridDim.x, hi = (blockIdx.x + 1) * n4 / gridDim.x;
  const std::size_t tile = std::size_t(U) * blockDim.x;
  std::size_t i = lo + threadIdx.x;
  for (; i + (U - 1) * blockDim.x < hi; i += tile) {
    float4 v[U];
#pragma unroll
    for (int k = 0; k < U; ++k) v[k] = ld_ordered(s + i + k * blockDim.x);
#pragma unroll
    for (int k = 0; k < U; ++k) st_ordered(d + i + k * blockDim.x, v[k]);
  }
  for (int k = 0; k < U; ++k)  // the slice's partial tile
    if (i + k * blockDim.x < hi) d[i + k * blockDim.x] = s[i + k * blockDim.x];
  if (blockIdx.x == 0) {  // the last n % 4 floats
    const std::size_t t = 4 * n4 + threadIdx.x;
    if (t < n) dst[t] = src[t];
  }
}
constexpr int kSliceThreads = 512;

// ---- rung 9: loads of the next chunk issued before the stores of this one -----------------------
// wide_chunks drains at every chunk: a block's U loads land, its stores go out, and until the next
// block's loads are issued that SM has only stores in flight. Here a block walks several chunks with
// two register sets: the loads of chunk j+1 are issued before the stores of chunk j, so the block never
// waits for its own loads with nothing else queued, and reads and writes stay interleaved at a
// constant mix instead of arriving in per-block bursts. Two sets of U float4 = 8U data registers: U = 8
// caps a block at 512 threads (64 of them data), U <= 4 allows 1024.
constexpr int pipe_max_threads(int unroll) { return unroll >= 8 ? 512 : 1024; }

// Chunk j (< count) of this block: chunks_per_block > 0: chunks_per_block consecutive chunks per
// block (the block scheduler still hands out DRAM in address order); 0: a persistent grid, chunk
// blockIdx + j x grid (the whole grid moves through one window of the array together).
template <int U>
__global__ void __launch_bounds__(pipe_max_threads(U)) copy_pipelined(const float* __restrict__ src, float* __restrict__ dst,
                                                                      std::size_t n, unsigned chunks_per_block) {
  const std::size_t n4 = n / 4;
  const float4* s = reinterpret_cast<const float4*>(src);
  float4* d = reinterpret_cast<float4*>(dst);
  const unsigned T = blockDim.x;
  const std::size_t per = std::size_t(U) * T, full = n4 / per;
  const std::size_t first = chunks_per_block ? std::size_t(blockIdx.x) * chunks_per_block : blockIdx.x;
  const std::size_t step = chunks_per_block ? 1 : gridDim.x;
  const std::size_t end = chunks_per_block ? std::min(full, first + chunks_per_block) : full;
  auto load = [&](float4 (&v)[U], std::size_t c) {
#pragma unroll
    for (int k = 0; k < U; ++k) v[k] = ld_ordered(s + c * per + std::size_t(k) * T + threadIdx.x);
  };
  auto store = [&](const float4 (&v)[U], std::size_t c) {
#pragma unroll
    for (int k = 0; k < U; ++k) st_ordered(d + c * per + std::size_t(k) * T + threadIdx.x, v[k]);
  };
  // Two register sets, a and b, alternate roles (no copy from one to the other: a move would wait for
  // the loads it moves).
  float4 a[U], b[U];
  std::size_t c = first;
  if (c < end) load(a, c);
  while (c < end) {
    if (c + step < end) load(b, c + step);
    store(a, c);
    c += step;
    if (c >= end) break;
    if (c + step < end) load(a, c + step);
    store(b, c);
    c += step;
  }
  if (blockIdx.x == 0) {  // the partial last chunk and the last n % 4 floats
    for (std::size_t i = full * per + threadIdx.x; i < n4; i += T) d[i] = s[i];
    const std::size_t i = 4 * n4 + threadIdx.x;
    if (i < n) dst[i] = src[i];
  }
}

using PipeKernel = void (*)(const float*, float*, std::size_t, unsigned);
PipeKernel pipe_kernel(int unroll) {  // nullptr for an unroll that is not instantiated
  switch (unroll) {
    case 2: return copy_pipelined<2>;
    case 4: return copy_pipelined<4>;
    case 8: return copy_pipelined<8>;
    default: return nullptr;
  }
}

// ---- rung 5: the bulk-copy engine through shared memory ------------------------------------------
// Tunable from the command line (axes bulk_kib, bulk_stages, bulk_order, bulk_evict_first); the
// defaults are the best of a sweep on an H100 (docs/ch07.md).
constexpr int kMaxStages = 16;

struct BulkParams {
  unsigned chunk;     // bytes per bulk copy (multiple of 16)
  int stages;         // chunks in flight per block (<= kMaxStages)
  bool contiguous;    // each block copies one contiguous range of chunks (else chunks dealt round-robin)
  bool evict_first;   // L2 evict-first policy on both copies: the data is used once
};

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
__device__ __forceinline__ std::uint32_t smem_addr(const void* p) {
  return static_cast<std::uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void mbar_init(std::uint64_t* bar, unsigned count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_addr(bar)), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_expect_tx(std::uint64_t* bar, unsigned bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_addr(bar)), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_wait(std::uint64_t* bar, unsigned parity) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "WAIT_%=:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n"
      "@!p bra WAIT_%=;\n"
      "}\n" ::"r"(smem_addr(bar)),
      "r"(parity)
      : "memory");
}
// global -> shared, completion counted in bytes on the mbarrier.
__device__ __forceinline__ void bulk_load(void* smem, const void* gmem, unsigned bytes, std::uint64_t* bar,
                                          bool hint, std::uint64_t policy) {
  if (hint)
    asm volatile(
        "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%0], [%1], %2, [%3], %4;" ::"r"(
            smem_addr(smem)),
        "l"(gmem), "r"(bytes), "r"(smem_addr(bar)), "l"(policy)
        : "memory");
  else
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
                     smem_addr(smem)),
                 "l"(gmem), "r"(bytes), "r"(smem_addr(bar))
                 : "memory");
}
// shared -> global, tracked by bulk groups.
__device__ __forceinline__ void bulk_store(void* gmem, const void* smem, unsigned bytes, bool hint, std::uint64_t policy) {
  if (hint)
    asm volatile("cp.async.bulk.global.shared::cta.bulk_group.L2::cache_hint [%0], [%1], %2, %3;" ::"l"(gmem),
                 "r"(smem_addr(smem)), "r"(bytes), "l"(policy)
                 : "memory");
  else
    asm volatile("cp.async.bulk.global.shared::cta.bulk_group [%0], [%1], %2;" ::"l"(gmem), "r"(smem_addr(smem)), "r"(bytes)
                 : "memory");
  asm volatile("cp.async.bulk.commit_group;" ::: "memory");
}
template <int N>
__device__ __forceinline__ void bulk_wait_read() {  // at most N store groups still reading shared memory
  asm volatile("cp.async.bulk.wait_group.read %0;" ::"n"(N) : "memory");
}
#endif

// One thread per block issues everything. This block's k-th chunk lives in stage k % stages.
// Iteration k: wait for chunk k to land, store it; then the stage of chunk k-1, whose store was issued
// one iteration ago, is refilled with chunk k-1+stages as soon as that store has finished reading it
// (wait_group.read 1). So stages-1 loads and up to two stores are in flight at any time.
__global__ void __launch_bounds__(32) copy_tma_bulk(const float* __restrict__ src, float* __restrict__ dst,
                                                    std::size_t n, BulkParams p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  extern __shared__ __align__(128) unsigned char stage[];  // p.stages x p.chunk
  __shared__ __align__(8) std::uint64_t full[kMaxStages];
  const std::size_t bytes16 = (n * sizeof(float)) & ~std::size_t(15);  // the bulk engine moves 16 B units
  const std::size_t chunks = (bytes16 + p.chunk - 1) / p.chunk;
  const char* s = reinterpret_cast<const char*>(src);
  char* d = reinterpret_cast<char*>(dst);
  if (threadIdx.x == 0) {
    for (int i = 0; i < p.stages; ++i) mbar_init(&full[i], 1);
    // Make the initialized barriers visible to the copy engine (the async proxy).
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
    std::uint64_t policy = 0;
    if (p.evict_first) asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(policy));
    // This block's chunks: k -> first + k * step.
    std::size_t mine, first, step;
    if (p.contiguous) {
      const std::size_t q = chunks / gridDim.x, r = chunks % gridDim.x;
      mine = q + (blockIdx.x < r);
      first = blockIdx.x * q + std::min<std::size_t>(blockIdx.x, r);
      step = 1;
    } else {
      mine = blockIdx.x < chunks ? (chunks - blockIdx.x + gridDim.x - 1) / gridDim.x : 0;
      first = blockIdx.x;
      step = gridDim.x;
    }
    const unsigned stages = static_cast<unsigned>(p.stages);
    auto bytes_of = [&](std::size_t c) {
      return static_cast<unsigned>(std::min<std::size_t>(p.chunk, bytes16 - c * p.chunk));
    };
    auto issue_load = [&](std::size_t k) {
      const std::size_t c = first + k * step;
      const unsigned b = bytes_of(c);
      std::uint64_t* bar = &full[k % stages];
      mbar_expect_tx(bar, b);
      bulk_load(stage + (k % stages) * p.chunk, s + c * p.chunk, b, bar, p.evict_first, policy);
    };
    for (std::size_t k = 0; k < mine && k < stages; ++k) issue_load(k);
    for (std::size_t k = 0; k < mine; ++k) {
      mbar_wait(&full[k % stages], static_cast<unsigned>((k / stages) & 1));
      const std::size_t c = first + k * step;
      bulk_store(d + c * p.chunk, stage + (k % stages) * p.chunk, bytes_of(c), p.evict_first, policy);
      if (k >= 1 && k - 1 + stages < mine) {
        bulk_wait_read<1>();  // the store of chunk k-1 has read its stage
        issue_load(k - 1 + stages);
      }
    }
    // The block must not exit while its stores still read shared memory; global visibility of the
    // writes is guaranteed at kernel completion.
    asm volatile("cp.async.bulk.wait_group 0;" ::: "memory");
  }
  // The last (n*4 % 16)/4 floats: plain accesses.
  if (blockIdx.x == 0) {
    const std::size_t i = bytes16 / sizeof(float) + threadIdx.x;
    if (i < n) dst[i] = src[i];
  }
#endif
}

struct SrcRef {
  std::uint64_t seed;
  __host__ __device__ float operator()(std::size_t i) const { return aipe::uniform_at(seed, i, -1.f, 1.f); }
};

class CopyLadder final : public aipe::Example {
 public:
  aipe::ExampleInfo info() const override {
    return {"ch07/copy_ladder",
            "Copy ladder: scalar, 16-byte vectors, loads in flight, streaming hints, bulk-copy engine, chunk and slice shapes",
            "A copy does no arithmetic, so its speed is set by how many bytes each SM keeps in flight to cover "
            "DRAM latency (Little's law) and by how few instructions it spends per byte. Scalar accesses leave "
            "the memory system idle; 16-byte vectors cut the instruction count by 4; several independent loads "
            "per thread multiply the bytes in flight; streaming cache hints keep a use-once stream out of the "
            "caches; Hopper's bulk-copy engine (cp.async.bulk with an mbarrier) moves 16 KiB per instruction "
            "through shared memory with a single thread per block. cudaMemcpyAsync is the ceiling to match.",
            {{.name = "n",
              .def = 256ll << 20,
              .quick = 64ll << 20,
              .small = 1000003,
              .help = "floats to copy",
              .min = 1,
              .max = 1ll << 32},
             {.name = "bulk_kib",
              .def = 64,
              .quick = 64,
              .small = 64,
              .help = "tma_bulk: KiB per bulk copy (chunk)",
              .min = 1,
              .max = 128},
             {.name = "bulk_stages",
              .def = 3,
              .quick = 3,
              .small = 3,
              .help = "tma_bulk: chunks in flight per block (shared-memory stages)",
              .min = 2,
              .max = kMaxStages},
             {.name = "bulk_order",
              .def = 0,
              .quick = 0,
              .small = 0,
              .help = "tma_bulk: 0 chunks dealt round-robin over blocks, 1 one contiguous range per block",
              .min = 0,
              .max = 1},
             {.name = "bulk_evict_first",
              .def = 0,
              .quick = 0,
              .small = 0,
              .help = "tma_bulk: 1 = L2 evict-first cache policy on the bulk copies",
              .min = 0,
              .max = 1},
             {.name = "chunk_kib",
              .def = 128,
              .quick = 128,
              .small = 128,
              .help = "wide_chunks: KiB per block (one block per chunk)",
              .min = 1,
              .max = 256},
             {.name = "chunk_threads",
              .def = 1024,
              .quick = 1024,
              .small = 1024,
              .help = "wide_chunks: threads per block",
              .min = 32,
              .max = 1024},
             {.name = "chunk_policy",
              .def = 0,
              .quick = 0,
              .small = 0,
              .help = "wide_chunks: 0 plain, 1 st.cs, 2 ld.nc.L2::256B + st.cs, 3 stores L2 evict-first, 4 st.L1::no_allocate",
              .min = 0,
              .max = kPolicies - 1},
             {.name = "chunk_pair32",
              .def = 0,
              .quick = 0,
              .small = 0,
              .help = "wide_chunks: 1 = 32 contiguous bytes per thread (two adjacent float4)",
              .min = 0,
              .max = 1},
             {.name = "chunk_order",
              .def = 0,
              .quick = 0,
              .small = 0,
              .help = "wide_chunks: 0 chunks in address order, 1 alternately from both halves",
              .min = 0,
              .max = 1},
             {.name = "slice_unroll",
              .def = 4,
              .quick = 4,
              .small = 4,
              .help = "sliced: float4 loads in flight per thread (4 or 8)",
              .min = 4,
              .max = 8},
             {.name = "slice_blocks_per_sm",
              .def = 0,
              .quick = 0,
              .small = 0,
              .help = "sliced: blocks per SM (0 = as many as fit)",
              .min = 0,
              .max = 4},
             {.name = "pipe_kib",
              .def = 64,
              .quick = 64,
              .small = 64,
              .help = "pipelined: KiB per chunk per block (pipe_threads x 2, 4 or 8 float4)",
              .min = 1,
              .max = 128},
             {.name = "pipe_threads",
              .def = 1024,
              .quick = 1024,
              .small = 1024,
              .help = "pipelined: threads per block (at most 512 with 8 float4 per thread)",
              .min = 32,
              .max = 1024},
             {.name = "pipe_chunks",
              .def = 0,
              .quick = 0,
              .small = 0,
              .help = "pipelined: consecutive chunks per block (0 = persistent grid, chunks round-robin)",
              .min = 0,
              .max = 1024}},
            {}};
  }

  std::vector<aipe::Variant> variants() override {
    return {
        {.name = "scalar",
         .summary = "one 4-byte load and store per thread per iteration, grid-stride",
         .launch = [this](cudaStream_t s) {
           copy_scalar<<<grid_, kThreads, 0, s>>>(src_.get(), dst_.get(), n_);
           AIPE_CHECK_LAUNCH();
         }},
        {.name = "vec4",
         .summary = "16-byte float4 loads and stores: 4x fewer memory instructions",
         .launch = [this](cudaStream_t s) {
           copy_vec4<<<grid_, kThreads, 0, s>>>(src_.get(), dst_.get(), n_);
           AIPE_CHECK_LAUNCH();
         }},
        {.name = "vec4_ilp4",
         .summary = "four independent float4 loads in flight per thread before the first store",
         .launch = [this](cudaStream_t s) {
           copy_vec4_ilp<4, false><<<grid_, kThreads, 0, s>>>(src_.get(), dst_.get(), n_);
           AIPE_CHECK_LAUNCH();
         }},
        {.name = "streaming",
         .summary = "as vec4_ilp4 with ld.global.nc.L1::no_allocate and st.global.cs (evict-first)",
         .launch = [this](cudaStream_t s) {
           copy_vec4_ilp<4, true><<<grid_, kThreads, 0, s>>>(src_.get(), dst_.get(), n_);
           AIPE_CHECK_LAUNCH();
         }},
        {.name = "tma_bulk",
         .summary = "cp.async.bulk global->shared on an mbarrier, then shared->global, several chunks in flight per block",
         .launch =
             [this](cudaStream_t s) {
               copy_tma_bulk<<<grid_bulk_, 32, smem_bulk_, s>>>(src_.get(), dst_.get(), n_, bulk_);
               AIPE_CHECK_LAUNCH();
             },
         .requires_ = {.min_cc = 90},
         .metrics =
             [this](double, std::map<std::string, double>& out) {
               out["bulk_blocks_per_sm"] = grid_bulk_ / std::max(1, sm_count_);
               out["bulk_kib_in_flight_per_sm"] =
                   (bulk_.stages - 1) * (bulk_.chunk / 1024.0) * (grid_bulk_ / std::max(1, sm_count_));
             }},
        {.name = "block_chunks",
         .summary = "one contiguous 16 KiB chunk per block, no grid-stride loop: DRAM handed out in address order",
         .launch = [this](cudaStream_t s) {
           const std::size_t per_block = std::size_t(kChunkThreads) * kChunkUnroll;
           const std::size_t blocks = std::max<std::size_t>(1, (n_ / 4 + per_block - 1) / per_block);
           copy_block_chunks<<<static_cast<unsigned>(blocks), kChunkThreads, 0, s>>>(src_.get(), dst_.get(), n_);
           AIPE_CHECK_LAUNCH();
         }},
        {.name = "wide_chunks",
         .summary = "block_chunks with chunk size, threads, cache policy and per-thread layout as axes (default 128 KiB x 1024 threads)",
         .launch = [this](cudaStream_t s) {
           wide_<<<wide_grid_, wide_threads_, 0, s>>>(src_.get(), dst_.get(), n_, wide_pair32_, wide_two_streams_);
           AIPE_CHECK_LAUNCH();
         },
         .metrics =
             [this](double, std::map<std::string, double>& out) {
               out["chunk_loads_per_thread"] = wide_unroll_;
               out["chunk_kib_in_flight_per_sm"] = wide_per_sm_ * (wide_unroll_ * 16.0 * wide_threads_ / 1024.0);
             }},
        {.name = "sliced",
         .summary = "a persistent grid of exactly blocks/SM x SMs, each block streaming one contiguous slice",
         .launch = [this](cudaStream_t s) {
           if (slice_unroll_ == 8) copy_sliced<8><<<slice_grid_, kSliceThreads, 0, s>>>(src_.get(), dst_.get(), n_);
           else copy_sliced<4><<<slice_grid_, kSliceThreads, 0, s>>>(src_.get(), dst_.get(), n_);
           AIPE_CHECK_LAUNCH();
         },
         .metrics = [this](double, std::map<std::string, double>& out) { out["slice_blocks"] = slice_grid_; }},
        {.name = "pipelined",
         .summary = "two register sets per thread: the loads of a block's next chunk issued before the stores of this one",
         .launch = [this](cudaStream_t s) {
           pipe_<<<pipe_grid_, pipe_threads_, 0, s>>>(src_.get(), dst_.get(), n_, pipe_chunks_);
           AIPE_CHECK_LAUNCH();
         },
         .metrics =
             [this](double, std::map<std::string, double>& out) {
               out["pipe_blocks_per_sm"] = pipe_per_sm_;
               // Loads of one chunk plus stores of the previous one, per block.
               out["pipe_kib_in_flight_per_sm"] = pipe_per_sm_ * 2.0 * pipe_unroll_ * 16.0 * pipe_threads_ / 1024.0;
             }},
        {.name = "pipelined_pairs",
         .summary = "pipelined with 2 consecutive chunks per block: one overlap per block, blocks still in address order",
         .launch =
             [this](cudaStream_t s) {
               pipe_<<<pairs_grid_, pipe_threads_, 0, s>>>(src_.get(), dst_.get(), n_, 2);
               AIPE_CHECK_LAUNCH();
             },
         .metrics = [this](double, std::map<std::string, double>& out) { out["pipe_blocks_per_sm"] = pipe_per_sm_; }},
        {.name = "memcpy",
         .summary = "cudaMemcpyAsync device-to-device: the copy-engine ceiling",
         .launch = [this](cudaStream_t s) {
           AIPE_CUDA(cudaMemcpyAsync(dst_.get(), src_.get(), n_ * sizeof(float), cudaMemcpyDeviceToDevice, s));
         }},
    };
  }

  void setup(aipe::Context& ctx) override {
    n_ = static_cast<std::size_t>(ctx.size("n"));
    src_ = aipe::DeviceBuffer<float>(n_);
    dst_ = aipe::DeviceBuffer<float>(n_);
    seed_ = aipe::sub_seed(ctx.seed(), 1);
    aipe::fill_uniform(src_.get(), n_, seed_, -1.f, 1.f, ctx.stream());
    ctx.output(dst_.get(), dst_.bytes());
    sm_count_ = ctx.device().sm_count;
    // Grids from the device: as many resident blocks as the SMs hold (persistent grid-stride).
    int per_sm = 0;
    AIPE_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, copy_vec4_ilp<4, true>, kThreads, 0));
    grid_ = static_cast<unsigned>(std::max(1, per_sm) * sm_count_);
    bulk_.chunk = static_cast<unsigned>(ctx.size("bulk_kib")) * 1024u;
    bulk_.stages = static_cast<int>(ctx.size("bulk_stages"));
    bulk_.contiguous = ctx.size("bulk_order") == 1;
    bulk_.evict_first = ctx.size("bulk_evict_first") == 1;
    smem_bulk_ = static_cast<std::size_t>(bulk_.chunk) * bulk_.stages;
    setup_wide(ctx);
    setup_sliced(ctx);
    setup_pipelined(ctx);
    if (smem_bulk_ + 1024 > ctx.device().smem_per_block_optin_bytes)
      throw aipe::BadInput("bulk_kib x bulk_stages = " + std::to_string(smem_bulk_ / 1024) +
                           " KiB of shared memory exceeds what a block may use (" +
                           std::to_string(ctx.device().smem_per_block_optin_bytes / 1024) + " KiB)");
    if (ctx.device().cc() >= 90) {
      AIPE_CUDA(cudaFuncSetAttribute(copy_tma_bulk, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem_bulk_)));
      int bulk_per_sm = 0;
      AIPE_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&bulk_per_sm, copy_tma_bulk, 32, smem_bulk_));
      grid_bulk_ = static_cast<unsigned>(std::max(1, bulk_per_sm) * sm_count_);
    }
  }

  aipe::Work work() const override { return {2.0 * sizeof(float) * n_, 0, aipe::ComputeUnit::none}; }

  aipe::VerifyResult verify(aipe::Context& ctx) override {
    return aipe::compare_on_device(n_, dst_.get(), SrcRef{seed_}, aipe::tolerance_for(aipe::DType::exact), ctx.stream());
  }

 private:
  void setup_wide(aipe::Context& ctx) {
    const std::int64_t bytes = ctx.size("chunk_kib") * 1024;
    wide_threads_ = static_cast<unsigned>(ctx.size("chunk_threads"));
    if (wide_threads_ % 32 != 0) throw aipe::BadInput("chunk_threads must be a multiple of 32");
    const std::int64_t per_thread = bytes / (16 * std::int64_t(wide_threads_));
    wide_unroll_ = static_cast<int>(per_thread);
    wide_ = per_thread * 16 * wide_threads_ == bytes ? wide_kernel(wide_unroll_, static_cast<int>(ctx.size("chunk_policy")))
                                                     : nullptr;
    if (!wide_)
      throw aipe::BadInput("chunk_kib x 1024 / (chunk_threads x 16 B) must be 1, 2, 4, 8 or 16 loads per thread (got " +
                           std::to_string(bytes) + " B over " + std::to_string(wide_threads_) + " threads)");
    if (static_cast<int>(wide_threads_) > wide_max_threads(wide_unroll_))
      throw aipe::BadInput("16 loads per thread (chunk_kib x 1024 / (chunk_threads x 16 B)) allow at most " +
                           std::to_string(wide_max_threads(16)) + " chunk_threads");
    wide_pair32_ = ctx.size("chunk_pair32") == 1;
    wide_two_streams_ = ctx.size("chunk_order") == 1;
    if (wide_pair32_ && wide_unroll_ % 2 != 0)
      throw aipe::BadInput("chunk_pair32 needs an even number of loads per thread");
    const std::size_t per_block = std::size_t(wide_unroll_) * wide_threads_;
    wide_grid_ = static_cast<unsigned>(std::max<std::size_t>(1, (n_ / 4 + per_block - 1) / per_block));
    AIPE_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&wide_per_sm_, wide_, static_cast<int>(wide_threads_), 0));
  }
  void setup_sliced(aipe::Context& ctx) {
    slice_unroll_ = static_cast<int>(ctx.size("slice_unroll"));
    if (slice_unroll_ != 4 && slice_unroll_ != 8) throw aipe::BadInput("slice_unroll must be 4 or 8");
    int fit = 0;
    if (slice_unroll_ == 8) AIPE_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&fit, copy_sliced<8>, kSliceThreads, 0));
    else AIPE_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&fit, copy_sliced<4>, kSliceThreads, 0));
    const int want = static_cast<int>(ctx.size("slice_blocks_per_sm"));
    if (want > std::max(1, fit))
      throw aipe::BadInput("slice_blocks_per_sm " + std::to_string(want) + " exceeds the " + std::to_string(fit) +
                           " blocks of 512 threads that fit on an SM");
    slice_grid_ = static_cast<unsigned>((want > 0 ? want : std::max(1, fit)) * sm_count_);
  }

  void setup_pipelined(aipe::Context& ctx) {
    const std::int64_t bytes = ctx.size("pipe_kib") * 1024;
    pipe_threads_ = static_cast<unsigned>(ctx.size("pipe_threads"));
    if (pipe_threads_ % 32 != 0) throw aipe::BadInput("pipe_threads must be a multiple of 32");
    const std::int64_t per_thread = bytes / (16 * std::int64_t(pipe_threads_));
    pipe_unroll_ = static_cast<int>(per_thread);
    pipe_ = per_thread * 16 * pipe_threads_ == bytes ? pipe_kernel(pipe_unroll_) : nullptr;
    if (!pipe_)
      throw aipe::BadInput("pipe_kib x 1024 / (pipe_threads x 16 B) must be 2, 4 or 8 loads per thread (got " +
                           std::to_string(bytes) + " B over " + std::to_string(pipe_threads_) + " threads)");
    if (static_cast<int>(pipe_threads_) > pipe_max_threads(pipe_unroll_))
      throw aipe::BadInput("8 loads per thread (pipe_kib x 1024 / (pipe_threads x 16 B)) allow at most " +
                           std::to_string(pipe_max_threads(8)) + " pipe_threads");
    pipe_chunks_ = static_cast<unsigned>(ctx.size("pipe_chunks"));
    AIPE_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&pipe_per_sm_, pipe_, static_cast<int>(pipe_threads_), 0));
    const std::size_t chunks = std::max<std::size_t>(1, n_ / 4 / (std::size_t(pipe_unroll_) * pipe_threads_));
    pipe_grid_ = static_cast<unsigned>(pipe_chunks_ ? (chunks + pipe_chunks_ - 1) / pipe_chunks_
                                                    : std::min<std::size_t>(chunks, std::size_t(std::max(1, pipe_per_sm_)) * sm_count_));
    pairs_grid_ = static_cast<unsigned>((chunks + 1) / 2);
  }

  std::size_t n_ = 0;
  std::uint64_t seed_ = 0;
  int sm_count_ = 1;
  unsigned grid_ = 1, grid_bulk_ = 1;
  std::size_t smem_bulk_ = 0;
  BulkParams bulk_{};
  WideKernel wide_ = nullptr;
  unsigned wide_grid_ = 1, wide_threads_ = 512, slice_grid_ = 1;
  int wide_unroll_ = 1, wide_per_sm_ = 0, slice_unroll_ = 4;
  bool wide_pair32_ = false, wide_two_streams_ = false;
  PipeKernel pipe_ = nullptr;
  unsigned pipe_grid_ = 1, pipe_threads_ = 1024, pipe_chunks_ = 0, pairs_grid_ = 1;
  int pipe_unroll_ = 4, pipe_per_sm_ = 0;
  aipe::DeviceBuffer<float> src_, dst_;
};

}  // namespace

AIPE_REGISTER_EXAMPLE(CopyLadder);
