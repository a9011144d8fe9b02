// ch08/register_pressure: one kernel, four register budgets set with __launch_bounds__(256, minBlocks).
//
// Ladder (one source kernel instantiated four times; every rung computes the identical y; verified
// against a float64 host reference first):
//   1 min_blocks_1  __launch_bounds__(256, 1): the compiler may use up to 255 registers per thread, so
//                   it keeps all 2 x 32 values live in registers and occupancy is set by the register file
//   2 min_blocks_4  at least 4 resident blocks of 256: at most 64 registers per thread, occupancy 50%
//   3 min_blocks_6  6 blocks: at most 40 registers per thread (the allocation granule), occupancy 75%
//   4 min_blocks_8  8 blocks: at most 32 registers per thread for 100% occupancy: what does not fit
//                   spills to local memory (the compiler's report shows the spill stores and loads)
// (`__launch_bounds__` is the per-kernel form of -maxrregcount.) Metrics: registers per thread and
// spill (local) bytes from cudaFuncGetAttributes, and the occupancy the register count allows, from
// cudaOccupancyMaxActiveBlocksPerMultiprocessor (theoretical: resident warps / maximum warps per SM).
//
// Problem: G groups of 32 values, stored as 32 planes of G floats (x[k * G + g]); each group is mixed by a
// fixed 32 x 32 matrix C in constant memory: y[j * G + g] = sum_k C[j][k] x[k * G + g]. Each thread
// holds its 32 inputs and 32 partial outputs: register pressure by construction.
// Napkin math (default G = 2 Mi): bytes = 2 x 4 x 32 G = 537 MB, flops = 2 x 32 x 32 G = 4.3 GFLOP:
// 8 FLOP/B, under the H100's ~20 FLOP/B ridge, so the rung that hides memory latency best wins; spills
// add local-memory traffic that competes with it.
// Tolerance: a float dot product of length 32 errs by at most 32 u sum|c x| (Higham's gamma_n bound,
// u = 2^-24) with |c| <= 1/2, |x| < 1: at most 32 u 16 = 3.1e-5 absolute, plus the float32 defaults.
#include <cuda_runtime.h>

#include <cmath>
#include <span>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/random.hpp"
#include "aipe/registry.hpp"

namespace {

constexpr int kThreads = 256;
constexpr int kW = 32;  // group width
__constant__ float c_mix[kW][kW];

float mix_coef(int j, int k) { return aipe::uniform_at(0x4D49584D4154ull, std::uint64_t(j) * kW + k, -0.5f, 0.5f); }

template <int kMinBlocks>
__global__ void __launch_bounds__(kThreads, kMinBlocks) mix(const float* __restrict__ x, float* __restrict__ y,
                                                            std::size_t groups) {
  for (std::size_t g = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; g < groups;
       g += std::size_t(gridDim.x) * blockDim.x) {
    float in[kW], out[kW];
#pragma unroll
    for (int k = 0; k < kW; ++k) in[k] = x[k * groups + g];  // 32 independent, coalesced loads
#pragma unroll
    for (int j = 0; j < kW; ++j) out[j] = 0.f;
#pragma unroll
    for (int k = 0; k < kW; ++k)
#pragma unroll
      for (int j = 0; j < kW; ++j) out[j] = fmaf(c_mix[j][k], in[k], out[j]);
#pragma unroll
    for (int j = 0; j < kW; ++j) y[j * groups + g] = out[j];
  }
}

template <int kMinBlocks>
void describe(std::map<std::string, double>& out, const aipe::DeviceInfo& dev) {
  cudaFuncAttributes a{};
  AIPE_CUDA(cudaFuncGetAttributes(&a, mix<kMinBlocks>));
  int blocks = 0;
  AIPE_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, mix<kMinBlocks>, kThreads, 0));
  out["registers_per_thread"] = a.numRegs;
  out["spill_bytes_per_thread"] = static_cast<double>(a.localSizeBytes);
  out["blocks_per_sm"] = blocks;
  out["theoretical_occupancy_pct"] = 100.0 * blocks * kThreads / dev.max_threads_per_sm;
}

