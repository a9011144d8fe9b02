// The problem both BF16 GEMM examples solve (gemm_bf16.cu: square shapes; gemm_bf16_skinny.cu: decode
// shapes, a few rows of A against a large weight B): inputs, reference, tolerance, work model and the two
// library rungs. Each example file adds its own rungs and its registration.
//
//   C = A * B^T        A: M x K row-major, B: N x K row-major (both K-major, what WGMMA reads), C: M x N
//   BF16 in, FP32 accumulate, BF16 out. cuBLAS sees the same buffers as the column-major C^T = op(B) * A^T
//   with (CUBLAS_OP_T, CUBLAS_OP_N): the "TN" GEMM.
//
// Inputs: uniform in [-1, 1) from the counter-based generator (sub-seeds 1 and 2 of the run's seed).
// Reference: a CPU float64 GEMM on the same BF16 values (regenerated with aipe::uniform_at) when
// M*N*K <= 2^31; above that, cuBLAS with FP32 output on the same device inputs (FP32 accumulation, ~1e-6
// relative, far below the BF16 output rounding tested for).
// Tolerance: the output is rounded to BF16 (relative half-ulp 2^-8). Norm-wise ||C - ref|| / ||ref|| <= 2^-8;
// elementwise |C - ref| <= 2^-7 |ref| + 2^-7 * sqrt(K)/3, where sqrt(K)/3 is the RMS of an output element for
// inputs uniform in [-1, 1] (the absolute term is one BF16 ulp of a typical element: it covers near-zero
// results where the FP32 accumulation order matters).
// Work: flops = 2 M N K; bytes = 2 (M K + N K + M N), each matrix crossing DRAM once.
#pragma once
#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/cublas.hpp"
#include "aipe/random.hpp"
#include "aipe/registry.hpp"
#include "aipe/verify.hpp"

namespace aipe::ch10 {

using bf16 = __nv_bfloat16;

// Round to nearest even, as __float2bfloat16_rn does (inputs are finite).
inline float bf16_round(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, 4);
  u += 0x7FFFu + ((u >> 16) & 1u);
  u &= 0xFFFF0000u;
  std::memcpy(&x, &u, 4);
  return x;
}

class Bf16GemmProblem : public aipe::Example {
 public:
  aipe::Work work() const override {
    const double m = double(m_), n = double(n_), k = double(k_);
    return {2.0 * (m * k + n * k + m * n), 2.0 * m * n * k, aipe::ComputeUnit::bf16};
  }

  aipe::VerifyResult verify(aipe::Context& ctx) override {
    std::vector<bf16> out = aipe::to_host(c_, ctx.stream());
    const double u = std::ldexp(1.0, -8);  // BF16 output: half an ulp, relative (terms: see the header)
    aipe::Tolerance tol = aipe::tolerance_for(aipe::DType::bf16);
    tol.norm_rel = u;
    tol.rel = 2 * u;
    tol.abs = 2 * u * std::sqrt(static_cast<double>(k_)) / 3.0;
    auto r = aipe::compare(
        out.size(), [&](std::size_t i) { return static_cast<double>(__bfloat162float(out[i])); },
        [&](std::size_t i) { return static_cast<double>(ref_[i]); }, tol);
    r.note = ref_note_;
    return r;
  }

 protected:
  // Reads the m, n, k axes (each must fit a 32-bit int; `id` names the example in the error), allocates
  // and fills A and B, registers C as the output, and builds the library rungs' state and the reference.
  void setup_problem(aipe::Context& ctx, const char* id) {
    m_ = ctx.size("m");
    n_ = ctx.size("n");
    k_ = ctx.size("k");
    if (m_ > INT32_MAX / 2 || n_ > INT32_MAX / 2 || k_ > INT32_MAX / 2)
      throw aipe::BadInput(std::string(id) + ": m, n and k must each fit in a 32-bit int");
    a_ = aipe::DeviceBuffer<bf16>(static_cast<std::size_t>(m_ * k_));
    b_ = aipe::DeviceBuffer<bf16>(static_cast<std::size_t>(n_ * k_));
    c_ = aipe::DeviceBuffer<bf16>(static_cast<std::size_t>(m_ * n_));
    const auto sa = aipe::sub_seed(ctx.seed(), 1), sb = aipe::sub_seed(ctx.seed(), 2);
    aipe::fill_uniform(a_.get(), a_.size(), sa, -1.f, 1.f, ctx.stream());
    aipe::fill_uniform(b_.get(), b_.size(), sb, -1.f, 1.f, ctx.stream());
    ctx.output(c_.get(), c_.bytes());
    handle_ = aipe::CublasHandle::create();
    setup_cublaslt();
    reference(ctx, sa, sb);
  }

  aipe::Variant cublas_rung() {
    return {"cublas", "cublasGemmEx, BF16 in, FP32 compute", [this](cudaStream_t s) { launch_cublas(s); }};
  }
  aipe::Variant cublaslt_rung() {
    return {.name = "cublaslt",
            .summary = "cublasLtMatmul, top heuristic, 32 MiB workspace",
            .launch = [this](cudaStream_t s) { launch_cublaslt(s); },
            .skip_if = [this] { return lt_skip_; }};
  }

