// Sampling kernels (contract and method: aipe/kernels/sampling.hpp). One CTA of kThreads per row of logits.
//   pass 1       argmax of the raw logits (ties: lowest index): the answer for temperature 0, and max z
//   top-k        3 radix-select passes, histograms of counts of key(z)            (only when 0 < k < vocab)
//   top-p        3 radix-select passes over masses; the first digit's histogram sums to the top-k set's mass W, which
//                sets the target ceil(top_p W); the last gives the kept mass M   (only when top_p < 1)
//   draw         1 pass for the kept mass M (unless top-p gave it and min-p is off), then tiles of kThreads * V
//                elements in index order, each a block-wide exclusive scan of the kept weights, until u's tile
// A pass reads the row with 16-byte loads (V = 4 FP32 or 8 BF16 logits) when the row is 16-byte aligned. Every
// pass recomputes z = logit / temperature (__fdiv_rn, as PyTorch divides), its key and its weight from the logit:
// the same bits each time, so the passes agree on every element.
// Shared memory: 2048 64-bit bins (16 KiB) and scan scratch.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

#include "aipe/kernels/sampling.hpp"
#include "aipe/kernels/vec.cuh"
#include "aipe/random.hpp"
#include "aipe/kernels/ptx.cuh"

namespace aipe::kernels::sampling {

inline constexpr int kThreads = 512;
inline constexpr int kBins = 2048;                 // the widest digit: 11 bits
inline constexpr int kBinsPerThread = kBins / kThreads;
inline constexpr float kWeightScale = 1099511627776.0f;  // 2^40: the fixed point of exp(z - max z) in [0, 1]

template <class T>
struct Elems;  // logits per 16-byte vector
template <>
struct Elems<float> {
  static constexpr int V = 4;
};
template <>
struct Elems<__nv_bfloat16> {
  static constexpr int V = 8;
};

__device__ inline float to_float(float v) { return v; }
__device__ inline float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

// V logits from row[base..): a 16-byte load when `vec` (and the vector lies inside the row), else element by element
// with -inf beyond the row (never selected, never weighted).
template <class T>
__device__ inline void load_v(const T* row, int base, int vocab, bool vec, float (&f)[Elems<T>::V]) {
  constexpr int V = Elems<T>::V;
  if (vec && base + V <= vocab) {
    if constexpr (V == 4) {
      const float4 v = *reinterpret_cast<const float4*>(row + base);
      f[0] = v.x, f[1] = v.y, f[2] = v.z, f[3] = v.w;
    } else {
      vec::load8(reinterpret_cast<const __nv_bfloat16*>(row) + base, f);
    }
  } else {
#pragma unroll
    for (int k = 0; k < V; ++k) f[k] = base + k < vocab ? to_float(row[base + k]) : -__int_as_float(0x7f800000);
  }
}

__device__ inline float neg_inf() { return -__int_as_float(0x7f800000); }
// NaN logits are treated as -inf: never chosen, never weighted.
__device__ inline float clean(float logit) { return logit != logit ? neg_inf() : logit; }
__device__ inline float scaled(float logit, float temperature) { return __fdiv_rn(clean(logit), temperature); }
// Order-preserving map of a float to an unsigned key: larger float, larger key.
__device__ inline unsigned key_of(float z) {
  const unsigned u = __float_as_uint(z);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
// floor(exp(z - zmax) 2^40): 0 for z = -inf, 2^40 for the top token.
__device__ inline unsigned long long weight_of(float z, float zmax) {
  return __float2ull_rz(expf(z - zmax) * kWeightScale);
}

// hist[bin] += val, aggregated over the lanes of the warp that hit the same bin (logits cluster in a few top-digit
// bins: without this, shared-memory atomics on one address serialize 32-fold). bin == kBins: no contribution.
// val < 2^41: split in 21-bit halves so that the 32-bit warp reductions cannot overflow (32 * 2^21 < 2^32).
// Warps none of whose lanes contribute (most of them in the second and third digits' passes) return after one vote.
__device__ inline void hist_add(unsigned long long* hist, unsigned bin, unsigned long long val) {
  const unsigned active = __activemask();
  if (__ballot_sync(active, bin < unsigned(kBins) && val != 0) == 0) return;
  const unsigned group = __match_any_sync(active, bin);
  const unsigned lo = __reduce_add_sync(group, unsigned(val & 0x1fffffu));
  const unsigned hi = __reduce_add_sync(group, unsigned(val >> 21));
  const int leader = __ffs(group) - 1;
  if ((threadIdx.x & 31) == unsigned(leader) && bin < unsigned(kBins)) {
    const unsigned long long sum = (static_cast<unsigned long long>(hi) << 21) + lo;
    if (sum) atomicAdd(&hist[bin], sum);
  }
}

struct ArgMax {
  float v;
  int i;
};
__device__ inline ArgMax better(ArgMax a, ArgMax b) {
  return (b.v > a.v || (b.v == a.v && b.i < a.i)) ? b : a;
}

struct Shared {
  unsigned long long hist[kBins];
  unsigned long long scratch[33];
  float fv[32];
  int fi[32];
  unsigned digit;
  unsigned long long above, chosen;
  int found;
};

template <class T>
__device__ ArgMax row_argmax(const T* row, int vocab, bool vec, Shared& sh) {
  constexpr int V = Elems<T>::V;
  ArgMax best{neg_inf(), 0x7fffffff};
  for (int base = threadIdx.x * V; base < vocab; base += kThreads * V) {
    float f[V];
    load_v(row, base, vocab, vec, f);
#pragma unroll
    for (int k = 0; k < V; ++k)
      if (base + k < vocab) best = better(best, ArgMax{clean(f[k]), base + k});
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const ArgMax other{__shfl_xor_sync(0xffffffffu, best.v, o), __shfl_xor_sync(0xffffffffu, best.i, o)};
    best = better(best, other);
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) sh.fv[warp] = best.v, sh.fi[warp] = best.i;
  __syncthreads();
  best = ArgMax{sh.fv[0], sh.fi[0]};
  for (int w = 1; w < kThreads / 32; ++w) best = better(best, ArgMax{sh.fv[w], sh.fi[w]});
  __syncthreads();
  if (best.i == 0x7fffffff) best.i = 0;  // every logit NaN
  return best;
}

// The largest key T such that the elements with key >= T (and key >= floor_key) reach a target: in count
// (kMass = false) or in weight (kMass = true). The target is `target`, or, with fraction > 0, ceil(fraction * the
// eligible total) (clamped to [1, total]), the total being the sum of the first digit's histogram: the top-p target
// needs no pass of its own. target must not exceed the eligible total. Three digits, top down.
// *at_or_above gets the eligible total of keys >= T (what the draw renormalizes by, when nothing filters further).
template <bool kMass, class T>
__device__ unsigned radix_select(const T* row, int vocab, bool vec, float temperature, float zmax, unsigned floor_key,
                                 unsigned long long target, float fraction, Shared& sh,
                                 unsigned long long* at_or_above) {
  constexpr int V = Elems<T>::V;
  constexpr int kShift[3] = {21, 10, 0}, kBits[3] = {11, 11, 10};
  unsigned prefix = 0;
  unsigned long long above = 0;  // eligible total of keys whose fixed digits exceed the prefix
#pragma unroll 1
  for (int level = 0; level < 3; ++level) {
    const int shift = kShift[level], bits = kBits[level], hi = shift + bits;
    const unsigned nb = 1u << bits;
    for (int b = threadIdx.x; b < kBins; b += kThreads) sh.hist[b] = 0;
    if (threadIdx.x == 0) sh.digit = 0, sh.above = above, sh.chosen = 0;
    __syncthreads();
    for (int base = threadIdx.x * V; base < vocab; base += kThreads * V) {
      float f[V];
      load_v(row, base, vocab, vec, f);
#pragma unroll
      for (int k = 0; k < V; ++k) {
        const float z = scaled(f[k], temperature);
        const unsigned key = key_of(z);
        const bool in = base + k < vocab && key >= floor_key && (hi >= 32 || (key >> hi) == (prefix >> hi));
        unsigned long long val = 1;
        if constexpr (kMass) val = weight_of(z, zmax);
        hist_add(sh.hist, in ? (key >> shift) & (nb - 1) : unsigned(kBins), val);
      }
    }
    __syncthreads();
    // Reversed bins r = nb - 1 - d, kBinsPerThread consecutive per thread: the scan gives, for each digit d, the
    // eligible total of digits >= d; the chosen digit is the largest d whose total reaches the target.
    unsigned long long v[kBinsPerThread], local = 0;
#pragma unroll
    for (int j = 0; j < kBinsPerThread; ++j) {
      const unsigned r = threadIdx.x * kBinsPerThread + j;
      v[j] = r < nb ? sh.hist[nb - 1 - r] : 0ull;
      local += v[j];
    }
    unsigned long long total = 0;
    unsigned long long run = above + vec::block_exclusive_scan_u64(local, sh.scratch, &total);
    if (level == 0 && fraction > 0.0f) {  // every thread computes the same target from the same total
      const unsigned long long t = static_cast<unsigned long long>(ceil(double(fraction) * double(total)));
      target = t < 1 ? 1 : (t > total ? total : t);
    }
#pragma unroll
    for (int j = 0; j < kBinsPerThread; ++j) {
      if (run < target && run + v[j] >= target) {
        sh.digit = nb - 1 - (threadIdx.x * kBinsPerThread + j);
        sh.above = run;
        sh.chosen = v[j];
      }
      run += v[j];
    }
    __syncthreads();
    prefix |= sh.digit << shift;
    above = sh.above;
    // After the last digit the chosen bin holds exactly the keys == T.
    if (level == 2) *at_or_above = sh.above + sh.chosen;
    __syncthreads();
  }
  return prefix;
}

// Sum of the weights of elements with key >= floor_key (and, min_p > 0, exp(z - zmax) >= min_p).
template <class T>
__device__ unsigned long long kept_mass(const T* row, int vocab, bool vec, float temperature, float zmax,
                                        unsigned floor_key, float min_p, Shared& sh) {
  constexpr int V = Elems<T>::V;
  unsigned long long m = 0;
  for (int base = threadIdx.x * V; base < vocab; base += kThreads * V) {
    float f[V];
    load_v(row, base, vocab, vec, f);
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const float z = scaled(f[k], temperature);
      if (base + k < vocab && key_of(z) >= floor_key && expf(z - zmax) >= min_p) m += weight_of(z, zmax);
    }
  }
  return vec::block_sum_u64(m, sh.scratch);
}

// logits [rows][ld]; params null: argmax of every row.
template <class T>
__global__ void __launch_bounds__(kThreads) sample_kernel(const T* logits, std::int64_t ld, int vocab,
                                                          const SamplingParams* params, int* tokens) {
  pdl_begin();  // launched with launch_pdl
  constexpr int V = Elems<T>::V;
  __shared__ Shared sh;
  const T* row = logits + std::int64_t(blockIdx.x) * ld;
  const bool vec = vec::aligned16(row);
  const ArgMax am = row_argmax(row, vocab, vec, sh);
  if (params == nullptr) {
    if (threadIdx.x == 0) tokens[blockIdx.x] = am.i;
    return;
  }
  const SamplingParams p = params[blockIdx.x];
  const bool valid = p.temperature >= 0.0f && p.temperature <= 3.0e38f && p.top_k >= 0 && p.top_p > 0.0f &&
                     p.top_p <= 1.0f && p.min_p >= 0.0f && p.min_p <= 1.0f;
  if (!valid) {
    if (threadIdx.x == 0) tokens[blockIdx.x] = -1;
    return;
  }
  const float zmax = p.temperature > 0.0f ? scaled(am.v, p.temperature) : 0.0f;
  // Temperature 0, a row without a finite maximum (all -inf, or +inf logits), or z overflowing: the argmax.
  if (p.temperature == 0.0f || !(zmax > neg_inf() && zmax < -neg_inf())) {
    if (threadIdx.x == 0) tokens[blockIdx.x] = am.i;
    return;
  }
  unsigned threshold = 0;  // keep keys >= threshold
  unsigned long long kept_count = 0;  // keys >= the top-k threshold (ties make it exceed k)
  if (p.top_k > 0 && p.top_k < vocab)
    threshold = radix_select<false>(row, vocab, vec, p.temperature, zmax, 0u, unsigned(p.top_k), 0.0f, sh,
                                    &kept_count);
  bool mass_known = false;
  unsigned long long m = 0;  // the kept mass
  if (p.top_p < 1.0f) {
    threshold = radix_select<true>(row, vocab, vec, p.temperature, zmax, threshold, 0, p.top_p, sh, &m);
    mass_known = p.min_p == 0.0f;
  }
  if (!mass_known) m = kept_mass(row, vocab, vec, p.temperature, zmax, threshold, p.min_p, sh);
  // u uniform in [0, m): the high 64 bits of r * m, r 64 bits of splitmix64 over (seed, counter).
  const std::uint64_t r = splitmix64(p.seed * 0x632BE59BD9B4E019ull ^ splitmix64(p.counter));
  const unsigned long long u = __umul64hi(r, m);
  if (threadIdx.x == 0) sh.found = am.i;
  unsigned long long running = 0;
  for (int tile = 0; tile < vocab; tile += kThreads * V) {
    const int base = tile + threadIdx.x * V;
    float f[V];
    load_v(row, base, vocab, vec, f);  // past the row: -inf, nothing read
    unsigned long long w[V], local = 0;
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const float z = scaled(f[k], p.temperature);
      const bool keep = base + k < vocab && key_of(z) >= threshold && expf(z - zmax) >= p.min_p;
      w[k] = keep ? weight_of(z, zmax) : 0ull;
      local += w[k];
    }
    unsigned long long total = 0;
    const unsigned long long ex = running + vec::block_exclusive_scan_u64(local, sh.scratch, &total);
    if (ex <= u && u < ex + local) {
      unsigned long long acc = ex;
#pragma unroll
      for (int k = 0; k < V; ++k) {
        acc += w[k];
        if (u < acc) {
          sh.found = base + k;
          break;
        }
      }
    }
    running += total;
    if (running > u) break;  // every thread holds the same running total
  }
  __syncthreads();
  if (threadIdx.x == 0) tokens[blockIdx.x] = sh.found;
}

}  // namespace aipe::kernels::sampling