class RegisterPressure final : public aipe::Example {
 public:
  aipe::ExampleInfo info() const override {
    return {"ch08/register_pressure",
            "Register pressure vs occupancy: __launch_bounds__(threads, minBlocks)",
            "Registers are the fastest storage and the scarcest: 64 K per SM, shared by every resident thread. "
            "A kernel that holds many values live gets fewer resident warps, and fewer warps hide less memory "
            "latency. Asking the compiler for more resident blocks (the second __launch_bounds__ argument, the "
            "per-kernel -maxrregcount) raises occupancy until the registers no longer fit and values spill to "
            "local memory, whose traffic eats the gain. The metrics show registers, spills and occupancy per rung.",
            {{.name = "groups",
              .def = 2ll << 20,
              .quick = 1ll << 20,
              .small = 100003,
              .help = "groups of 32 values",
              .max = 1ll << 28}},
            {}};
  }

  std::vector<aipe::Variant> variants() override {
    return {
        rung<1>("min_blocks_1", "__launch_bounds__(256, 1): up to 255 registers, occupancy set by the register count"),
        rung<4>("min_blocks_4", "__launch_bounds__(256, 4): at most 64 registers, 50% occupancy"),
        rung<6>("min_blocks_6", "__launch_bounds__(256, 6): at most 40 registers, 75% occupancy"),
        rung<8>("min_blocks_8", "__launch_bounds__(256, 8): at most 32 registers for 100% occupancy: spills"),
    };
  }

  void setup(aipe::Context& ctx) override {
    groups_ = static_cast<std::size_t>(ctx.size("groups"));
    dev_ = ctx.device();
    const std::size_t n = groups_ * kW;
    x_ = aipe::DeviceBuffer<float>(n);
    y_ = aipe::DeviceBuffer<float>(n);
    const std::uint64_t seed = aipe::sub_seed(ctx.seed(), 1);
    aipe::fill_uniform(x_.get(), n, seed, -1.f, 1.f, ctx.stream());
    ctx.output(y_.get(), y_.bytes());
    float c[kW][kW];
    for (int j = 0; j < kW; ++j)
      for (int k = 0; k < kW; ++k) c[j][k] = mix_coef(j, k);
    AIPE_CUDA(cudaMemcpyToSymbolAsync(c_mix, c, sizeof c, 0, cudaMemcpyHostToDevice, ctx.stream()));
    ref_.resize(n);
    std::vector<double> in(kW);
    for (std::size_t g = 0; g < groups_; ++g) {
      for (int k = 0; k < kW; ++k) in[k] = aipe::uniform_at(seed, k * groups_ + g, -1.f, 1.f);
      for (int j = 0; j < kW; ++j) {
        double acc = 0;
        for (int k = 0; k < kW; ++k) acc += double(c[j][k]) * in[k];
        ref_[j * groups_ + g] = static_cast<float>(acc);
      }
    }
  }

  aipe::Work work() const override {
    return {2.0 * 4.0 * kW * groups_, 2.0 * kW * kW * groups_, aipe::ComputeUnit::fp32};
  }

  aipe::VerifyResult verify(aipe::Context& ctx) override {
    std::vector<float> out = aipe::to_host(y_, ctx.stream());
    aipe::Tolerance tol = aipe::tolerance_for(aipe::DType::f32);
    tol.abs += kW * std::ldexp(1.0, -24) * kW * 0.5;  // the gamma_n bound from the header
    return aipe::compare(std::span<const float>(out), std::span<const float>(ref_), tol);
  }


 private:
  // One rung: the kernel built with __launch_bounds__(256, kMinBlocks), and its registers and occupancy.
  template <int kMinBlocks>
  aipe::Variant rung(const char* name, const char* summary) {
    return {.name = name,
            .summary = summary,
            .launch = [this](cudaStream_t s) { launch(mix<kMinBlocks>, s); },
            .metrics = [this](double, std::map<std::string, double>& out) { describe<kMinBlocks>(out, dev_); }};
  }
  template <class K>
  void launch(K kernel, cudaStream_t s) {
    // Grid: as many blocks as fit on the device at this kernel's occupancy (persistent, grid-stride).
    int per_sm = 0;
    AIPE_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, 0));
    kernel<<<std::max(1, per_sm) * dev_.sm_count, kThreads, 0, s>>>(x_.get(), y_.get(), groups_);
    AIPE_CHECK_LAUNCH();
  }

  std::size_t groups_ = 0;
  aipe::DeviceInfo dev_;
  aipe::DeviceBuffer<float> x_, y_;
  std::vector<float> ref_;
};

}  // namespace

AIPE_REGISTER_EXAMPLE(RegisterPressure);
