// ch11/stream_ordered_alloc: cudaMalloc/cudaFree in the loop vs cudaMallocAsync from a memory pool.
//
// Problem (an allocation pattern like a framework's per-layer temporaries): for each of `steps` steps l,
// allocate a scratch buffer of n_l floats (n_l varies between n/2 and n, so no two steps ask for the
// same size), fill it with t[i] = w_l * x[i] (kernel 1), accumulate y[i] += t[i] for i < n_l (kernel 2;
// step 0 writes y), and free the scratch. The result y is the same whatever the allocator.
//
// Ladder (identical kernels and sizes; only the allocator changes):
//   1 malloc_free     cudaMalloc + cudaFree per step. cudaMalloc maps fresh memory; cudaFree waits for
//                     the whole device to go idle, so every step ends with a full pipeline drain.
//   2 async_release   cudaMallocFromPoolAsync / cudaFreeAsync, stream-ordered, from a pool whose release
//                     threshold is 0: freed blocks are reused within the run, but the pool hands its
//                     memory back to the OS at every synchronization, so each run maps it again.
//   3 async_pool      the same with the release threshold set to UINT64_MAX: after the first run the
//                     pool keeps its memory and an allocation is a bookkeeping step on the stream.
// All rungs are timed from an idle stream (blocking = false): the allocator's host-side cost is the
// point, and the blocking kernel would hide it (and malloc_free synchronizes anyway).
// Metrics: `us_per_step`.
//
// Reference: the same float products and sums in the same order on the CPU (kernel 1 rounds w*x, kernel 2
// adds in step order; no FMA contraction is possible across the two kernels), so the match is exact up to
// the f32 default tolerance. Napkin math: minimum DRAM traffic is read x once, write y once = 8n bytes;
// the scratch round trips (2 * 4 * n_l per step, mostly in L2 at the default n) are what the allocator
// pattern adds, not part of the minimum.
#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/random.hpp"
#include "aipe/registry.hpp"

namespace {

constexpr int kThreads = 256;

__global__ void scale_kernel(const float* __restrict__ x, float* __restrict__ t, std::size_t n, float w) {
  const std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x;
  if (i < n) t[i] = __fmul_rn(w, x[i]);
}

__global__ void accumulate_kernel(const float* __restrict__ t, float* __restrict__ y, std::size_t n, bool first) {
  const std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x;
  if (i < n) y[i] = first ? t[i] : __fadd_rn(y[i], t[i]);
}

class StreamOrderedAlloc final : public aipe::Example {
 public:
  aipe::ExampleInfo info() const override {
    return {"ch11/stream_ordered_alloc",
            "Stream-ordered allocation: cudaMallocAsync and memory pools vs cudaMalloc/cudaFree",
            "cudaMalloc maps new memory and cudaFree synchronizes the whole device, so a loop that allocates and "
            "frees temporaries stalls the GPU at every step. cudaMallocAsync/cudaFreeAsync order allocation on "
            "the stream like a kernel: a freed block is reused by the next allocation on that stream without any "
            "synchronization. A memory pool with a high release threshold also keeps its memory across "
            "synchronizations, so steady-state allocation costs almost nothing; with the default threshold of 0 "
            "the pool returns memory to the OS at each sync and pays to map it again.",
            {{.name = "n",
              .def = 1 << 20,
              .quick = 1 << 20,
              .small = 30011,
              .help = "floats in x and y (scratch sizes vary between n/2 and n)",
              .min = 2,
              .max = 1ll << 28},
             {.name = "steps",
              .def = 32,
              .quick = 32,
              .small = 5,
              .help = "allocate-compute-free steps per run",
              .max = 4096}},
            {}};
  }

  std::vector<aipe::Variant> variants() override {
    auto per_step = [this](double median_ms, std::map<std::string, double>& out) {
      out["us_per_step"] = 1e3 * median_ms / steps_;
    };
    return {{.name = "malloc_free",
             .summary = "cudaMalloc + cudaFree per step: cudaFree drains the device each time",
             .launch = [this](cudaStream_t s) { malloc_free(s); },
             .blocking = false,
             .budget_s = 1.0,
             .metrics = per_step},
            {.name = "async_release",
             .summary = "cudaMallocAsync from a pool that releases its memory at every sync",
             .launch = [this](cudaStream_t s) { async_pool(s, pool_release_); },
             .blocking = false,
             .metrics = per_step},
            {.name = "async_pool",
             .summary = "cudaMallocAsync from a pool with the release threshold set to UINT64_MAX",
             .launch = [this](cudaStream_t s) { async_pool(s, pool_keep_); },
             .blocking = false,
             .metrics = per_step}};
  }

