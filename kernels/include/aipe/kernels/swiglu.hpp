// SwiGLU, Llama's MLP activation, from the output of one fused gate_up GEMM (device code: aipe/kernels/swiglu.cuh).
//
// Layout: gate_up [tokens][2 * inter] BF16, packed: columns [0, inter) are the gate projection's outputs and
// [inter, 2 inter) the up projection's: the GEMM's weight is gate_proj.weight stacked above up_proj.weight
// ([2 inter][hidden]), as vLLM's MergedColumnParallelLinear builds it and its silu_and_mul reads it.
//   out[t][i] = bf16( silu(g) * u ),  g = gate_up[t][i],  u = gate_up[t][inter + i],  silu(g) = g / (1 + e^-g)
// FP32 math, one rounding (HF rounds silu(g) to BF16 before the BF16 product: within one BF16 ulp).
// out: [tokens][inter] BF16, packed. 16-byte accesses when inter % 8 == 0 and both pointers are 16-byte aligned.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

namespace aipe::kernels {

// Throws std::invalid_argument: null pointers (unless tokens == 0), tokens < 0, inter < 1, out overlapping gate_up.
void check_swiglu(const void* gate_up, const void* out, int tokens, int inter);
void swiglu(const __nv_bfloat16* gate_up, __nv_bfloat16* out, int tokens, int inter, cudaStream_t stream = nullptr);

// gpt-oss's clamped SwiGLU, from its experts' gate_up GEMM, whose output columns interleave: the checkpoint's
// gate_up_proj rows (and so the GEMM's output columns) are gate 0, up 0, gate 1, up 1, ... (transformers reads
// gate_up[..., ::2] and gate_up[..., 1::2]).
//   g = min(gate_up[r][2i], limit),  u = clamp(gate_up[r][2i + 1], -limit, limit)
//   out[r][i] = bf16( (u + 1) * g * sigmoid(alpha * g) )            alpha 1.702, limit 7.0 in the released models
// FP32 math, one rounding (transformers rounds each BF16 op: within a few BF16 ulp). gate_up [rows][2 inter],
// out [rows][inter], both packed; 16-byte loads when inter % 4 == 0 and both pointers are 16-byte aligned.
struct ClampedSwiglu {
  float alpha = 1.702f;
  float limit = 7.0f;
};
// Throws std::invalid_argument: check_swiglu's cases, alpha or limit not finite and > 0.
void check_swiglu_clamped(const void* gate_up, const void* out, int rows, int inter, const ClampedSwiglu& act);
void swiglu_clamped_interleaved(const __nv_bfloat16* gate_up, __nv_bfloat16* out, int rows, int inter,
                                const ClampedSwiglu& act, cudaStream_t stream = nullptr);

}  // namespace aipe::kernels