  std::int64_t m_ = 0, n_ = 0, k_ = 0;
  aipe::DeviceBuffer<bf16> a_, b_, c_;

 private:
  static constexpr std::size_t kWorkspace = 32u << 20;

  void launch_cublas(cudaStream_t s) {
    AIPE_CUBLAS(cublasSetStream(handle_, s));
    const float one = 1.f, zero = 0.f;
    AIPE_CUBLAS(cublasGemmEx(handle_, CUBLAS_OP_T, CUBLAS_OP_N, int(n_), int(m_), int(k_), &one, b_.get(), CUDA_R_16BF,
                             int(k_), a_.get(), CUDA_R_16BF, int(k_), &zero, c_.get(), CUDA_R_16BF, int(n_),
                             CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }

  // The cuBLASLt rung: what frameworks call, the heuristic's first choice with a 32 MiB workspace.
  void setup_cublaslt() {
    lt_skip_.clear();
    lt_ = aipe::CublasLtHandle::create();
    op_ = aipe::lt_matmul_desc(CUBLAS_COMPUTE_32F, CUDA_R_32F, CUBLAS_OP_T, CUBLAS_OP_N);
    lb_ = aipe::lt_layout(CUDA_R_16BF, k_, n_, k_);  // B: K x N column-major
    la_ = aipe::lt_layout(CUDA_R_16BF, k_, m_, k_);  // A: K x M column-major
    lc_ = aipe::lt_layout(CUDA_R_16BF, n_, m_, n_);  // C^T: N x M column-major
    workspace_ = aipe::DeviceBuffer<unsigned char>(kWorkspace);
    const auto algos = aipe::lt_heuristics(lt_, op_, lb_, la_, lc_, lc_, kWorkspace, 1, &lt_skip_);
    if (!algos.empty()) algo_ = algos[0].algo;
  }
  void launch_cublaslt(cudaStream_t s) {
    const float one = 1.f, zero = 0.f;
    AIPE_CUBLAS(cublasLtMatmul(lt_, op_, &one, b_.get(), lb_, a_.get(), la_, &zero, c_.get(), lc_, c_.get(), lc_,
                               &algo_, workspace_.get(), kWorkspace, s));
  }

  void reference(aipe::Context& ctx, std::uint64_t sa, std::uint64_t sb) {
    const double mnk = static_cast<double>(m_) * n_ * k_;
    ref_.assign(static_cast<std::size_t>(m_ * n_), 0.f);
    if (mnk <= 2147483648.0) {
      std::vector<float> A(static_cast<std::size_t>(m_ * k_)), B(static_cast<std::size_t>(n_ * k_));
      for (std::size_t i = 0; i < A.size(); ++i) A[i] = bf16_round(aipe::uniform_at(sa, i, -1.f, 1.f));
      for (std::size_t i = 0; i < B.size(); ++i) B[i] = bf16_round(aipe::uniform_at(sb, i, -1.f, 1.f));
      for (std::int64_t i = 0; i < m_; ++i) {
        const float* a = A.data() + i * k_;
        for (std::int64_t j = 0; j < n_; ++j) {
          const float* b = B.data() + j * k_;
          double acc = 0;
          for (std::int64_t p = 0; p < k_; ++p) acc += static_cast<double>(a[p]) * b[p];
          ref_[i * n_ + j] = static_cast<float>(acc);
        }
      }
      ref_note_ = "CPU float64 reference";
    } else {
      aipe::DeviceBuffer<float> ref(static_cast<std::size_t>(m_ * n_));
      AIPE_CUBLAS(cublasSetStream(handle_, ctx.stream()));
      const float one = 1.f, zero = 0.f;
      AIPE_CUBLAS(cublasGemmEx(handle_, CUBLAS_OP_T, CUBLAS_OP_N, int(n_), int(m_), int(k_), &one, b_.get(),
                               CUDA_R_16BF, int(k_), a_.get(), CUDA_R_16BF, int(k_), &zero, ref.get(), CUDA_R_32F,
                               int(n_), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
      AIPE_CUDA(cudaMemcpyAsync(ref_.data(), ref.get(), ref.bytes(), cudaMemcpyDeviceToHost, ctx.stream()));
      AIPE_CUDA(cudaStreamSynchronize(ctx.stream()));
      ref_note_ = "cuBLAS FP32-output reference";
    }
  }

  aipe::CublasHandle handle_;
  aipe::CublasLtHandle lt_;
  aipe::LtMatmulDesc op_;
  aipe::LtLayout la_, lb_, lc_;
  cublasLtMatmulAlgo_t algo_{};
  aipe::DeviceBuffer<unsigned char> workspace_;
  std::string lt_skip_;
  std::vector<float> ref_;
  std::string ref_note_;
};

}  // namespace aipe::ch10
