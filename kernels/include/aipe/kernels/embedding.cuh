// Embedding gather kernel (contract: aipe/kernels/embedding.hpp). A CTA per token copies one row of the table,
// VEC elements per thread; the id is checked before any table address is formed.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>
#include "aipe/kernels/ptx.cuh"

namespace aipe::kernels::embedding_detail {

template <int VEC>
__global__ void embedding_kernel(const int* ids, const __nv_bfloat16* table, __nv_bfloat16* out, int* error, int vocab,
                                 int hidden) {
  pdl_begin();  // launched with launch_pdl
  const int t = blockIdx.x;
  const int id = ids[t];
  const bool ok = id >= 0 && id < vocab;
  if (!ok && threadIdx.x == 0) *error = 1;
  __nv_bfloat16* dst = out + std::int64_t(t) * hidden;
  const __nv_bfloat16* src = table + std::int64_t(ok ? id : 0) * hidden;
  for (int c = threadIdx.x * VEC; c < hidden; c += blockDim.x * VEC) {
    if constexpr (VEC == 8) {
      const uint4 v = ok ? __ldg(reinterpret_cast<const uint4*>(src + c)) : make_uint4(0, 0, 0, 0);
      *reinterpret_cast<uint4*>(dst + c) = v;
    } else {
      dst[c] = ok ? src[c] : __float2bfloat16_rn(0.0f);
    }
  }
}

}  // namespace aipe::kernels::embedding_detail
