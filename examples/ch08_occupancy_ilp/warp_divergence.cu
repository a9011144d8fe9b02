// ch08/warp_divergence: a data-dependent branch, taken at random by the threads of each warp.
//
// Ladder (every rung computes the identical y; verified against a float64 evaluation first):
//   1 branchy     if (x > t) y = f(x); else y = g(x); with random x both paths run in almost every warp,
//                 one after the other with half the lanes masked off: cost f + g per warp
//   2 predicated  both f(x) and g(x) computed by every thread, then a select: no branch at all, but the
//                 same f + g work: predication removes divergence, not the cost of both paths (it wins
//                 only when the bodies are short, which is why the compiler predicates short branches)
//   3 compacted   each block first partitions its elements by the predicate (warp-shuffle prefix sums over
//                 the block, in shared memory), then its warps walk the partitioned list: all but at most
//                 one warp per block see a single path, so the cost falls towards max(f, g) per element
//
// Problem: y[i] = x[i] > t ? f(x[i]) : g(x[i]); f is a degree-47 polynomial in x, g one in x^2 (both
// Horner, 47 FMAs), t set so that `pct_f` percent of the uniform x in [-1, 1) take f (default 50: worst case).
// Napkin math (default n = 16 Mi): useful flops = 2 x 47 x n = 1.6 GFLOP (one path per element; the
// branchy and predicated rungs execute twice that); bytes = 8 n = 134 MB.
// Reference: float64 evaluation on the host of whichever polynomial the element takes. Tolerance:
// Horner's bound 2 d u sum|c_k| with sum|c_k| < 5 and d = 47 (u = 2^-24), plus the float32 defaults.
// Edges: n need not be a multiple of the block (the small size is 100003).
#include <cuda_runtime.h>

#include <cmath>
#include <span>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/random.hpp"
#include "aipe/registry.hpp"

namespace {

constexpr int kDegree = 47;
constexpr int kThreads = 256;
constexpr int kPerThread = 4;  // compacted rung: elements staged per thread
__constant__ float c_f[kDegree + 1], c_g[kDegree + 1];

// f: Horner in x. g: Horner in x^2 (an even polynomial), so the two paths are different code that the
// compiler cannot merge into one loop with a selected coefficient table.
__device__ __forceinline__ float f_path(float x) {
  float acc = c_f[kDegree];
#pragma unroll 8
  for (int k = kDegree - 1; k >= 0; --k) acc = fmaf(acc, x, c_f[k]);
  return acc;
}
__device__ __forceinline__ float g_path(float x) {
  const float x2 = x * x;
  float acc = c_g[kDegree];
#pragma unroll 8
  for (int k = kDegree - 1; k >= 0; --k) acc = fmaf(acc, x2, c_g[k]);
  return acc;
}

__global__ void branchy(const float* __restrict__ x, float* __restrict__ y, std::size_t n, float t) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x) {
    const float v = x[i];
    float r;
    if (v > t)
      r = f_path(v);
    else
      r = g_path(v);
    y[i] = r;
  }
}

__global__ void predicated(const float* __restrict__ x, float* __restrict__ y, std::size_t n, float t) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x) {
    const float v = x[i];
    const float a = f_path(v), b = g_path(v);
    y[i] = v > t ? a : b;  // a select (SEL), no branch
  }
}

// Each block owns tiles of kThreads * kPerThread elements. Partition the tile's indices into
// [f-elements | g-elements] in shared memory, then every thread evaluates slots tid, tid + 256, ...:
// a warp's 32 consecutive slots all lie on one side except around the single boundary.
__global__ void __launch_bounds__(kThreads) compacted(const float* __restrict__ x, float* __restrict__ y, std::size_t n,
                                                      float t) {
  constexpr int kTile = kThreads * kPerThread;
  __shared__ float sval[kTile];
  __shared__ int sidx[kTile];
  __shared__ int warp_f[kThreads / 32], warp_g[kThreads / 32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (std::size_t base = blockIdx.x * std::size_t(kTile); base < n; base += std::size_t(gridDim.x) * kTile) {
    // 1. Count f/g per warp over the tile (elements base + k * 256 + tid, coalesced).
    float v[kPerThread];
    bool valid[kPerThread], take_f[kPerThread];
    int my_f = 0, my_g = 0;
#pragma unroll
    for (int k = 0; k < kPerThread; ++k) {
      const std::size_t i = base + k * kThreads + threadIdx.x;
      valid[k] = i < n;
      v[k] = valid[k] ? x[i] : 0.f;
      take_f[k] = valid[k] && v[k] > t;
      my_f += take_f[k];
      my_g += valid[k] && !take_f[k];
    }
    // Exclusive prefix of (f, g) counts within the warp, then over the warps.
    int pf = my_f, pg = my_g;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const int a = __shfl_up_sync(0xffffffffu, pf, o), b = __shfl_up_sync(0xffffffffu, pg, o);
      if (lane >= o) {
        pf += a;
        pg += b;
      }
    }
    if (lane == 31) {
      warp_f[warp] = pf;
      warp_g[warp] = pg;
    }
    __syncthreads();
    int off_f = 0, off_g = 0, total_f = 0, total_valid = 0;
    for (int w = 0; w < kThreads / 32; ++w) {
      if (w < warp) {
        off_f += warp_f[w];
        off_g += warp_g[w];
      }
      total_f += warp_f[w];
      total_valid += warp_f[w] + warp_g[w];
    }
    off_f += pf - my_f;
    off_g += pg - my_g;
    // 2. Scatter (value, index) into [f... | g...].
#pragma unroll
    for (int k = 0; k < kPerThread; ++k) {
      if (!valid[k]) continue;
      const int slot = take_f[k] ? off_f++ : total_f + off_g++;
      sval[slot] = v[k];
      sidx[slot] = k * kThreads + threadIdx.x;
    }
    __syncthreads();
    // 3. Evaluate: consecutive slots, so each warp takes one path (except at the f/g boundary).
    for (int s = threadIdx.x; s < total_valid; s += kThreads) {
      const float xv = sval[s];
      y[base + sidx[s]] = s < total_f ? f_path(xv) : g_path(xv);
    }
    __syncthreads();  // the tile's shared arrays are reused by the next tile
  }
}

