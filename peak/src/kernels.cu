// The measurement kernels of `aipe peak`. Each is written to reach one ceiling and nothing else:
// 16-byte accesses, several independent loads in flight per thread, cache hints for data touched
// once, a grid sized from the SM count; FMA kernels with independent chains; a single-thread
// pointer chase for latency.
#include <cuda_fp8.h>

#include <algorithm>
#include <stdexcept>

#include "aipe/check.hpp"
#include "aipe/random.hpp"
#include "kernels.hpp"

namespace aipe::peak::kern {

const char* to_string(Hint h) {
  switch (h) {
    case Hint::plain: return "plain";
    case Hint::streaming: return "cs";
    case Hint::nc_l2_256: return "nc+L2::256B";
    case Hint::evict_first: return "L2 evict_first";
  }
  return "";
}

std::string StreamConfig::describe() const {
  return std::string(persistent ? "persistent " + std::to_string(blocks_per_sm) + "/SM" : "1 chunk/block") +
         (pipelined ? ", pipelined" : "") + ", " +
         std::to_string(threads) + " thr, unroll " + std::to_string(unroll) + ", 16 B, " + to_string(hint);
}

namespace {

// Loads and stores as volatile asm: the compiler keeps their program order, so all U loads of a
// chunk are issued before the first store (it would otherwise interleave them to save registers,
// leaving fewer bytes in flight).
template <Hint H>
__device__ __forceinline__ uint4 load(const uint4* p) {
  uint4 v;
  if constexpr (H == Hint::plain || H == Hint::evict_first) {
    asm volatile("ld.global.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
  } else if constexpr (H == Hint::streaming) {
    asm volatile("ld.global.cs.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
  } else {
    asm volatile("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p));
  }
  return v;
}

template <Hint H>
__device__ __forceinline__ void store(uint4* p, uint4 v) {
  if constexpr (H == Hint::plain) {
    asm volatile("st.global.v4.u32 [%0], {%1, %2, %3, %4};" ::"l"(p), "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w) : "memory");
  } else if constexpr (H == Hint::evict_first) {
    std::uint64_t policy;  // not volatile: the compiler creates it once per kernel
    asm("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(policy));
    asm volatile("st.global.L2::cache_hint.v4.u32 [%0], {%1, %2, %3, %4}, %5;" ::"l"(p), "r"(v.x), "r"(v.y), "r"(v.z),
                 "r"(v.w), "l"(policy)
                 : "memory");
  } else
    asm volatile("st.global.cs.v4.u32 [%0], {%1, %2, %3, %4};" ::"l"(p), "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w) : "memory");
}

// Chunks of U x blockDim vectors; block b takes chunks b, b + grid, ... All U loads of a chunk are
// issued before the first store, so U x 16 bytes per thread are in flight.
template <int U, Hint H>
__global__ void __launch_bounds__(1024) copy_kernel(const uint4* __restrict__ src, uint4* __restrict__ dst, std::size_t n) {
  const std::size_t chunk = std::size_t(U) * blockDim.x;
  const std::size_t full = n / chunk;
  for (std::size_t c = blockIdx.x; c < full; c += gridDim.x) {
    const std::size_t base = c * chunk + threadIdx.x;
    uint4 v[U];
#pragma unroll
    for (int k = 0; k < U; ++k) v[k] = load<H>(src + base + std::size_t(k) * blockDim.x);
#pragma unroll
    for (int k = 0; k < U; ++k) store<H>(dst + base + std::size_t(k) * blockDim.x, v[k]);
  }
  for (std::size_t i = full * chunk + blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x)
    dst[i] = src[i];
}

// copy_kernel's persistent loop with two register sets, a and b, taking turns: the U loads of chunk
// c + grid are issued before the U stores of chunk c, so a block always has loads in flight (no copy
// from one set to the other: a move would wait for the loads it moves).
constexpr int pipelined_max_threads(int unroll) { return unroll >= 8 ? 512 : 1024; }
template <int U, Hint H>
__global__ void __launch_bounds__(pipelined_max_threads(U))
    copy_pipelined_kernel(const uint4* __restrict__ src, uint4* __restrict__ dst, std::size_t n) {
  const std::size_t chunk = std::size_t(U) * blockDim.x;
  const std::size_t full = n / chunk;
  auto load_chunk = [&](uint4 (&v)[U], std::size_t c) {
#pragma unroll
    for (int k = 0; k < U; ++k) v[k] = load<H>(src + c * chunk + threadIdx.x + std::size_t(k) * blockDim.x);
  };
  auto store_chunk = [&](const uint4 (&v)[U], std::size_t c) {
#pragma unroll
    for (int k = 0; k < U; ++k) store<H>(dst + c * chunk + threadIdx.x + std::size_t(k) * blockDim.x, v[k]);
  };
  uint4 a[U], b[U];
  std::size_t c = blockIdx.x;
  if (c < full) load_chunk(a, c);
  while (c < full) {
    if (c + gridDim.x < full) load_chunk(b, c + gridDim.x);
    store_chunk(a, c);
    c += gridDim.x;
    if (c >= full) break;
    if (c + gridDim.x < full) load_chunk(a, c + gridDim.x);
    store_chunk(b, c);
    c += gridDim.x;
  }
  for (std::size_t i = full * chunk + blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x)
    dst[i] = src[i];
}

// Bulk copy through the Tensor Memory Accelerator (sm_90): one thread per block moves whole tiles
// global -> shared (cp.async.bulk, completing on an mbarrier) and shared -> global (bulk store), with
// STAGES tiles in flight; the SMs' load/store units are not involved. A wait that does not complete
// in about a second sets *err and returns (the host check then rejects the configuration) rather
// than hanging the GPU.
__device__ __forceinline__ std::uint32_t smem_addr(const void* p) {
  return static_cast<std::uint32_t>(__cvta_generic_to_shared(p));
}

__global__ void __launch_bounds__(32) bulk_copy_kernel(const char* __restrict__ src, char* __restrict__ dst, std::size_t n,
                                                       int stages, int tile, int* err) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  extern __shared__ __align__(128) unsigned char smem[];
  __shared__ __align__(8) unsigned long long bar[16];
  if (threadIdx.x != 0) return;
  for (int s = 0; s < stages; ++s) asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(smem_addr(&bar[s])));
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
  const std::size_t ntiles = (n + tile - 1) / tile;
  auto bytes_of = [&](std::size_t t) { return static_cast<std::uint32_t>(min(std::size_t(tile), n - t * tile)); };
  auto issue_load = [&](int s, std::size_t t) {
    const std::uint32_t b = bytes_of(t);
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_addr(&bar[s])), "r"(b) : "memory");
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
                     smem_addr(smem + std::size_t(s) * tile)),
                 "l"(src + t * tile), "r"(b), "r"(smem_addr(&bar[s]))
                 : "memory");
  };
  for (int s = 0; s < stages; ++s) {
    const std::size_t t = blockIdx.x + std::size_t(s) * gridDim.x;
    if (t < ntiles) issue_load(s, t);
  }
  std::uint32_t phase = 0;  // bit s: parity to wait for on stage s
  for (std::size_t i = 0;; ++i) {
    const std::size_t t = blockIdx.x + i * gridDim.x;
    if (t >= ntiles) break;
    const int s = static_cast<int>(i % stages);
    const long long t0 = clock64();
    for (;;) {
      std::uint32_t done;
      asm volatile(
          "{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
          : "=r"(done)
          : "r"(smem_addr(&bar[s])), "r"((phase >> s) & 1u)
          : "memory");
      if (done) break;
      if (clock64() - t0 > (1ll << 31)) {
        atomicExch(err, 1);
        return;
      }
    }
    phase ^= 1u << s;
    asm volatile("cp.async.bulk.global.shared::cta.bulk_group [%0], [%1], %2;" ::"l"(dst + t * tile),
                 "r"(smem_addr(smem + std::size_t(s) * tile)), "r"(bytes_of(t))
                 : "memory");
    asm volatile("cp.async.bulk.commit_group;" ::: "memory");
    const std::size_t next = blockIdx.x + (i + stages) * gridDim.x;
    if (next < ntiles) {
      asm volatile("cp.async.bulk.wait_group.read 0;" ::: "memory");  // the store has read stage s
      issue_load(s, next);
    }
  }
  asm volatile("cp.async.bulk.wait_group 0;" ::: "memory");
#else
  if (threadIdx.x == 0 && blockIdx.x == 0) atomicExch(err, 2);  // needs sm_90
#endif
}

__device__ __forceinline__ float block_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  __shared__ float warp_sums[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  float s = 0;
  if (threadIdx.x == 0)
    for (int w = 0; w < (blockDim.x + 31) / 32; ++w) s += warp_sums[w];
  return s;
}

__device__ __forceinline__ void add4(float4& a, uint4 v) {
  a.x += __uint_as_float(v.x);
  a.y += __uint_as_float(v.y);
  a.z += __uint_as_float(v.z);
  a.w += __uint_as_float(v.w);
}

// Read-only: sums every float, so no load can be dropped; one partial sum per block.
template <int U, Hint H>
__global__ void __launch_bounds__(1024) read_kernel(const uint4* __restrict__ src, std::size_t n, float* __restrict__ partial) {
  const std::size_t chunk = std::size_t(U) * blockDim.x;
  const std::size_t full = n / chunk;
  float4 acc = make_float4(0, 0, 0, 0);
  for (std::size_t c = blockIdx.x; c < full; c += gridDim.x) {
    const std::size_t base = c * chunk + threadIdx.x;
    uint4 v[U];
#pragma unroll
    for (int k = 0; k < U; ++k) v[k] = load<H>(src + base + std::size_t(k) * blockDim.x);
#pragma unroll
    for (int k = 0; k < U; ++k) add4(acc, v[k]);
  }
  for (std::size_t i = full * chunk + blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x)
    add4(acc, src[i]);
  const float s = block_sum((acc.x + acc.y) + (acc.z + acc.w));
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

__device__ __forceinline__ uint4 pattern(std::size_t i, std::uint32_t seed) {
  const auto u = static_cast<std::uint32_t>(i);
  return make_uint4(u, seed, ~u, u ^ seed);
}

template <int U, Hint H>
__global__ void __launch_bounds__(1024) write_kernel(uint4* __restrict__ dst, std::size_t n, std::uint32_t seed) {
  const std::size_t chunk = std::size_t(U) * blockDim.x;
  const std::size_t full = n / chunk;
  for (std::size_t c = blockIdx.x; c < full; c += gridDim.x) {
    const std::size_t base = c * chunk + threadIdx.x;
#pragma unroll
    for (int k = 0; k < U; ++k) {
      const std::size_t i = base + std::size_t(k) * blockDim.x;
      store<H>(dst + i, pattern(i, seed));
    }
  }
  for (std::size_t i = full * chunk + blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x)
    dst[i] = pattern(i, seed);
}

// Sweep: block b reads a window starting at b * n / grid, wrapping around the set, so that the reuse
// distance of every line is the whole set: it hits in L1 when the set fits one SM's L1, in L2 when it
// fits the L2, and comes from DRAM otherwise.
template <bool Pow2>
__global__ void __launch_bounds__(1024) sweep_kernel(const uint4* __restrict__ buf, std::uint32_t n,
                                                     std::uint32_t chunks, float* __restrict__ partial) {
  constexpr int U = 4;
  const std::uint32_t chunk = U * blockDim.x;
  std::uint32_t pos = static_cast<std::uint32_t>(static_cast<std::uint64_t>(blockIdx.x) * n / gridDim.x);
  float4 acc = make_float4(0, 0, 0, 0);
  for (std::uint32_t c = 0; c < chunks; ++c) {
    uint4 v[U];
#pragma unroll
    for (int k = 0; k < U; ++k) {
      std::uint32_t idx = pos + k * blockDim.x + threadIdx.x;
      idx = Pow2 ? (idx & (n - 1)) : (idx >= n ? idx - n : idx);
      v[k] = __ldg(buf + idx);
    }
#pragma unroll
    for (int k = 0; k < U; ++k) add4(acc, v[k]);
    pos += chunk;
    pos = Pow2 ? (pos & (n - 1)) : (pos >= n ? pos - n : pos);
  }
  const float s = block_sum((acc.x + acc.y) + (acc.z + acc.w));
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

// Shared memory: a warp reads 32 consecutive 16-byte vectors (512 B, four conflict-free wavefronts);
// the start moves every iteration so no load is loop-invariant. XOR keeps every loaded word live.
constexpr int kSmemVecs = 2048;  // 32 KiB
__global__ void __launch_bounds__(1024) smem_kernel(int iters, std::uint32_t* out) {
  __shared__ uint4 s[kSmemVecs];
  for (int i = threadIdx.x; i < kSmemVecs; i += blockDim.x) s[i] = make_uint4(i, i * 3u, i * 5u, i * 7u);
  __syncthreads();
  std::uint32_t x = 0, y = 0, z = 0, w = 0;
  std::uint32_t idx = threadIdx.x;
  for (int it = 0; it < iters; ++it) {
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      const uint4 v = s[(idx + k * 256) & (kSmemVecs - 1)];
      x ^= v.x;
      y ^= v.y;
      z ^= v.z;
      w ^= v.w;
    }
    idx += 32;
  }
  out[blockIdx.x * blockDim.x + threadIdx.x] = x ^ y ^ z ^ w;
}

// FMA chains: x = x * a + b, kFmaChains independent chains per thread (enough to cover the FMA
// latency with a full SM), a and b arguments so nothing folds at compile time.
template <class T>
__global__ void __launch_bounds__(1024) fma_kernel(T a, T b, int iters, T* out) {
  T x[kFmaChains];
#pragma unroll
  for (int k = 0; k < kFmaChains; ++k) x[k] = static_cast<T>(threadIdx.x) * T(1e-7) + T(k);
#pragma unroll 8
  for (int it = 0; it < iters; ++it) {
#pragma unroll
    for (int k = 0; k < kFmaChains; ++k) x[k] = fma(x[k], a, b);
  }
  T s = 0;
#pragma unroll
  for (int k = 0; k < kFmaChains; ++k) s += x[k];
  out[blockIdx.x * blockDim.x + threadIdx.x] = s;
}

__device__ __forceinline__ unsigned long long clock_now() {
  unsigned long long c;
  asm volatile("mov.u64 %0, %%clock64;" : "=l"(c)::"memory");
  return c;
}
__device__ __forceinline__ unsigned long long ns_now() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t)::"memory");
  return t;
}

