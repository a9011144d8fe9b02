// The FP16 forward kernels of attention::forward: d = 64 and 128 (BN = 128), each with and without a mask and with
// and without intra-warpgroup overlap (attention_forward_kernels.cuh).
#include "attention_forward_kernels.cuh"

namespace aipe::kernels::attention::sm90 {
template struct ForwardLaunch<__half, 64>;
template struct ForwardLaunch<__half, 128>;
}  // namespace aipe::kernels::attention::sm90
