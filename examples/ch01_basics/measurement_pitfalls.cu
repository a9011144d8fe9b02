// ch01/measurement_pitfalls: the same memory-bound kernel, timed four ways through the same harness.
//
// Ladder (one kernel, four timing methods; every variant verified first):
//   1 host_clock_no_sync  std::chrono around the launch call, no synchronize: times the enqueue only
//   2 first_launch        the very first launch, host clock + synchronize: lazy module load, cold TLBs
//   3 hot_l2              warmed up, CUDA events, but the L2 still holds the inputs from the last run
//   4 standard            warmed up, L2 flushed, blocking kernel, CUDA events, median of many samples
//
// Problem: z = a*x + y over n floats (float4 loads). Default n = 2 Mi: 24 MiB of traffic, which fits
// in Hopper's 50 MB L2, so a hot cache inflates the bandwidth that the cold, honest timing reports.
// Napkin math: bytes = 3 * 4 * n (read x, read y, write z); flops = 2n (negligible: AI = 1/6 FLOP/B).
// Each variant uses its own instantiation of the kernel so that "first launch" is truly the first.
// Reference: the same formula in float on the CPU (the kernel uses fmaf: exact match expected
// within one rounding).
#include <cuda_runtime.h>

#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/random.hpp"
#include "aipe/registry.hpp"

namespace {

template <int Tag>  // Tag only makes a distinct kernel per variant
__global__ void axpy_kernel(const float* __restrict__ x, const float* __restrict__ y, float* __restrict__ z, float a,
                            std::size_t n) {
  const std::size_t n4 = n / 4;
  const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
  const std::size_t t = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x;
  for (std::size_t i = t; i < n4; i += stride) {
    const float4 xv = reinterpret_cast<const float4*>(x)[i];
    const float4 yv = reinterpret_cast<const float4*>(y)[i];
    reinterpret_cast<float4*>(z)[i] = make_float4(fmaf(a, xv.x, yv.x), fmaf(a, xv.y, yv.y), fmaf(a, xv.z, yv.z),
                                                  fmaf(a, xv.w, yv.w));
  }
  for (std::size_t i = 4 * n4 + t; i < n; i += stride) z[i] = fmaf(a, x[i], y[i]);  // tail
}

class MeasurementPitfalls final : public aipe::Example {
 public:
  aipe::ExampleInfo info() const override {
    return {"ch01/measurement_pitfalls",
            "One kernel, timed wrongly three ways and properly once",
            "A host clock around an asynchronous launch measures the enqueue, not the kernel; the first launch "
            "pays for lazy module loading; a warm L2 makes a DRAM-bound kernel look faster than DRAM. Only the "
            "standard method (warm-up, L2 flush, blocking kernel, CUDA events, median) reports what the kernel "
            "costs inside a real pipeline.",
            {{.name = "n", .def = 2 << 20, .quick = 2 << 20, .small = 1000003, .help = "elements of x, y and z"}},
            {}};
  }

  std::vector<aipe::Variant> variants() override {
    return {
        {"host_clock_no_sync", "std::chrono around the launch, no synchronize: times the enqueue only",
         [this](cudaStream_t s) { launch<1>(s); }, aipe::Timing::host_clock_no_sync},
        {"first_launch", "host clock with synchronize, first launch only: lazy loading and cold caches",
         [this](cudaStream_t s) { launch<2>(s); }, aipe::Timing::first_launch},
        {"hot_l2", "CUDA events after warm-up, but the inputs stay in L2 between samples",
         [this](cudaStream_t s) { launch<3>(s); }, aipe::Timing::hot_l2},
        {"standard", "warm-up, L2 flush, blocking kernel, CUDA events, median",
         [this](cudaStream_t s) { launch<4>(s); }, aipe::Timing::standard},
    };
  }

  void setup(aipe::Context& ctx) override {
    n_ = static_cast<std::size_t>(ctx.size("n"));
    x_ = aipe::DeviceBuffer<float>(n_);
    y_ = aipe::DeviceBuffer<float>(n_);
    z_ = aipe::DeviceBuffer<float>(n_);
    a_ = aipe::uniform_at(ctx.seed(), 0, 0.5f, 2.0f);
    aipe::fill_uniform(x_.get(), n_, aipe::sub_seed(ctx.seed(), 1), -1.f, 1.f, ctx.stream());
    aipe::fill_uniform(y_.get(), n_, aipe::sub_seed(ctx.seed(), 2), -1.f, 1.f, ctx.stream());
    ref_.resize(n_);
    for (std::size_t i = 0; i < n_; ++i)
      ref_[i] = std::fma(a_, aipe::uniform_at(aipe::sub_seed(ctx.seed(), 1), i, -1.f, 1.f),
                         aipe::uniform_at(aipe::sub_seed(ctx.seed(), 2), i, -1.f, 1.f));
    ctx.output(z_.get(), z_.bytes());
    grid_ = 4 * ctx.device().sm_count;  // enough resident blocks to cover DRAM latency
  }

  aipe::Work work() const override { return {3.0 * 4.0 * n_, 2.0 * n_, aipe::ComputeUnit::fp32}; }

  aipe::VerifyResult verify(aipe::Context& ctx) override {
    std::vector<float> out = aipe::to_host(z_, ctx.stream());
    return aipe::compare(std::span<const float>(out), std::span<const float>(ref_), aipe::tolerance_for(aipe::DType::f32));
  }

 private:
  template <int Tag>
  void launch(cudaStream_t s) {
    axpy_kernel<Tag><<<grid_, 256, 0, s>>>(x_.get(), y_.get(), z_.get(), a_, n_);
    AIPE_CHECK_LAUNCH();
  }

  std::size_t n_ = 0;
  float a_ = 1;
  unsigned grid_ = 1;
  aipe::DeviceBuffer<float> x_, y_, z_;
  std::vector<float> ref_;
};

}  // namespace

AIPE_REGISTER_EXAMPLE(MeasurementPitfalls);