  void setup(aipe::Context& ctx) override {
    n_ = static_cast<std::size_t>(ctx.size("n"));
    steps_ = static_cast<int>(ctx.size("steps"));
    x_ = aipe::DeviceBuffer<float>(n_);
    y_ = aipe::DeviceBuffer<float>(n_);
    const std::uint64_t sx = aipe::sub_seed(ctx.seed(), 1);
    aipe::fill_uniform(x_.get(), n_, sx, -1.f, 1.f, ctx.stream());
    sizes_.resize(steps_);
    w_.resize(steps_);
    for (int l = 0; l < steps_; ++l) {
      // Step 0 covers all of y; the others shrink towards n/2 in distinct sizes.
      sizes_[l] = l == 0 ? n_ : n_ - (n_ / 2) * static_cast<std::size_t>(l) / static_cast<std::size_t>(steps_);
      w_[l] = aipe::uniform_at(ctx.seed(), 100 + l, 0.5f, 1.5f);
    }
    ref_.assign(n_, 0.f);
    for (std::size_t i = 0; i < n_; ++i) {
      const float x = aipe::uniform_at(sx, i, -1.f, 1.f);
      float y = 0;
      for (int l = 0; l < steps_; ++l)
        if (i < sizes_[l]) {
          const float t = w_[l] * x;  // rounded product, then rounded sum: as the two kernels do
          y = l == 0 ? t : y + t;
        }
      ref_[i] = y;
    }
    // Two explicit pools on this device; the device's default pool is left to others.
    destroy_pools();
    cudaMemPoolProps props{};
    props.allocType = cudaMemAllocationTypePinned;
    props.location.type = cudaMemLocationTypeDevice;
    props.location.id = ctx.device().ordinal;
    AIPE_CUDA(cudaMemPoolCreate(&pool_keep_, &props));
    AIPE_CUDA(cudaMemPoolCreate(&pool_release_, &props));
    std::uint64_t keep = UINT64_MAX, release = 0;
    AIPE_CUDA(cudaMemPoolSetAttribute(pool_keep_, cudaMemPoolAttrReleaseThreshold, &keep));
    AIPE_CUDA(cudaMemPoolSetAttribute(pool_release_, cudaMemPoolAttrReleaseThreshold, &release));
    ctx.output(y_.get(), y_.bytes());
  }

  ~StreamOrderedAlloc() override { destroy_pools(); }

  aipe::Work work() const override { return {2.0 * 4.0 * static_cast<double>(n_), 0.0, aipe::ComputeUnit::none}; }

  aipe::VerifyResult verify(aipe::Context& ctx) override {
    std::vector<float> out = aipe::to_host(y_, ctx.stream());
    return aipe::compare(std::span<const float>(out), std::span<const float>(ref_), aipe::tolerance_for(aipe::DType::f32));
  }

 private:
  static unsigned blocks(std::size_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

  void step(cudaStream_t s, int l, float* t) {
    scale_kernel<<<blocks(sizes_[l]), kThreads, 0, s>>>(x_.get(), t, sizes_[l], w_[l]);
    AIPE_CHECK_LAUNCH();
    accumulate_kernel<<<blocks(sizes_[l]), kThreads, 0, s>>>(t, y_.get(), sizes_[l], l == 0);
    AIPE_CHECK_LAUNCH();
  }

  void malloc_free(cudaStream_t s) {
    for (int l = 0; l < steps_; ++l) {
      float* t = nullptr;
      AIPE_CUDA(cudaMalloc(&t, sizes_[l] * sizeof(float)));
      step(s, l, t);
      AIPE_CUDA(cudaFree(t));  // implicitly synchronizes the device before unmapping
    }
  }

  void async_pool(cudaStream_t s, cudaMemPool_t pool) {
    for (int l = 0; l < steps_; ++l) {
      void* t = nullptr;
      AIPE_CUDA(cudaMallocFromPoolAsync(&t, sizes_[l] * sizeof(float), pool, s));
      step(s, l, static_cast<float*>(t));
      AIPE_CUDA(cudaFreeAsync(t, s));  // the block returns to the pool when the stream reaches this point
    }
  }

  void destroy_pools() {
    // Pools are destroyed only after the work using them has finished (the runner synchronizes).
    if (pool_keep_) cudaMemPoolDestroy(pool_keep_);
    if (pool_release_) cudaMemPoolDestroy(pool_release_);
    pool_keep_ = pool_release_ = nullptr;
  }

  std::size_t n_ = 0;
  int steps_ = 0;
  std::vector<std::size_t> sizes_;
  std::vector<float> w_;
  aipe::DeviceBuffer<float> x_, y_;
  std::vector<float> ref_;
  cudaMemPool_t pool_keep_ = nullptr, pool_release_ = nullptr;
};

}  // namespace

AIPE_REGISTER_EXAMPLE(StreamOrderedAlloc);
