// ch02/host_device_transfer: moving n floats from host memory to the GPU, three ways.
//
// Ladder (every rung moves the same n x 4 bytes host -> device; verified bit-exact first):
//   1 pageable  cudaMemcpyAsync from malloc'd memory: the driver copies it into its own pinned staging
//               buffer chunk by chunk, then DMAs it; the call returns only when done (no overlap)
//   2 pinned    cudaMemcpyAsync from page-locked memory (cudaHostAlloc): the copy engine DMAs straight
//               from the user's pages, asynchronously
//   3 mapped    zero-copy: the same page-locked memory mapped into the device's address space; a kernel
//               reads it over PCIe with 16-byte loads (several in flight per thread) and writes DRAM.
//               No copy engine; SMs issue the PCIe reads themselves
//
// Napkin math: bytes = 4n, ONE direction (host -> device) counted once; the DRAM write on the device
// side is not counted, since the link is the bottleneck. PCIe Gen5 x16: 32 GT/s x 16 x 128/130 / 8 =
// 63 GB/s per direction; pinned DMA typically reaches 80-90% of it, pageable far less (an extra
// host memcpy, and no overlap of staging with DMA beyond the driver's own pipelining).
// Reference: the host data itself (uniform floats from the seeded generator); tolerance: exact.
// metrics: pct_of_pcie = GB/s over the PCIe per-direction rate NVML reports (when NVML is present).
#include <cuda_runtime.h>

#include <cstring>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/random.hpp"
#include "aipe/registry.hpp"
#include "aipe/sysinfo.hpp"

namespace {

// Zero-copy read: 4 float4 loads per thread in flight over the link, then 4 stores to DRAM.
__global__ void __launch_bounds__(256) read_mapped(const float* __restrict__ host, float* __restrict__ dst, std::size_t n) {
  constexpr int U = 4;
  const std::size_t n4 = n / 4;
  const float4* src4 = reinterpret_cast<const float4*>(host);
  float4* dst4 = reinterpret_cast<float4*>(dst);
  const std::size_t chunk = std::size_t(U) * blockDim.x;
  const std::size_t full = n4 / chunk;
  for (std::size_t c = blockIdx.x; c < full; c += gridDim.x) {
    const std::size_t base = c * chunk + threadIdx.x;
    float4 v[U];
#pragma unroll
    for (int k = 0; k < U; ++k) v[k] = src4[base + k * blockDim.x];
#pragma unroll
    for (int k = 0; k < U; ++k) dst4[base + k * blockDim.x] = v[k];
  }
  const std::size_t t = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x, stride = std::size_t(gridDim.x) * blockDim.x;
  for (std::size_t i = full * chunk + t; i < n4; i += stride) dst4[i] = src4[i];
  for (std::size_t i = 4 * n4 + t; i < n; i += stride) dst[i] = host[i];  // tail: n not a multiple of 4
}

class HostDeviceTransfer final : public aipe::Example {
 public:
  aipe::ExampleInfo info() const override {
    return {"ch02/host_device_transfer",
            "Host to device: pageable vs pinned vs mapped (zero-copy)",
            "Pageable memory cannot be DMA'd directly: the driver stages it through a pinned buffer, which costs a "
            "host memcpy and serializes the transfer. Pinned (page-locked) memory lets the copy engine DMA at close to "
            "the PCIe rate, asynchronously. Mapped pinned memory lets kernels read host memory directly over the link "
            "(zero-copy): as fast as DMA for a streaming read when enough 16-byte loads are in flight, and useful when "
            "data is read once, but every access crosses PCIe.",
            {{.name = "n",
              .def = 64ll << 20,
              .quick = 16ll << 20,
              .small = 1000003,
              .help = "floats moved host -> device (4 bytes each)"}},
            {}};
  }