// Each load's address is the previous load's value: one load in flight, latency = time per hop.
// Volatile asm keeps the loads between the two clock reads.
template <ChaseLoad L>
__global__ void chase_kernel(const void* start, int warm, int hops, unsigned long long* out) {
  const void* p = start;
  for (int i = 0; i < warm; ++i) {
    if constexpr (L == ChaseLoad::ca) asm volatile("ld.global.ca.u64 %0, [%0];" : "+l"(p)::"memory");
    else asm volatile("ld.global.cg.u64 %0, [%0];" : "+l"(p)::"memory");
  }
  const unsigned long long c0 = clock_now(), t0 = ns_now();
  for (int i = 0; i < hops; ++i) {
    if constexpr (L == ChaseLoad::ca) asm volatile("ld.global.ca.u64 %0, [%0];" : "+l"(p)::"memory");
    else asm volatile("ld.global.cg.u64 %0, [%0];" : "+l"(p)::"memory");
  }
  const unsigned long long c1 = clock_now(), t1 = ns_now();
  out[0] = c1 - c0;
  out[1] = t1 - t0;
  out[2] = reinterpret_cast<unsigned long long>(p);
}

__global__ void build_chase_kernel(char* base, std::size_t line_bytes, const std::uint32_t* perm, std::size_t lines) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < lines; i += std::size_t(gridDim.x) * blockDim.x)
    *reinterpret_cast<char**>(base + i * line_bytes) = base + std::size_t(perm[i]) * line_bytes;
}

