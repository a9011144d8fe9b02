// ch07/tiled_matmul: C = A * B in FP32, the first look at data reuse through shared memory.
// (Kept small on purpose: chapter 10 owns GEMM and its tensor-core ladders.)
//
// Ladder (every rung computes the identical C; all verified against an FP64 cuBLAS product first):
//   1 naive      one thread per C element, every A and B operand loaded from global memory (L1/L2 catch
//                some of the reuse): 2 loads per FMA
//   2 smem_tile  16x16 tiles of A and B staged in shared memory: each loaded element is used 16 times
//   3 reg_tile   64x64 block tile, 16-deep K slices, each thread 4x4 outputs held in registers: every
//                shared-memory value read feeds 4 FMAs (arithmetic intensity up 4x again)
//   4 cublas     cublasSgemm (pedantic FP32 math, no TF32): the library ceiling for FP32 CUDA cores
//
// Problem: A is M x K, B is K x N, C is M x N, row-major, default 2048^3 (17.2 GFLOP).
// Napkin math: flops = 2 M N K; minimum bytes = 4 (M K + K N + M N) = 50 MB: intensity ~340 FLOP/B, far
// into the compute-bound region: what limits each rung is how often it goes back to memory or shared
// memory per FMA, not DRAM bandwidth. The FP32 peak is the ceiling (no tensor cores here).
// Edges: M, N, K need not be multiples of any tile (small size 333 x 257 x 191); loads outside the
// matrices read 0 and out-of-range outputs are not stored.
// Reference and tolerance: cublasDgemm on the same inputs widened to double. A length-K float dot
// product of values in [-1, 1) carries a rounding error that grows like u * sqrt(K) * |c| with |c| ~
// sqrt(K / 9); we allow an absolute 8 u K (u = 2^-24) per element, several times that.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/cublas.hpp"
#include "aipe/random.hpp"
#include "aipe/registry.hpp"

namespace {

__global__ void matmul_naive(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C, int M,
                             int N, int K) {
  const int col = blockIdx.x * blockDim.x + threadIdx.x, row = blockIdx.y * blockDim.y + threadIdx.y;
  if (row >= M || col >= N) return;
  float acc = 0.f;
  for (int k = 0; k < K; ++k) acc = fmaf(A[std::size_t(row) * K + k], B[std::size_t(k) * N + col], acc);
  C[std::size_t(row) * N + col] = acc;
}

constexpr int kT = 16;
__global__ void matmul_smem(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C, int M,
                            int N, int K) {
  __shared__ float As[kT][kT], Bs[kT][kT];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int row = blockIdx.y * kT + ty, col = blockIdx.x * kT + tx;
  float acc = 0.f;
  for (int k0 = 0; k0 < K; k0 += kT) {
    As[ty][tx] = (row < M && k0 + tx < K) ? A[std::size_t(row) * K + k0 + tx] : 0.f;
    Bs[ty][tx] = (k0 + ty < K && col < N) ? B[std::size_t(k0 + ty) * N + col] : 0.f;
    __syncthreads();
#pragma unroll
    for (int k = 0; k < kT; ++k) acc = fmaf(As[ty][k], Bs[k][tx], acc);
    __syncthreads();
  }
  if (row < M && col < N) C[std::size_t(row) * N + col] = acc;
}

constexpr int kBM = 64, kBN = 64, kBK = 16;  // block tile; 16 x 16 threads, 4 x 4 outputs each
__global__ void __launch_bounds__(256) matmul_reg(const float* __restrict__ A, const float* __restrict__ B,
                                                  float* __restrict__ C, int M, int N, int K) {
  __shared__ float As[kBK][kBM];  // A slice stored transposed: As[k][m]
  __shared__ float Bs[kBK][kBN];
  const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * 16 + tx;
  const int m0 = blockIdx.y * kBM, n0 = blockIdx.x * kBN;
  float acc[4][4] = {};
  for (int k0 = 0; k0 < K; k0 += kBK) {
#pragma unroll
    for (int l = 0; l < 4; ++l) {
      const int e = tid + 256 * l;
      const int am = e / kBK, ak = e % kBK;  // A tile 64 x 16
      const int gm = m0 + am, gk = k0 + ak;
      As[ak][am] = (gm < M && gk < K) ? A[std::size_t(gm) * K + gk] : 0.f;
      const int bk = e / kBN, bn = e % kBN;  // B tile 16 x 64
      const int gk2 = k0 + bk, gn = n0 + bn;
      Bs[bk][bn] = (gk2 < K && gn < N) ? B[std::size_t(gk2) * N + gn] : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < kBK; ++k) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = As[k][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) b[j] = Bs[k][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int r = m0 + ty + 16 * i, c = n0 + tx + 16 * j;
      if (r < M && c < N) C[std::size_t(r) * N + c] = acc[i][j];
    }
}

__global__ void widen(const float* __restrict__ in, double* __restrict__ out, std::size_t n) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x)
    out[i] = in[i];
}

class TiledMatmul final : public aipe::Example {
 public:
  aipe::ExampleInfo info() const override {
    return {"ch07/tiled_matmul",
            "Tiled FP32 matmul: data reuse through shared memory and registers",
            "Every element of A and B is used N or M times; a naive kernel fetches it again each time and is "
            "bound by load instructions, not by arithmetic. Staging tiles in shared memory lets a block reuse "
            "each loaded value T times; holding a small block of outputs per thread in registers reuses each "
            "shared-memory read several times more. The arithmetic intensity seen by each level of the memory "
            "hierarchy is what moves the kernel towards the FP32 peak that cuBLAS reaches.",
            {{.name = "m", .def = 2048, .quick = 1024, .small = 333, .help = "rows of A and C", .max = 1 << 16},
             {.name = "n", .def = 2048, .quick = 1024, .small = 257, .help = "columns of B and C", .max = 1 << 16},
             {.name = "k",
              .def = 2048,
              .quick = 1024,
              .small = 191,
              .help = "columns of A, rows of B",
              .max = 1 << 16}},
            {}};
  }

