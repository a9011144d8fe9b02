// ch08/ilp: instruction-level parallelism (independent chains per thread) vs thread-level parallelism.
//
// Ladder (every rung evaluates the identical polynomial at the identical n points; verified against a
// float64 evaluation first):
//   1 ilp1            one Horner chain per thread at a time, with ONE warp per scheduler (4 warps per SM):
//                     each FMA waits for the previous one (~4 cycles), the FMA pipe is mostly idle
//   2 ilp2            two independent chains (two elements) interleaved per thread: twice the issue rate
//   3 ilp4            four chains per thread
//   4 ilp8            eight chains per thread: enough to cover the FMA latency with a single warp
//   5 tlp_full        back to one chain per thread, but as many warps as fit on each SM (occupancy
//                     instead of ILP): the scheduler hides the latency by switching warps
// Rungs 1-4 deliberately launch one 128-thread block per SM (4 warps: one per scheduler) so that only
// ILP can fill the pipeline; rung 5 shows the other cure.
//
// Problem: y[i] = P(x[i]) for a degree-127 polynomial (Horner: 127 dependent FMAs per element),
// x uniform in [-1, 1), coefficients c_k = (-1)^k / (k + 1) in constant memory.
// Napkin math (default n = 16 Mi): flops = 2 x 127 x n = 4.3 GFLOP, bytes = 8 n = 134 MB:
// 32 FLOP/B, compute-bound on the FP32 pipe (judged against the FP32 peak).
// Reference: float64 Horner on the device (a plain loop in double precision).
// Tolerance: Horner's rounding error is bounded by 2 d u sum |c_k| |x|^k (d = 127, u = 2^-24) and
// sum |c_k| < 5.5, so 2 x 127 x 5.5 u = 8.3e-5 absolute, plus the float32 defaults.
#include <cuda_runtime.h>

#include <cmath>
#include <span>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/random.hpp"
#include "aipe/registry.hpp"

namespace {

constexpr int kDegree = 127;
__constant__ float c_poly[kDegree + 1];

// kChains elements per thread per iteration, their Horner steps interleaved (independent FMAs).
template <int kChains>
__global__ void horner(const float* __restrict__ x, float* __restrict__ y, std::size_t n) {
  const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
  std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x;
  for (; i + (kChains - 1) * stride < n; i += kChains * stride) {
    float v[kChains], acc[kChains];
#pragma unroll
    for (int c = 0; c < kChains; ++c) {
      v[c] = x[i + c * stride];
      acc[c] = c_poly[kDegree];
    }
#pragma unroll 8
    for (int k = kDegree - 1; k >= 0; --k)
#pragma unroll
      for (int c = 0; c < kChains; ++c) acc[c] = fmaf(acc[c], v[c], c_poly[k]);
#pragma unroll
    for (int c = 0; c < kChains; ++c) y[i + c * stride] = acc[c];
  }
  for (int c = 0; c < kChains; ++c) {  // the remainder: fewer than kChains elements for this thread
    const std::size_t j = i + c * stride;
    if (j < n) {
      float acc = c_poly[kDegree];
      for (int k = kDegree - 1; k >= 0; --k) acc = fmaf(acc, x[j], c_poly[k]);
      y[j] = acc;
    }
  }
}

__global__ void horner_f64(const float* __restrict__ x, double* __restrict__ y, std::size_t n, const double* c) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x) {
    double acc = c[kDegree];
    for (int k = kDegree - 1; k >= 0; --k) acc = fma(acc, double(x[i]), c[k]);
    y[i] = acc;
  }
}

class Ilp final : public aipe::Example {
 public:
  aipe::ExampleInfo info() const override {
    return {"ch08/ilp",
            "Instruction-level parallelism: independent chains per thread vs more warps",
            "A dependent chain of FMAs issues one instruction per pipeline latency (about 4 cycles): a scheduler "
            "with a single warp keeps its FP32 pipe a quarter busy. Two cures: interleave independent chains "
            "inside each thread (ILP: the compiler issues them back to back), or give the scheduler more warps to "
            "switch between (TLP: occupancy). With one warp per scheduler, 8 chains per thread reach what full "
            "occupancy reaches with one.",
            {{.name = "n",
              .def = 16ll << 20,
              .quick = 4ll << 20,
              .small = 100003,
              .help = "points to evaluate",
              .max = 1ll << 31}},
            {}};
  }

