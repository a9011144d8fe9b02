// Warp-level tensor-core building blocks of sm_80+ (Ampere's mma.sync, still full rate for small tiles on Hopper):
// ldmatrix fragment loads from shared memory and the BF16 m16n8k16 MMA with FP32 accumulators. Used where a
// tile is too small for a warpgroup's wgmma (decode attention: 16 query rows against 16 keys per warp).
//
// Fragment layouts of mma.m16n8k16.row.col (lane = threadIdx.x % 32, g = lane / 4, t = lane % 4):
//   A 16x16 (row-major): a0 = A[g][2t..2t+1]  a1 = A[g+8][2t..]  a2 = A[g][2t+8..]  a3 = A[g+8][2t+8..]
//   B 16x8  (k x n):     b0 = B[2t..2t+1][g]  b1 = B[2t+8..2t+9][g]
//   C 16x8  (FP32):      c0, c1 = C[g][2t..2t+1]  c2, c3 = C[g+8][2t..2t+1]
// ldmatrix.x4 loads four 8x8 BF16 matrices; lanes 8i..8i+7 give the row addresses of matrix i (16 bytes each),
// and register i of every lane receives that lane's pair of matrix i (the .trans form transposes each matrix).
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

#include "aipe/kernels/ptx.cuh"

namespace aipe::kernels {

__device__ __forceinline__ void ldmatrix_x4(std::uint32_t (&r)[4], const void* smem_row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(smem_row)));
}

__device__ __forceinline__ void ldmatrix_x4_trans(std::uint32_t (&r)[4], const void* smem_row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(smem_row)));
}

// c += a * b: A 16x16 BF16, B 16x8 BF16, C 16x8 FP32.
__device__ __forceinline__ void mma_bf16_16816(float (&c)[4], const std::uint32_t (&a)[4], std::uint32_t b0,
                                               std::uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two floats as a BF16 pair (lo in the low half), the register form of an A fragment element pair.
__device__ __forceinline__ std::uint32_t pack_bf16x2(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const std::uint32_t*>(&v);
}

}  // namespace aipe::kernels
