// Host entry points of the RoPE kernels (aipe/kernels/rope.hpp, rope.cuh).
#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "aipe/check.hpp"
#include "aipe/kernels/launch.cuh"
#include "aipe/kernels/rope.cuh"
#include "aipe/kernels/rope.hpp"

namespace aipe::kernels {

RopeTable::RopeTable(const RopeFrequencies& f, int max_positions, cudaStream_t stream) {
  const int half = int(f.inv_freq.size());
  if (half < 1 || half > kRopeMaxHeadDim / 2)
    throw std::invalid_argument("RopeTable: inv_freq has " + std::to_string(half) + " entries; need 1.." +
                                std::to_string(kRopeMaxHeadDim / 2));
  if (max_positions < 1) throw std::invalid_argument("RopeTable: max_positions must be >= 1");
  table_ = DeviceBuffer<float2>(std::size_t(max_positions) * half);
  max_positions_ = max_positions;
  half_ = half;
  rope::InvFreq inv{};
  std::memcpy(inv.v, f.inv_freq.data(), sizeof(float) * half);
  const std::int64_t n = std::int64_t(max_positions) * half;
  const int grid = int(std::min<std::int64_t>((n + 255) / 256, 4096));
  rope::rope_table_kernel<<<grid, 256, 0, stream>>>(table_.get(), max_positions, half, inv, f.attention_scaling);
  AIPE_CHECK_LAUNCH();
}

void apply_rope(const RopeArgs& a, const RopeTable& table, cudaStream_t stream) {
  check_rope(a, table.data(), table.max_positions(), table.dim());
  if (a.tokens == 0 || a.heads + a.kv_heads == 0) return;
  const int half = table.dim() / 2;
  const bool v8 = half % 8 == 0 && a.q_stride % 8 == 0 && (a.kv_heads == 0 || a.k_stride % 8 == 0) &&
                  vec::aligned16(a.q) && (a.kv_heads == 0 || vec::aligned16(a.k));
  const int vec = v8 ? 8 : 1;
  const int items = (a.heads + a.kv_heads) * (half / vec);
  const int block = std::clamp((items + 31) / 32 * 32, 32, 256);
  if (v8)
    launch_pdl(rope::rope_kernel<8>, dim3(a.tokens), dim3(block), 0, stream, a.q, a.q_stride, a.heads, a.k, a.k_stride, a.kv_heads,
                                                         a.positions, table.data(), table.max_positions(), half,
                                                         a.error);
  else
    launch_pdl(rope::rope_kernel<1>, dim3(a.tokens), dim3(block), 0, stream, a.q, a.q_stride, a.heads, a.k, a.k_stride, a.kv_heads,
                                                         a.positions, table.data(), table.max_positions(), half,
                                                         a.error);
  AIPE_CHECK_LAUNCH();
}

}  // namespace aipe::kernels
