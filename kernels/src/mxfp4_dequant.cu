// MXFP4 weights to BF16 on the device (aipe/kernels/moe.hpp's dequantize_mxfp4): one thread per block of 32
// elements, a 16-byte load of its codes, one scale byte, four 16-byte stores (aipe/kernels/mxfp4.cuh does the
// conversion). Blocks and out are contiguous in the same order (block b of the matrix is elements [32 b, 32 b + 32)
// of out), so the matrix is a flat array of blocks. 17 bytes read and 64 written per block: a copy-bound kernel.
#include <algorithm>

#include "aipe/check.hpp"
#include "aipe/kernels/moe.hpp"
#include "aipe/kernels/moe_checks.hpp"
#include "aipe/kernels/mxfp4.cuh"
#include "aipe/kernels/vec.cuh"

namespace aipe::kernels::moe {
namespace {

// V16: blocks and out 16-byte aligned (uint4 accesses); otherwise byte loads and 2-byte stores.
template <bool V16>
__global__ void dequantize_mxfp4_kernel(const std::uint8_t* blocks, const std::uint8_t* scales, std::int64_t nblocks,
                                        bf16* out) {
  for (std::int64_t b = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; b < nblocks;
       b += std::int64_t(gridDim.x) * blockDim.x) {
    const __nv_bfloat162 scale = mxfp4::e8m0_to_bf16x2(__ldg(scales + b));
    bf16* o = out + b * 32;
    if constexpr (V16) {
      const uint4 q = __ldg(reinterpret_cast<const uint4*>(blocks + b * 16));
      uint4* o4 = reinterpret_cast<uint4*>(o);
      o4[0] = mxfp4::e2m1x8_to_bf16x8(q.x, scale);
      o4[1] = mxfp4::e2m1x8_to_bf16x8(q.y, scale);
      o4[2] = mxfp4::e2m1x8_to_bf16x8(q.z, scale);
      o4[3] = mxfp4::e2m1x8_to_bf16x8(q.w, scale);
    } else {
      const std::uint8_t* q = blocks + b * 16;
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const std::uint32_t w = std::uint32_t(q[4 * i]) | std::uint32_t(q[4 * i + 1]) << 8 |
                                std::uint32_t(q[4 * i + 2]) << 16 | std::uint32_t(q[4 * i + 3]) << 24;
        __nv_bfloat162 v[4];
        mxfp4::e2m1x8_to_bf16x8(w, scale, v);
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          o[8 * i + 2 * j] = v[j].x;
          o[8 * i + 2 * j + 1] = v[j].y;
        }
      }
    }
  }
}

}  // namespace

void dequantize_mxfp4(const Mxfp4Matrix& w, bf16* out, cudaStream_t stream) {
  check_mxfp4(w, out, "dequantize_mxfp4");
  const std::int64_t nblocks = w.rows * (w.cols / 32);
  if (nblocks == 0) return;
  const int grid = int(std::clamp<std::int64_t>((nblocks + 255) / 256, 1, 65536));
  if (vec::aligned16(w.blocks) && vec::aligned16(out))
    dequantize_mxfp4_kernel<true><<<grid, 256, 0, stream>>>(w.blocks, w.scales, nblocks, out);
  else
    dequantize_mxfp4_kernel<false><<<grid, 256, 0, stream>>>(w.blocks, w.scales, nblocks, out);
  AIPE_CHECK_LAUNCH();
}

}  // namespace aipe::kernels::moe
