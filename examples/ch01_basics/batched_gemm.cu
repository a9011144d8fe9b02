// ch01/batched_gemm: many small GEMMs, one cuBLAS call each vs one strided-batched call.
//
// Ladder:
//   1 gemm_loop        `batch` calls of cublasSgemm, one small kernel launch each
//   2 strided_batched  one cublasSgemmStridedBatched call: one launch covers every matrix
//
// Problem: C_b = A_b * B_b for b < batch, FP32, column-major, m x k times k x n (cuBLAS's layout),
// matrices packed back to back. Default 1024 GEMMs of 64^3: each one is ~0.5 MFLOP, far too small to
// fill 132 SMs, so the loop is bound by launch overhead and the batched call by the hardware.
// Napkin math: flops = 2 m n k batch; bytes = 4 (mk + kn + mn) batch (each matrix crosses DRAM once).
// Reference: float64 GEMM on the CPU; FP32 tolerance scaled by sqrt(k) for the dot-product length.
#include <cmath>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/cublas.hpp"
#include "aipe/random.hpp"
#include "aipe/registry.hpp"

namespace {

class BatchedGemm final : public aipe::Example {
 public:
  aipe::ExampleInfo info() const override {
    return {"ch01/batched_gemm",
            "Many small cuBLAS GEMMs in a loop vs one strided-batched call",
            "A GEMM of 64x64x64 is half a megaflop: the GPU finishes it faster than the host can launch the next "
            "one. Issuing a thousand of them one call at a time measures launch overhead; one strided-batched "
            "call hands the whole batch to the GPU at once and lets it fill every SM.",
            {{.name = "batch", .def = 1024, .quick = 256, .small = 37, .help = "number of GEMMs"},
             {.name = "m", .def = 64, .quick = 64, .small = 33, .help = "rows of A and C"},
             {.name = "n", .def = 64, .quick = 64, .small = 45, .help = "columns of B and C"},
             {.name = "k", .def = 64, .quick = 64, .small = 29, .help = "inner dimension"}},
            {}};
  }

  std::vector<aipe::Variant> variants() override {
    return {{.name = "gemm_loop",
             .summary = "one cublasSgemm call per matrix",
             .launch = [this](cudaStream_t s) { run_loop(s); },
             .blocking = false},  // a thousand launches would overflow a blocked stream's launch queue
            {"strided_batched", "one cublasSgemmStridedBatched call for the whole batch",
             [this](cudaStream_t s) { run_batched(s); }}};
  }

  void setup(aipe::Context& ctx) override {
    batch_ = ctx.size("batch");
    m_ = ctx.size("m");
    n_ = ctx.size("n");
    k_ = ctx.size("k");
    a_ = aipe::DeviceBuffer<float>(batch_ * m_ * k_);
    b_ = aipe::DeviceBuffer<float>(batch_ * k_ * n_);
    c_ = aipe::DeviceBuffer<float>(batch_ * m_ * n_);
    aipe::fill_uniform(a_.get(), a_.size(), aipe::sub_seed(ctx.seed(), 1), -1.f, 1.f, ctx.stream());
    aipe::fill_uniform(b_.get(), b_.size(), aipe::sub_seed(ctx.seed(), 2), -1.f, 1.f, ctx.stream());
    ctx.output(c_.get(), c_.bytes());
    handle_ = aipe::CublasHandle::create();
    // FP32 means FP32 here: no TF32 tensor-core shortcut.
    AIPE_CUBLAS(cublasSetMathMode(handle_, CUBLAS_PEDANTIC_MATH));

    // Reference in float64, from the same counter-based inputs.
    const auto sa = aipe::sub_seed(ctx.seed(), 1), sb = aipe::sub_seed(ctx.seed(), 2);
    ref_.assign(c_.size(), 0.0);
    std::vector<double> A(m_ * k_), B(k_ * n_);
    for (std::int64_t b = 0; b < batch_; ++b) {
      for (std::int64_t i = 0; i < m_ * k_; ++i) A[i] = aipe::uniform_at(sa, b * m_ * k_ + i, -1.f, 1.f);
      for (std::int64_t i = 0; i < k_ * n_; ++i) B[i] = aipe::uniform_at(sb, b * k_ * n_ + i, -1.f, 1.f);
      double* C = ref_.data() + b * m_ * n_;
      for (std::int64_t j = 0; j < n_; ++j)
        for (std::int64_t p = 0; p < k_; ++p) {
          const double bv = B[p + j * k_];
          for (std::int64_t i = 0; i < m_; ++i) C[i + j * m_] += A[i + p * m_] * bv;
        }
    }
  }

  aipe::Work work() const override {
    const double b = static_cast<double>(batch_);
    return {4.0 * b * (m_ * k_ + k_ * n_ + m_ * n_), 2.0 * b * m_ * n_ * k_, aipe::ComputeUnit::fp32};
  }

  aipe::VerifyResult verify(aipe::Context& ctx) override {
    std::vector<float> out = aipe::to_host(c_, ctx.stream());
    aipe::Tolerance tol = aipe::tolerance_for(aipe::DType::f32);
    tol.abs *= std::sqrt(static_cast<double>(k_));  // rounding grows with the dot-product length
    tol.norm_rel *= std::sqrt(static_cast<double>(k_));
    return aipe::compare(std::span<const float>(out), std::span<const double>(ref_), tol);
  }

 private:
  void run_loop(cudaStream_t s) {
    AIPE_CUBLAS(cublasSetStream(handle_, s));
    const float one = 1.f, zero = 0.f;
    for (std::int64_t b = 0; b < batch_; ++b)
      AIPE_CUBLAS(cublasSgemm(handle_, CUBLAS_OP_N, CUBLAS_OP_N, int(m_), int(n_), int(k_), &one, a_.get() + b * m_ * k_,
                              int(m_), b_.get() + b * k_ * n_, int(k_), &zero, c_.get() + b * m_ * n_, int(m_)));
  }

  void run_batched(cudaStream_t s) {
    AIPE_CUBLAS(cublasSetStream(handle_, s));
    const float one = 1.f, zero = 0.f;
    AIPE_CUBLAS(cublasSgemmStridedBatched(handle_, CUBLAS_OP_N, CUBLAS_OP_N, int(m_), int(n_), int(k_), &one, a_.get(),
                                          int(m_), m_ * k_, b_.get(), int(k_), k_ * n_, &zero, c_.get(), int(m_),
                                          m_ * n_, int(batch_)));
  }

  std::int64_t batch_ = 0, m_ = 0, n_ = 0, k_ = 0;
  aipe::DeviceBuffer<float> a_, b_, c_;
  aipe::CublasHandle handle_;
  std::vector<double> ref_;
};

}  // namespace

AIPE_REGISTER_EXAMPLE(BatchedGemm);
