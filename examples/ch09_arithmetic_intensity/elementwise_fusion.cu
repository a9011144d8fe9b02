// ch09/elementwise_fusion: the same elementwise chain as four kernels (intermediates through DRAM) and as
// one kernel (intermediates in registers).
//
// Ladder:
//   1 unfused      4 kernels: t1 = a x + b; t2 = gelu(t1); t3 = c t2; y = t3 + x. Each reads and writes full
//                  FP32 arrays: 5 reads + 4 writes = 36 B per element cross DRAM (the intermediates are
//                  256 MB each at the default size, far beyond the L2)
//   2 fused        one kernel computes y = c gelu(a x + b) + x per element: 8 B per element
//   3 fused_vec4   the same with 16-byte loads and stores (float4), 4 elements per thread
//
// Problem: x is n floats uniform in [-3, 3); a, b, c fixed scalars; gelu is the tanh form
// 0.5 t (1 + tanh(sqrt(2/pi) (t + 0.044715 t^3))).
// Reference: float64 on the CPU from the regenerated inputs; FP32 tolerance scaled by 8 for tanhf's few-ulp
// error inside a chain of five roundings.
// Work (minimum, what the fused kernel moves): bytes = 8 n; flops = 13 n (a x + b: 2; gelu: t^3 2,
// 0.044715 t^3 1, + t 1, x sqrt(2/pi) 1, tanh counted 1, 1 + 1, 0.5 t 1, product 1 = 9; c u + x: 2).
// Intensity ~1.6 FLOP/B: far left of the ridge on every GPU, so the unfused chain runs at ~8/36 of the
// fused speed: a pure bandwidth effect. The metric `dram_bytes_per_elem` states each rung's own model.
#include <cmath>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/random.hpp"
#include "aipe/registry.hpp"

namespace {

constexpr float kA = 1.25f, kB = -0.5f, kC = 0.75f;

__device__ __forceinline__ float gelu_tanh(float t) {
  return 0.5f * t * (1.f + tanhf(0.7978845608f * (t + 0.044715f * t * t * t)));
}

__global__ void k_affine(const float* __restrict__ x, float* __restrict__ t, std::size_t n) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x)
    t[i] = kA * x[i] + kB;
}
__global__ void k_gelu(const float* __restrict__ t, float* __restrict__ u, std::size_t n) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x)
    u[i] = gelu_tanh(t[i]);
}
__global__ void k_scale(const float* __restrict__ u, float* __restrict__ v, std::size_t n) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x)
    v[i] = kC * u[i];
}
__global__ void k_residual(const float* __restrict__ v, const float* __restrict__ x, float* __restrict__ y, std::size_t n) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x)
    y[i] = v[i] + x[i];
}

__device__ __forceinline__ float chain(float xv) {
  const float t = kA * xv + kB;  // the same operations, in the same order, as the unfused kernels
  const float u = gelu_tanh(t);
  const float v = kC * u;
  return v + xv;
}
__global__ void k_fused(const float* __restrict__ x, float* __restrict__ y, std::size_t n) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x)
    y[i] = chain(x[i]);
}
__global__ void k_fused_vec4(const float* __restrict__ x, float* __restrict__ y, std::size_t n) {
  const std::size_t n4 = n / 4;
  const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
  const std::size_t tid = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x;
  for (std::size_t i = tid; i < n4; i += stride) {
    const float4 v = reinterpret_cast<const float4*>(x)[i];
    reinterpret_cast<float4*>(y)[i] = make_float4(chain(v.x), chain(v.y), chain(v.z), chain(v.w));
  }
  for (std::size_t i = 4 * n4 + tid; i < n; i += stride) y[i] = chain(x[i]);  // the ragged tail
}

class ElementwiseFusion final : public aipe::Example {
 public:
  aipe::ExampleInfo info() const override {
    return {"ch09/elementwise_fusion",
            "An elementwise chain as four kernels vs one fused kernel",
            "An elementwise chain does a handful of FLOPs per element: its arithmetic intensity is ~2 FLOP/B when "
            "fused and a quarter of that when each step is its own kernel, because every intermediate makes a "
            "round trip through DRAM. Both sit far left of the ridge point, so time is bytes: fusion moves 8 "
            "bytes per element instead of 36 and runs ~4x faster without changing a single FLOP.",
            {{.name = "n", .def = 64 << 20, .quick = 16 << 20, .small = 1000003, .help = "number of elements"}},
            {}};
  }

