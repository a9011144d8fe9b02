// Attention masks as device functors, the C++ form of FlexAttention's mask_mod: a mask says whether query q
// of head h in batch b may see key kv, and classifies a whole (q-tile, kv-tile) block once so that a kernel
// skips empty blocks and runs full ones without the per-element test.
//
//   bool operator()(int b, int h, int q, int kv) const   element test (true: kv is visible to q)
//   TileClass classify(int b, int h, int q0, int q1, int kv0, int kv1) const
//                                                       the block [q0, q1) x [kv0, kv1): empty (no element
//                                                       visible), full (every element visible) or partial
// Positions are within one sequence; keys at or beyond seq_kv are the kernel's business (masked always), not
// the mask's. Host and device code both call these (the block map is built once per mask on either side).
#pragma once
#include <cstdint>

namespace aipe::kernels::attention {

enum class TileClass : std::uint8_t { empty, partial, full };

struct NoMask {
  __host__ __device__ constexpr bool operator()(int, int, int, int) const { return true; }
  __host__ __device__ constexpr TileClass classify(int, int, int, int, int, int) const { return TileClass::full; }
};

// Causal, aligned bottom-right when seq_q != seq_kv (as flash_attn and cuDNN align it): query q sees key kv
// iff kv <= q + (seq_kv - seq_q). With seq_q > seq_kv the first seq_q - seq_kv queries see nothing: their rows
// are fully masked (output 0, log-sum-exp -inf).
struct Causal {
  int offset = 0;  // seq_kv - seq_q
  __host__ __device__ static constexpr Causal bottom_right(int seq_q, int seq_kv) { return {seq_kv - seq_q}; }
  __host__ __device__ constexpr bool operator()(int, int, int q, int kv) const { return kv <= q + offset; }
  __host__ __device__ constexpr TileClass classify(int, int, int q0, int q1, int kv0, int kv1) const {
    if (kv0 > q1 - 1 + offset) return TileClass::empty;  // even the block's last query sees none of it
    if (kv1 - 1 <= q0 + offset) return TileClass::full;  // even the block's first query sees all of it
    return TileClass::partial;
  }
};

// Sliding window, causal and aligned bottom-right like Causal: query q sees key kv iff
// 0 <= q + offset - kv < window (the key is at or before the query's diagonal, by fewer than `window`
// positions). With window >= seq_kv it is Causal; the forward kernel runs plain causal masks through it
// (window = INT_MAX), one instantiation for both. The distance is formed before the comparison, so no
// intermediate overflows for any window up to INT_MAX (positions below 2^30).
struct SlidingWindow {
  int offset = 0;  // seq_kv - seq_q
  int window = 0;  // >= 1
  __host__ __device__ static constexpr SlidingWindow bottom_right(int seq_q, int seq_kv, int window) {
    return {seq_kv - seq_q, window};
  }
  __host__ __device__ constexpr bool operator()(int, int, int q, int kv) const {
    const int dist = q + offset - kv;
    return dist >= 0 && dist < window;
  }
  __host__ __device__ constexpr TileClass classify(int, int, int q0, int q1, int kv0, int kv1) const {
    const int dmin = q0 + offset - (kv1 - 1), dmax = (q1 - 1) + offset - kv0;  // distances over the block
    if (dmax < 0 || dmin >= window) return TileClass::empty;
    if (dmin >= 0 && dmax < window) return TileClass::full;
    return TileClass::partial;
  }
};

}  // namespace aipe::kernels::attention
