// A plain FP32 attention on the device, the reference every attention rung and kernel is verified against at
// sizes too big for the CPU. Written for obviousness, not speed: one CTA per (query row, head, batch), the
// row's scores in shared memory, two exact passes (max, then sum and P.V), no tiling, no online softmax, so it
// shares no idea with the kernels it checks.
//
// Layouts (elements, strides given so packed and padded layouts both work):
//   Q [b][seq_q][heads][d], K and V [b][seq_kv][kv_heads][d] in T (BF16 or FP16); query head h reads kv head
//   h / (heads / kv_heads) (GQA and MQA).
// Output (FP32, compact): O [b][rows][heads][d] and LSE [b][heads][rows] (natural log), for the query rows
//   q = r * row_step, r < rows = ceil(seq_q / row_step): row_step > 1 samples the rows of a big problem.
// softmax(scale * q.k) over the keys the mask lets through; a learned sink logit per head (gpt-oss), when
// given, joins the denominator only. A row that sees no key (and has no sink) has O = 0 and LSE = -inf.
// A score modifier (score_mods.cuh), when given, maps each visible scaled score before the softmax.
#pragma once
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "aipe/check.hpp"
#include "aipe/kernels/attention/masks.cuh"
#include "aipe/kernels/attention/score_mods.cuh"

namespace aipe::kernels::attention {

template <class T>
struct ReferenceArgs {
  const T *q = nullptr, *k = nullptr, *v = nullptr;
  std::int64_t q_batch = 0, q_row = 0, q_head = 0;   // Q strides (elements); d is contiguous
  std::int64_t kv_batch = 0, kv_row = 0, kv_head = 0;  // K and V strides (the same for both)
  int batch = 0, heads = 0, kv_heads = 0, seq_q = 0, seq_kv = 0, d = 0;
  float scale = 1.f;
  const float* sinks = nullptr;  // [heads] or null
  int row_step = 1;
  float* o = nullptr;    // [batch][rows][heads][d]
  float* lse = nullptr;  // [batch][heads][rows] or null
  __host__ __device__ int rows() const { return (seq_q + row_step - 1) / row_step; }
};

namespace detail {

// Block-wide reduction of one value per thread (blockDim.x a multiple of 32, at most 1024).
template <bool Max>
__device__ float block_reduce(float x, float* scratch) {
  for (int o = 16; o > 0; o >>= 1) {
    const float y = __shfl_xor_sync(0xffffffffu, x, o);
    x = Max ? fmaxf(x, y) : x + y;
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  __syncthreads();  // scratch may still be read from the previous reduction
  if (lane == 0) scratch[warp] = x;
  __syncthreads();
  x = lane < warps ? scratch[lane] : (Max ? -INFINITY : 0.f);
  for (int o = 16; o > 0; o >>= 1) {
    const float y = __shfl_xor_sync(0xffffffffu, x, o);
    x = Max ? fmaxf(x, y) : x + y;
  }
  return x;
}

template <class T, class Mask, class Score>
__global__ void reference_kernel(ReferenceArgs<T> a, Mask mask, Score score) {
  extern __shared__ float smem[];  // [seq_kv] scores, then [d] query, then [32] scratch
  float* s = smem;
  float* qv = smem + a.seq_kv;
  float* scratch = qv + a.d;
  const int r = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int qi = r * a.row_step;
  const int hk = h / (a.heads / a.kv_heads);
  const T* qrow = a.q + b * a.q_batch + std::int64_t(qi) * a.q_row + h * a.q_head;
  for (int i = threadIdx.x; i < a.d; i += blockDim.x) qv[i] = static_cast<float>(qrow[i]);
  __syncthreads();
  const T* kb = a.k + b * a.kv_batch + hk * a.kv_head;
  const T* vb = a.v + b * a.kv_batch + hk * a.kv_head;
  float mx = -INFINITY;
  for (int j = threadIdx.x; j < a.seq_kv; j += blockDim.x) {
    float x = -INFINITY;
    if (mask(b, h, qi, j)) {
      const T* kr = kb + std::int64_t(j) * a.kv_row;
      float acc = 0.f;
      for (int i = 0; i < a.d; ++i) acc = fmaf(qv[i], static_cast<float>(kr[i]), acc);
      x = score(acc * a.scale, b, h, qi, j);
    }
    s[j] = x;
    mx = fmaxf(mx, x);
  }
  const float sink = a.sinks ? a.sinks[h] : -INFINITY;
  mx = fmaxf(block_reduce<true>(mx, scratch), sink);
  float sum = 0.f;
  for (int j = threadIdx.x; j < a.seq_kv; j += blockDim.x) {
    const float p = s[j] == -INFINITY ? 0.f : expf(s[j] - mx);
    s[j] = p;
    sum += p;
  }
  sum = block_reduce<false>(sum, scratch);  // its leading __syncthreads also publishes s[]
  if (mx != -INFINITY) sum += expf(sink - mx);
  const float inv = sum > 0.f ? 1.f / sum : 0.f;
  const int rows = a.rows();
  float* orow = a.o + ((std::int64_t(b) * rows + r) * a.heads + h) * a.d;
  for (int i = threadIdx.x; i < a.d; i += blockDim.x) {
    float acc = 0.f;
    for (int j = 0; j < a.seq_kv; ++j)
      if (s[j] != 0.f) acc = fmaf(s[j], static_cast<float>(vb[std::int64_t(j) * a.kv_row + i]), acc);
    orow[i] = acc * inv;
  }
  if (a.lse && threadIdx.x == 0)
    a.lse[(std::int64_t(b) * a.heads + h) * rows + r] = sum > 0.f ? mx + logf(sum) : -INFINITY;
}

}  // namespace detail

// Runs the reference on `stream`. Throws std::invalid_argument for shapes it cannot take (the whole score row
// must fit in one CTA's shared memory: seq_kv up to ~56K on Hopper).
template <class T, class Mask, class Score>
void reference_attention(const ReferenceArgs<T>& a, Mask mask, Score score, cudaStream_t stream) {
  if (a.batch < 1 || a.heads < 1 || a.kv_heads < 1 || a.seq_q < 1 || a.seq_kv < 1 || a.d < 1 || a.row_step < 1)
    throw std::invalid_argument("reference_attention: every size must be at least 1");
  if (a.heads % a.kv_heads != 0)
    throw std::invalid_argument("reference_attention: heads (" + std::to_string(a.heads) +
                                ") must be a multiple of kv_heads (" + std::to_string(a.kv_heads) + ")");
  if (a.heads > 65535 || a.batch > 65535)
    throw std::invalid_argument("reference_attention: grid too large");
  const std::size_t smem = (std::size_t(a.seq_kv) + a.d + 32) * sizeof(float);
  int dev = 0, optin = 0;
  AIPE_CUDA(cudaGetDevice(&dev));
  AIPE_CUDA(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  if (smem > std::size_t(optin))
    throw std::invalid_argument("reference_attention: seq_kv " + std::to_string(a.seq_kv) +
                                " does not fit one CTA's shared memory (" + std::to_string(optin) + " bytes)");
  auto* kern = detail::reference_kernel<T, Mask, Score>;
  AIPE_CUDA(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  kern<<<dim3(a.rows(), a.heads, a.batch), 256, smem, stream>>>(a, mask, score);
  AIPE_CHECK_LAUNCH();
}
template <class T, class Mask = NoMask>
void reference_attention(const ReferenceArgs<T>& a, Mask mask = {}, cudaStream_t stream = nullptr) {
  reference_attention(a, mask, NoScoreMod{}, stream);
}

}  // namespace aipe::kernels::attention
