// The fused epilogue of aipe::kernels::gemm: scale, bias, activation (GELU tanh form, SiLU) and residual add on a
// warpgroup's WGMMA accumulator fragment (FP32), before the one BF16 store, selected at run time from plain values
// (EpilogueArgs) once per tile, so one kernel instantiation serves every Epilogue (gemm.hpp) a caller names.
// epilogue.cuh's Chain<...> composes the same operations at compile time, one instantiation per combination; this
// file adds what a production GEMM needs besides: the activations through tanh.approx.f32 (one MUFU instruction
// instead of tanhf's or __expf's sequences) as operations of that family, and the fragment walk that loads a
// thread's two bias values of a column group as one BF16 pair. Device code only.
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

// The epilogue on the fragment of the 64 x BN block whose first element is C[row0][col0]. Loads of the bias and
// the residual are guarded by M and N (edge tiles); pairs where the alignment allows, single elements otherwise.
template <int BN, Activation A>
__device__ __forceinline__ void apply_epilogue_as(float (&acc)[BN / 2], const EpilogueArgs& e, int M, int N, int row0,
                                                  int col0) {
  const int t = threadIdx.x % 128, lane = t % 32;
  const int r0 = row0 + 16 * (t / 32) + lane / 4;
  const int c0 = col0 + 2 * (lane % 4);
  const bool bias_pairs = (N % 2 == 0) && (reinterpret_cast<std::uintptr_t>(e.bias) % 4 == 0);
  const bool res_pairs = (e.ldr % 2 == 0) && (reinterpret_cast<std::uintptr_t>(e.residual) % 4 == 0);
#pragma unroll
  for (int j = 0; j < BN / 8; ++j) {
    const int c = c0 + 8 * j;
    float b0 = 0.f, b1 = 0.f;
    if (e.bias) {
      if (bias_pairs) {
        if (c < N) {  // N even and c even: c + 1 < N too
          const float2 v = __bfloat1622float2(__ldg(reinterpret_cast<const __nv_bfloat162*>(e.bias + c)));
          b0 = v.x;
          b1 = v.y;
        }
      } else {
        if (c < N) b0 = __bfloat162float(e.bias[c]);
        if (c + 1 < N) b1 = __bfloat162float(e.bias[c + 1]);
      }
    }
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float v0 = activate<A>(fmaf(acc[4 * j + 2 * h], e.alpha, b0));
      float v1 = activate<A>(fmaf(acc[4 * j + 2 * h + 1], e.alpha, b1));
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

// The activation picked once per tile (a uniform branch), each case its own unrolled loop.
template <int BN>
__device__ __forceinline__ void apply_epilogue(float (&acc)[BN / 2], const EpilogueArgs& e, int M, int N, int row0,
                                               int col0) {
  if (e.identity) return;
  switch (e.act) {
    case Activation::gelu_tanh: apply_epilogue_as<BN, Activation::gelu_tanh>(acc, e, M, N, row0, col0); break;
    case Activation::silu: apply_epilogue_as<BN, Activation::silu>(acc, e, M, N, row0, col0); break;
    default: apply_epilogue_as<BN, Activation::none>(acc, e, M, N, row0, col0); break;
  }
}

#endif  // __CUDACC__

}  // namespace aipe::kernels
