// The fused epilogue of aipe::kernels::gemm: scale, bias, activation (GELU tanh form, SiLU) and residual add on a
// warpgroup's WGMMA accumulator fragment (FP32), before the one BF16 store, selected at run time from plain values
// (EpilogueArgs) once per tile, so one kernel instantiation serves every Epilogue (gemm.hpp) a caller names.
// epilogue.cuh's Chain<...> composes the same operations at compile time, one instantiation per combination; this
// file adds what a production GEMM needs besides: the activations through tanh.approx.f32 (one MUFU instruction
// instead of tanhf's or __expf's sequences) as operations of that family, and a thread's bias values loaded as
// BF16 pairs ahead of the epilogue (during the tile's K loop). Device code only.
//
// Fragment of wgmma m64nBN (f32), as aipe/kernels/wgmma.cuh documents it: thread t of the warpgroup holds register
// acc[4j + 2h + e] = row 16 (t / 32) + (t % 32) / 4 + 8 h, column 8 j + 2 (t % 4) + e of the warpgroup's
// 64 x BN block. A thread's two columns of a group j are adjacent and even-aligned (the block starts at a
// multiple of 64 columns), so one BF16 pair load fetches both biases.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

#include "aipe/kernels/activation.hpp"
#include "aipe/kernels/epilogue.cuh"

namespace aipe::kernels {

// What the kernel receives of an Epilogue (gemm.hpp): plain values, passed by value as a kernel parameter.
struct EpilogueArgs {
  float alpha = 1.f, beta = 1.f;
  const __nv_bfloat16* bias = nullptr;      // bias[N], or none
  const __nv_bfloat16* residual = nullptr;  // R[M][ldr], or none
  long long ldr = 0;
  Activation act = Activation::none;
  bool identity = true;  // alpha 1, nothing else: the accumulators are stored as they are
};

#if defined(__CUDACC__)

// tanh.approx.f32: one MUFU instruction, max relative error ~2^-11 (PTX ISA), below the BF16 output's 2^-9.
__device__ __forceinline__ float tanh_approx(float x) {
  float y;
  asm("tanh.approx.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

namespace epi {
// GELU, tanh form, with tanh.approx.f32: 0.5 v (1 + tanh(u)), u = sqrt(2/pi) (v + 0.044715 v^3)
// = v (0.7978845608 + 0.0356774081 v^2).
struct GeluTanhApprox {
  __device__ __forceinline__ float operator()(float v, int, int) const {
    const float u = v * fmaf(0.0356774081f, v * v, 0.7978845608f), h = 0.5f * v;
    return fmaf(h, tanh_approx(u), h);
  }
};
// SiLU as v sigmoid(v) = 0.5 v (1 + tanh(v / 2)): one MUFU instruction instead of an exp and a reciprocal.
struct SiluTanhApprox {
  __device__ __forceinline__ float operator()(float v, int, int) const {
    const float h = 0.5f * v;
    return fmaf(h, tanh_approx(h), h);
  }
};
template <>
inline constexpr bool kReadsMemory<GeluTanhApprox> = false;
template <>
inline constexpr bool kReadsMemory<SiluTanhApprox> = false;
}  // namespace epi

template <Activation A>
__device__ __forceinline__ float activate(float t) {
  if constexpr (A == Activation::gelu_tanh) return epi::GeluTanhApprox{}(t, 0, 0);
  else if constexpr (A == Activation::silu) return epi::SiluTanhApprox{}(t, 0, 0);
  else return t;
}

// A thread's bias values for the 64 x BN block starting at column col0: b[j] holds columns c, c + 1 of column group
// j (c = col0 + 8 j + 2 (lane % 4)) as a BF16 pair, zeros past N or without a bias. A kernel loads them during the
// tile's K loop (BN / 8 registers), so the epilogue does not wait for them after the last wgmma. Pairs where N and
// the pointer keep them aligned, single elements otherwise.
template <int BN>
__device__ __forceinline__ void load_bias_pairs(std::uint32_t (&b)[BN / 8], const EpilogueArgs& e, int N, int col0) {
  const int c0 = col0 + 2 * (threadIdx.x % 4);
  const bool pairs = (N % 2 == 0) && (reinterpret_cast<std::uintptr_t>(e.bias) % 4 == 0);
#pragma unroll
  for (int j = 0; j < BN / 8; ++j) {
    const int c = c0 + 8 * j;
    __nv_bfloat162 v = __floats2bfloat162_rn(0.f, 0.f);
    if (e.bias) {
      if (pairs) {
        if (c < N) v = __ldg(reinterpret_cast<const __nv_bfloat162*>(e.bias + c));  // N, c even: c + 1 < N too
      } else {
        if (c < N) v.x = e.bias[c];
        if (c + 1 < N) v.y = e.bias[c + 1];
      }
    }
    b[j] = *reinterpret_cast<const std::uint32_t*>(&v);
  }
}

// The epilogue on the fragment of the 64 x BN block whose first element is C[row0][col0], with the block's bias
// pairs from load_bias_pairs. Loads of the residual are guarded by M and N (edge tiles); pairs where the
// alignment allows, single elements otherwise.
template <int BN, Activation A>
__device__ __forceinline__ void apply_epilogue_as(float (&acc)[BN / 2], const std::uint32_t (&bias)[BN / 8],
                                                  const EpilogueArgs& e, int M, int N, int row0, int col0) {
  const int t = threadIdx.x % 128, lane = t % 32;
  const int r0 = row0 + 16 * (t / 32) + lane / 4;
  const int c0 = col0 + 2 * (lane % 4);
  const bool res_pairs = (e.ldr % 2 == 0) && (reinterpret_cast<std::uintptr_t>(e.residual) % 4 == 0);
#pragma unroll
  for (int j = 0; j < BN / 8; ++j) {
    const int c = c0 + 8 * j;
    const float2 b = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&bias[j]));
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float v0 = activate<A>(fmaf(acc[4 * j + 2 * h], e.alpha, b.x));
      float v1 = activate<A>(fmaf(acc[4 * j + 2 * h + 1], e.alpha, b.y));
      if (e.residual) {
        const int r = r0 + 8 * h;
        float x0 = 0.f, x1 = 0.f;
        if (r < M) {
          const __nv_bfloat16* p = e.residual + static_cast<long long>(r) * e.ldr + c;
          if (res_pairs && c + 1 < N) {
            const float2 v = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p));
            x0 = v.x;
            x1 = v.y;
          } else {
            if (c < N) x0 = __bfloat162float(p[0]);
            if (c + 1 < N) x1 = __bfloat162float(p[1]);
          }
        }
        v0 = fmaf(e.beta, x0, v0);
        v1 = fmaf(e.beta, x1, v1);
      }
      acc[4 * j + 2 * h] = v0;
      acc[4 * j + 2 * h + 1] = v1;
    }
  }
}