  std::vector<aipe::Variant> variants() override {
    return {
        {"naive", "one thread per output, operands from global memory",
         [this](cudaStream_t s) {
           matmul_naive<<<dim3((n_ + 15) / 16, (m_ + 15) / 16), dim3(16, 16), 0, s>>>(a_.get(), b_.get(), c_.get(), m_, n_, k_);
           AIPE_CHECK_LAUNCH();
         }},
        {"smem_tile", "16x16 tiles of A and B in shared memory: 16 uses per global load",
         [this](cudaStream_t s) {
           matmul_smem<<<dim3((n_ + kT - 1) / kT, (m_ + kT - 1) / kT), dim3(kT, kT), 0, s>>>(a_.get(), b_.get(), c_.get(), m_,
                                                                                            n_, k_);
           AIPE_CHECK_LAUNCH();
         }},
        {"reg_tile", "64x64 block tile, 4x4 outputs per thread in registers: 4 FMAs per shared-memory read",
         [this](cudaStream_t s) {
           matmul_reg<<<dim3((n_ + kBN - 1) / kBN, (m_ + kBM - 1) / kBM), dim3(16, 16), 0, s>>>(a_.get(), b_.get(), c_.get(),
                                                                                               m_, n_, k_);
           AIPE_CHECK_LAUNCH();
         }},
        {"cublas", "cublasSgemm, pedantic FP32 (no TF32)",
         [this](cudaStream_t s) {
           AIPE_CUBLAS(cublasSetStream(handle_, s));
           const float one = 1.f, zero = 0.f;
           // Row-major C = A B is column-major C^T = B^T A^T.
           AIPE_CUBLAS(cublasSgemm(handle_, CUBLAS_OP_N, CUBLAS_OP_N, n_, m_, k_, &one, b_.get(), n_, a_.get(), k_, &zero,
                                   c_.get(), n_));
         }},
    };
  }

  void setup(aipe::Context& ctx) override {
    m_ = static_cast<int>(ctx.size("m"));
    n_ = static_cast<int>(ctx.size("n"));
    k_ = static_cast<int>(ctx.size("k"));
    const cudaStream_t s = ctx.stream();
    const std::size_t na = std::size_t(m_) * k_, nb = std::size_t(k_) * n_, nc = std::size_t(m_) * n_;
    a_ = aipe::DeviceBuffer<float>(na);
    b_ = aipe::DeviceBuffer<float>(nb);
    c_ = aipe::DeviceBuffer<float>(nc);
    aipe::fill_uniform(a_.get(), na, aipe::sub_seed(ctx.seed(), 1), -1.f, 1.f, s);
    aipe::fill_uniform(b_.get(), nb, aipe::sub_seed(ctx.seed(), 2), -1.f, 1.f, s);
    ctx.output(c_.get(), c_.bytes());
    handle_ = aipe::CublasHandle::create();
    AIPE_CUBLAS(cublasSetMathMode(handle_, CUBLAS_PEDANTIC_MATH));
    // FP64 reference with cuBLAS on the widened inputs.
    aipe::DeviceBuffer<double> ad(na), bd(nb), cd(nc);
    widen<<<1024, 256, 0, s>>>(a_.get(), ad.get(), na);
    AIPE_CHECK_LAUNCH();
    widen<<<1024, 256, 0, s>>>(b_.get(), bd.get(), nb);
    AIPE_CHECK_LAUNCH();
    AIPE_CUBLAS(cublasSetStream(handle_, s));
    const double one = 1, zero = 0;
    AIPE_CUBLAS(cublasDgemm(handle_, CUBLAS_OP_N, CUBLAS_OP_N, n_, m_, k_, &one, bd.get(), n_, ad.get(), k_, &zero, cd.get(), n_));
    ref_.resize(nc);
    AIPE_CUDA(cudaMemcpyAsync(ref_.data(), cd.get(), nc * sizeof(double), cudaMemcpyDeviceToHost, s));
    AIPE_CUDA(cudaStreamSynchronize(s));
  }

  aipe::Work work() const override {
    const double m = m_, n = n_, k = k_;
    return {4.0 * (m * k + k * n + m * n), 2.0 * m * n * k, aipe::ComputeUnit::fp32};
  }

  aipe::VerifyResult verify(aipe::Context& ctx) override {
    std::vector<float> out(std::size_t(m_) * n_);
    AIPE_CUDA(cudaMemcpyAsync(out.data(), c_.get(), out.size() * sizeof(float), cudaMemcpyDeviceToHost, ctx.stream()));
    AIPE_CUDA(cudaStreamSynchronize(ctx.stream()));
    aipe::Tolerance tol = aipe::tolerance_for(aipe::DType::f32);
    tol.abs = 8.0 * std::ldexp(1.0, -24) * k_;  // see the header: ~several sigma of a length-K float dot product
    return aipe::compare(std::span<const float>(out), std::span<const double>(ref_), tol);
  }

 private:
  int m_ = 0, n_ = 0, k_ = 0;
  aipe::DeviceBuffer<float> a_, b_, c_;
  aipe::CublasHandle handle_;
  std::vector<double> ref_;
};

}  // namespace

AIPE_REGISTER_EXAMPLE(TiledMatmul);
