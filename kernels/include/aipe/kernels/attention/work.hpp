// The useful work of one attention problem: how many (query, key) pairs the mask lets through, the count a
// FLOP model multiplies by 4 d (2 d for Q.K^T, 2 d for P.V per visible pair) so that a kernel skipping masked
// tiles is credited only with the arithmetic the answer needs. visible_keys is constexpr (device code may call
// it under --expt-relaxed-constexpr); visible_pairs is host code.
//
// Alignment as in masks.cuh and forward.hpp: bottom-right, offset = seq_kv - seq_q; query q sees key kv iff
//   causal:          kv <= q + offset
//   sliding_window:  kv <= q + offset  and  kv > q + offset - window
// and always 0 <= kv < seq_kv. With seq_q > seq_kv the first seq_q - seq_kv queries see nothing.
#pragma once
#include <cstdint>
#include <stdexcept>

#include "aipe/kernels/attention/forward.hpp"

namespace aipe::kernels::attention {

// Keys that query q sees (0 <= q < seq_q).
inline constexpr std::int64_t visible_keys(std::int64_t q, std::int64_t seq_q, std::int64_t seq_kv, MaskKind mask,
                                           std::int64_t window = 0) {
  if (mask == MaskKind::none) return seq_kv;
  const std::int64_t hi = q + (seq_kv - seq_q);  // last visible key (may be < 0: none)
  std::int64_t lo = 0;                           // first visible key
  if (mask == MaskKind::sliding_window) lo = hi - window + 1 > 0 ? hi - window + 1 : 0;
  const std::int64_t last = hi < seq_kv - 1 ? hi : seq_kv - 1;
  return last >= lo ? last - lo + 1 : 0;
}

// Visible (q, kv) pairs of one (batch, head): exact, not seq^2 / 2. Causal in closed form: row q sees
// max(0, q + offset + 1) keys (never more than seq_kv, since q + offset + 1 <= seq_kv), so the rows that see
// anything contribute the integers lo + 1 .. seq_kv with lo = max(offset, 0), i.e.
// (seq_kv (seq_kv + 1) - lo (lo + 1)) / 2. A sliding window sums its rows (O(seq_q)).
// Throws std::invalid_argument for a negative length or a window < 1.
inline std::int64_t visible_pairs(std::int64_t seq_q, std::int64_t seq_kv, MaskKind mask, std::int64_t window = 0) {
  if (seq_q < 0 || seq_kv < 0) throw std::invalid_argument("visible_pairs: sequence lengths must be >= 0");
  if (mask == MaskKind::none) return seq_q * seq_kv;
  if (mask == MaskKind::causal) {
    if (seq_q == 0 || seq_kv == 0) return 0;
    const std::int64_t offset = seq_kv - seq_q, lo = offset > 0 ? offset : 0;
    return (seq_kv * (seq_kv + 1) - lo * (lo + 1)) / 2;
  }
  if (window < 1) throw std::invalid_argument("visible_pairs: a sliding window must be at least 1 key wide");
  std::int64_t n = 0;
  for (std::int64_t q = 0; q < seq_q; ++q) n += visible_keys(q, seq_q, seq_kv, mask, window);
  return n;
}

}  // namespace aipe::kernels::attention
