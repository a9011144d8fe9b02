// The argument rules of the MoE routing and MXFP4 entry points (aipe/kernels/moe.hpp), plain C++ so the CPU tests
// reach every one (kernels/src/moe_checks.cpp, tests/kernels/moe_test.cpp). Each throws std::invalid_argument naming
// the function, the argument and the rule; the entry points call them before any CUDA call.
#pragma once
#include <cstddef>
#include <cstdint>

#include "aipe/kernels/moe.hpp"

namespace aipe::kernels::moe {

inline constexpr int kTopkMaxExperts = 256;       // topk_softmax: a warp holds a row in 8 registers per lane
inline constexpr int kTopkMaxK = 8;
inline constexpr int kRoutingMaxExperts = 1024;   // build_routing: one scan thread per expert
inline constexpr std::int64_t kRoutingMaxPairs = std::int64_t(1) << 24;  // tokens * k
inline constexpr int kRoutingSegment = 1024;      // pairs counted and scattered by one warp

// `fn` names the caller in the message ("dequantize_mxfp4" or "dequantize_mxfp4_host"): null blocks, scales or out
// (unless the matrix is empty), rows < 0, cols < 0 or not a multiple of 32.
void check_mxfp4(const Mxfp4Matrix& w, const void* out, const char* fn);
void check_topk_softmax(const void* logits, std::int64_t ld, int tokens, int experts, int k, const int* ids,
                        const float* weights);
void check_build_routing(const int* ids, int tokens, int k, int experts, const Routing& out, const void* workspace,
                         std::size_t workspace_bytes);
void check_gather_rows(const void* x, std::int64_t ld_x, const int* row_token, int rows, int cols, const void* xg,
                       std::int64_t ld_xg);
// residual, when given, has out's layout (rows ld_out apart): it may be out itself.
void check_combine(const void* yg, std::int64_t ld_yg, const int* pair_row, const float* weights, int tokens, int k,
                   int cols, const void* residual, const void* out, std::int64_t ld_out);

}  // namespace aipe::kernels::moe