  std::vector<aipe::Variant> variants() override {
    return {{.name = "unfused",
             .summary = "four kernels, t1..t3 through DRAM (36 B per element)",
             .launch = [this](cudaStream_t s) { run_unfused(s); },
             .metrics = own_model(36)},
            {.name = "fused",
             .summary = "one kernel, intermediates in registers (8 B per element)",
             .launch =
                 [this](cudaStream_t s) {
                   k_fused<<<grid_, 256, 0, s>>>(x_.get(), y_.get(), n_);
                   AIPE_CHECK_LAUNCH();
                 },
             .metrics = own_model(8)},
            {.name = "fused_vec4",
             .summary = "one kernel, float4 loads and stores",
             .launch =
                 [this](cudaStream_t s) {
                   k_fused_vec4<<<grid_, 256, 0, s>>>(x_.get(), y_.get(), n_);
                   AIPE_CHECK_LAUNCH();
                 },
             .metrics = own_model(8)}};
  }

  void setup(aipe::Context& ctx) override {
    n_ = std::size_t(ctx.size("n"));
    x_ = aipe::DeviceBuffer<float>(n_);
    y_ = aipe::DeviceBuffer<float>(n_);
    t1_ = aipe::DeviceBuffer<float>(n_);
    t2_ = aipe::DeviceBuffer<float>(n_);
    const auto seed = aipe::sub_seed(ctx.seed(), 1);
    aipe::fill_uniform(x_.get(), n_, seed, -3.f, 3.f, ctx.stream());
    ctx.output(y_.get(), y_.bytes());
    grid_ = ctx.device().sm_count * 8;
    ref_.resize(n_);
    for (std::size_t i = 0; i < n_; ++i) {
      const double x = aipe::uniform_at(seed, i, -3.f, 3.f);
      const double t = double(kA) * x + kB;
      const double g = 0.5 * t * (1 + std::tanh(0.7978845608028654 * (t + 0.044715 * t * t * t)));
      ref_[i] = kC * g + x;
    }
  }

  aipe::Work work() const override { return {8.0 * n_, 13.0 * n_, aipe::ComputeUnit::fp32}; }

  aipe::VerifyResult verify(aipe::Context& ctx) override {
    std::vector<float> out = aipe::to_host(y_, ctx.stream());
    auto tol = aipe::tolerance_for(aipe::DType::f32);
    tol.abs *= 8;  // tanhf is a few ulp from tanh, and the chain rounds five times
    tol.rel *= 8;
    tol.norm_rel *= 8;
    return aipe::compare(std::span<const float>(out), std::span<const double>(ref_), tol);
  }


 private:
  // The rung's own traffic model: `per` DRAM bytes per element (36 unfused, 8 fused).
  std::function<void(double, std::map<std::string, double>&)> own_model(double per) {
    return [this, per](double median_ms, std::map<std::string, double>& out) {
      out["dram_bytes_per_elem"] = per;
      out["intensity_flop_per_byte"] = 13.0 / per;
      out["achieved_gbps_own_model"] = per * double(n_) / (median_ms * 1e-3) / 1e9;
    };
  }
  void run_unfused(cudaStream_t s) {
    k_affine<<<grid_, 256, 0, s>>>(x_.get(), t1_.get(), n_);
    AIPE_CHECK_LAUNCH();
    k_gelu<<<grid_, 256, 0, s>>>(t1_.get(), t2_.get(), n_);
    AIPE_CHECK_LAUNCH();
    k_scale<<<grid_, 256, 0, s>>>(t2_.get(), t1_.get(), n_);
    AIPE_CHECK_LAUNCH();
    k_residual<<<grid_, 256, 0, s>>>(t1_.get(), x_.get(), y_.get(), n_);
    AIPE_CHECK_LAUNCH();
  }

  std::size_t n_ = 0;
  int grid_ = 0;
  aipe::DeviceBuffer<float> x_, y_, t1_, t2_;
  std::vector<double> ref_;
};

}  // namespace

AIPE_REGISTER_EXAMPLE(ElementwiseFusion);
