// ch10/quantize_fp8: quantize a BF16 tensor to FP8 E4M3 with its scales: amax (a reduction), scale,
// cast. Per 1x128 block (DeepSeek-V3 activations, the default) or per tensor (--size block=0).
//
// Ladder:
//   1 naive       three kernels, one element per thread: amax by atomicMax per element, a scale kernel,
//                 a cast kernel that re-reads x and its block's amax
//   2 vectorized  the same three passes with 16-byte loads (8 BF16), 8-byte stores and warp-shuffle amax
//                 (one atomic per CTA for the per-tensor amax, none for blocks)
//   3 fused       1x128: one kernel, one pass: 16 threads hold a 128-element block in registers, reduce its
//                 amax with shuffles, write the scale and the E4M3 codes. Per tensor: two kernels, the
//                 fewest an exact per-tensor scale allows (amax over everything, then a cast kernel that
//                 derives the scale itself)
//
// Problem: x is rows x cols BF16 row-major; q = E4M3(x * 448 / amax) (round to nearest even, saturating),
// scale = amax / 448 (amax 0 gives scale 1), over each 1x128 row block or the whole tensor. Scales are
// stored sa[kb * rows + r], the layout ch10/gemm_fp8_blockwise and cuBLASLt's VEC128_32F read.
// Inputs: uniform [-1, 1) times 2^(c - 8) with c = (index / 128) mod 16: magnitudes that vary block
// to block by 2^15, the case block scales exist for. Reference: the same arithmetic on the CPU
// (float32 multiply, the E4M3 conversion of cuda_fp8.h): codes and scales must match exactly.
// Work (minimum DRAM bytes): read x (2 B/elem), write q (1 B/elem) and the scales; per tensor x is
// read twice: no exact per-tensor scale exists before every element has been seen, and 2x the L2 is
// too large to keep. No FLOPs are counted: this is a bandwidth example.
// Metrics, the price of the scaling granularity: dequant_rel_rms = ||q * scale - x|| / ||x|| over the
// whole tensor (dominated by the largest values), and dequant_block_rel_rms_mean = the same ratio per
// 1x128 block, averaged over blocks: with one scale per tensor the small-magnitude blocks fall into
// E4M3's subnormal range (or to zero) and lose most of their digits.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include "aipe/buffer.hpp"
#include "aipe/random.hpp"
#include "aipe/registry.hpp"

namespace {

constexpr float kE4M3Max = 448.f;

__host__ __device__ inline float input_at(std::uint64_t seed, std::size_t i) {
  const int c = int((i / 128) % 16);
  return aipe::uniform_at(seed, i, -1.f, 1.f) * ldexpf(1.f, c - 8);
}
__host__ __device__ inline float inv_scale_of(float amax) { return amax > 0.f ? kE4M3Max / amax : 1.f; }
__host__ __device__ inline float scale_of(float amax) { return amax > 0.f ? amax / kE4M3Max : 1.f; }

__global__ void fill_input(__nv_bfloat16* x, std::size_t n, std::uint64_t seed) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x)
    x[i] = __float2bfloat16_rn(input_at(seed, i));
}

struct Q {
  const __nv_bfloat16* x;
  __nv_fp8_e4m3* q;
  float* scale;     // block: [nkb][rows]; tensor: [1]
  unsigned* amax;   // intermediate (float bits; |x| >= 0 so integer order = float order)
  int rows, cols, nkb;
  bool block;
};

__device__ inline int amax_index(const Q& p, int r, int c) { return p.block ? (c / 128) * p.rows + r : 0; }

// ---- 1 naive: one element per thread, three kernels ----
__global__ void naive_amax(Q p) {
  const std::size_t n = std::size_t(p.rows) * p.cols;
  const std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const int r = int(i / p.cols), c = int(i % p.cols);
  atomicMax(p.amax + amax_index(p, r, c), __float_as_uint(fabsf(__bfloat162float(p.x[i]))));
}
__global__ void scale_kernel(Q p, int count) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < count) p.scale[i] = scale_of(__uint_as_float(p.amax[i]));
}
__global__ void naive_cast(Q p) {
  const std::size_t n = std::size_t(p.rows) * p.cols;
  const std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const int r = int(i / p.cols), c = int(i % p.cols);
  const float inv = inv_scale_of(__uint_as_float(p.amax[amax_index(p, r, c)]));
  p.q[i] = __nv_fp8_e4m3(__bfloat162float(p.x[i]) * inv);
}

