// FP32 copies of quantized FP8 operands with their scales applied: the input of an FP32 reference GEMM at
// sizes too large for the CPU. (kernels/src/fp8_dequant.cu)
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>

struct __nv_fp8_e4m3;

namespace aipe::kernels::fp8 {

// How a rows x K operand's scales are laid out (the layouts of aipe/kernels/gemm_fp8.cuh and cuBLASLt):
//   tensor     scale[0] for every element
//   row_1x128  one per row and 128-wide K block: scale[(k / 128) * rows + r]     (activations, A)
//   block_128  one per 128 x 128 block: scale[(r / 128) * ld_scale + k / 128]    (weights, B)
enum class ScaleLayout { tensor, row_1x128, block_128 };

// out[r * K + k] = float(q[r * K + k]) * its scale, on `stream`.
void dequantize_e4m3(const __nv_fp8_e4m3* q, float* out, int rows, int K, const float* scale, ScaleLayout layout,
                     int ld_scale, cudaStream_t stream);

}  // namespace aipe::kernels::fp8
