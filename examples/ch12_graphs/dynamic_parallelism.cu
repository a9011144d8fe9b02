// ch12/dynamic_parallelism: irregular work launched from the device (CUDA dynamic parallelism) vs from the host.
//
// Problem: `segments` segments of very different lengths (log-uniform: 1 to 2^log2_max elements) laid end
// to end; element j of segment s becomes y[j] = fmaf(x[j], a_s, b_s). The lengths live on the device
// (as if an earlier kernel produced them): each run starts with a plan kernel that turns them into
// offsets (an exclusive scan), and whoever launches the per-segment work has to know those offsets.
//
// Ladder (same plan kernel, same per-element arithmetic, same output):
//   1 host_launches        plan, copy the offsets to pinned host memory, synchronize, then the host launches
//                          one kernel per segment sized to its length: a round trip plus `segments` launches.
//   2 dynamic_parallelism  plan, then a parent kernel with one thread per segment launches that segment's
//                          child grid from the device (CDP2, cudaStreamFireAndForget): no round trip, and the
//                          launches are spread over many SMs instead of one host thread.
//   3 flat                 plan, then one grid-stride kernel over all elements that finds each element's
//                          segment by binary search in the offsets: no per-segment launch at all. The
//                          honest alternative to both: irregularity handled by indexing, not by launching.
// host_launches synchronizes, so all rungs are timed from an idle stream (blocking = false).
// Metric: `us_per_segment`. Built with relocatable device code (-rdc) in its own CMake library, the only
// example file that needs it; device launches need the device runtime library (cudadevrt).
//
// Reference: the same fmaf on the CPU (std::fma): exact match. Lengths come from integer hashes so the
// host regenerates them bit for bit. Napkin math: DRAM minimum 8 T bytes for T elements in total (x read,
// y written) plus the lengths and offsets; flops 2 T.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/random.hpp"
#include "aipe/registry.hpp"

namespace {

constexpr int kThreads = 256;

__host__ __device__ inline float seg_a(int s) { return 0.5f + static_cast<float>(s % 97) * (1.0f / 128.0f); }
__host__ __device__ inline float seg_b(int s) { return static_cast<float>(s % 31) * (1.0f / 64.0f) - 0.25f; }

// Lengths log-uniform in [1, 2^log2_max]: an exponent, then that many random bits (integer ops only).
__host__ __device__ inline int seg_len(std::uint64_t seed, int s, int log2_max) {
  const int k = static_cast<int>(aipe::bits_at(seed, 2 * s) % static_cast<std::uint32_t>(log2_max + 1));
  const std::uint32_t r = aipe::bits_at(seed, 2 * s + 1);
  return 1 + (k == 0 ? 0 : static_cast<int>(r >> (32 - k)));
}

__global__ void make_lengths_kernel(int* len, int segments, std::uint64_t seed, int log2_max) {
  const int s = blockIdx.x * blockDim.x + threadIdx.x;
  if (s < segments) len[s] = seg_len(seed, s, log2_max);
}

// Exclusive scan of the lengths into offsets[0..segments] (one block: segments are few).
__global__ void plan_kernel(const int* __restrict__ len, int* __restrict__ offsets, int segments) {
  __shared__ int carry;
  __shared__ int warp_sums[kThreads / 32];
  if (threadIdx.x == 0) carry = 0;
  __syncthreads();
  for (int base = 0; base < segments; base += blockDim.x) {
    const int s = base + threadIdx.x;
    const int v = s < segments ? len[s] : 0;
    int incl = v;  // inclusive scan within the warp
    for (int d = 1; d < 32; d <<= 1) {
      const int t = __shfl_up_sync(0xffffffffu, incl, d);
      if ((threadIdx.x & 31) >= d) incl += t;
    }
    if ((threadIdx.x & 31) == 31) warp_sums[threadIdx.x / 32] = incl;
    __syncthreads();
    int before = carry;
    for (int w = 0; w < static_cast<int>(threadIdx.x / 32); ++w) before += warp_sums[w];
    if (s < segments) offsets[s] = before + incl - v;
    __syncthreads();
    if (threadIdx.x == blockDim.x - 1) carry = before + incl;
    __syncthreads();
  }
  if (threadIdx.x == 0) offsets[segments] = carry;
}

__global__ void segment_kernel(const float* __restrict__ x, float* __restrict__ y, int begin, int len, int s) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < len) y[begin + i] = fmaf(x[begin + i], seg_a(s), seg_b(s));
}