// ---- 2 vectorized: 8 elements (16 bytes) per thread ----
struct Pack8 {
  float v[8];
};
__device__ inline Pack8 load8(const __nv_bfloat16* p) {
  const uint4 raw = __ldg(reinterpret_cast<const uint4*>(p));
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&raw);
  Pack8 o;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const float2 f = __bfloat1622float2(h[j]);
    o.v[2 * j] = f.x;
    o.v[2 * j + 1] = f.y;
  }
  return o;
}
__device__ inline void store8(__nv_fp8_e4m3* q, const Pack8& a, float inv) {
  unsigned char b[8];
#pragma unroll
  for (int j = 0; j < 8; ++j) b[j] = __nv_fp8_e4m3(a.v[j] * inv).__x;
  uint2 w;
  std::memcpy(&w, b, 8);
  *reinterpret_cast<uint2*>(q) = w;
}
__device__ inline float amax8(const Pack8& a) {
  float m = 0.f;
#pragma unroll
  for (int j = 0; j < 8; ++j) m = fmaxf(m, fabsf(a.v[j]));
  return m;
}

// Thread map for 1x128 blocks: a row owns nkb * 16 threads, 16 per block (8 elements each), so every
// half-warp is exactly one block and reduces it with four shuffles. Threads past the row end load
// nothing but still take part in the shuffles.
struct BlockThread {
  int r, c, valid;
};
__device__ inline BlockThread block_thread(const Q& p) {
  const std::size_t t = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x;
  const std::size_t per_row = std::size_t(p.nkb) * 16;
  BlockThread bt;
  bt.r = int(t / per_row);
  bt.c = int(t % per_row) * 8;
  bt.valid = bt.r < p.rows && bt.c < p.cols;
  return bt;
}
__device__ inline float group16_max(float m) {
#pragma unroll
  for (int o = 8; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  return m;
}

__global__ void vec_amax_block(Q p) {
  const BlockThread bt = block_thread(p);
  float m = 0.f;
  if (bt.valid) m = amax8(load8(p.x + std::size_t(bt.r) * p.cols + bt.c));
  m = group16_max(m);
  if (bt.valid && (threadIdx.x % 16) == 0) p.amax[(bt.c / 128) * p.rows + bt.r] = __float_as_uint(m);
}
__global__ void vec_amax_tensor(Q p) {
  const std::size_t n8 = std::size_t(p.rows) * p.cols / 8;
  float m = 0.f;
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n8; i += std::size_t(gridDim.x) * blockDim.x)
    m = fmaxf(m, amax8(load8(p.x + 8 * i)));
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  __shared__ float warp_max[32];
  if (threadIdx.x % 32 == 0) warp_max[threadIdx.x / 32] = m;
  __syncthreads();
  if (threadIdx.x < 32) {
    m = threadIdx.x < blockDim.x / 32 ? warp_max[threadIdx.x] : 0.f;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    if (threadIdx.x == 0) atomicMax(p.amax, __float_as_uint(m));
  }
}
// Cast with 16-byte loads; `write_scale`: the per-tensor fused rung lets thread 0 write the scale.
__global__ void vec_cast(Q p, bool write_scale) {
  if (p.block) {
    const BlockThread bt = block_thread(p);
    if (!bt.valid) return;
    const std::size_t i = std::size_t(bt.r) * p.cols + bt.c;
    store8(p.q + i, load8(p.x + i), inv_scale_of(__uint_as_float(p.amax[(bt.c / 128) * p.rows + bt.r])));
    return;
  }
  const float amax = __uint_as_float(*p.amax);
  if (write_scale && blockIdx.x == 0 && threadIdx.x == 0) p.scale[0] = scale_of(amax);
  const float inv = inv_scale_of(amax);
  const std::size_t n8 = std::size_t(p.rows) * p.cols / 8;
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n8; i += std::size_t(gridDim.x) * blockDim.x)
    store8(p.q + 8 * i, load8(p.x + 8 * i), inv);
}

// ---- 3 fused (1x128): one pass, the block lives in registers between amax and cast ----
__global__ void fused_block(Q p) {
  const BlockThread bt = block_thread(p);
  Pack8 a{};
  const std::size_t i = std::size_t(bt.r) * p.cols + bt.c;
  if (bt.valid) a = load8(p.x + i);
  const float m = group16_max(amax8(a));
  if (!bt.valid) return;
  if ((threadIdx.x % 16) == 0) p.scale[(bt.c / 128) * p.rows + bt.r] = scale_of(m);
  store8(p.q + i, a, inv_scale_of(m));
}

