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
#include <cuda_runtime_api.h>  // __host__ __device__

#include <cstdint>

#include "aipe/hd.hpp"

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


// ---- FlexAttention-style masks for attention::forward_flex (forward_flex.hpp) ----
// Each is a mask as above; any of them composes with and / or / not. classify() may answer partial where it
// cannot tell without reading the data (Document): partial is always safe, the block map (block_map.cuh)
// evaluates every element and is exact.
namespace attention_detail {
AIPE_HD constexpr TileClass class_and(TileClass a, TileClass b) {
  if (a == TileClass::empty || b == TileClass::empty) return TileClass::empty;
  return a == TileClass::full && b == TileClass::full ? TileClass::full : TileClass::partial;
}
AIPE_HD constexpr TileClass class_or(TileClass a, TileClass b) {
  if (a == TileClass::full || b == TileClass::full) return TileClass::full;
  return a == TileClass::empty && b == TileClass::empty ? TileClass::empty : TileClass::partial;
}
AIPE_HD constexpr TileClass class_not(TileClass a) {
  return a == TileClass::full ? TileClass::empty : a == TileClass::empty ? TileClass::full : TileClass::partial;
}
}  // namespace attention_detail

// Both masks let the pair through.
template <class A, class B>
struct And {
  A a;
  B b;
  AIPE_HD bool operator()(int bi, int h, int q, int kv) const { return a(bi, h, q, kv) && b(bi, h, q, kv); }
  AIPE_HD TileClass classify(int bi, int h, int q0, int q1, int kv0, int kv1) const {
    return attention_detail::class_and(a.classify(bi, h, q0, q1, kv0, kv1), b.classify(bi, h, q0, q1, kv0, kv1));
  }
};
// Either mask lets the pair through.
template <class A, class B>
struct Or {
  A a;
  B b;
  AIPE_HD bool operator()(int bi, int h, int q, int kv) const { return a(bi, h, q, kv) || b(bi, h, q, kv); }
  AIPE_HD TileClass classify(int bi, int h, int q0, int q1, int kv0, int kv1) const {
    return attention_detail::class_or(a.classify(bi, h, q0, q1, kv0, kv1), b.classify(bi, h, q0, q1, kv0, kv1));
  }
};
// The pairs the mask hides.
template <class A>
struct Not {
  A a;
  AIPE_HD bool operator()(int bi, int h, int q, int kv) const { return !a(bi, h, q, kv); }
  AIPE_HD TileClass classify(int bi, int h, int q0, int q1, int kv0, int kv1) const {
    return attention_detail::class_not(a.classify(bi, h, q0, q1, kv0, kv1));
  }
};
template <class A, class B>
AIPE_HD constexpr And<A, B> mask_and(A a, B b) { return {a, b}; }
template <class A, class B>
AIPE_HD constexpr Or<A, B> mask_or(A a, B b) { return {a, b}; }
template <class A>
AIPE_HD constexpr Not<A> mask_not(A a) { return {a}; }

// Prefix-LM: the first `prefix` keys are visible to every query (a bidirectional prefix), the rest causally
// (aligned bottom-right like Causal): q sees kv iff kv < prefix or kv <= q + offset.
struct PrefixLM {
  int offset = 0;  // seq_kv - seq_q
  int prefix = 0;  // >= 0
  AIPE_HD static constexpr PrefixLM bottom_right(int seq_q, int seq_kv, int prefix) { return {seq_kv - seq_q, prefix}; }
  AIPE_HD constexpr bool operator()(int, int, int q, int kv) const { return kv < prefix || kv <= q + offset; }
  AIPE_HD constexpr TileClass classify(int b, int h, int q0, int q1, int kv0, int kv1) const {
    const TileClass pre = kv1 <= prefix ? TileClass::full : kv0 >= prefix ? TileClass::empty : TileClass::partial;
    return attention_detail::class_or(pre, Causal{offset}.classify(b, h, q0, q1, kv0, kv1));
  }
};

// Document (packed-sequence) masking: several documents packed into one sequence attend only within their own
// document. q_ids [batch][seq_q] and kv_ids [batch][seq_kv] (device arrays, int32; the same array for
// self-attention) hold each position's document id; q sees kv iff the ids are equal. Combine with Causal for
// packed causal language modelling (mask_and). Positions are never past the sequence ends (the kernel's rule).
struct Document {
  const int* q_ids = nullptr;
  const int* kv_ids = nullptr;
  int seq_q = 0, seq_kv = 0;
  AIPE_HD bool operator()(int b, int, int q, int kv) const {
    return q_ids[std::int64_t(b) * seq_q + q] == kv_ids[std::int64_t(b) * seq_kv + kv];
  }
  AIPE_HD constexpr TileClass classify(int, int, int, int, int, int) const { return TileClass::partial; }
};

}  // namespace aipe::kernels::attention