__global__ void parent_kernel(const float* __restrict__ x, float* __restrict__ y, const int* __restrict__ offsets,
                              int segments) {
  const int s = blockIdx.x * blockDim.x + threadIdx.x;
  if (s >= segments) return;
  const int begin = offsets[s], len = offsets[s + 1] - begin;
  // Fire-and-forget: children run independently of each other; the parent grid completes (for the
  // stream) only when all of them have.
  segment_kernel<<<(len + kThreads - 1) / kThreads, kThreads, 0, cudaStreamFireAndForget>>>(x, y, begin, len, s);
}

__global__ void flat_kernel(const float* __restrict__ x, float* __restrict__ y, const int* __restrict__ offsets,
                            int segments) {
  const int total = offsets[segments];
  for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < total; j += gridDim.x * blockDim.x) {
    int lo = 0, hi = segments - 1;  // the last s with offsets[s] <= j
    while (lo < hi) {
      const int mid = (lo + hi + 1) / 2;
      if (offsets[mid] <= j) lo = mid; else hi = mid - 1;
    }
    y[j] = fmaf(x[j], seg_a(lo), seg_b(lo));
  }
}

class DynamicParallelism final : public aipe::Example {
 public:
  aipe::ExampleInfo info() const override {
    return {"ch12/dynamic_parallelism",
            "Irregular work: dynamic parallelism vs host launches vs one flat kernel",
            "When the amount of work per item is only known on the device, a host that launches one kernel per "
            "item must first copy the sizes back and wait, then pay a launch per item. Dynamic parallelism lets "
            "a kernel launch the child grids itself, sized to each item, with no round trip. It is not free "
            "(device-side launches have their own overhead and need relocatable device code); often the "
            "fastest answer is a single flat kernel that maps elements to items by search, which this ladder "
            "measures too.",
            {{.name = "segments",
              .def = 1024,
              .quick = 1024,
              .small = 37,
              .help = "segments (irregular work items)",
              .max = 1 << 16},
             {.name = "log2_max",
              .def = 15,
              .quick = 15,
              .small = 9,
              .help = "segment lengths are log-uniform in [1, 2^log2_max]",
              .min = 0,
              .max = 24}},
            {}};
  }

  std::vector<aipe::Variant> variants() override {
    auto per_segment = [this](double median_ms, std::map<std::string, double>& out) {
      out["us_per_segment"] = 1e3 * median_ms / segments_;
      out["elements"] = total_;
    };
    return {{.name = "host_launches",
             .summary = "offsets copied to the host, then one host launch per segment",
             .launch = [this](cudaStream_t s) { host_launches(s); },
             .blocking = false,
             .metrics = per_segment},
            {.name = "dynamic_parallelism",
             .summary = "a parent kernel launches one child grid per segment from the device",
             .launch = [this](cudaStream_t s) { device_launches(s); },
             .blocking = false,
             .metrics = per_segment},
            {.name = "flat",
             .summary = "one grid-stride kernel, segment found by binary search over the offsets",
             .launch = [this](cudaStream_t s) { flat(s); },
             .blocking = false,
             .metrics = per_segment}};
  }

