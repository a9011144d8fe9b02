// ch06/managed_memory: host-owned data through the GPU, with unified (managed) memory or explicit copies.
//
// Ladder (every rung computes the identical c = a + b, n floats, with a, b and c owned by the host
// before and after each call: the host reads and writes them between GPU calls; verified exactly):
//   1 managed_fault     cudaMallocManaged arrays, the kernel just touches them: every first touch of a
//                       page faults and the driver migrates it on demand (thousands of small, serialized
//                       migrations); afterwards the pages go back to the host, which owns the data
//   2 managed_prefetch  the same arrays, moved in bulk with cudaMemPrefetchAsync before the kernel and
//                       back after it: no GPU page faults, large DMA transfers
//   3 explicit_copy     pinned host arrays and device arrays: cudaMemcpyAsync a, b host-to-device, the
//                       kernel, c device-to-host. The host copies never move, so only the bytes that must
//                       cross do (a, b in, c out), each at full PCIe speed
//
// Problem: default n = 32 Mi floats (3 x 128 MiB per array set; the example allocates three sets of
// 384 MiB: managed, pinned host, device: far below any data-center GPU's memory).
// Napkin math: the minimum traffic is the 3 x 4 x n bytes that must cross PCIe (a and b in, c out):
// 403 MB at ~55 GB/s per direction is ~7 ms. The managed rungs also move a and b back to the host,
// because migration moves pages rather than copying them. The DRAM ceiling is irrelevant here: the
// bus is PCIe (the GB/s column is bytes over the bus per second).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <utility>
#include <span>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/random.hpp"
#include "aipe/registry.hpp"

namespace {

constexpr int kThreads = 256;

__global__ void add(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ c, std::size_t n) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x)
    c[i] = a[i] + b[i];
}

// cudaMemPrefetchAsync took a device ordinal until CUDA 12.x; CUDA 13 takes a cudaMemLocation.
void prefetch(const void* p, std::size_t bytes, int device, cudaStream_t s) {
#if CUDART_VERSION >= 13000
  cudaMemLocation loc{};
  loc.type = device == cudaCpuDeviceId ? cudaMemLocationTypeHost : cudaMemLocationTypeDevice;
  loc.id = device == cudaCpuDeviceId ? 0 : device;
  AIPE_CUDA(cudaMemPrefetchAsync(p, bytes, loc, 0, s));
#else
  AIPE_CUDA(cudaMemPrefetchAsync(p, bytes, device, s));
#endif
}

struct ManagedArray {
  float* p = nullptr;
  explicit ManagedArray(std::size_t n = 0) {
    if (n) AIPE_CUDA(cudaMallocManaged(&p, n * sizeof(float)));
  }
  ~ManagedArray() {
    if (p) cudaFree(p);
  }
  ManagedArray(ManagedArray&& o) noexcept : p(std::exchange(o.p, nullptr)) {}
  ManagedArray& operator=(ManagedArray&& o) noexcept {
    std::swap(p, o.p);
    return *this;
  }
};

class ManagedMemory final : public aipe::Example {
 public:
  aipe::ExampleInfo info() const override {
    return {"ch06/managed_memory",
            "Unified memory with and without prefetch vs explicit copies",
            "Managed memory gives the host and the GPU one pointer; the driver moves pages to whichever processor "
            "touches them. Left to on-demand page faults, a kernel stalls on thousands of small migrations; "
            "cudaMemPrefetchAsync moves the same pages in bulk before the kernel needs them. Explicit copies from "
            "pinned memory move only what must cross the bus, at full PCIe speed, and leave the host's copy in "
            "place: convenience has a price that prefetching recovers most of.",
            {{.name = "n", .def = 32ll << 20, .quick = 8ll << 20, .small = 100003, .help = "elements of a, b and c",
              .max = 1ll << 30}},
            {}};
  }

  std::vector<aipe::Variant> variants() override {
    auto needs_faults = [this]() -> std::string {
      return concurrent_ ? "" : "this GPU/OS has no concurrent managed access (no GPU page faults)";
    };
    // The managed rungs are not blocking: prefetches may do host-side work while enqueuing, so they
    // are never held behind the blocking kernel.
    return {{.name = "managed_fault",
             .summary = "managed arrays touched by the kernel: on-demand page-fault migration",
             .launch =
                 [this](cudaStream_t s) {
                   add<<<grid_, kThreads, 0, s>>>(ma_.p, mb_.p, mc_.p, n_);
                   AIPE_CHECK_LAUNCH();
                   to_host(s);
                 },
             .blocking = false,
             .skip_if = needs_faults},
            {.name = "managed_prefetch",
             .summary = "cudaMemPrefetchAsync in bulk before and after the kernel: no faults",
             .launch =
                 [this](cudaStream_t s) {
                   prefetch(ma_.p, n_ * sizeof(float), device_, s);
                   prefetch(mb_.p, n_ * sizeof(float), device_, s);
                   prefetch(mc_.p, n_ * sizeof(float), device_, s);
                   add<<<grid_, kThreads, 0, s>>>(ma_.p, mb_.p, mc_.p, n_);
                   AIPE_CHECK_LAUNCH();
                   to_host(s);
                 },
             .blocking = false,
             .skip_if = needs_faults},
            {"explicit_copy", "pinned host arrays: copy a, b in, run, copy c out; host copies never move",
             [this](cudaStream_t s) {
               const std::size_t bytes = n_ * sizeof(float);
               AIPE_CUDA(cudaMemcpyAsync(da_.get(), ha_.get(), bytes, cudaMemcpyHostToDevice, s));
               AIPE_CUDA(cudaMemcpyAsync(db_.get(), hb_.get(), bytes, cudaMemcpyHostToDevice, s));
               add<<<grid_, kThreads, 0, s>>>(da_.get(), db_.get(), dc_.get(), n_);
               AIPE_CHECK_LAUNCH();
               AIPE_CUDA(cudaMemcpyAsync(hc_.get(), dc_.get(), bytes, cudaMemcpyDeviceToHost, s));
             }}};
  }

