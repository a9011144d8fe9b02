#pragma once
// The expert-grouped GEMM of an MoE layer (kernels/src/grouped_gemm*.cu): E weight matrices, the activations'
// rows grouped by expert (aipe/kernels/moe.hpp's Routing), one launch for every expert.
//
//   for every expert e and row r in [offsets[e], offsets[e + 1]):
//     C[r][n] = sum_k A[src(r)][k] * W_e[n][k]  (+ bias[e][n])        src(r) = gather ? gather[r] : r
//
// Layout as aipe::kernels::gemm (nn.Linear's: W_e is out x in, K contiguous). BF16 activations, FP32 accumulation,
// BF16 out. The weights are BF16, or MXFP4 (aipe/kernels/moe.hpp's format) dequantized to BF16 inside the kernel
// (W4A16 on the BF16 tensor cores). `offsets` stays on the device: the host knows only `rows` (the capacity,
// typically tokens * top_k), so the call can be captured in a CUDA graph; rows past offsets[experts] are not
// written. The kernel is chosen from `rows`: a tile-by-tile WGMMA kernel over a persistent grid when experts get
// many rows (prefill), a weight-streaming kernel when every expert gets a few (decode).
//
// What it needs (checked, std::invalid_argument naming the argument otherwise): K % 8 == 0 (BF16 weights, TMA)
// and K % 32 == 0 (MXFP4), A's base and row pitch 16-byte aligned, experts in 1..1024, offsets non-decreasing from
// 0 with offsets[experts] <= rows (on the device: not checked; the kernel clamps to rows).
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "aipe/kernels/gemm.hpp"

namespace aipe::kernels {

struct GroupedGemmArgs {
  Matrix<const bf16> a;              // [rows][K], or with `gather` the un-permuted activations [tokens][K]
  const int* gather = nullptr;       // [rows] device: grouped row r reads A row gather[r] (the fused permutation)
  int rows = 0;                      // grouped rows, the capacity of C
  int experts = 0, n = 0, k = 0;
  const int* offsets = nullptr;      // [experts + 1] device
  // The weights: BF16 (w) or MXFP4 (w_blocks and w_scales), one of the two.
  const bf16* w = nullptr;           // [E][N][K], expert e at w + e * w_expert_stride
  std::int64_t w_expert_stride = 0;  // elements; 0: N * K
  const std::uint8_t* w_blocks = nullptr;  // [E][N][K / 32][16]
  const std::uint8_t* w_scales = nullptr;  // [E][N][K / 32]
  const bf16* bias = nullptr;        // [E][N] or null
  Matrix<bf16> c;                    // [rows][N]
};

void check_grouped_gemm_args(const GroupedGemmArgs& args);  // CPU-testable
void grouped_gemm(const GroupedGemmArgs& args, cudaStream_t stream);

}  // namespace aipe::kernels
