// Private to kernels/src: the launch of the skinny (swap-AB) GEMM, kernels/src/gemm_bf16_skinny.cu, for the
// entry points in kernels/src/gemm_bf16.cu (gemm, gemm_skinny), which check the operands and choose `cfg`.
#pragma once
#include <cuda_runtime_api.h>

#include "aipe/kernels/gemm.hpp"

namespace aipe::kernels {

// C = alpha A B^T (+ bias) with cfg = choose_skinny(M, N, K, device_ctas, ...) on `stream` (asynchronous). The
// operands passed check_gemm and skinny_supports(epi); device_ctas sizes the split-K workspace.
void launch_skinny(const Matrix<const bf16>& a, const Matrix<const bf16>& b, const Matrix<bf16>& c,
                   const Epilogue& epi, const SkinnyConfig& cfg, int device_ctas, cudaStream_t stream);

}  // namespace aipe::kernels
