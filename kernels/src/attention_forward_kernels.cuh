// Internal: the definitions of ForwardLaunch's members (attention_forward_launch.cuh), included only by the
// translation units that instantiate them (attention_forward_bf16.cu, attention_forward_fp16.cu).
#pragma once
#include "aipe/check.hpp"
#include "aipe/kernels/launch.cuh"
#include "attention_forward_launch.cuh"

namespace aipe::kernels::attention::sm90 {

template <class T, int D, bool Masked, bool Overlap>
constexpr auto forward_kernel_of() {
  return forward_kernel<T, D, kBNOf<D>, BuiltinMods<Masked>, Overlap>;
}

template <class T, int D>
void ForwardLaunch<T, D>::opt_in() {
  set_max_dynamic_smem(forward_kernel_of<T, D, false, false>(), kSmem);
  set_max_dynamic_smem(forward_kernel_of<T, D, false, true>(), kSmem);
  set_max_dynamic_smem(forward_kernel_of<T, D, true, false>(), kSmem);
  set_max_dynamic_smem(forward_kernel_of<T, D, true, true>(), kSmem);
}

template <class T, int D>
int ForwardLaunch<T, D>::ctas_per_sm() {
  int n = 0;
  AIPE_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, forward_kernel_of<T, D, true, true>(), kThreads, kSmem));
  return n;
}

template <class T, int D>
void ForwardLaunch<T, D>::run(bool masked, bool overlap, const CUtensorMap& tq, const CUtensorMap& tk,
                              const CUtensorMap& tv, const Params& p, int grid, cudaStream_t stream) {
  if (masked) {
    auto* k = overlap ? forward_kernel_of<T, D, true, true>() : forward_kernel_of<T, D, true, false>();
    k<<<grid, kThreads, kSmem, stream>>>(tq, tk, tv, p, BuiltinMods<true>{});
  } else {
    auto* k = overlap ? forward_kernel_of<T, D, false, true>() : forward_kernel_of<T, D, false, false>();
    k<<<grid, kThreads, kSmem, stream>>>(tq, tk, tv, p, BuiltinMods<false>{});
  }
  AIPE_CHECK_LAUNCH();
}

}  // namespace aipe::kernels::attention::sm90
