// Stream-K on the device: the hand-over of a warpgroup's partial tile between the workers that share a
// cut unit (the schedule itself: StreamKSchedule in aipe/kernels/scheduler.hpp).
#pragma once
#include <cstdint>

#include "aipe/kernels/ptx.cuh"

namespace aipe::kernels {

// A warpgroup's FP32 accumulator fragment (R registers a thread) to and from a stream-K partial slot of
// R * 128 floats in global memory, as float4 [R / 4][128 threads]: every warp instruction moves 512
// contiguous bytes. Written once and read once, by different SMs: both go through L2 only (.cg).
// Handing over: every thread stores, the warpgroup meets at `bar_id`, thread 0 releases the flag; the
// reader's thread 0 acquires it (and clears it for the next launch), the warpgroup meets, every thread adds.
template <int R>
__device__ __forceinline__ void sk_partial_store(float* slot, int* flag, const float (&acc)[R], int bar_id) {
  const int t = threadIdx.x % 128;
  float4* p = reinterpret_cast<float4*>(slot);
#pragma unroll
  for (int j = 0; j < R / 4; ++j)
    __stcg(p + j * 128 + t, make_float4(acc[4 * j], acc[4 * j + 1], acc[4 * j + 2], acc[4 * j + 3]));
  named_barrier_sync(bar_id, 128);
  if (t == 0) flag_store_release(flag, 1);
}

template <int R>
__device__ __forceinline__ void sk_partial_add(const float* slot, int* flag, float (&acc)[R], int bar_id) {
  const int t = threadIdx.x % 128;
  if (t == 0) {
    while (flag_load_acquire(flag) == 0) {
    }
    *flag = 0;  // nobody else reads it in this launch; the next launch starts after this one ends
  }
  named_barrier_sync(bar_id, 128);
  static_assert(R % 32 == 0, "the slot is added eight float4 at a time");
  const float4* p = reinterpret_cast<const float4*>(slot);
  // Eight loads in flight at a time: the compiler would otherwise hoist all R / 4 of them (R registers)
  // above the adds, next to a live accumulator.
#pragma unroll
  for (int j0 = 0; j0 < R / 4; j0 += 8) {
    float4 v[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) v[j] = __ldcg(p + (j0 + j) * 128 + t);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      acc[4 * (j0 + j)] += v[j].x;
      acc[4 * (j0 + j) + 1] += v[j].y;
      acc[4 * (j0 + j) + 2] += v[j].z;
      acc[4 * (j0 + j) + 3] += v[j].w;
    }
    asm volatile("" ::: "memory");  // the next eight loads stay below these adds
  }
}

}  // namespace aipe::kernels
