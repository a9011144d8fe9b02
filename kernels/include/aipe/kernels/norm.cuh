// RMSNorm kernels (see aipe/kernels/norm.hpp for the contract). One CTA per token row:
//   pass 1  each thread reads its elements (VEC = 8: 16-byte vectors; VEC = 1: single BF16), adds delta in the fused
//           form (and stores the rounded sum back to hidden), keeps them as FP32 in shared memory, sums squares
//   reduce  block_sum -> inv_rms = rsqrt(ss / hidden + eps)
//   pass 2  y = x * inv_rms * w from shared memory: the row is read from DRAM once and written once.
// Shared memory: hidden floats (dynamic; element i of vector v at [i * hidden / VEC + v]) + 33 floats of
// reduction scratch (static).
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

#include "aipe/kernels/vec.cuh"
#include "aipe/kernels/ptx.cuh"

namespace aipe::kernels::norm {

template <int VEC, bool kFusedAdd>
__global__ void rmsnorm_kernel(const __nv_bfloat16* x, __nv_bfloat16* hidden, const __nv_bfloat16* delta,
                               const __nv_bfloat16* w, __nv_bfloat16* y, int cols, float eps) {
  pdl_begin();  // launched with launch_pdl
  extern __shared__ float row[];  // [cols]
  __shared__ float scratch[33];
  const std::int64_t off = std::int64_t(blockIdx.x) * cols;
  const int nvec = cols / VEC;
  float ss = 0.f;
  for (int v = threadIdx.x; v < nvec; v += blockDim.x) {
    const int c = v * VEC;
    float f[VEC];
    if constexpr (VEC == 8) {
      if constexpr (kFusedAdd) {
        float d[8];
        vec::load8(hidden + off + c, f);
        vec::load8(delta + off + c, d);
#pragma unroll
        for (int i = 0; i < 8; ++i) f[i] = vec::round_bf16(f[i] + d[i]);  // the value hidden holds from now on
        vec::store8(hidden + off + c, f);
      } else {
        vec::load8(x + off + c, f);
      }
    } else {
      if constexpr (kFusedAdd) {
        f[0] = vec::round_bf16(__bfloat162float(hidden[off + c]) + __bfloat162float(delta[off + c]));
        hidden[off + c] = __float2bfloat16_rn(f[0]);
      } else {
        f[0] = __bfloat162float(x[off + c]);
      }
    }
#pragma unroll
    for (int i = 0; i < VEC; ++i) {
      row[i * nvec + v] = f[i];  // element i of every vector together: a warp's stores hit 32 banks, no conflict
      ss = fmaf(f[i], f[i], ss);
    }
  }
  const float inv_rms = rsqrtf(vec::block_sum(ss, scratch) / float(cols) + eps);
  // Each thread reads back only the elements it wrote: no barrier needed between the passes for `row`.
  for (int v = threadIdx.x; v < nvec; v += blockDim.x) {
    const int c = v * VEC;
    if constexpr (VEC == 8) {
      float wf[8], o[8];
      vec::load8_ro(w + c, wf);
#pragma unroll
      for (int i = 0; i < 8; ++i) o[i] = row[i * nvec + v] * inv_rms * wf[i];
      vec::store8(y + off + c, o);
    } else {
      y[off + c] = __float2bfloat16_rn(row[v] * inv_rms * __bfloat162float(w[c]));
    }
  }
}

}  // namespace aipe::kernels::norm
