// ch08/reduction: the sum of n floats, from the textbook's first tree to the DRAM read ceiling.
//
// Ladder (every rung sums the identical n floats into one float; all verified against a float64 sum):
//   1 interleaved_divergent  shared-memory tree, `if (tid % (2s) == 0)`: active threads scattered over
//                            all warps, so every warp diverges and stays busy until the last step
//   2 interleaved_strided    index = 2 s tid: the active threads are packed into the first warps (no
//                            divergence), but the shared-memory accesses are 2s apart: bank conflicts
//   3 sequential             s halves from blockDim/2: contiguous, conflict-free shared accesses
//   4 first_add_load         each thread adds two elements while loading: half the blocks, no idle
//                            threads in the first step
//   5 warp_shuffle           the last 32 partial sums reduced with __shfl_down_sync (no shared memory,
//                            no __syncthreads for the final 5 steps)
//   6 vec4_many              a persistent grid: each thread sums many elements with float4 loads (4 x 16 B
//                            independent loads in flight) in registers, then block and warp shuffles; a
//                            second tiny kernel adds the per-block partials
//   7 single_pass            as vec4_many, but the last block to finish (atomic ticket after a
//                            __threadfence) adds the partials in a fixed order and resets the ticket:
//                            one launch, deterministic result
//   8 block_chunks           no persistent loop: one block per contiguous 16 KiB chunk (512 threads x two
//                            16-byte loads in flight), tens of thousands of blocks handed DRAM in address
//                            order by the block scheduler; no last-block ticket (with 65536 blocks, a
//                            fence and an atomic on one counter per block measured 0.87x CUB on the
//                            H100), a second one-block kernel adds the partials with float4 loads
//   9 cub                    cub::DeviceReduce::Sum (temporary storage allocated in setup): the library
//
// Rungs 6-7 have three knobs (axes): `unroll` (float4 loads in flight per thread), `partition`
// (grid-stride tiles or one contiguous range per block) and `blocks_per_sm`; the defaults are the best
// of a sweep on an H100 against CUB in the same run (docs/ch08.md).
// Rungs 1-5 are the classic multi-pass scheme: each pass writes one partial per block and the same
// kernel is launched again on the partials until one value is left (4 passes at the default size).
// Problem: n = 256 Mi floats (1 GiB), uniform in [-1, 1). Napkin math: bytes = 4 n (read once; the
// partials are noise), flops = n. A GiB read at ~3 TB/s takes ~0.36 ms.
// Reference and tolerance: the float64 sum on the host. Float rounding errors of a sum of zero-mean
// values grow with the partial sums they are committed on (|s_k| ~ sqrt(k / 3)) and have random
// signs; summed over the n - 1 additions their spread stays well under u n (u = 2^-24). We allow
// 2 u n + 1e-6 |sum| absolute: large enough for any summation order, small enough (at the small size
// ~0.1) that a lost or doubled element (|x| up to 1) is likely to be caught.
#include <cuda_runtime.h>

#include <cub/device/device_reduce.cuh>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "aipe/buffer.hpp"
#include "aipe/kernels/ptx.cuh"
#include "aipe/random.hpp"
#include "aipe/registry.hpp"

namespace {

constexpr int kThreads = 256;

// ---- rungs 1-5: one partial per block, relaunched on the partials --------------------------------
enum class Tree { divergent, strided, sequential };

template <Tree kTree>
__global__ void reduce_tree(const float* __restrict__ in, float* __restrict__ out, std::size_t n) {
  __shared__ float sdata[kThreads];
  const unsigned tid = threadIdx.x;
  const std::size_t i = blockIdx.x * std::size_t(blockDim.x) + tid;
  sdata[tid] = i < n ? in[i] : 0.f;
  __syncthreads();
  for (unsigned s = 1; s < blockDim.x; s *= 2) {
    if constexpr (kTree == Tree::divergent) {
      if (tid % (2 * s) == 0) sdata[tid] += sdata[tid + s];
    } else if constexpr (kTree == Tree::strided) {
      const unsigned idx = 2 * s * tid;
      if (idx < blockDim.x) sdata[idx] += sdata[idx + s];
    }
    if constexpr (kTree != Tree::sequential) __syncthreads();
  }
  if constexpr (kTree == Tree::sequential) {
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
      if (tid < s) sdata[tid] += sdata[tid + s];
      __syncthreads();
    }
  }
  if (tid == 0) out[blockIdx.x] = sdata[0];
}

