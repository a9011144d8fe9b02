// Internal to kernels/src/attention_*.cu: the host pieces forward() and forward_flex() share
// (defined in attention_forward.cu).
#pragma once
#include <cuda.h>

#include <cstdint>

namespace aipe::kernels::attention::detail {

// Rank-4 TMA map of a [batch][seq][heads][d] BF16 / FP16 tensor, boxes of `rows` positions x 64 elements.
CUtensorMap head_map(CUtensorMapDataType dtype, const void* base, int batch, int seq, int heads, int d,
                     std::int64_t s_batch, std::int64_t s_row, std::int64_t s_head, int rows);

// CTAs of the forward kernels resident at once on `device` (the persistent grid). Throws std::runtime_error
// where the device is not a Hopper GPU; makes forward()'s shared-memory opt-ins on first use.
int resident_ctas(int device);

}  // namespace aipe::kernels::attention::detail