void coefficients(float* f, float* g) {
  for (int k = 0; k <= kDegree; ++k) {
    f[k] = (k % 2 ? -1.f : 1.f) / float(k + 1);
    g[k] = 1.f / float((k + 1) * (k + 1));
  }
}

class WarpDivergence final : public aipe::Example {
 public:
  aipe::ExampleInfo info() const override {
    return {"ch08/warp_divergence",
            "Warp divergence: branchy, predicated, and compacted so each warp takes one path",
            "The 32 threads of a warp share one instruction stream: when a data-dependent branch splits them, the "
            "warp runs both sides one after the other with the inactive lanes masked. Predication removes the "
            "branch but still pays for both sides. What removes the cost is reorganizing the data so that the "
            "threads of a warp agree: here each block partitions its elements by the predicate in shared memory "
            "before computing, so nearly every warp runs a single path.",
            {{.name = "n",
              .def = 16ll << 20,
              .quick = 4ll << 20,
              .small = 100003,
              .help = "elements",
              .max = INT32_MAX},
             {.name = "pct_f",
              .def = 50,
              .quick = 50,
              .small = 50,
              .help = "percent of elements that take the f path",
              .min = 0,
              .max = 100}},
            {}};
  }

  std::vector<aipe::Variant> variants() override {
    return {
        {"branchy", "if/else on the data: divergent warps run both paths",
         [this](cudaStream_t s) {
           branchy<<<grid_, kThreads, 0, s>>>(x_.get(), y_.get(), n_, t_);
           AIPE_CHECK_LAUNCH();
         }},
        {"predicated", "both paths for every thread, then a select: no branch, same work",
         [this](cudaStream_t s) {
           predicated<<<grid_, kThreads, 0, s>>>(x_.get(), y_.get(), n_, t_);
           AIPE_CHECK_LAUNCH();
         }},
        {"compacted", "elements partitioned by the predicate per block first: one path per warp",
         [this](cudaStream_t s) {
           compacted<<<grid_compacted_, kThreads, 0, s>>>(x_.get(), y_.get(), n_, t_);
           AIPE_CHECK_LAUNCH();
         }},
    };
  }

  void setup(aipe::Context& ctx) override {
    n_ = static_cast<std::size_t>(ctx.size("n"));
    const cudaStream_t s = ctx.stream();
    // x uniform in [-1, 1): P(x > t) = (1 - t) / 2 = pct_f / 100.
    t_ = 1.f - 2.f * static_cast<float>(ctx.size("pct_f")) / 100.f;
    x_ = aipe::DeviceBuffer<float>(n_);
    y_ = aipe::DeviceBuffer<float>(n_);
    const std::uint64_t seed = aipe::sub_seed(ctx.seed(), 1);
    aipe::fill_uniform(x_.get(), n_, seed, -1.f, 1.f, s);
    ctx.output(y_.get(), y_.bytes());
    float f[kDegree + 1], g[kDegree + 1];
    coefficients(f, g);
    AIPE_CUDA(cudaMemcpyToSymbolAsync(c_f, f, sizeof f, 0, cudaMemcpyHostToDevice, s));
    AIPE_CUDA(cudaMemcpyToSymbolAsync(c_g, g, sizeof g, 0, cudaMemcpyHostToDevice, s));
    int per_sm = 0;
    AIPE_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, branchy, kThreads, 0));
    grid_ = static_cast<unsigned>(std::max(1, per_sm) * ctx.device().sm_count);
    AIPE_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, compacted, kThreads, 0));
    grid_compacted_ = static_cast<unsigned>(std::max(1, per_sm) * ctx.device().sm_count);
    ref_.resize(n_);
    for (std::size_t i = 0; i < n_; ++i) {
      const float xf = aipe::uniform_at(seed, i, -1.f, 1.f);
      const bool take_f = xf > t_;
      const float* c = take_f ? f : g;
      const double z = take_f ? double(xf) : double(xf * xf);  // g is evaluated at the float x^2, as on the GPU
      double acc = c[kDegree];
      for (int k = kDegree - 1; k >= 0; --k) acc = acc * z + c[k];
      ref_[i] = acc;
    }
  }

  aipe::Work work() const override { return {8.0 * n_, 2.0 * kDegree * n_, aipe::ComputeUnit::fp32}; }

  aipe::VerifyResult verify(aipe::Context& ctx) override {
    std::vector<float> out = aipe::to_host(y_, ctx.stream());
    aipe::Tolerance tol = aipe::tolerance_for(aipe::DType::f32);
    tol.abs += 2.0 * kDegree * 5.0 * std::ldexp(1.0, -24);  // Horner's bound, see the header
    return aipe::compare(std::span<const float>(out), std::span<const double>(ref_), tol);
  }

 private:
  std::size_t n_ = 0;
  float t_ = 0;
  unsigned grid_ = 1, grid_compacted_ = 1;
  aipe::DeviceBuffer<float> x_, y_;
  std::vector<double> ref_;
};

}  // namespace

AIPE_REGISTER_EXAMPLE(WarpDivergence);