class QuantizeFp8 final : public aipe::Example {
 public:
  aipe::ExampleInfo info() const override {
    return {"ch10/quantize_fp8",
            "FP8 quantization: amax, scale, cast to E4M3, per 1x128 block or per tensor",
            "Before an FP8 GEMM every activation tensor is quantized: find the largest magnitude (a reduction), "
            "turn it into a scale, cast. It is pure bandwidth - 2 bytes in, 1 byte out - so the ladder is about "
            "bytes: per-element atomics and scalar loads waste the memory system, 16-byte loads and shuffles fix "
            "that, and with 1x128 blocks the whole job fuses into one pass because a block fits in 16 threads' "
            "registers. A per-tensor scale cannot: every element must be seen before the first can be cast.",
            {{.name = "rows", .def = 8192, .quick = 4096, .small = 37, .help = "rows (tokens)"},
             {.name = "cols", .def = 8192, .quick = 4096, .small = 1000, .help = "columns (features), a multiple of 8"},
             {.name = "block",
              .def = 128,
              .quick = 128,
              .small = 128,
              .help = "scale granularity along a row: 128 (1x128 blocks) or 0 (one scale per tensor)",
              .min = 0,
              .max = 128}},
            {}};
  }

  std::vector<aipe::Variant> variants() override {
    // Every rung writes the same codes and scales: the dequantization error is the problem's, reported on each.
    const auto dequant = [this](double, std::map<std::string, double>& out) {
      out["dequant_rel_rms"] = rel_rms_;
      out["dequant_block_rel_rms_mean"] = block_rel_mean_;
    };
    return {{.name = "naive",
             .summary = "three kernels, one element per thread, amax by per-element atomics",
             .launch = [this](cudaStream_t s) { run_naive(s); },
             .metrics = dequant},
            {.name = "vectorized",
             .summary = "three kernels, 16-byte loads, warp-shuffle amax, 8-byte stores",
             .launch = [this](cudaStream_t s) { run_vectorized(s); },
             .metrics = dequant},
            {.name = "fused",
             .summary = "1x128: one kernel, one pass, block in registers; per tensor: amax + cast (two passes)",
             .launch = [this](cudaStream_t s) { run_fused(s); },
             .metrics = dequant}};
  }

  void setup(aipe::Context& ctx) override {
    rows_ = int(ctx.size("rows"));
    cols_ = int(ctx.size("cols"));
    const auto block = ctx.size("block");
    if (block != 0 && block != 128) throw aipe::BadInput("block must be 128 (1x128 scales) or 0 (per tensor), got " + std::to_string(block));
    if (cols_ % 8 != 0) throw aipe::BadInput("cols must be a multiple of 8 (16-byte rows), got " + std::to_string(cols_));
    block_ = block == 128;
    nkb_ = (cols_ + 127) / 128;
    nscale_ = block_ ? std::size_t(nkb_) * rows_ : 1;
    const std::size_t n = std::size_t(rows_) * cols_;
    x_ = aipe::DeviceBuffer<__nv_bfloat16>(n);
    q_ = aipe::DeviceBuffer<__nv_fp8_e4m3>(n);
    scale_ = aipe::DeviceBuffer<float>(nscale_);
    amax_ = aipe::DeviceBuffer<unsigned>(nscale_);
    const auto seed = aipe::sub_seed(ctx.seed(), 1);
    fill_input<<<1024, 256, 0, ctx.stream()>>>(x_.get(), n, seed);
    AIPE_CHECK_LAUNCH();
    ctx.output(q_.get(), q_.bytes());
    ctx.output(scale_.get(), scale_.bytes());
    p_ = {x_.get(), q_.get(), scale_.get(), amax_.get(), rows_, cols_, nkb_, block_};
    grid_ = ctx.device().sm_count * 4;

    // Reference: the same arithmetic on the CPU.
    std::vector<float> xv(n);
    for (std::size_t i = 0; i < n; ++i) xv[i] = __bfloat162float(__float2bfloat16_rn(input_at(seed, i)));
    std::vector<float> amax(nscale_, 0.f);
    for (int r = 0; r < rows_; ++r)
      for (int c = 0; c < cols_; ++c) {
        float& a = amax[block_ ? std::size_t(c / 128) * rows_ + r : 0];
        a = std::max(a, std::fabs(xv[std::size_t(r) * cols_ + c]));
      }
    ref_scale_.resize(nscale_);
    for (std::size_t i = 0; i < nscale_; ++i) ref_scale_[i] = scale_of(amax[i]);
    ref_q_.resize(n);
    double err = 0, norm = 0, block_rel_sum = 0;
    std::size_t blocks = 0;
    for (int r = 0; r < rows_; ++r)
      for (int c0 = 0; c0 < cols_; c0 += 128) {
        double berr = 0, bnorm = 0;
        for (int c = c0; c < std::min(cols_, c0 + 128); ++c) {
          const std::size_t i = std::size_t(r) * cols_ + c;
          const std::size_t si = block_ ? std::size_t(c / 128) * rows_ + r : 0;
          const __nv_fp8_e4m3 qv(xv[i] * inv_scale_of(amax[si]));
          ref_q_[i] = qv.__x;
          const double d = double(float(qv)) * ref_scale_[si] - xv[i];
          berr += d * d;
          bnorm += double(xv[i]) * xv[i];
        }
        err += berr;
        norm += bnorm;
        if (bnorm > 0) {
          block_rel_sum += std::sqrt(berr / bnorm);
          ++blocks;
        }
      }
    rel_rms_ = std::sqrt(err / norm);
    block_rel_mean_ = blocks ? block_rel_sum / double(blocks) : 0;
  }