  void setup(aipe::Context& ctx) override {
    segments_ = static_cast<int>(ctx.size("segments"));
    log2_max_ = static_cast<int>(ctx.size("log2_max"));
    const std::uint64_t sl = aipe::sub_seed(ctx.seed(), 2), sx = aipe::sub_seed(ctx.seed(), 1);
    std::vector<long long> off(segments_ + 1, 0);
    for (int s = 0; s < segments_; ++s) off[s + 1] = off[s] + seg_len(sl, s, log2_max_);
    if (off[segments_] > (1ll << 30)) throw aipe::BadInput("segments x lengths exceed 2^30 elements; lower log2_max");
    total_ = static_cast<int>(off[segments_]);
    x_ = aipe::DeviceBuffer<float>(total_);
    y_ = aipe::DeviceBuffer<float>(total_);
    len_ = aipe::DeviceBuffer<int>(segments_);
    offsets_ = aipe::DeviceBuffer<int>(segments_ + 1);
    h_offsets_ = aipe::PinnedBuffer<int>(segments_ + 1);
    aipe::fill_uniform(x_.get(), total_, sx, -1.f, 1.f, ctx.stream());
    make_lengths_kernel<<<(segments_ + kThreads - 1) / kThreads, kThreads, 0, ctx.stream()>>>(len_.get(), segments_, sl,
                                                                                            log2_max_);
    AIPE_CHECK_LAUNCH();
    // Every segment's launch may be pending at once.
    std::size_t pending = 0;
    AIPE_CUDA(cudaDeviceGetLimit(&pending, cudaLimitDevRuntimePendingLaunchCount));
    if (pending < static_cast<std::size_t>(segments_) + 64)
      AIPE_CUDA(cudaDeviceSetLimit(cudaLimitDevRuntimePendingLaunchCount, static_cast<std::size_t>(segments_) + 64));
    cudaDeviceProp prop{};
    AIPE_CUDA(cudaGetDeviceProperties(&prop, ctx.device().ordinal));
    flat_grid_ = static_cast<unsigned>(ctx.device().sm_count) * (prop.maxThreadsPerMultiProcessor / kThreads);

    ref_.resize(total_);
    for (int s = 0; s < segments_; ++s)
      for (long long j = off[s]; j < off[s + 1]; ++j) ref_[j] = std::fma(aipe::uniform_at(sx, j, -1.f, 1.f), seg_a(s), seg_b(s));
    ctx.output(y_.get(), y_.bytes());
    ctx.output(offsets_.get(), offsets_.bytes());  // the plan is part of every run
  }

  aipe::Work work() const override {
    return {8.0 * total_ + 4.0 * segments_ * 2, 2.0 * total_, aipe::ComputeUnit::fp32};
  }

  aipe::VerifyResult verify(aipe::Context& ctx) override {
    std::vector<float> out = aipe::to_host(y_, ctx.stream());
    return aipe::compare(std::span<const float>(out), std::span<const float>(ref_), aipe::tolerance_for(aipe::DType::exact));
  }

 private:
  void plan(cudaStream_t s) {
    plan_kernel<<<1, kThreads, 0, s>>>(len_.get(), offsets_.get(), segments_);
    AIPE_CHECK_LAUNCH();
  }

  void host_launches(cudaStream_t s) {
    plan(s);
    AIPE_CUDA(cudaMemcpyAsync(h_offsets_.get(), offsets_.get(), offsets_.bytes(), cudaMemcpyDeviceToHost, s));
    AIPE_CUDA(cudaStreamSynchronize(s));  // the host needs the sizes before it can launch
    for (int k = 0; k < segments_; ++k) {
      const int begin = h_offsets_[k], len = h_offsets_[k + 1] - begin;
      segment_kernel<<<(len + kThreads - 1) / kThreads, kThreads, 0, s>>>(x_.get(), y_.get(), begin, len, k);
      AIPE_CHECK_LAUNCH();
    }
  }

  void device_launches(cudaStream_t s) {
    plan(s);
    parent_kernel<<<(segments_ + 127) / 128, 128, 0, s>>>(x_.get(), y_.get(), offsets_.get(), segments_);
    AIPE_CHECK_LAUNCH();
  }

  void flat(cudaStream_t s) {
    plan(s);
    flat_kernel<<<flat_grid_, kThreads, 0, s>>>(x_.get(), y_.get(), offsets_.get(), segments_);
    AIPE_CHECK_LAUNCH();
  }

  int segments_ = 0, log2_max_ = 0, total_ = 0;
  unsigned flat_grid_ = 1;
  aipe::DeviceBuffer<float> x_, y_;
  aipe::DeviceBuffer<int> len_, offsets_;
  aipe::PinnedBuffer<int> h_offsets_;
  std::vector<float> ref_;
};

}  // namespace

AIPE_REGISTER_EXAMPLE(DynamicParallelism);
