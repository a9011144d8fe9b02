#pragma once
// Mixture-of-experts routing and the MXFP4 expert-weight format (kernels/src/moe_routing.cu, kernels/src/mxfp4.cpp):
// what an MoE layer does around its expert GEMMs (aipe/kernels/grouped_gemm.hpp). All device work is launched on
// the caller's stream with sizes known on the host and no host synchronization, so a decode step that calls these
// can be captured in a CUDA graph.
//
//   logits = x Wr^T + br                          (kernels::gemm)
//   ids, weights = topk_softmax(logits, k)        top-k experts per token, softmax over the chosen k logits
//   routing = build_routing(ids)                  the T*k (token, choice) pairs grouped by expert
//   xg = gather_rows(x, routing.row_token)        activations in expert order
//   yg = grouped_gemm(xg, W_e ...)                (aipe/kernels/grouped_gemm.hpp)
//   out = combine(yg, routing.pair_row, weights)  back to token order, weighted sum over the k choices
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "aipe/hd.hpp"

namespace aipe::kernels::moe {

using bf16 = __nv_bfloat16;

// ---- MXFP4 (OCP Microscaling FP4, the gpt-oss checkpoints' expert weights) ----
// A matrix W[rows][cols] (cols % 32 == 0) is stored as
//   blocks[rows][cols / 32][16] bytes: 32 FP4 E2M1 codes per block, two per byte, element 2i in the low nibble of
//                                      byte i and element 2i + 1 in its high nibble;
//   scales[rows][cols / 32] bytes:     one E8M0 exponent per block, the block's elements times 2^(scale - 127).
// E2M1 codes 0..7 are 0, 0.5, 1, 1.5, 2, 3, 4, 6; codes 8..15 the same with the sign bit set (8 is -0).
// E8M0 255 is NaN; 0 is 2^-127.
AIPE_HD float e2m1_value(unsigned code) {
  const float mag[8] = {0.f, 0.5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f};
  const float v = mag[code & 7u];
  return (code & 8u) ? -v : v;
}
float e8m0_value(std::uint8_t s);  // 2^(s - 127) (s == 255: NaN); exact in FP32 for every s in 0..254

struct Mxfp4Matrix {
  const std::uint8_t* blocks = nullptr;  // [rows][cols / 32][16]
  const std::uint8_t* scales = nullptr;  // [rows][cols / 32]
  std::int64_t rows = 0, cols = 0;
};
// W as BF16 [rows][cols] (host: a reference for tests and the checkpoint checks; device: for the library rungs
// and the unfused path). Values whose magnitude exceeds BF16's range become +-inf; NaN scales give NaN.
void dequantize_mxfp4_host(const Mxfp4Matrix& w, float* out);
void dequantize_mxfp4(const Mxfp4Matrix& w, bf16* out, cudaStream_t stream);

// ---- Routing ----
// For each token t, the k largest of logits[t][0 .. experts) (ties go to the lower expert index) in descending
// order: ids[t][j]; and their softmax over those k logits (FP32, summing to 1): weights[t][j]. 1 <= k <= min(experts,
// 8), experts <= 256; logits rows `ld` elements apart.
void topk_softmax(const bf16* logits, std::int64_t ld, int tokens, int experts, int k, int* ids, float* weights,
                  cudaStream_t stream);

// The T*k (token, choice) pairs grouped by expert, stable (by pair index t*k + j within an expert):
struct Routing {
  int* offsets = nullptr;    // [experts + 1]: expert e's grouped rows are [offsets[e], offsets[e + 1])
  int* row_token = nullptr;  // [T*k]: the token of grouped row r
  int* pair_row = nullptr;   // [T*k]: the grouped row of pair p = t*k + j, -1 for a dropped pair
};
std::size_t routing_workspace_bytes(int tokens, int k, int experts);
// ids [tokens][k] on the device. An id outside [0, experts) sets *error to 1 (when error is not null) and its pair
// is dropped: it gets no grouped row (pair_row -1) and offsets[experts] counts only the kept pairs.
void build_routing(const int* ids, int tokens, int k, int experts, const Routing& out, void* workspace,
                   std::size_t workspace_bytes, int* error, cudaStream_t stream);

// xg[r][0 .. cols) = x[row_token[r]][0 .. cols) for r in [0, rows); rows `ld_x` / `ld_xg` elements apart.
void gather_rows(const bf16* x, std::int64_t ld_x, const int* row_token, int rows, int cols, bf16* xg,
                 std::int64_t ld_xg, cudaStream_t stream);

// out[t][c] = sum_j weights[t][j] * yg[pair_row[t*k + j]][c]  (+ residual[t][c] when residual is not null),
// summed in FP32 in j order (dropped pairs skipped), one BF16 rounding. out may alias residual.
void combine(const bf16* yg, std::int64_t ld_yg, const int* pair_row, const float* weights, int tokens, int k,
             int cols, const bf16* residual, bf16* out, std::int64_t ld_out, cudaStream_t stream);

}  // namespace aipe::kernels::moe
