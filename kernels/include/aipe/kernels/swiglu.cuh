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

// gpt-oss's clamped variant (swiglu.hpp): sigmoid with expf, as accurate as silu_mul.
__device__ inline float clamped_glu(float gate, float up, float alpha, float limit) {
  const float g = fminf(gate, limit);
  const float u = fminf(fmaxf(up, -limit), limit);
  return (u + 1.0f) * (g / (1.0f + expf(-alpha * g)));
}

// A grid-stride loop over rows x inter / VEC outputs: each thread reads 2 VEC interleaved inputs (one 16-byte load
// when VEC == 4) and writes VEC outputs.
template <int VEC>
__global__ void swiglu_clamped_kernel(const __nv_bfloat16* gate_up, __nv_bfloat16* out, int rows, int inter,
                                      float alpha, float limit) {
  const int per_row = inter / VEC;
  const std::int64_t n = std::int64_t(rows) * per_row;
  for (std::int64_t v = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; v < n;
       v += std::int64_t(gridDim.x) * blockDim.x) {
    const std::int64_t r = v / per_row;
    const int i = int(v % per_row) * VEC;
    const __nv_bfloat16* in = gate_up + r * 2 * inter + 2 * i;
    __nv_bfloat16* o = out + r * inter + i;
    if constexpr (VEC == 4) {
      float f[8];
      vec::load8(in, f);
      const __nv_bfloat162 a = __floats2bfloat162_rn(clamped_glu(f[0], f[1], alpha, limit),
                                                    clamped_glu(f[2], f[3], alpha, limit));
      const __nv_bfloat162 b = __floats2bfloat162_rn(clamped_glu(f[4], f[5], alpha, limit),
                                                    clamped_glu(f[6], f[7], alpha, limit));
      // 8-byte store: o is 8-byte aligned (out 16-byte aligned, i a multiple of 4 elements).
      uint2 packed;
      packed.x = *reinterpret_cast<const unsigned*>(&a);
      packed.y = *reinterpret_cast<const unsigned*>(&b);
      *reinterpret_cast<uint2*>(o) = packed;
    } else {
      o[0] = __float2bfloat16_rn(clamped_glu(__bfloat162float(in[0]), __bfloat162float(in[1]), alpha, limit));
    }
  }
}

}  // namespace aipe::kernels::swiglu_detail
