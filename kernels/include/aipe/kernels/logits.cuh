// Soft-capping and log-softmax kernels (contract: aipe/kernels/logits.hpp).
//   softcap_kernel      a grid-stride loop over every logit of the batch
//   log_softmax_kernel  a CTA per row: pass 1 an online (max, sum of exp) per thread, merged across the block;
//                       pass 2 writes z - (max + log sum)
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

#include "aipe/kernels/vec.cuh"

namespace aipe::kernels::logits_detail {

inline constexpr int kRowThreads = 512;

__device__ inline float to_f(float v) { return v; }
__device__ inline float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ inline void from_f(float& d, float v) { d = v; }
__device__ inline void from_f(__nv_bfloat16& d, float v) { d = __float2bfloat16_rn(v); }

template <class T>
__global__ void softcap_kernel(T* logits, std::int64_t ld, int batch, int vocab, float cap) {
  const std::int64_t n = std::int64_t(batch) * vocab;
  const float inv = 1.0f / cap;
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n; i += std::int64_t(gridDim.x) * blockDim.x) {
    T& v = logits[(i / vocab) * ld + i % vocab];
    from_f(v, cap * tanhf(to_f(v) * inv));
  }
}

// Merges two (max, sum of exp(x - max)) pairs.
__device__ inline void merge(float& m, float& s, float m2, float s2) {
  if (m2 > m) {
    s = s * expf(m - m2) + s2;  // m = -inf: s is 0, exp(-inf) = 0
    m = m2;
  } else if (m2 > -__int_as_float(0x7f800000)) {
    s += s2 * expf(m2 - m);
  }
}

template <class T>
__global__ void __launch_bounds__(kRowThreads) log_softmax_kernel(const T* logits, std::int64_t ld, int vocab, float* out,
                                                                  std::int64_t ld_out) {
  __shared__ float sm[32], ss[32];
  __shared__ float lse;
  const T* row = logits + std::int64_t(blockIdx.x) * ld;
  float m = -__int_as_float(0x7f800000), s = 0.0f;
  for (int i = threadIdx.x; i < vocab; i += kRowThreads) {
    const float x = to_f(row[i]);
    if (x != x) {  // NaN: the whole row's log-probabilities are NaN, as in PyTorch
      m = x;
      s = 1.0f;
      break;
    }
    merge(m, s, x, 1.0f);
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
    if (m2 != m2 || m != m) m = m2 != m2 ? m2 : m;
    else merge(m, s, m2, s2);
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) sm[warp] = m, ss[warp] = s;
  __syncthreads();
  if (threadIdx.x == 0) {
    float bm = sm[0], bs = ss[0];
    for (int w = 1; w < kRowThreads / 32; ++w) {
      if (sm[w] != sm[w] || bm != bm) bm = sm[w] != sm[w] ? sm[w] : bm;
      else merge(bm, bs, sm[w], ss[w]);
    }
    lse = bm + logf(bs);  // a row of -inf: -inf + log 0 = -inf, and x - lse below is NaN
  }
  __syncthreads();
  float* o = out + std::int64_t(blockIdx.x) * ld_out;
  for (int i = threadIdx.x; i < vocab; i += kRowThreads) o[i] = to_f(row[i]) - lse;
}

}  // namespace aipe::kernels::logits_detail
