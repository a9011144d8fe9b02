// Logit post-processing around the sampler (device code: aipe/kernels/logits.cuh; entry points: kernels/src/logits.cu).
//   softcap      logits = cap * tanh(logits / cap), in place (Gemma 2's final_logit_softcapping; cap > 0)
//   log_softmax  out[r][i] = z[r][i] - max_r - log(sum_i exp(z[r][i] - max_r)), FP32 out: the log-probabilities an
//                API returns beside a sampled token. One CTA per row, two passes (the second from L2).
// Logits FP32 or BF16, [batch][ld]; out FP32 [batch][ld_out]. NaN logits give NaN; a row of -inf gives NaN (no
// distribution), as PyTorch's log_softmax does.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace aipe::kernels {

// Throws std::invalid_argument: null pointers (unless batch == 0), batch < 0, vocab < 1, ld < vocab, cap not > 0.
void check_softcap(const void* logits, std::int64_t ld, int batch, int vocab, float cap);
void check_log_softmax(const void* logits, std::int64_t ld, int batch, int vocab, const float* out, std::int64_t ld_out);

void softcap(float* logits, std::int64_t ld, int batch, int vocab, float cap, cudaStream_t stream = nullptr);
void softcap(__nv_bfloat16* logits, std::int64_t ld, int batch, int vocab, float cap, cudaStream_t stream = nullptr);
void log_softmax(const float* logits, std::int64_t ld, int batch, int vocab, float* out, std::int64_t ld_out,
                 cudaStream_t stream = nullptr);
void log_softmax(const __nv_bfloat16* logits, std::int64_t ld, int batch, int vocab, float* out, std::int64_t ld_out,
                 cudaStream_t stream = nullptr);

}  // namespace aipe::kernels