__global__ void fill_fp8_kernel(__nv_fp8_e4m3* p, std::size_t n, std::uint64_t seed) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x)
    p[i] = __nv_fp8_e4m3(uniform_at(seed, i, -1.f, 1.f));
}

__host__ __device__ __forceinline__ int int8_value(std::uint64_t seed, std::size_t i) {
  const std::uint32_t b = bits_at(seed, i);
  const int mag = 1 + static_cast<int>(b % 7u);
  return (b >> 31) ? -mag : mag;
}

__global__ void fill_int8_kernel(std::int8_t* p, std::size_t n, std::uint64_t seed) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x)
    p[i] = static_cast<std::int8_t>(int8_value(seed, i));
}

unsigned fill_grid(std::size_t n) { return static_cast<unsigned>(std::min<std::size_t>((n + 255) / 256, 65535)); }

}  // namespace

namespace {
template <int U, Hint H>
const void* stream_kernel(Op op, bool pipelined) {
  switch (op) {
    case Op::copy:
      return pipelined ? reinterpret_cast<const void*>(&copy_pipelined_kernel<U, H>)
                       : reinterpret_cast<const void*>(&copy_kernel<U, H>);
    case Op::read: return reinterpret_cast<const void*>(&read_kernel<U, H>);
    case Op::write: return reinterpret_cast<const void*>(&write_kernel<U, H>);
  }
  return nullptr;
}
template <Hint H>
const void* stream_kernel(Op op, int u, bool p) {
  return u == 1 ? stream_kernel<1, H>(op, p) : u == 2 ? stream_kernel<2, H>(op, p) : u == 4 ? stream_kernel<4, H>(op, p) : stream_kernel<8, H>(op, p);
}
}  // namespace