  std::vector<aipe::Variant> variants() override {
    return {
        {"ilp1", "one Horner chain per thread, one warp per scheduler (128-thread block per SM)",
         [this](cudaStream_t s) { low_occupancy(horner<1>, s); }},
        {"ilp2", "two interleaved chains per thread, same launch", [this](cudaStream_t s) { low_occupancy(horner<2>, s); }},
        {"ilp4", "four interleaved chains per thread", [this](cudaStream_t s) { low_occupancy(horner<4>, s); }},
        {"ilp8", "eight interleaved chains per thread: the FMA latency covered by one warp",
         [this](cudaStream_t s) { low_occupancy(horner<8>, s); }},
        {"tlp_full", "one chain per thread, every SM filled with warps (occupancy instead of ILP)",
         [this](cudaStream_t s) {
           horner<1><<<full_grid_, 256, 0, s>>>(x_.get(), y_.get(), n_);
           AIPE_CHECK_LAUNCH();
         }},
    };
  }

  void setup(aipe::Context& ctx) override {
    n_ = static_cast<std::size_t>(ctx.size("n"));
    sm_count_ = ctx.device().sm_count;
    const cudaStream_t s = ctx.stream();
    x_ = aipe::DeviceBuffer<float>(n_);
    y_ = aipe::DeviceBuffer<float>(n_);
    aipe::fill_uniform(x_.get(), n_, aipe::sub_seed(ctx.seed(), 1), -1.f, 1.f, s);
    ctx.output(y_.get(), y_.bytes());
    float c[kDegree + 1];
    std::vector<double> cd(kDegree + 1);
    for (int k = 0; k <= kDegree; ++k) {
      c[k] = (k % 2 ? -1.f : 1.f) / float(k + 1);
      cd[k] = c[k];  // the float coefficients, exactly: the reference evaluates the same polynomial
    }
    AIPE_CUDA(cudaMemcpyToSymbolAsync(c_poly, c, sizeof c, 0, cudaMemcpyHostToDevice, s));
    int per_sm = 0;
    AIPE_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, horner<1>, 256, 0));
    full_grid_ = static_cast<unsigned>(std::max(1, per_sm) * sm_count_);
    // float64 reference on the device.
    aipe::DeviceBuffer<double> coef(kDegree + 1), ref(n_);
    AIPE_CUDA(cudaMemcpyAsync(coef.get(), cd.data(), cd.size() * sizeof(double), cudaMemcpyHostToDevice, s));
    horner_f64<<<full_grid_, 256, 0, s>>>(x_.get(), ref.get(), n_, coef.get());
    AIPE_CHECK_LAUNCH();
    ref_.resize(n_);
    AIPE_CUDA(cudaMemcpyAsync(ref_.data(), ref.get(), n_ * sizeof(double), cudaMemcpyDeviceToHost, s));
    AIPE_CUDA(cudaStreamSynchronize(s));
  }

  aipe::Work work() const override { return {8.0 * n_, 2.0 * kDegree * n_, aipe::ComputeUnit::fp32}; }

  aipe::VerifyResult verify(aipe::Context& ctx) override {
    std::vector<float> out = aipe::to_host(y_, ctx.stream());
    aipe::Tolerance tol = aipe::tolerance_for(aipe::DType::f32);
    tol.abs += 2.0 * kDegree * 5.5 * std::ldexp(1.0, -24);  // Horner's bound, see the header
    return aipe::compare(std::span<const float>(out), std::span<const double>(ref_), tol);
  }

 private:
  template <class K>
  void low_occupancy(K kernel, cudaStream_t s) {
    kernel<<<sm_count_, 128, 0, s>>>(x_.get(), y_.get(), n_);
    AIPE_CHECK_LAUNCH();
  }

  std::size_t n_ = 0;
  int sm_count_ = 1;
  unsigned full_grid_ = 1;
  aipe::DeviceBuffer<float> x_, y_;
  std::vector<double> ref_;
};

}  // namespace

AIPE_REGISTER_EXAMPLE(Ilp);
