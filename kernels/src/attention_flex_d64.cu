// forward_flex's kernels at d = 64: the ch18/flex_attention ladder's problem (packed causal documents, soft-capped
// logits plus ALiBi); kFlexBuilt (attention_flex_launch.cuh) names the same set.
#include "attention_flex_kernels.cuh"

namespace aipe::kernels::attention::sm90 {
template struct FlexLaunch<64, And<Causal, Document>, Compose<SoftCap, Alibi>>;
}  // namespace aipe::kernels::attention::sm90
