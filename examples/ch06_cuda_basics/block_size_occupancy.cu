// ch06/block_size_occupancy: who picks the block size? A guess, the occupancy API, __launch_bounds__.
//
// Ladder (one fused elementwise kernel, y = GELU(x) (tanh form) over n floats; every rung computes
// the identical y and is verified first):
//   1 block_32        32-thread blocks: an SM holds at most 32 blocks, so 1024 of its 2048 thread slots
//   2 block_1024      1024-thread blocks: the register file fits one block per SM when the kernel needs
//                     more than 32 registers, so half the thread slots again, and whole-block granularity
//   3 occupancy_api   cudaOccupancyMaxPotentialBlockSize picks the block size (and the grid that fills
//                     the device) for this kernel's real register and shared-memory use
//   4 launch_bounds   the same kernel compiled with __launch_bounds__(256, 8): the compiler must fit 8
//                     blocks of 256 per SM (<= 32 registers per thread), then the occupancy API sizes it
// Metrics: block size, registers per thread, resident blocks per SM and the theoretical occupancy
// (resident threads / maximum threads per SM) from cudaOccupancyMaxActiveBlocksPerMultiprocessor.
//
// Every rung is a grid-stride loop over float4s, eight independent 16-byte loads per iteration (32 live floats: register pressure).
// Problem: default n = 64 Mi floats (256 MiB in, 256 MiB out). Napkin math: bytes = 8 n, about 20 FLOPs
// per element (not counted: the roofline judges it as memory-bound, ~0.18 ms at 3 TB/s).
// Reference: the same formula in double on the host from the generator; float32 tolerance (tanhf is
// accurate to a few ulp).
#include <cuda_runtime.h>

#include <cmath>
#include <span>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/random.hpp"
#include "aipe/registry.hpp"

namespace {

constexpr int kUnroll = 8;

__device__ __forceinline__ float gelu(float x) {
  const float k0 = 0.7978845608f, k1 = 0.044715f;  // sqrt(2/pi)
  return 0.5f * x * (1.f + tanhf(k0 * fmaf(k1 * x, x * x, x)));
}
__device__ __forceinline__ float4 gelu4(float4 v) { return make_float4(gelu(v.x), gelu(v.y), gelu(v.z), gelu(v.w)); }

__device__ __forceinline__ void gelu_body(const float* __restrict__ x, float* __restrict__ y, std::size_t n) {
  const std::size_t n4 = n / 4;
  const float4* x4 = reinterpret_cast<const float4*>(x);
  float4* y4 = reinterpret_cast<float4*>(y);
  const std::size_t tile = std::size_t(blockDim.x) * kUnroll, gs = tile * gridDim.x;
  std::size_t base = blockIdx.x * tile + threadIdx.x;
  for (; base + (kUnroll - 1) * blockDim.x < n4; base += gs) {
    float4 v[kUnroll];
#pragma unroll
    for (int k = 0; k < kUnroll; ++k) v[k] = x4[base + k * blockDim.x];
#pragma unroll
    for (int k = 0; k < kUnroll; ++k) y4[base + k * blockDim.x] = gelu4(v[k]);
  }
  for (int k = 0; k < kUnroll; ++k)
    if (base + k * blockDim.x < n4) y4[base + k * blockDim.x] = gelu4(x4[base + k * blockDim.x]);
  const std::size_t i = 4 * n4 + blockIdx.x * std::size_t(blockDim.x) + threadIdx.x;  // the last n % 4
  if (i < n) y[i] = gelu(x[i]);
}

__global__ void gelu_kernel(const float* __restrict__ x, float* __restrict__ y, std::size_t n) { gelu_body(x, y, n); }
__global__ void __launch_bounds__(256, 8) gelu_bounded(const float* __restrict__ x, float* __restrict__ y, std::size_t n) {
  gelu_body(x, y, n);
}

using Kernel = void (*)(const float*, float*, std::size_t);

class BlockSizeOccupancy final : public aipe::Example {
 public:
  aipe::ExampleInfo info() const override {
    return {"ch06/block_size_occupancy",
            "Choosing the block size: guesses, the occupancy API and __launch_bounds__",
            "How many threads an SM can keep resident depends on the block size (at most 32 blocks and 2048 "
            "threads per SM), the registers per thread (64 K per SM) and the shared memory per block. A block "
            "size guessed without looking at them can leave half of the SM's thread slots empty. "
            "cudaOccupancyMaxPotentialBlockSize computes the best block size for a compiled kernel; "
            "__launch_bounds__ goes the other way and tells the compiler how many threads it must fit.",
            {{.name = "n",
              .def = 64ll << 20,
              .quick = 16ll << 20,
              .small = 100003,
              .help = "elements",
              .max = 1ll << 32}},
            {}};
  }