// The epilogue of a tile whose activation is applied later, as it is stored (store_parked_box): alpha and the bias
// only, t = alpha acc + bias, which the kernel then rounds to BF16 and parks. Never with a residual (the activation
// comes before it).
template <int BN>
__device__ __forceinline__ void apply_epilogue_before_activation(float (&acc)[BN / 2], const std::uint32_t (&bias)[BN / 8],
                                                                 const EpilogueArgs& e, int M, int N, int row0,
                                                                 int col0) {
  apply_epilogue_as<BN, Activation::none>(acc, bias, e, M, N, row0, col0);
}

// A parked box through the activation, in shared memory (epilogue_tma_store_box's box operation): the 64 x 64
// BF16 box is 512 chunks of 16 bytes; thread t of the warpgroup takes chunks t, t + 128, t + 256, t + 384, each
// unpacked to FP32, activated and rounded back in place. The operation is element-wise and every column's bias is
// in t already, so the swizzled order of the chunks does not matter. t was rounded to BF16 once already (2^-9
// relative); the output is rounded as it would have been anyway.
template <Activation A>
__device__ __forceinline__ void activate_box_chunks(unsigned char* slot, int t) {
#pragma unroll 1
  for (int i = t; i < 512; i += 128) {
    const uint4 v = *reinterpret_cast<const uint4*>(slot + 16 * i);
    std::uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const float2 x = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&w[q]));
      const __nv_bfloat162 y = __floats2bfloat162_rn(activate<A>(x.x), activate<A>(x.y));
      w[q] = *reinterpret_cast<const std::uint32_t*>(&y);
    }
    *reinterpret_cast<uint4*>(slot + 16 * i) = make_uint4(w[0], w[1], w[2], w[3]);
  }
}
// The activation is a run-time value (uniform) tested here, around the chunk loop, where no fragment register is
// live: a branch around the whole box store, one copy of it per activation, costs the consumer hundreds of bytes
// of spills at BN = 256 (ptxas -v), where this costs nothing.
struct ActivateBox {
  static constexpr bool kActive = true;
  Activation act = Activation::none;
  __device__ __forceinline__ void operator()(unsigned char* slot, int t) const {
    if (act == Activation::gelu_tanh) activate_box_chunks<Activation::gelu_tanh>(slot, t);
    else if (act == Activation::silu) activate_box_chunks<Activation::silu>(slot, t);
  }
};

// Box b of a parked tile (pack_bf16 of t, or of the finished values when `act` is none) to C through TMA, the
// activation applied on the way (epilogue_tma_store_box's pair operation). `act` is uniform (one per launch);
// b a constant once inlined, as epilogue_tma_store_box requires.
template <int BN>
__device__ __forceinline__ void store_parked_box(const std::uint32_t (&p)[BN / 4], unsigned char* epi, const void* map,
                                                 int row0, int col0, int bar_id, int b, Activation act) {
  epilogue_tma_store_box<BN>(p, epi, map, row0, col0, bar_id, b, ActivateBox{act});
}

// The activation picked once per tile (a uniform branch), each case its own unrolled loop.
template <int BN>
__device__ __forceinline__ void apply_epilogue(float (&acc)[BN / 2], const std::uint32_t (&bias)[BN / 8],
                                               const EpilogueArgs& e, int M, int N, int row0, int col0) {
  if (e.identity) return;
  switch (e.act) {
    case Activation::gelu_tanh: apply_epilogue_as<BN, Activation::gelu_tanh>(acc, bias, e, M, N, row0, col0); break;
    case Activation::silu: apply_epilogue_as<BN, Activation::silu>(acc, bias, e, M, N, row0, col0); break;
    default: apply_epilogue_as<BN, Activation::none>(acc, bias, e, M, N, row0, col0); break;
  }
}

#endif  // __CUDACC__

}  // namespace aipe::kernels