  void setup(aipe::Context& ctx) override {
    n_ = static_cast<std::size_t>(ctx.size("n"));
    device_ = ctx.device().ordinal;
    concurrent_ = ctx.device().concurrent_managed_access;
    const cudaStream_t s = ctx.stream();
    sa_ = aipe::sub_seed(ctx.seed(), 1);
    sb_ = aipe::sub_seed(ctx.seed(), 2);
    // Device-side inputs are generated on the device and copied to the host-owned arrays.
    da_ = aipe::DeviceBuffer<float>(n_);
    db_ = aipe::DeviceBuffer<float>(n_);
    dc_ = aipe::DeviceBuffer<float>(n_);
    aipe::fill_uniform(da_.get(), n_, sa_, -1.f, 1.f, s);
    aipe::fill_uniform(db_.get(), n_, sb_, -1.f, 1.f, s);
    // Mapped, so that the runner's poison (a device memset) can reach the host output.
    ha_ = aipe::PinnedBuffer<float>(n_, cudaHostAllocMapped);
    hb_ = aipe::PinnedBuffer<float>(n_, cudaHostAllocMapped);
    hc_ = aipe::PinnedBuffer<float>(n_, cudaHostAllocMapped);
    const std::size_t bytes = n_ * sizeof(float);
    AIPE_CUDA(cudaMemcpyAsync(ha_.get(), da_.get(), bytes, cudaMemcpyDeviceToHost, s));
    AIPE_CUDA(cudaMemcpyAsync(hb_.get(), db_.get(), bytes, cudaMemcpyDeviceToHost, s));
    AIPE_CUDA(cudaStreamSynchronize(s));
    if (ctx.device().managed_memory) {
      ma_ = ManagedArray(n_);
      mb_ = ManagedArray(n_);
      mc_ = ManagedArray(n_);
      std::memcpy(ma_.p, ha_.get(), bytes);  // first touch on the host: the pages start host-resident
      std::memcpy(mb_.p, hb_.get(), bytes);
      std::memset(mc_.p, 0, bytes);
      ctx.output(mc_.p, bytes);
    }
    ctx.output(hc_.get(), bytes);
    int per_sm = 0;
    AIPE_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, add, kThreads, 0));
    grid_ = static_cast<unsigned>(std::max(1, per_sm) * ctx.device().sm_count);
    ref_.resize(n_);
    for (std::size_t i = 0; i < n_; ++i) ref_[i] = aipe::uniform_at(sa_, i, -1.f, 1.f) + aipe::uniform_at(sb_, i, -1.f, 1.f);
  }

  aipe::Work work() const override { return {12.0 * n_, 1.0 * n_, aipe::ComputeUnit::none}; }

  aipe::VerifyResult verify(aipe::Context& ctx) override {
    AIPE_CUDA(cudaStreamSynchronize(ctx.stream()));
    const float* c = ctx.variant() == "explicit_copy" ? hc_.get() : mc_.p;  // read in place, on the host
    aipe::VerifyResult r = aipe::compare(std::span<const float>(c, n_), std::span<const float>(ref_),
                                         aipe::tolerance_for(aipe::DType::exact));
    // The inputs must still hold their values on the host (the managed rungs moved them back).
    if (ctx.variant() != "explicit_copy") {
      r.merge(aipe::compare(
          n_, [&](std::size_t i) { return double(ma_.p[i]) + double(mb_.p[i]); },
          [&](std::size_t i) { return double(ref_[i]); }, aipe::Tolerance{1e-6, 0, 1e-6}));
    }
    return r;
  }

 private:
  // The host owns the data between calls: everything the GPU pulled over goes back.
  void to_host(cudaStream_t s) {
    prefetch(ma_.p, n_ * sizeof(float), cudaCpuDeviceId, s);
    prefetch(mb_.p, n_ * sizeof(float), cudaCpuDeviceId, s);
    prefetch(mc_.p, n_ * sizeof(float), cudaCpuDeviceId, s);
  }

  std::size_t n_ = 0;
  int device_ = 0;
  bool concurrent_ = false;
  unsigned grid_ = 1;
  std::uint64_t sa_ = 0, sb_ = 0;
  aipe::DeviceBuffer<float> da_, db_, dc_;
  aipe::PinnedBuffer<float> ha_, hb_, hc_;
  ManagedArray ma_, mb_, mc_;
  std::vector<float> ref_;
};

}  // namespace

AIPE_REGISTER_EXAMPLE(ManagedMemory);
