// forward_flex's kernels at d = 128: every functor pair forward_flex.hpp lists.
#include "attention_flex_kernels.cuh"

namespace aipe::kernels::attention::sm90 {
template struct FlexLaunch<128, Causal, NoScoreMod>;
template struct FlexLaunch<128, SlidingWindow, NoScoreMod>;
template struct FlexLaunch<128, PrefixLM, NoScoreMod>;
template struct FlexLaunch<128, Document, NoScoreMod>;
template struct FlexLaunch<128, And<Causal, Document>, NoScoreMod>;
template struct FlexLaunch<128, Or<SlidingWindow, PrefixLM>, NoScoreMod>;
template struct FlexLaunch<128, NoMask, Alibi>;
template struct FlexLaunch<128, NoMask, SoftCap>;
template struct FlexLaunch<128, And<Causal, Document>, Compose<SoftCap, Alibi>>;
}  // namespace aipe::kernels::attention::sm90
