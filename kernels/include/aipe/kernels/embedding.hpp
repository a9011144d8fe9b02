// Token embedding: out[t][:] = table[ids[t]][:], table [vocab][hidden] BF16 (device code: aipe/kernels/embedding.cuh).
// An id outside [0, vocab) is never read: its row of out is written as zeros and *error is set to 1 (the host reads
// it after the step; the kernel never clears it, so one flag covers every call of a step or of a CUDA graph).
// out: [tokens][hidden] packed. 16-byte accesses when hidden % 8 == 0 and table and out are 16-byte aligned.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

namespace aipe::kernels {

// Throws std::invalid_argument: null ids, table, out or error (unless tokens == 0), tokens < 0, vocab < 1, hidden < 1.
void check_embedding(const int* ids, const void* table, const void* out, const int* error, int tokens, int vocab,
                     int hidden);
void embedding(const int* ids, const __nv_bfloat16* table, __nv_bfloat16* out, int* error, int tokens, int vocab,
               int hidden, cudaStream_t stream = nullptr);

}  // namespace aipe::kernels