int resident_blocks(Op op, const StreamConfig& c) {
  const bool p = c.pipelined && op == Op::copy;
  const void* k = c.hint == Hint::plain       ? stream_kernel<Hint::plain>(op, c.unroll, p)
                  : c.hint == Hint::streaming ? stream_kernel<Hint::streaming>(op, c.unroll, p)
                  : c.hint == Hint::evict_first ? stream_kernel<Hint::evict_first>(op, c.unroll, p)
                                              : stream_kernel<Hint::nc_l2_256>(op, c.unroll, p);
  int blocks = 0;
  AIPE_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, k, c.threads, 0));
  return std::max(blocks, 1);
}

unsigned grid_for(const StreamConfig& c, std::size_t n_vec, int sm_count) {
  if (c.persistent) return static_cast<unsigned>(std::max(1, c.blocks_per_sm * sm_count));
  const std::size_t chunk = std::size_t(c.unroll) * c.threads;
  return static_cast<unsigned>(std::clamp<std::size_t>((n_vec + chunk - 1) / chunk, 1, 0x7fffffff));
}

#define AIPE_PEAK_DISPATCH(KERNEL, ARGS)                                                                  \
  switch (c.hint) {                                                                                      \
    case Hint::plain:                                                                                    \
      if (c.unroll == 1) KERNEL<1, Hint::plain><<<g, c.threads, 0, s>>> ARGS;                            \
      else if (c.unroll == 2) KERNEL<2, Hint::plain><<<g, c.threads, 0, s>>> ARGS;                       \
      else if (c.unroll == 4) KERNEL<4, Hint::plain><<<g, c.threads, 0, s>>> ARGS;                       \
      else KERNEL<8, Hint::plain><<<g, c.threads, 0, s>>> ARGS;                                          \
      break;                                                                                             \
    case Hint::streaming:                                                                                \
      if (c.unroll == 1) KERNEL<1, Hint::streaming><<<g, c.threads, 0, s>>> ARGS;                        \
      else if (c.unroll == 2) KERNEL<2, Hint::streaming><<<g, c.threads, 0, s>>> ARGS;                   \
      else if (c.unroll == 4) KERNEL<4, Hint::streaming><<<g, c.threads, 0, s>>> ARGS;                   \
      else KERNEL<8, Hint::streaming><<<g, c.threads, 0, s>>> ARGS;                                      \
      break;                                                                                             \
    case Hint::nc_l2_256:                                                                                \
      if (c.unroll == 1) KERNEL<1, Hint::nc_l2_256><<<g, c.threads, 0, s>>> ARGS;                        \
      else if (c.unroll == 2) KERNEL<2, Hint::nc_l2_256><<<g, c.threads, 0, s>>> ARGS;                   \
      else if (c.unroll == 4) KERNEL<4, Hint::nc_l2_256><<<g, c.threads, 0, s>>> ARGS;                   \
      else KERNEL<8, Hint::nc_l2_256><<<g, c.threads, 0, s>>> ARGS;                                      \
      break;                                                                                             \
    case Hint::evict_first:                                                                              \
      if (c.unroll == 1) KERNEL<1, Hint::evict_first><<<g, c.threads, 0, s>>> ARGS;                      \
      else if (c.unroll == 2) KERNEL<2, Hint::evict_first><<<g, c.threads, 0, s>>> ARGS;                 \
      else if (c.unroll == 4) KERNEL<4, Hint::evict_first><<<g, c.threads, 0, s>>> ARGS;                 \
      else KERNEL<8, Hint::evict_first><<<g, c.threads, 0, s>>> ARGS;                                    \
      break;                                                                                             \
  }                                                                                                      \
  AIPE_CHECK_LAUNCH()