  std::vector<aipe::Variant> variants() override {
    auto vs_pcie = [this](double median_ms, std::map<std::string, double>& out) {
      const double gbps = bytes() / (median_ms * 1e-3) / 1e9;
      out["gbps_host_to_device"] = gbps;
      if (pcie_gbps_ > 0) out["pct_of_pcie"] = 100.0 * gbps / pcie_gbps_;
    };
    return {
        {.name = "pageable",
         .summary = "cudaMemcpyAsync from malloc'd memory: staged by the driver, synchronous",
         .launch =
             [this](cudaStream_t s) {
               AIPE_CUDA(cudaMemcpyAsync(dst_.get(), pageable_.data(), bytes(), cudaMemcpyHostToDevice, s));
             },
         .blocking = false,  // a pageable copy returns only when done: a blocked stream would deadlock it
         .metrics = vs_pcie},
        {.name = "pinned",
         .summary = "cudaMemcpyAsync from page-locked memory: the copy engine DMAs directly, asynchronously",
         .launch =
             [this](cudaStream_t s) {
               AIPE_CUDA(cudaMemcpyAsync(dst_.get(), pinned_.get(), bytes(), cudaMemcpyHostToDevice, s));
             },
         .metrics = vs_pcie},
        {.name = "mapped",
         .summary = "zero-copy: a kernel reads the mapped pinned pages over PCIe with 16-byte loads",
         .launch =
             [this](cudaStream_t s) {
               read_mapped<<<grid_, 256, 0, s>>>(mapped_dev_, dst_.get(), n_);
               AIPE_CHECK_LAUNCH();
             },
         .metrics = vs_pcie},
    };
  }

  void setup(aipe::Context& ctx) override {
    n_ = static_cast<std::size_t>(ctx.size("n"));
    const std::uint64_t seed = aipe::sub_seed(ctx.seed(), 1);
    pageable_.resize(n_);
    for (std::size_t i = 0; i < n_; ++i) pageable_[i] = aipe::uniform_at(seed, i, -1.f, 1.f);
    pinned_ = aipe::PinnedBuffer<float>(n_, cudaHostAllocMapped);
    std::memcpy(pinned_.get(), pageable_.data(), bytes());
    AIPE_CUDA(cudaHostGetDevicePointer(reinterpret_cast<void**>(&mapped_dev_), pinned_.get(), 0));
    dst_ = aipe::DeviceBuffer<float>(n_);
    ctx.output(dst_.get(), dst_.bytes());
    // Enough blocks to keep many PCIe reads in flight on every SM.
    grid_ = static_cast<unsigned>(ctx.device().sm_count * (ctx.device().max_threads_per_sm / 256));
    const aipe::GpuSystemInfo sys = aipe::query_gpu_system(ctx.device());
    pcie_gbps_ = sys.pcie_gbps_per_direction ? *sys.pcie_gbps_per_direction : 0;
  }

  aipe::Work work() const override { return {4.0 * n_, 0, aipe::ComputeUnit::none}; }

  aipe::VerifyResult verify(aipe::Context& ctx) override {
    std::vector<float> out(n_);
    AIPE_CUDA(cudaMemcpyAsync(out.data(), dst_.get(), bytes(), cudaMemcpyDeviceToHost, ctx.stream()));
    AIPE_CUDA(cudaStreamSynchronize(ctx.stream()));
    return aipe::compare(std::span<const float>(out), std::span<const float>(pageable_),
                         aipe::tolerance_for(aipe::DType::exact));
  }

 private:
  std::size_t bytes() const { return n_ * sizeof(float); }
  std::size_t n_ = 0;
  std::vector<float> pageable_;
  aipe::PinnedBuffer<float> pinned_;
  float* mapped_dev_ = nullptr;
  aipe::DeviceBuffer<float> dst_;
  unsigned grid_ = 1;
  double pcie_gbps_ = 0;
};

}  // namespace

AIPE_REGISTER_EXAMPLE(HostDeviceTransfer);
