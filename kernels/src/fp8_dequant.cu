#include <cuda_fp8.h>

#include "aipe/check.hpp"
#include "aipe/kernels/fp8_dequant.hpp"

namespace aipe::kernels::fp8 {
namespace {

__global__ void dequant_kernel(const __nv_fp8_e4m3* q, float* out, int rows, int K, const float* scale,
                               ScaleLayout layout, int ld_scale) {
  const std::size_t n = std::size_t(rows) * K;
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x) {
    const int r = int(i / K), k = int(i % K);
    float s = scale[0];
    if (layout == ScaleLayout::row_1x128) s = scale[std::size_t(k / 128) * rows + r];
    else if (layout == ScaleLayout::block_128) s = scale[std::size_t(r / 128) * ld_scale + k / 128];
    out[i] = float(q[i]) * s;
  }
}

}  // namespace

void dequantize_e4m3(const __nv_fp8_e4m3* q, float* out, int rows, int K, const float* scale, ScaleLayout layout,
                     int ld_scale, cudaStream_t stream) {
  dequant_kernel<<<2048, 256, 0, stream>>>(q, out, rows, K, scale, layout, ld_scale);
  AIPE_CHECK_LAUNCH();
}

}  // namespace aipe::kernels::fp8