void copy(const StreamConfig& c, const void* src, void* dst, std::size_t n_vec, int sm_count, cudaStream_t s) {
  const unsigned g = grid_for(c, n_vec, sm_count);
  if (c.pipelined) {
    if (!c.persistent || c.threads > pipelined_max_threads(c.unroll))
      throw std::invalid_argument("pipelined copy: persistent grid, at most " +
                                  std::to_string(pipelined_max_threads(c.unroll)) + " threads at unroll " +
                                  std::to_string(c.unroll));
    AIPE_PEAK_DISPATCH(copy_pipelined_kernel, (static_cast<const uint4*>(src), static_cast<uint4*>(dst), n_vec));
    return;
  }
  AIPE_PEAK_DISPATCH(copy_kernel, (static_cast<const uint4*>(src), static_cast<uint4*>(dst), n_vec));
}

int bulk_resident_blocks(const BulkConfig& c) {
  const int smem = c.stages * c.tile;
  AIPE_CUDA(cudaFuncSetAttribute(bulk_copy_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  int blocks = 0;
  AIPE_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, bulk_copy_kernel, 32, smem));
  return std::max(blocks, 1);
}

std::string BulkConfig::describe() const {
  return "TMA bulk copy, " + std::to_string(blocks_per_sm) + " blocks/SM x " + std::to_string(stages) + " stages x " +
         std::to_string(tile / 1024) + " KiB tiles";
}

