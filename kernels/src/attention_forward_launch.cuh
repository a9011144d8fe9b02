// Internal to kernels/src/attention_forward*.cu: the launcher of the forward kernels of one (element type, head
// dimension). Declared here for the host entry (attention_forward.cu), which sees no kernel body and so compiles
// none; defined in attention_forward_kernels.cuh and explicitly instantiated in attention_forward_bf16.cu and
// attention_forward_fp16.cu (two translation units that compile in parallel).
#pragma once
#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstddef>

#include "aipe/kernels/attention/forward_sm90.cuh"

namespace aipe::kernels::attention::sm90 {

// Keys per K / V tile: 128 (the S tile m64n128, 64 accumulators a thread), 64 at d = 256 (where O alone is 128
// accumulators a thread, and two stages of 256-wide K and V take 128 KiB of shared memory).
template <int D>
inline constexpr int kBNOf = D == 256 ? 64 : 128;

template <class T, int D>
struct ForwardLaunch {
  static constexpr int kBN = kBNOf<D>;
  static constexpr std::size_t kSmem = Cfg<D, kBN>::kSmem;
  // The shared-memory opt-in of the four kernels on the current device (once per device: set_max_dynamic_smem).
  static void opt_in();
  // CTAs of one of these kernels resident per SM (they share threads and shared memory, so one stands for all).
  static int ctas_per_sm();
  static void run(bool masked, bool overlap, const CUtensorMap& tq, const CUtensorMap& tk, const CUtensorMap& tv,
                  const Params& p, int grid, cudaStream_t stream);
};

// What is built: BF16 at d = 64, 128, 256; FP16 at d = 64, 128.
extern template struct ForwardLaunch<__nv_bfloat16, 64>;
extern template struct ForwardLaunch<__nv_bfloat16, 128>;
extern template struct ForwardLaunch<__nv_bfloat16, 256>;
extern template struct ForwardLaunch<__half, 64>;
extern template struct ForwardLaunch<__half, 128>;

}  // namespace aipe::kernels::attention::sm90
