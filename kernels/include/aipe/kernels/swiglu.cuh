// SwiGLU kernel (contract: aipe/kernels/swiglu.hpp). A grid-stride loop over tokens x inter / VEC vectors: each
// thread reads VEC gates and the VEC ups inter columns later and writes VEC outputs: 4 bytes read and 2 written per
// output element, one pass.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

#include "aipe/kernels/vec.cuh"
#include "aipe/kernels/ptx.cuh"

namespace aipe::kernels::swiglu_detail {

// silu(g) u with an accurate exponential (expf: an error of a few FP32 ulp, far below the BF16 rounding).
__device__ inline float silu_mul(float g, float u) { return g / (1.0f + expf(-g)) * u; }

template <int VEC>
__global__ void swiglu_kernel(const __nv_bfloat16* gate_up, __nv_bfloat16* out, int tokens, int inter) {
  pdl_begin();  // launched with launch_pdl
  const int per_row = inter / VEC;
  const std::int64_t n = std::int64_t(tokens) * per_row;
  for (std::int64_t v = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; v < n;
       v += std::int64_t(gridDim.x) * blockDim.x) {
    const std::int64_t t = v / per_row;
    const int i = int(v % per_row) * VEC;
    const __nv_bfloat16* g = gate_up + t * 2 * inter + i;
    if constexpr (VEC == 8) {
      float gf[8], uf[8], o[8];
      vec::load8(g, gf);
      vec::load8(g + inter, uf);
#pragma unroll
      for (int k = 0; k < 8; ++k) o[k] = silu_mul(gf[k], uf[k]);
      vec::store8(out + t * inter + i, o);
    } else {
      out[t * inter + i] = __float2bfloat16_rn(silu_mul(__bfloat162float(g[0]), __bfloat162float(g[inter])));
    }
  }
}

}  // namespace aipe::kernels::swiglu_detail
