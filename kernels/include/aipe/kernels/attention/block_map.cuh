// The block map of a mask for forward_flex (forward_flex.hpp): every (64-query block, 128-key tile) of every
// batch (and head, for a map of per-head masks) classified empty / full / partial, computed once per mask by
// this small kernel, which asks the mask about every element (so it is exact for any functor, including those
// that read data, like Document, whose classify() cannot tell). Elements past seq_q or seq_kv do not count:
// the forward kernel masks keys past seq_kv itself and never stores rows past seq_q.
//
// One CTA of 256 threads per block (8192 elements, 32 a thread); __syncthreads_or / _and give "some" and
// "every" visible. Optionally it also counts the visible pairs (the useful work of the problem, summed over
// the map's batch and heads): the FLOP count a benchmark credits.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>

#include "aipe/check.hpp"
#include "aipe/kernels/attention/forward_flex.hpp"
#include "aipe/kernels/attention/masks.cuh"

namespace aipe::kernels::attention {
namespace detail {

template <class Mask>
__global__ void __launch_bounds__(256) block_map_kernel(Mask mask, std::uint8_t* classes, int heads, int q_blocks,
                                                        int kv_blocks, int seq_q, int seq_kv,
                                                        unsigned long long* visible) {
  const int kb = blockIdx.x, qb = blockIdx.y, bh = blockIdx.z, b = bh / heads, h = bh % heads;
  const int q0 = qb * kMapRows, kv0 = kb * kMapKeys;
  int any = 0, all = 1, count = 0;
  for (int e = threadIdx.x; e < kMapRows * kMapKeys; e += blockDim.x) {
    const int q = q0 + e / kMapKeys, kv = kv0 + e % kMapKeys;
    if (q >= seq_q || kv >= seq_kv) continue;
    const bool v = mask(b, h, q, kv);
    any |= v;
    all &= v;
    count += v;
  }
  if (visible) {
    for (int o = 16; o > 0; o >>= 1) count += __shfl_xor_sync(0xffffffffu, count, o);
    if (threadIdx.x % 32 == 0 && count) atomicAdd(visible, static_cast<unsigned long long>(count));
  }
  any = __syncthreads_or(any);
  all = __syncthreads_and(all);
  if (threadIdx.x == 0) {
    const TileClass c = !any ? TileClass::empty : all ? TileClass::full : TileClass::partial;
    classes[(std::int64_t(bh) * q_blocks + qb) * kv_blocks + kb] = static_cast<std::uint8_t>(c);
  }
}

}  // namespace detail

// Fills `classes` (map.bytes() on the device; map from BlockMap::shape) for `mask` on a seq_q x seq_kv
// problem; adds the visible pairs to *visible (device, may be null). Asynchronous on `stream`.
template <class Mask>
void build_block_map(const Mask& mask, const BlockMap& map, std::uint8_t* classes, int seq_q, int seq_kv,
                     cudaStream_t stream, unsigned long long* visible = nullptr) {
  const BlockMap want = BlockMap::shape(map.batch, map.heads, seq_q, seq_kv);
  if (!classes) throw std::invalid_argument("build_block_map: classes is null");
  if (map.batch < 1 || map.heads < 1 || map.q_blocks != want.q_blocks || map.kv_blocks != want.kv_blocks)
    throw std::invalid_argument("build_block_map: the map's shape is not BlockMap::shape of this problem");
  if (std::int64_t(map.batch) * map.heads > 65535 || map.q_blocks > 65535)
    throw std::invalid_argument("build_block_map: batch x heads and the query blocks must each stay below 65536");
  detail::block_map_kernel<Mask><<<dim3(map.kv_blocks, map.q_blocks, map.batch * map.heads), 256, 0, stream>>>(
      mask, classes, map.heads, map.q_blocks, map.kv_blocks, seq_q, seq_kv, visible);
  AIPE_CHECK_LAUNCH();
}

}  // namespace aipe::kernels::attention
