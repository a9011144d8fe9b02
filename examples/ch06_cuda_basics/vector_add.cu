// ch06/vector_add: c = a + b, from one GPU thread to a grid that fills the machine.
//
// Ladder (every rung adds the identical n floats; all verified exactly first):
//   1 one_thread        <<<1, 1>>>: a single thread walks the whole array (what "just port the loop" does)
//   2 one_block         <<<1, 256>>>: one block, one SM of the 132; the other SMs idle
//   3 thread_per_elem   <<<ceil(n / 256), 256>>>: one thread per element, the textbook launch
//   4 grid_stride       a grid sized from the device (SMs x resident blocks per SM, occupancy API), each
//                       thread looping with stride gridDim * blockDim: the same kernel works for any n
//   5 grid_stride_vec4  as grid_stride with 16-byte float4 loads and stores
//
// Problem: c[i] = a[i] + b[i], default n = 2 Mi (24 MiB of traffic; the L2 is flushed before each sample).
// Napkin math: bytes = 3 x 4 x n, flops = n (AI = 1/12 FLOP/B: pure bandwidth). At ~3 TB/s: ~8 us.
// The one-thread rung walks 2 Mi elements serially (~hundreds of ms): it gets a short sampling budget,
// never a smaller problem. Reference: a + b from the generator on the host; float addition is exact to
// the same rounding on both sides, so equality is required.
#include <cuda_runtime.h>

#include <span>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/random.hpp"
#include "aipe/registry.hpp"

namespace {

constexpr int kThreads = 256;

// Rungs 1-2 and 4 share this kernel: only the launch differs.
__global__ void add_grid_stride(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ c,
                                std::size_t n) {
  const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += stride) c[i] = a[i] + b[i];
}

__global__ void add_one_per_thread(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ c,
                                   std::size_t n) {
  const std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x;
  if (i < n) c[i] = a[i] + b[i];
}

__global__ void add_vec4(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ c, std::size_t n) {
  const std::size_t n4 = n / 4, stride = std::size_t(gridDim.x) * blockDim.x;
  const std::size_t t = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x;
  for (std::size_t i = t; i < n4; i += stride) {
    const float4 x = reinterpret_cast<const float4*>(a)[i], y = reinterpret_cast<const float4*>(b)[i];
    reinterpret_cast<float4*>(c)[i] = make_float4(x.x + y.x, x.y + y.y, x.z + y.z, x.w + y.w);
  }
  if (4 * n4 + t < n) c[4 * n4 + t] = a[4 * n4 + t] + b[4 * n4 + t];  // the last n % 4
}

class VectorAdd final : public aipe::Example {
 public:
  aipe::ExampleInfo info() const override {
    return {"ch06/vector_add",
            "Vector add: one thread, one block, one thread per element, grid-stride",
            "A GPU is fast only when tens of thousands of threads are in flight: one thread runs a loop at a "
            "fraction of a CPU core's speed, one block uses one SM of the whole chip. One thread per element "
            "fills the machine; a grid-stride loop over a grid sized from the device does the same with a grid "
            "that does not depend on n, and 16-byte accesses cut the instruction count per byte.",
            {{.name = "n",
              .def = 2ll << 20,
              .quick = 1ll << 20,
              .small = 100003,
              .help = "elements of a, b and c",
              .max = 1ll << 32}},
            {}};
  }

  std::vector<aipe::Variant> variants() override {
    return {
        {.name = "one_thread",
         .summary = "<<<1, 1>>>: a single GPU thread walks the array",
         .launch =
             [this](cudaStream_t s) {
               add_grid_stride<<<1, 1, 0, s>>>(a_.get(), b_.get(), c_.get(), n_);
               AIPE_CHECK_LAUNCH();
             },
         .budget_s = 1.0},
        {.name = "one_block",
         .summary = "<<<1, 256>>>: one block on one SM",
         .launch =
             [this](cudaStream_t s) {
               add_grid_stride<<<1, kThreads, 0, s>>>(a_.get(), b_.get(), c_.get(), n_);
               AIPE_CHECK_LAUNCH();
             },
         .budget_s = 1.0},
        {"thread_per_elem", "<<<ceil(n/256), 256>>>: one thread per element",
         [this](cudaStream_t s) {
           add_one_per_thread<<<static_cast<unsigned>((n_ + kThreads - 1) / kThreads), kThreads, 0, s>>>(a_.get(), b_.get(),
                                                                                                        c_.get(), n_);
           AIPE_CHECK_LAUNCH();
         }},
        {"grid_stride", "grid from the device (SMs x resident blocks), grid-stride loop",
         [this](cudaStream_t s) {
           add_grid_stride<<<grid_, kThreads, 0, s>>>(a_.get(), b_.get(), c_.get(), n_);
           AIPE_CHECK_LAUNCH();
         }},
        {"grid_stride_vec4", "as grid_stride with float4 loads and stores",
         [this](cudaStream_t s) {
           add_vec4<<<grid_, kThreads, 0, s>>>(a_.get(), b_.get(), c_.get(), n_);
           AIPE_CHECK_LAUNCH();
         }},
    };
  }

  void setup(aipe::Context& ctx) override {
    n_ = static_cast<std::size_t>(ctx.size("n"));
    if (n_ / kThreads >= (1ull << 31)) throw aipe::BadInput("n too large for one thread per element");
    const cudaStream_t s = ctx.stream();
    a_ = aipe::DeviceBuffer<float>(n_);
    b_ = aipe::DeviceBuffer<float>(n_);
    c_ = aipe::DeviceBuffer<float>(n_);
    const std::uint64_t sa = aipe::sub_seed(ctx.seed(), 1), sb = aipe::sub_seed(ctx.seed(), 2);
    aipe::fill_uniform(a_.get(), n_, sa, -1.f, 1.f, s);
    aipe::fill_uniform(b_.get(), n_, sb, -1.f, 1.f, s);
    ctx.output(c_.get(), c_.bytes());
    int per_sm = 0;
    AIPE_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, add_grid_stride, kThreads, 0));
    grid_ = static_cast<unsigned>(std::max(1, per_sm) * ctx.device().sm_count);
    ref_.resize(n_);
    for (std::size_t i = 0; i < n_; ++i) ref_[i] = aipe::uniform_at(sa, i, -1.f, 1.f) + aipe::uniform_at(sb, i, -1.f, 1.f);
  }

  aipe::Work work() const override { return {12.0 * n_, 1.0 * n_, aipe::ComputeUnit::fp32}; }

  aipe::VerifyResult verify(aipe::Context& ctx) override {
    std::vector<float> out = aipe::to_host(c_, ctx.stream());
    return aipe::compare(std::span<const float>(out), std::span<const float>(ref_), aipe::tolerance_for(aipe::DType::exact));
  }

 private:
  std::size_t n_ = 0;
  unsigned grid_ = 1;
  aipe::DeviceBuffer<float> a_, b_, c_;
  std::vector<float> ref_;
};

}  // namespace

AIPE_REGISTER_EXAMPLE(VectorAdd);
