// RMSNorm over the hidden dimension of a [tokens][hidden] BF16 activation, as Llama uses it, and the fused
// residual-add + RMSNorm that precedes every attention and MLP block (vLLM's fused_add_rms_norm).
// (device code: aipe/kernels/norm.cuh; entry points: kernels/src/norm.cu; checks: kernels/src/llm_checks.cpp)
//
//   rmsnorm:            y[t][i] = bf16( x[t][i] * rsqrt(mean_i x[t][i]^2 + eps) * w[i] )
//   fused_add_rmsnorm:  hidden[t][i] = bf16(hidden[t][i] + delta[t][i]);   y = rmsnorm(hidden)
// FP32 math, one BF16 rounding of y. (HF's LlamaRMSNorm rounds the normalized x to BF16 before the BF16 multiply by
// w: two roundings; the difference is within one BF16 ulp of y.) In the fused form the norm is taken of the rounded
// sum, the value stored in hidden, so the residual stream and the normalized input agree exactly.
// All tensors packed (row pitch = hidden). Each row crosses DRAM once: a CTA per row keeps its FP32 values in
// shared memory between the sum of squares and the scaling; 16-byte accesses when hidden % 8 == 0 and every
// pointer is 16-byte aligned, 2-byte accesses otherwise.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

namespace aipe::kernels {

// Largest hidden size the kernels take: the FP32 copy of a row (4 * hidden bytes) must fit in shared memory.
inline constexpr int kRmsNormMaxHidden = 32768;

// Throws std::invalid_argument naming the argument: null pointers (unless tokens == 0), tokens < 0, hidden outside
// [1, kRmsNormMaxHidden], eps not finite or < 0.
void check_rmsnorm(const void* x, const void* weight, const void* y, int tokens, int hidden, float eps);

// The fused form's extra rules: delta non-null, y not the same buffer as hidden.
void check_fused_add_rmsnorm(const void* hidden, const void* delta, const void* y, int tokens);

void rmsnorm(const __nv_bfloat16* x, const __nv_bfloat16* weight, __nv_bfloat16* y, int tokens, int hidden, float eps,
             cudaStream_t stream = nullptr);

// hidden (the residual stream) is read and written; y may be the same buffer as delta (each element is read before
// it is written, by the same thread), not the same as hidden.
void fused_add_rmsnorm(__nv_bfloat16* hidden, const __nv_bfloat16* delta, const __nv_bfloat16* weight,
                       __nv_bfloat16* y, int tokens, int hidden_size, float eps, cudaStream_t stream = nullptr);

}  // namespace aipe::kernels
