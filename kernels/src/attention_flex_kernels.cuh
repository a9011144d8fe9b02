// Internal: the definition of FlexLaunch::run (attention_flex_launch.cuh), included only by the translation
// units that instantiate the kernels (attention_flex_d64.cu, attention_flex_d128.cu). One kernel per
// (d, mask, score): intra-warpgroup overlap on (forward_flex takes the production schedule's structure; pingpong
// and persistent stay runtime switches).
#pragma once
#include "aipe/check.hpp"
#include "aipe/kernels/launch.cuh"
#include "attention_flex_launch.cuh"

namespace aipe::kernels::attention::sm90 {

template <int D, class Mask, class Score>
void FlexLaunch<D, Mask, Score>::run(const CUtensorMap& tq, const CUtensorMap& tk, const CUtensorMap& tv,
                                     const Params& p, const FlexMods<Mask, Score>& mods, int grid,
                                     cudaStream_t stream) {
  auto* k = forward_kernel<__nv_bfloat16, D, kBN, FlexMods<Mask, Score>, true>;
  set_max_dynamic_smem(k, kSmem);
  k<<<grid, kThreads, kSmem, stream>>>(tq, tk, tv, p, mods);
  AIPE_CHECK_LAUNCH();
}

}  // namespace aipe::kernels::attention::sm90
