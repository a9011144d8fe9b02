// MXFP4 to BF16 in registers: what a W4A16 GEMM mainloop and the dequantization kernel do with a block of
// 32 E2M1 codes and its E8M0 scale (the format: aipe/kernels/moe.hpp; defined by the OCP Microscaling Formats
// (MX) Specification v1.0, sections 5.3.3 (FP4 E2M1) and 5.4.1 (E8M0); the nibble order is that of the gpt-oss
// checkpoints, checked against transformers' convert_moe_packed_tensors: element 2i low nibble, 2i + 1 high).
//
// Exact, with two BF16 multiplies per pair and no table: an E2M1 code s e1 e0 m put into a BF16 as
// sign << 15 | (e1 e0 m) << 6 lands e1 e0 in the low exponent bits and m in the top mantissa bit, so the BF16 is
// the code's value times 2^-126 (codes with e == 0 become BF16 subnormals, 0 and 0.5 * 2^-126, which is what E2M1's
// own subnormal 0.5 needs). Times 2^126 gives the value, times 2^(scale - 127) the element. Every E2M1 value has at
// most two significant bits, so both products are exact wherever the result is in BF16's range (BF16 subnormals
// included: BF16 arithmetic on sm_80+ has no flush-to-zero), and round to +-inf beyond it. Scale 255 is NaN.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

namespace aipe::kernels::mxfp4 {

// 2^(s - 127) as a BF16 in both halves of a bf16x2: s in 1..254 is the normal BF16 with exponent field s;
// s == 0 is the subnormal 2^-127 (mantissa 0x40); s == 255 is NaN.
__device__ __forceinline__ __nv_bfloat162 e8m0_to_bf16x2(unsigned s) {
  s &= 0xffu;
  const unsigned short bits = s == 0u ? 0x0040u : s == 255u ? 0x7fc0u : static_cast<unsigned short>(s << 7);
  const __nv_bfloat16 h = __ushort_as_bfloat16(bits);
  return __halves2bfloat162(h, h);
}

// The 8 E2M1 codes of `codes` (byte i holds element 2i in its low nibble and 2i + 1 in its high nibble; a 32-bit
// little-endian load of 4 bytes of a block) times the block's scale: out[i] = (element 2i, element 2i + 1), low half
// first, so storing out[0..4) writes the 8 elements in order.
__device__ __forceinline__ void e2m1x8_to_bf16x8(std::uint32_t codes, __nv_bfloat162 scale, __nv_bfloat162 (&out)[4]) {
  const __nv_bfloat162 two126 = __halves2bfloat162(__ushort_as_bfloat16(0x7e80u), __ushort_as_bfloat16(0x7e80u));
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const std::uint32_t b = codes >> (8 * i);
    // low nibble -> bits 15 (sign) and 8..6 (e1 e0 m); high nibble -> bits 31 and 24..22
    const std::uint32_t w = ((b & 0x7u) << 6) | ((b & 0x8u) << 12) | ((b & 0x70u) << 18) | ((b & 0x80u) << 24);
    __nv_bfloat162 v;
    *reinterpret_cast<std::uint32_t*>(&v) = w;
    out[i] = __hmul2_rn(__hmul2_rn(v, two126), scale);  // _rn: never contracted into a neighbouring add
  }
}

// The same, as the 16 bytes a shared-memory tile or a global store takes.
__device__ __forceinline__ uint4 e2m1x8_to_bf16x8(std::uint32_t codes, __nv_bfloat162 scale) {
  __nv_bfloat162 o[4];
  e2m1x8_to_bf16x8(codes, scale, o);
  uint4 u;
  u.x = *reinterpret_cast<const std::uint32_t*>(&o[0]);
  u.y = *reinterpret_cast<const std::uint32_t*>(&o[1]);
  u.z = *reinterpret_cast<const std::uint32_t*>(&o[2]);
  u.w = *reinterpret_cast<const std::uint32_t*>(&o[3]);
  return u;
}

}  // namespace aipe::kernels::mxfp4