void bulk_copy(const BulkConfig& c, const void* src, void* dst, std::size_t bytes, int sm_count, int* err, cudaStream_t s) {
  const unsigned g = static_cast<unsigned>(std::max(1, c.blocks_per_sm * sm_count));
  bulk_copy_kernel<<<g, 32, c.stages * c.tile, s>>>(static_cast<const char*>(src), static_cast<char*>(dst), bytes,
                                                    c.stages, c.tile, err);
  AIPE_CHECK_LAUNCH();
}

void read(const StreamConfig& c, const void* src, std::size_t n_vec, float* partial, int sm_count, cudaStream_t s) {
  const unsigned g = grid_for(c, n_vec, sm_count);
  AIPE_PEAK_DISPATCH(read_kernel, (static_cast<const uint4*>(src), n_vec, partial));
}

void write(const StreamConfig& c, void* dst, std::size_t n_vec, std::uint32_t seed, int sm_count, cudaStream_t s) {
  const unsigned g = grid_for(c, n_vec, sm_count);
  AIPE_PEAK_DISPATCH(write_kernel, (static_cast<uint4*>(dst), n_vec, seed));
}

void sweep_read(const void* buf, std::uint32_t n_vec, unsigned grid, int threads, std::uint32_t chunks, float* partial,
                cudaStream_t s) {
  const bool pow2 = (n_vec & (n_vec - 1)) == 0;
  if (!pow2 && n_vec < 4u * threads) throw std::invalid_argument("sweep_read: n_vec must be a power of two or >= 4 x threads");
  if (pow2) sweep_kernel<true><<<grid, threads, 0, s>>>(static_cast<const uint4*>(buf), n_vec, chunks, partial);
  else sweep_kernel<false><<<grid, threads, 0, s>>>(static_cast<const uint4*>(buf), n_vec, chunks, partial);
  AIPE_CHECK_LAUNCH();
}