// Rung 4 (kShuffle = false) and 5 (true): two elements per thread on load.
template <bool kShuffle>
__global__ void reduce_two_per_thread(const float* __restrict__ in, float* __restrict__ out, std::size_t n) {
  __shared__ float sdata[kThreads];
  const unsigned tid = threadIdx.x;
  const std::size_t i = blockIdx.x * std::size_t(blockDim.x) * 2 + tid;
  float v = i < n ? in[i] : 0.f;
  if (i + blockDim.x < n) v += in[i + blockDim.x];
  sdata[tid] = v;
  __syncthreads();
  const unsigned stop = kShuffle ? 32 : 0;
  for (unsigned s = blockDim.x / 2; s > stop; s >>= 1) {
    if (tid < s) sdata[tid] += sdata[tid + s];
    __syncthreads();
  }
  if constexpr (kShuffle) {
    if (tid < 32) {
      v = sdata[tid] + sdata[tid + 32];
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    }
    if (tid == 0) out[blockIdx.x] = v;
  } else {
    if (tid == 0) out[blockIdx.x] = sdata[0];
  }
}

// ---- rungs 6-7: persistent grid, many elements per thread ---------------------------------------
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}

// Block sum with shuffles; the result is valid in thread 0.
__device__ __forceinline__ float block_sum(float v) {
  __shared__ float warp_part[32];
  v = warp_sum(v);
  const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) warp_part[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < blockDim.x / 32 ? warp_part[lane] : 0.f;
    v = warp_sum(v);
  }
  return v;
}

using aipe::kernels::ld_stream;

// Per-thread sum of this block's share, kUnroll float4 loads issued before they are added. The
// share is either grid-stride tiles (tile t of the grid belongs to block t % gridDim) or, with
// `contiguous`, one contiguous range of tiles per block (CUB's "even share").
template <int kUnroll>
__device__ __forceinline__ float thread_sum(const float* __restrict__ in, std::size_t n, bool contiguous) {
  const std::size_t n4 = n / 4;
  const float4* in4 = reinterpret_cast<const float4*>(in);
  const std::size_t tile = std::size_t(blockDim.x) * kUnroll;  // float4s per block per step
  std::size_t begin, end, step;
  if (contiguous) {
    const std::size_t tiles = (n4 + tile - 1) / tile, per = (tiles + gridDim.x - 1) / gridDim.x;
    begin = std::min(n4, blockIdx.x * per * tile);
    end = std::min(n4, begin + per * tile);
    step = tile;
  } else {
    begin = blockIdx.x * tile;
    end = n4;
    step = tile * gridDim.x;
  }
  float acc[kUnroll] = {};
  std::size_t base = begin + threadIdx.x;
  for (; base + (kUnroll - 1) * blockDim.x < end; base += step) {
    float4 v[kUnroll];
#pragma unroll
    for (int k = 0; k < kUnroll; ++k) v[k] = ld_stream(in4 + base + k * blockDim.x);
#pragma unroll
    for (int k = 0; k < kUnroll; ++k) acc[k] += (v[k].x + v[k].y) + (v[k].z + v[k].w);
  }
#pragma unroll
  for (int k = 0; k < kUnroll; ++k) {  // this thread's partial tile
    if (base + k * blockDim.x < end) {
      const float4 v = in4[base + k * blockDim.x];
      acc[k] += (v.x + v.y) + (v.z + v.w);
    }
  }
  float s = 0.f;
#pragma unroll
  for (int k = 0; k < kUnroll; ++k) s += acc[k];
  const std::size_t t = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x;  // the last n % 4 floats
  if (4 * n4 + t < n) s += in[4 * n4 + t];
  return s;
}

