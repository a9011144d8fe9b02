// What the two BF16 GEMM kernels of aipe::kernels::gemm share (kernels/src only): the kernel arguments, the block
// geometry and the ping-pong kernel's launch entry (kernels/src/gemm_bf16_pingpong.cu), which the dispatch in
// kernels/src/gemm_bf16.cu calls.
#pragma once
#include <cuda.h>
#include <cuda_runtime_api.h>

#include <cstddef>

#include "aipe/kernels/epilogue_ops.cuh"
#include "aipe/kernels/gemm.hpp"

namespace aipe::kernels::detail {

inline constexpr int kBK = 64;             // one 128-byte swizzle row of BF16: the K depth of a stage
inline constexpr int kThreads = 384;       // a producer warpgroup and two consumer warpgroups
inline constexpr int kBandRows = 2048;     // rows of C per raster band (the CTAs running together share panels)
inline constexpr std::size_t kSmemLimit = 232448;  // 227 KiB: one CTA per SM, the opt-in maximum of sm_90

struct KernelArgs {
  bf16* C = nullptr;
  long long ldc = 0;
  int M = 0, N = 0, K = 0;
  bool tma_store = false;  // C through tma_c (16-byte aligned rows), else guarded stores from registers
  // Cooperative kernel only (activation_overlapped, gemm.hpp): with TMA stores, an activation and no residual
  // the tile is parked as BF16 t = alpha acc + bias, and the activation is applied box by box under the next
  // tile's first K steps.
  bool overlap_activation = false;
  EpilogueArgs epi;
};

// Shared memory the largest ping-pong kernel asks for, and the opt-in for every ping-pong kernel on the current
// device (once per device, from gemm_bf16.cu's device_state).
std::size_t pingpong_smem_max();
void prepare_pingpong_kernels();
// Launches the ping-pong kernel of configuration t (t.schedule == Schedule::pingpong) on `grid` CTAs (a multiple
// of t.cluster_m). tc: C's tensor map with 64 x 64 boxes when args.tma_store.
void launch_pingpong(const TileConfig& t, const Matrix<const bf16>& a, const Matrix<const bf16>& b,
                     const KernelArgs& args, const CUtensorMap& tc, int grid, cudaStream_t stream);

}  // namespace aipe::kernels::detail