  std::vector<aipe::Variant> variants() override {
    return {
        rung("block_32", "32-thread blocks: the 32-blocks-per-SM limit caps residency at 1024 threads", gelu_kernel, 32),
        rung("block_1024", "1024-thread blocks: whole-block granularity against the register file", gelu_kernel, 1024),
        rung("occupancy_api", "block size from cudaOccupancyMaxPotentialBlockSize", gelu_kernel, 0),
        rung("launch_bounds", "__launch_bounds__(256, 8): <= 32 registers, 8 resident blocks; API-sized grid",
             gelu_bounded, 256),
    };
  }

  void setup(aipe::Context& ctx) override {
    n_ = static_cast<std::size_t>(ctx.size("n"));
    dev_ = ctx.device();
    x_ = aipe::DeviceBuffer<float>(n_);
    y_ = aipe::DeviceBuffer<float>(n_);
    const std::uint64_t seed = aipe::sub_seed(ctx.seed(), 1);
    aipe::fill_uniform(x_.get(), n_, seed, -4.f, 4.f, ctx.stream());
    ctx.output(y_.get(), y_.bytes());
    int min_grid = 0;
    AIPE_CUDA(cudaOccupancyMaxPotentialBlockSize(&min_grid, &api_block_, gelu_kernel, 0, 0));
    ref_.resize(n_);
    for (std::size_t i = 0; i < n_; ++i) {
      const double x = aipe::uniform_at(seed, i, -4.f, 4.f);
      ref_[i] = 0.5 * x * (1.0 + std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
    }
  }

  aipe::Work work() const override { return {8.0 * n_, 0, aipe::ComputeUnit::none}; }

  aipe::VerifyResult verify(aipe::Context& ctx) override {
    std::vector<float> out = aipe::to_host(y_, ctx.stream());
    return aipe::compare(std::span<const float>(out), std::span<const double>(ref_), aipe::tolerance_for(aipe::DType::f32));
  }


 private:
  // block 0: the size cudaOccupancyMaxPotentialBlockSize chose in setup.
  aipe::Variant rung(const char* name, const char* summary, Kernel k, int block) {
    return {.name = name,
            .summary = summary,
            .launch = [this, k, block](cudaStream_t s) { launch(k, block ? block : api_block_, s); },
            .metrics = [this, k, block](double, std::map<std::string, double>& out) {
              describe(k, block ? block : api_block_, out);
            }};
  }
  // Block size, registers, spills, resident blocks per SM and the theoretical occupancy.
  void describe(Kernel k, int block, std::map<std::string, double>& out) const {
    cudaFuncAttributes a{};
    AIPE_CUDA(cudaFuncGetAttributes(&a, k));
    int per_sm = 0;
    AIPE_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, k, block, 0));
    out["block_size"] = block;
    out["registers_per_thread"] = a.numRegs;
    out["spill_bytes_per_thread"] = static_cast<double>(a.localSizeBytes);
    out["blocks_per_sm"] = per_sm;
    out["theoretical_occupancy_pct"] = 100.0 * per_sm * block / dev_.max_threads_per_sm;
  }
  // Grid: every resident slot of the device for this kernel and block size (a persistent grid).
  void launch(Kernel k, int block, cudaStream_t s) {
    int per_sm = 0;
    AIPE_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, k, block, 0));
    k<<<std::max(1, per_sm) * dev_.sm_count, block, 0, s>>>(x_.get(), y_.get(), n_);
    AIPE_CHECK_LAUNCH();
  }

  std::size_t n_ = 0;
  int api_block_ = 256;
  aipe::DeviceInfo dev_;
  aipe::DeviceBuffer<float> x_, y_;
  std::vector<double> ref_;
};

}  // namespace

AIPE_REGISTER_EXAMPLE(BlockSizeOccupancy);