  aipe::Work work() const override {
    const double n = double(rows_) * cols_;
    return {n * 2 * (block_ ? 1 : 2) + n + 4.0 * nscale_, 0, aipe::ComputeUnit::none};
  }

  aipe::VerifyResult verify(aipe::Context& ctx) override {
    std::vector<unsigned char> q(q_.size());
    std::vector<float> sc(nscale_);
    AIPE_CUDA(cudaMemcpyAsync(q.data(), q_.get(), q_.bytes(), cudaMemcpyDeviceToHost, ctx.stream()));
    AIPE_CUDA(cudaMemcpyAsync(sc.data(), scale_.get(), scale_.bytes(), cudaMemcpyDeviceToHost, ctx.stream()));
    AIPE_CUDA(cudaStreamSynchronize(ctx.stream()));
    const auto exact = aipe::tolerance_for(aipe::DType::exact);
    // Codes compared as E4M3 values (0xFF poison is NaN in E4M3, so an unwritten code never passes).
    auto r = aipe::compare(
        q.size(),
        [&](std::size_t i) {
          __nv_fp8_e4m3 v;
          v.__x = q[i];
          return double(float(v));
        },
        [&](std::size_t i) {
          __nv_fp8_e4m3 v;
          v.__x = ref_q_[i];
          return double(float(v));
        },
        exact);
    r.merge(aipe::compare(std::span<const float>(sc), std::span<const float>(ref_scale_), exact));
    return r;
  }

 private:
  void reset_amax(cudaStream_t s) { AIPE_CUDA(cudaMemsetAsync(amax_.get(), 0, amax_.bytes(), s)); }

  void run_naive(cudaStream_t s) {
    reset_amax(s);
    const std::size_t n = std::size_t(rows_) * cols_;
    const unsigned blocks = unsigned((n + 255) / 256);
    naive_amax<<<blocks, 256, 0, s>>>(p_);
    AIPE_CHECK_LAUNCH();
    scale_kernel<<<unsigned((nscale_ + 255) / 256), 256, 0, s>>>(p_, int(nscale_));
    AIPE_CHECK_LAUNCH();
    naive_cast<<<blocks, 256, 0, s>>>(p_);
    AIPE_CHECK_LAUNCH();
  }

  unsigned block_threads_grid() const {
    const std::size_t threads = std::size_t(rows_) * nkb_ * 16;
    return unsigned((threads + 255) / 256);
  }

  void run_vectorized(cudaStream_t s) {
    if (block_) {
      vec_amax_block<<<block_threads_grid(), 256, 0, s>>>(p_);  // writes every amax: no reset needed
    } else {
      reset_amax(s);
      vec_amax_tensor<<<grid_, 256, 0, s>>>(p_);
    }
    AIPE_CHECK_LAUNCH();
    scale_kernel<<<unsigned((nscale_ + 255) / 256), 256, 0, s>>>(p_, int(nscale_));
    AIPE_CHECK_LAUNCH();
    if (block_) vec_cast<<<block_threads_grid(), 256, 0, s>>>(p_, false);
    else vec_cast<<<grid_, 256, 0, s>>>(p_, false);
    AIPE_CHECK_LAUNCH();
  }

  void run_fused(cudaStream_t s) {
    if (block_) {
      fused_block<<<block_threads_grid(), 256, 0, s>>>(p_);
      AIPE_CHECK_LAUNCH();
      return;
    }
    reset_amax(s);
    vec_amax_tensor<<<grid_, 256, 0, s>>>(p_);
    AIPE_CHECK_LAUNCH();
    vec_cast<<<grid_, 256, 0, s>>>(p_, true);
    AIPE_CHECK_LAUNCH();
  }

  int rows_ = 0, cols_ = 0, nkb_ = 0, grid_ = 0;
  bool block_ = true;
  std::size_t nscale_ = 0;
  aipe::DeviceBuffer<__nv_bfloat16> x_;
  aipe::DeviceBuffer<__nv_fp8_e4m3> q_;
  aipe::DeviceBuffer<float> scale_;
  aipe::DeviceBuffer<unsigned> amax_;
  Q p_{};
  std::vector<unsigned char> ref_q_;
  std::vector<float> ref_scale_;
  double rel_rms_ = 0, block_rel_mean_ = 0;
};

}  // namespace

AIPE_REGISTER_EXAMPLE(QuantizeFp8);