template <int kUnroll>
__global__ void __launch_bounds__(kThreads) reduce_many(const float* __restrict__ in, float* __restrict__ partial,
                                                        std::size_t n, bool contiguous) {
  const float s = block_sum(thread_sum<kUnroll>(in, n, contiguous));
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

// Adds `count` partials in one block (fixed order: deterministic).
__global__ void __launch_bounds__(kThreads) reduce_partials(const float* __restrict__ partial, float* __restrict__ out,
                                                            unsigned count) {
  float v = 0.f;
  for (unsigned i = threadIdx.x; i < count; i += blockDim.x) v += partial[i];
  v = block_sum(v);
  if (threadIdx.x == 0) *out = v;
}

template <int kUnroll>
__global__ void __launch_bounds__(kThreads) reduce_single_pass(const float* __restrict__ in, float* __restrict__ partial,
                                                               unsigned* __restrict__ ticket, float* __restrict__ out,
                                                               std::size_t n, bool contiguous) {
  __shared__ bool last;
  const float s = block_sum(thread_sum<kUnroll>(in, n, contiguous));
  if (threadIdx.x == 0) {
    partial[blockIdx.x] = s;
    __threadfence();  // publish the partial before taking a ticket
    last = atomicAdd(ticket, 1u) == gridDim.x - 1;
  }
  __syncthreads();
  if (!last) return;
  __threadfence();  // see every other block's partial
  float v = 0.f;
  for (unsigned i = threadIdx.x; i < gridDim.x; i += blockDim.x) v += __ldcg(partial + i);  // L2, not a stale L1
  v = block_sum(v);
  if (threadIdx.x == 0) {
    *out = v;
    *ticket = 0;  // ready for the next launch: each launch is self-contained
  }
}

// ---- rung 8: one contiguous chunk per block, single pass ----------------------------------------
constexpr int kChunkThreads = 512;
constexpr int kChunkUnroll = 2;  // float4 per thread: 512 x 2 x 16 B = 16 KiB per block

using aipe::kernels::ld_ordered;  // volatile: both loads issue before the adds

__global__ void __launch_bounds__(kChunkThreads) reduce_block_chunks(const float* __restrict__ in,
                                                                     float* __restrict__ partial, std::size_t n) {
  const std::size_t n4 = n / 4;
  const float4* in4 = reinterpret_cast<const float4*>(in);
  const std::size_t base = blockIdx.x * std::size_t(kChunkThreads) * kChunkUnroll + threadIdx.x;
  float acc = 0.f;
  if (base + (kChunkUnroll - 1) * kChunkThreads < n4) {
    float4 v[kChunkUnroll];
#pragma unroll
    for (int k = 0; k < kChunkUnroll; ++k) v[k] = ld_ordered(in4 + base + k * kChunkThreads);
#pragma unroll
    for (int k = 0; k < kChunkUnroll; ++k) acc += (v[k].x + v[k].y) + (v[k].z + v[k].w);
  } else {
    for (int k = 0; k < kChunkUnroll; ++k)
      if (base + k * kChunkThreads < n4) {
        const float4 v = in4[base + k * kChunkThreads];
        acc += (v.x + v.y) + (v.z + v.w);
      }
  }
  if (blockIdx.x == 0 && 4 * n4 + threadIdx.x < n) acc += in[4 * n4 + threadIdx.x];  // the last n % 4 floats
  const float s = block_sum(acc);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;  // no atomics, no fence: a second kernel adds these
}

// Adds `count` partials (tens of thousands) in one block of 1024 threads: float4 loads, four
// independent accumulators per thread so the loads overlap; fixed order, deterministic.
__global__ void __launch_bounds__(1024) reduce_partials_wide(const float* __restrict__ partial, float* __restrict__ out,
                                                             unsigned count) {
  const unsigned c4 = count / 4;
  const float4* p4 = reinterpret_cast<const float4*>(partial);
  float a[4] = {0.f, 0.f, 0.f, 0.f};
  unsigned i = threadIdx.x;
  for (; i + 3 * blockDim.x < c4; i += 4 * blockDim.x) {
    float4 v[4];
#pragma unroll
    for (int k = 0; k < 4; ++k) v[k] = p4[i + k * blockDim.x];
#pragma unroll
    for (int k = 0; k < 4; ++k) a[k] += (v[k].x + v[k].y) + (v[k].z + v[k].w);
  }
  for (; i < c4; i += blockDim.x) {
    const float4 v = p4[i];
    a[0] += (v.x + v.y) + (v.z + v.w);
  }
  if (threadIdx.x < count - 4 * c4) a[1] += partial[4 * c4 + threadIdx.x];
  const float v = block_sum((a[0] + a[1]) + (a[2] + a[3]));
  if (threadIdx.x == 0) *out = v;
}

class Reduction final : public aipe::Example {
 public:
  aipe::ExampleInfo info() const override {
    return {"ch08/reduction",
            "Reduction ladder: from a divergent shared-memory tree to one pass at the DRAM ceiling",
            "A sum does one add per 4-byte load, so it is a pure bandwidth problem once the instruction overhead "
            "is gone. The classic tree spends its time on divergent warps, bank conflicts, idle threads, "
            "barriers and relaunches; each rung removes one of them. The fast version keeps many independent "
            "16-byte loads in flight per thread in a persistent grid, reduces in registers and with warp "
            "shuffles, and finishes in the same launch with a last-block ticket. CUB's DeviceReduce is the bar.",
            {{.name = "n",
              .def = 256ll << 20,
              .quick = 64ll << 20,
              .small = 1000003,
              .help = "floats to sum",
              .max = 1ll << 32},
             {.name = "unroll",
              .def = 4,
              .quick = 4,
              .small = 4,
              .help = "rungs 6-7: float4 loads in flight per thread (4 or 8)",
              .min = 4,
              .max = 8},
             {.name = "partition",
              .def = 0,
              .quick = 0,
              .small = 0,
              .help = "rungs 6-7: 0 grid-stride tiles, 1 one contiguous range per block",
              .min = 0,
              .max = 1},
             {.name = "blocks_per_sm",
              .def = 0,
              .quick = 0,
              .small = 0,
              .help = "rungs 6-7: resident blocks per SM (0: as many as fit)",
              .min = 0,
              .max = 32}},
            {}};
  }

  std::vector<aipe::Variant> variants() override {
    return {
        {"interleaved_divergent", "shared-memory tree with tid % (2s) == 0: divergent warps",
         [this](cudaStream_t s) { multipass(s, reduce_tree<Tree::divergent>, 1); }},
        {"interleaved_strided", "index 2*s*tid: no divergence, but 2s-strided bank conflicts",
         [this](cudaStream_t s) { multipass(s, reduce_tree<Tree::strided>, 1); }},
        {"sequential", "sequential addressing: contiguous, conflict-free shared accesses",
         [this](cudaStream_t s) { multipass(s, reduce_tree<Tree::sequential>, 1); }},
        {"first_add_load", "two elements added per thread during the load: half the blocks",
         [this](cudaStream_t s) { multipass(s, reduce_two_per_thread<false>, 2); }},
        {"warp_shuffle", "last 64 -> 1 with __shfl_down_sync: no shared memory or barriers in the tail",
         [this](cudaStream_t s) { multipass(s, reduce_two_per_thread<true>, 2); }},
        {"vec4_many", "persistent grid, several float4 loads in flight per thread, register sums; 2 launches",
         [this](cudaStream_t s) {
           if (unroll_ == 8)
             reduce_many<8><<<grid_, kThreads, 0, s>>>(in_.get(), partial_.get(), n_, contiguous_);
           else
             reduce_many<4><<<grid_, kThreads, 0, s>>>(in_.get(), partial_.get(), n_, contiguous_);
           AIPE_CHECK_LAUNCH();
           reduce_partials<<<1, kThreads, 0, s>>>(partial_.get(), out_.get(), grid_);
           AIPE_CHECK_LAUNCH();
         }},
        {"single_pass", "as vec4_many, the last block (atomic ticket) adds the partials: 1 launch",
         [this](cudaStream_t s) {
           if (unroll_ == 8)
             reduce_single_pass<8><<<grid_, kThreads, 0, s>>>(in_.get(), partial_.get(), ticket_.get(), out_.get(), n_,
                                                              contiguous_);
           else
             reduce_single_pass<4><<<grid_, kThreads, 0, s>>>(in_.get(), partial_.get(), ticket_.get(), out_.get(), n_,
                                                              contiguous_);
           AIPE_CHECK_LAUNCH();
         }},
        {"block_chunks", "one contiguous 16 KiB chunk per block, no persistent loop, no atomics; a second kernel adds the partials",
         [this](cudaStream_t s) {
           reduce_block_chunks<<<chunk_blocks_, kChunkThreads, 0, s>>>(in_.get(), chunk_partial_.get(), n_);
           AIPE_CHECK_LAUNCH();
           reduce_partials_wide<<<1, 1024, 0, s>>>(chunk_partial_.get(), out_.get(), chunk_blocks_);
           AIPE_CHECK_LAUNCH();
         }},
        {"cub", "cub::DeviceReduce::Sum",
         [this](cudaStream_t s) {
           std::size_t bytes = temp_.size();
           AIPE_CUDA(cub::DeviceReduce::Sum(temp_.get(), bytes, in_.get(), out_.get(), static_cast<std::int64_t>(n_), s));
         }},
    };
  }

  void setup(aipe::Context& ctx) override {
    n_ = static_cast<std::size_t>(ctx.size("n"));
    const cudaStream_t s = ctx.stream();
    in_ = aipe::DeviceBuffer<float>(n_);
    out_ = aipe::DeviceBuffer<float>(1);
    const std::uint64_t seed = aipe::sub_seed(ctx.seed(), 1);
    aipe::fill_uniform(in_.get(), n_, seed, -1.f, 1.f, s);
    ctx.output(out_.get(), sizeof(float));
    // Multi-pass scratch: pass 1 writes ceil(n / 256) partials, pass 2 reads them and writes fewer.
    const std::size_t p1 = (n_ + kThreads - 1) / kThreads;
    scratch_a_ = aipe::DeviceBuffer<float>(std::max<std::size_t>(p1, 1));
    scratch_b_ = aipe::DeviceBuffer<float>(std::max<std::size_t>((p1 + kThreads - 1) / kThreads, 1));
    unroll_ = static_cast<int>(ctx.size("unroll"));
    if (unroll_ != 4 && unroll_ != 8) throw aipe::BadInput("unroll must be 4 or 8");
    contiguous_ = ctx.size("partition") == 1;
    int per_sm = 0;
    if (unroll_ == 8)
      AIPE_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, reduce_single_pass<8>, kThreads, 0));
    else
      AIPE_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, reduce_single_pass<4>, kThreads, 0));
    if (ctx.size("blocks_per_sm") > 0) per_sm = std::min<int>(per_sm, static_cast<int>(ctx.size("blocks_per_sm")));
    grid_ = static_cast<unsigned>(std::max(1, per_sm) * ctx.device().sm_count);
    partial_ = aipe::DeviceBuffer<float>(grid_);
    const std::size_t per_chunk = std::size_t(kChunkThreads) * kChunkUnroll;
    const std::size_t chunks = std::max<std::size_t>(1, (n_ / 4 + per_chunk - 1) / per_chunk);
    if (chunks > 0x7fffffffu) throw aipe::BadInput("n is too large for one block per 16 KiB chunk");
    chunk_blocks_ = static_cast<unsigned>(chunks);
    chunk_partial_ = aipe::DeviceBuffer<float>(chunks);
    ticket_ = aipe::DeviceBuffer<unsigned>(1);
    AIPE_CUDA(cudaMemsetAsync(ticket_.get(), 0, sizeof(unsigned), s));
    std::size_t temp_bytes = 0;
    AIPE_CUDA(cub::DeviceReduce::Sum(nullptr, temp_bytes, in_.get(), out_.get(), static_cast<std::int64_t>(n_), s));
    temp_ = aipe::DeviceBuffer<unsigned char>(std::max<std::size_t>(temp_bytes, 1));

    // float64 reference regenerated from (seed, i): its own rounding (~2^-53 per add) is negligible here.
    double sum = 0;
    for (std::size_t i = 0; i < n_; ++i) sum += aipe::uniform_at(seed, i, -1.f, 1.f);
    ref_ = sum;
  }

  aipe::Work work() const override { return {4.0 * n_, 1.0 * n_, aipe::ComputeUnit::fp32}; }

  aipe::VerifyResult verify(aipe::Context& ctx) override {
    float out = 0;
    AIPE_CUDA(cudaMemcpyAsync(&out, out_.get(), sizeof out, cudaMemcpyDeviceToHost, ctx.stream()));
    AIPE_CUDA(cudaStreamSynchronize(ctx.stream()));
    const double abs_tol = 2.0 * std::ldexp(1.0, -24) * double(n_) + 1e-6 * std::fabs(ref_);  // see the header
    aipe::Tolerance tol{abs_tol, 0, 0};
    tol.norm_rel = std::fabs(ref_) > 0 ? abs_tol / std::fabs(ref_) : abs_tol;  // a scalar: the same bound
    return aipe::compare_scalar(out, ref_, tol);
  }

 private:
  // Relaunches `k` on its own partials until one value is left; `per_thread` elements per thread.
  void multipass(cudaStream_t s, void (*k)(const float*, float*, std::size_t), unsigned per_thread) {
    const float* src = in_.get();
    std::size_t count = n_;
    float* bufs[2] = {scratch_a_.get(), scratch_b_.get()};
    int which = 0;
    while (true) {
      const std::size_t per_block = std::size_t(kThreads) * per_thread;
      const std::size_t blocks = (count + per_block - 1) / per_block;
      float* dst = blocks == 1 ? out_.get() : bufs[which];
      k<<<static_cast<unsigned>(blocks), kThreads, 0, s>>>(src, dst, count);
      AIPE_CHECK_LAUNCH();
      if (blocks == 1) break;
      src = dst;
      count = blocks;
      which ^= 1;
    }
  }

  std::size_t n_ = 0;
  unsigned grid_ = 1, chunk_blocks_ = 1;
  int unroll_ = 4;
  bool contiguous_ = false;
  double ref_ = 0;
  aipe::DeviceBuffer<float> in_, out_, scratch_a_, scratch_b_, partial_, chunk_partial_;
  aipe::DeviceBuffer<unsigned> ticket_;
  aipe::DeviceBuffer<unsigned char> temp_;
};

}  // namespace

AIPE_REGISTER_EXAMPLE(Reduction);
