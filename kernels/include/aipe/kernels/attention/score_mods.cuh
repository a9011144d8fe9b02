// Score modifiers as device functors, the C++ form of FlexAttention's score_mod: a modifier maps the scaled
// score of query q and key kv (head h, batch b) to the logit the softmax sees.
//
//   float operator()(float score, int b, int h, int q, int kv) const     score = scale * q.k (natural units)
//   static constexpr bool kIdentity                                        true: the kernel skips the call
//
// Positions are within one sequence, as for the masks (masks.cuh). Composition: compose(f, g) applies f, then g.
// Host and device code both call them (the reference and the CPU tests, the kernel).
#pragma once
#include <cmath>

#include "aipe/hd.hpp"

namespace aipe::kernels::attention {

struct NoScoreMod {
  static constexpr bool kIdentity = true;
  AIPE_HD constexpr float operator()(float s, int, int, int, int) const { return s; }
};

// ALiBi (Press et al.): a per-head linear bias on the distance, s + slope[h] * (kv - q - offset), aligned
// bottom-right (offset = seq_kv - seq_q) so that the diagonal gets bias 0 and earlier keys a negative one.
// slopes: [heads] FP32 on the device; alibi_slopes() (forward_flex.hpp) gives the standard geometric ones.
struct Alibi {
  static constexpr bool kIdentity = false;
  const float* slopes = nullptr;
  int offset = 0;
  AIPE_HD float operator()(float s, int, int h, int q, int kv) const {
    return s + slopes[h] * static_cast<float>(kv - q - offset);
  }
};

// tanh soft-capping (Gemma 2, Grok): cap * tanh(s / cap) keeps every logit within (-cap, cap). The device side
// uses the tanh.approx instruction (relative error ~2^-11, below the BF16 rounding of P).
struct SoftCap {
  static constexpr bool kIdentity = false;
  float cap = 1.f, inv_cap = 1.f;  // cap > 0; 1 / cap, so that no element pays for a division
  AIPE_HD static constexpr SoftCap of(float cap) { return {cap, 1.f / cap}; }
  AIPE_HD float operator()(float s, int, int, int, int) const {
#if defined(__CUDA_ARCH__)
    float t;
    asm("tanh.approx.f32 %0, %1;" : "=f"(t) : "f"(s * inv_cap));
    return cap * t;
#else
    return cap * std::tanh(s * inv_cap);
#endif
  }
};

// f, then g.
template <class F, class G>
struct Compose {
  static constexpr bool kIdentity = F::kIdentity && G::kIdentity;
  F f;
  G g;
  AIPE_HD float operator()(float s, int b, int h, int q, int kv) const { return g(f(s, b, h, q, kv), b, h, q, kv); }
};
template <class F, class G>
AIPE_HD constexpr Compose<F, G> compose(F f, G g) { return {f, g}; }

}  // namespace aipe::kernels::attention
