// aipe::kernels::attention::forward_flex for the functor pairs forward_flex.hpp lists: the host entries (checks,
// tensor maps, grid); the kernels are in attention_flex_d64.cu and attention_flex_d128.cu.
#include "attention_flex_launch.cuh"

namespace aipe::kernels::attention {
template void forward_flex(const FlexArgs&, const Causal&, const NoScoreMod&, cudaStream_t);
template void forward_flex(const FlexArgs&, const SlidingWindow&, const NoScoreMod&, cudaStream_t);
template void forward_flex(const FlexArgs&, const PrefixLM&, const NoScoreMod&, cudaStream_t);
template void forward_flex(const FlexArgs&, const Document&, const NoScoreMod&, cudaStream_t);
template void forward_flex(const FlexArgs&, const And<Causal, Document>&, const NoScoreMod&, cudaStream_t);
template void forward_flex(const FlexArgs&, const Or<SlidingWindow, PrefixLM>&, const NoScoreMod&, cudaStream_t);
template void forward_flex(const FlexArgs&, const NoMask&, const Alibi&, cudaStream_t);
template void forward_flex(const FlexArgs&, const NoMask&, const SoftCap&, cudaStream_t);
template void forward_flex(const FlexArgs&, const And<Causal, Document>&, const Compose<SoftCap, Alibi>&,
                           cudaStream_t);
}  // namespace aipe::kernels::attention
