// RoPE kernels (the contract: aipe/kernels/rope.hpp).
//   rope_table_kernel  a thread per (position, j): cos/sin of the FP32 angle p * inv_freq[j], in FP64
//   rope_kernel        a CTA per token; a thread per (head, VEC consecutive j): reads x1 = x[j..j+VEC) and
//                      x2 = x[d/2 + j..), the VEC (cos, sin) pairs of the token's position, writes both halves back.
//                      d = 128 with VEC = 8: 8 threads a head, 16-byte loads of x and 64 bytes of the table.
#pragma once
#include <cuda_bf16.h>
#include <vector_types.h>

#include <cstdint>

#include "aipe/kernels/vec.cuh"
#include "aipe/kernels/ptx.cuh"

namespace aipe::kernels::rope {

struct InvFreq {
  float v[256];  // [dim / 2], dim <= kRopeMaxHeadDim
};

__global__ void rope_table_kernel(float2* table, int max_positions, int half, InvFreq f, float scaling) {
  const std::int64_t n = std::int64_t(max_positions) * half;
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    const int p = int(i / half), j = int(i % half);
    const float angle = __fmul_rn(float(p), f.v[j]);  // HF: inv_freq (FP32) @ positions (FP32)
    double s, c;
    sincos(double(angle), &s, &c);
    table[i] = make_float2(float(c * scaling), float(s * scaling));
  }
}

template <int VEC>
__global__ void rope_kernel(__nv_bfloat16* q, std::int64_t q_stride, int heads, __nv_bfloat16* k,
                            std::int64_t k_stride, int kv_heads, const int* positions, const float2* table,
                            int max_positions, int half, int* error) {
  pdl_begin();  // launched with launch_pdl
  const int t = blockIdx.x;
  const int p = positions[t];
  if (p < 0 || p >= max_positions) {
    if (error && threadIdx.x == 0) *error = 1;
    return;
  }
  const float2* cs = table + std::int64_t(p) * half;
  const int chunks = half / VEC, items = (heads + kv_heads) * chunks;
  const int d = 2 * half;
  for (int it = threadIdx.x; it < items; it += blockDim.x) {
    const int h = it / chunks, j = (it % chunks) * VEC;
    __nv_bfloat16* x = h < heads ? q + t * q_stride + std::int64_t(h) * d : k + t * k_stride + std::int64_t(h - heads) * d;
    float x1[VEC], x2[VEC], c[VEC], s[VEC];
    if constexpr (VEC == 8) {
      vec::load8(x + j, x1);
      vec::load8(x + half + j, x2);
      const float4* cs4 = reinterpret_cast<const float4*>(cs + j);  // 8 float2 = 4 float4, 16-byte aligned
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float4 v = __ldg(cs4 + i);
        c[2 * i] = v.x, s[2 * i] = v.y, c[2 * i + 1] = v.z, s[2 * i + 1] = v.w;
      }
    } else {
      x1[0] = __bfloat162float(x[j]);
      x2[0] = __bfloat162float(x[half + j]);
      const float2 v = __ldg(cs + j);
      c[0] = v.x, s[0] = v.y;
    }
    float o1[VEC], o2[VEC];
#pragma unroll
    for (int i = 0; i < VEC; ++i) {
      o1[i] = x1[i] * c[i] - x2[i] * s[i];
      o2[i] = x2[i] * c[i] + x1[i] * s[i];
    }
    if constexpr (VEC == 8) {
      vec::store8(x + j, o1);
      vec::store8(x + half + j, o2);
    } else {
      x[j] = __float2bfloat16_rn(o1[0]);
      x[half + j] = __float2bfloat16_rn(o2[0]);
    }
  }
}

}  // namespace aipe::kernels::rope