void smem_read(unsigned grid, int threads, int iters, std::uint32_t* out, cudaStream_t s) {
  smem_kernel<<<grid, threads, 0, s>>>(iters, out);
  AIPE_CHECK_LAUNCH();
}

void fma_f32(unsigned grid, int threads, int iters, float* out, cudaStream_t s) {
  fma_kernel<float><<<grid, threads, 0, s>>>(0.999999f, 1e-6f, iters, out);
  AIPE_CHECK_LAUNCH();
}

void fma_f64(unsigned grid, int threads, int iters, double* out, cudaStream_t s) {
  fma_kernel<double><<<grid, threads, 0, s>>>(0.999999, 1e-6, iters, out);
  AIPE_CHECK_LAUNCH();
}

void chase(const void* start, int warm, int hops, ChaseLoad ld, unsigned long long* out, cudaStream_t s) {
  if (ld == ChaseLoad::ca) chase_kernel<ChaseLoad::ca><<<1, 1, 0, s>>>(start, warm, hops, out);
  else chase_kernel<ChaseLoad::cg><<<1, 1, 0, s>>>(start, warm, hops, out);
  AIPE_CHECK_LAUNCH();
}

void build_chase(void* base, std::size_t line_bytes, const std::uint32_t* perm, std::size_t lines, cudaStream_t s) {
  build_chase_kernel<<<fill_grid(lines), 256, 0, s>>>(static_cast<char*>(base), line_bytes, perm, lines);
  AIPE_CHECK_LAUNCH();
}

void fill_fp8_e4m3(void* p, std::size_t n, std::uint64_t seed, cudaStream_t s) {
  fill_fp8_kernel<<<fill_grid(n), 256, 0, s>>>(static_cast<__nv_fp8_e4m3*>(p), n, seed);
  AIPE_CHECK_LAUNCH();
}

void fill_int8(void* p, std::size_t n, std::uint64_t seed, cudaStream_t s) {
  fill_int8_kernel<<<fill_grid(n), 256, 0, s>>>(static_cast<std::int8_t*>(p), n, seed);
  AIPE_CHECK_LAUNCH();
}

int int8_at(std::uint64_t seed, std::size_t i) { return int8_value(seed, i); }

}  // namespace aipe::peak::kern
