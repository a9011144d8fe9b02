// The BF16 forward kernels of attention::forward: d = 64, 128 (BN = 128) and 256 (BN = 64), each with and without
// a mask and with and without intra-warpgroup overlap (attention_forward_kernels.cuh).
#include "attention_forward_kernels.cuh"

namespace aipe::kernels::attention::sm90 {
template struct ForwardLaunch<__nv_bfloat16, 64>;
template struct ForwardLaunch<__nv_bfloat16, 128>;
template struct ForwardLaunch<__nv_bfloat16, 256>;
}  // namespace aipe::kernels::attention::sm90
