// The Hopper forward kernel of aipe::kernels::attention::forward (FlashAttention-3's design, written for this
// project): one CTA computes a BM = 128 row block of one (batch, query head), streaming K and V tiles of BN
// keys through shared memory (BN = 128; 64 at d = 256, where O alone holds 128 FP32 registers a thread).
//
//   warpgroup 0: producer. One thread issues every TMA load: the Q tile [128][d] once per tile, K and V tiles
//                [BN][d] through two mbarrier rings (aipe/kernels/pipeline.cuh), 3 stages (2 at d = 256).
//                setmaxnreg 24.
//   warpgroups 1, 2: consumers, 64 query rows each (setmaxnreg 240):
//                S = Q K^T        wgmma m64nBNk16, A = Q and B = K both K-major in 128B-swizzled smem
//                online softmax   FP32 in registers: row max over the quad (shuffles), exp2 with log2(e) folded
//                                 into the scale, the -inf mask only on tiles the mask classifies partial or that
//                                 reach past seq_kv (empty tiles are never loaded)
//                O += P V         wgmma m64n(d)k16 RS: P converted to BF16 / FP16 pairs in registers (the accumulator
//                                 fragment of S is the A-register fragment of the second GEMM), V [keys][d] in
//                                 smem is MN-major for B (transpose bit)
//                epilogue         O / row sum (and the sink), 16-bit pairs stored guarded for the tail rows; LSE
//
// Schedule switches (ForwardSchedule; each changes what runs, the ch18 ladder times them):
//   intra_overlap (template): the S GEMM of tile j+1 is issued with the P V GEMM of tile j before tile j+1's
//                softmax, so the tensor cores work while the same warpgroup runs exp2 (FA3 section 3.2);
//                off: S, wait, softmax, P V, wait, tile after tile.
//   pingpong (runtime): two named barriers hand the right to issue wgmma from one consumer warpgroup to the other,
//                so one warpgroup's softmax runs while the other's GEMMs do (FA3 section 3.1); off: both issue
//                freely.
//   persistent (runtime): grid = resident CTAs, each walking tiles u = blockIdx.x, + gridDim.x, ...; masked
//                (causal / window) problems in longest-first order (the last row blocks see the most keys);
//                off: one CTA per tile, row blocks fastest.
//
// KV tiles are walked from the last visible one down to the first: the partial (diagonal, tail) tiles come first.
// Tails: TMA zero-fills rows past seq_q / seq_kv in the boxes; keys >= seq_kv get -inf; rows >= seq_q are not
// stored. A row that sees no key and has no sink gets O = 0, LSE = -inf. Varlen (cu_q / cu_kv): a tile's sequence
// bounds come from the offsets; the boxes then run into the next sequence's rows, which the same -inf and the
// same store guard keep out; row blocks past a shorter sequence's end are skipped whole.
#pragma once
#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <climits>
#include <cstdint>
#include <type_traits>

#include "aipe/kernels/attention/forward_schedule.hpp"
#include "aipe/kernels/attention/masks.cuh"
#include "aipe/kernels/attention/score_mods.cuh"
#include "aipe/kernels/pipeline.cuh"
#include "aipe/kernels/ptx.cuh"
#include "aipe/kernels/wgmma.cuh"

namespace aipe::kernels::attention::sm90 {

constexpr int kThreads = 384;   // producer warpgroup + 2 consumers
constexpr int kChunk = 64;      // d elements per 128-byte swizzled row (one TMA box column)
constexpr int kBarPingpong = 1; // named barriers 1 (consumer 0's turn) and 2 (consumer 1's turn)

template <int D, int BN>
struct Cfg {
  static_assert(D % kChunk == 0, "d is a whole number of 64-element chunks");
  static constexpr int kChunks = D / kChunk;
  static constexpr int kQBytes = kBM * D * 2;   // [chunks][128 rows][64]
  static constexpr int kKVBytes = BN * D * 2;   // [chunks][BN rows][64]
  static constexpr int kQChunkBytes = kBM * 128, kKVChunkBytes = BN * 128;
  // Stages of the K and V rings: 3 where they fit (d <= 128: 225 KiB at d = 128), so each tile is requested two
  // tiles ahead of its use and a slow TMA does not stall the tensor cores; 2 at d = 256.
  static constexpr int kStages = D == 256 ? 2 : 3;
  // [1024 alignment][Q][K stages][V stages][barriers: Q full/empty, K full/empty, V full/empty]
  static constexpr std::size_t kSmem = 1024 + kQBytes + 2 * std::size_t(kStages) * kKVBytes + (2 + 4 * kStages) * 8;
  static_assert(kSmem <= 232448, "one CTA per SM: at most 227 KiB of shared memory");
};

__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

template <int N>
__device__ __forceinline__ void fence_u32(std::uint32_t (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+r"(r[i])::"memory");
}

// The element types the kernel reads and writes (T: __nv_bfloat16 or __half) and their wgmma operand type.
template <class T>
inline constexpr MmaType kMmaOf = std::is_same_v<T, __half> ? MmaType::f16 : MmaType::bf16;
template <class T>
using Pair = std::conditional_t<std::is_same_v<T, __half>, __half2, __nv_bfloat162>;

template <class T>
__device__ __forceinline__ Pair<T> to_pair(float lo, float hi) {  // .x (low half) = lo: the lower column
  if constexpr (std::is_same_v<T, __half>) return __floats2half2_rn(lo, hi);
  else return __floats2bfloat162_rn(lo, hi);
}
template <class T>
__device__ __forceinline__ std::uint32_t pack_pair(float lo, float hi) {
  const Pair<T> v = to_pair<T>(lo, hi);
  return *reinterpret_cast<const std::uint32_t*>(&v);
}

// One consumer warpgroup's softmax state: rows g and g + 8 of its 16-row warp slice (g = lane / 4).
template <int BN>
struct RowState {
  float m[2];  // running max of the raw scores (-inf: nothing seen yet)
  float l[2];  // running sum of exp2 over this thread's columns only (the quad sum is taken at the end)
};

// Scores of one tile -> probabilities in place (FP32), with the correction the running O and l need.
// s: accumulator fragment of m64nBN, s[4j + 2h + e] = row g + 8h, column 8j + 2(lane % 4) + e.
template <int BN>
__device__ __forceinline__ void online_softmax(float (&s)[BN / 2], RowState<BN>& st, float (&corr)[2],
                                               float scale_log2) {
  // Max and sum in kAcc independent partials a row (a tree, not a chain of BN / 4 dependent FMNMX / FADD: the
  // softmax sits between two wgmma issues, so its latency is what the tensor cores wait for).
  constexpr int kAcc = 4;
  static_assert((BN / 8) % kAcc == 0, "column groups split evenly over the partials");
  float mx[2][kAcc];
#pragma unroll
  for (int h = 0; h < 2; ++h)
#pragma unroll
    for (int a = 0; a < kAcc; ++a) mx[h][a] = st.m[h];
#pragma unroll
  for (int j = 0; j < BN / 8; ++j)
#pragma unroll
    for (int h = 0; h < 2; ++h) mx[h][j % kAcc] = fmaxf(mx[h][j % kAcc], fmaxf(s[4 * j + 2 * h], s[4 * j + 2 * h + 1]));
  float mb[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float m = fmaxf(fmaxf(mx[h][0], mx[h][1]), fmaxf(mx[h][2], mx[h][3]));
    m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 1));  // the quad holds the row
    m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 2));
    // No key seen yet (m = -inf): keep O and l as they are (zero) and make every p exp2(-inf) = 0.
    corr[h] = m == -INFINITY ? 1.f : fast_exp2((st.m[h] - m) * scale_log2);
    mb[h] = m == -INFINITY ? 0.f : m * scale_log2;
    st.m[h] = m;
  }
  float sum[2][kAcc] = {};
#pragma unroll
  for (int j = 0; j < BN / 8; ++j)
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const float p = fast_exp2(fmaf(s[4 * j + 2 * h + e], scale_log2, -mb[h]));
        s[4 * j + 2 * h + e] = p;
        sum[h][j % kAcc] += p;
      }
#pragma unroll
  for (int h = 0; h < 2; ++h)
    st.l[h] = st.l[h] * corr[h] + ((sum[h][0] + sum[h][1]) + (sum[h][2] + sum[h][3]));
}

// P (FP32 probabilities of m64nBN) -> BF16 / FP16 A fragments of the BN / 16 k-steps of O += P V: k-step kk's four
// registers are accumulator columns 16 kk .. 16 kk + 15, p[4 kk + i] = pack(s[8 kk + 2i], s[8 kk + 2i + 1]).
template <class T, int BN>
__device__ __forceinline__ void to_a_fragments(const float (&s)[BN / 2], std::uint32_t (&p)[BN / 4]) {
#pragma unroll
  for (int i = 0; i < BN / 4; ++i) p[i] = pack_pair<T>(s[2 * i], s[2 * i + 1]);
}

template <int D>
__device__ __forceinline__ void rescale(float (&o)[D / 2], const float (&corr)[2]) {
#pragma unroll
  for (int j = 0; j < D / 8; ++j)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      o[4 * j + 2 * h] *= corr[h];
      o[4 * j + 2 * h + 1] *= corr[h];
    }
}

// -inf for every score the mask or the sequence end hides. rows[h]: this thread's two query rows; b, hd: the
// batch and query head the mask is asked about.
template <int BN, class Mask>
__device__ __forceinline__ void apply_mask(float (&s)[BN / 2], const Mask& mask, int b, int hd, const int (&rows)[2],
                                           int kv0, int seq_kv) {
  const int c0 = kv0 + 2 * (threadIdx.x % 4);
#pragma unroll
  for (int j = 0; j < BN / 8; ++j)
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int kv = c0 + 8 * j + e;
        if (kv >= seq_kv || !mask(b, hd, rows[h], kv)) s[4 * j + 2 * h + e] = -INFINITY;
      }
}

// Raw scores (q.k) -> score(scale q.k, b, h, q, kv): the logits in natural units, for a score modifier. Keys past
// seq_kv (masked afterwards) are shown to the modifier as the last key, so that one reading arrays by position
// stays inside them.
template <int BN, class Score>
__device__ __forceinline__ void apply_score(float (&s)[BN / 2], const Score& score, int b, int hd,
                                            const int (&rows)[2], int kv0, int seq_kv, float scale) {
  const int c0 = kv0 + 2 * (threadIdx.x % 4);
#pragma unroll
  for (int j = 0; j < BN / 8; ++j)
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int kv = min(c0 + 8 * j + e, seq_kv - 1);
        s[4 * j + 2 * h + e] = score(s[4 * j + 2 * h + e] * scale, b, hd, rows[h], kv);
      }
}

// The masks the kernel is built for: Masked = false, keys past seq_kv only; true: SlidingWindow (causal with
// window INT_MAX).
template <bool Masked>
struct MaskOf {
  using type = NoMask;
  __device__ static type make(const Params&, const Seq&) { return {}; }
};
template <>
struct MaskOf<true> {
  using type = SlidingWindow;
  __device__ static type make(const Params& p, const Seq& sq) { return {sq.offset(), p.window}; }
};

// What the kernel does per tile beyond the two GEMMs and the softmax, as a policy: the mask, the KV tiles a row
// block visits ([jb, je), walked downwards, skipping those visits() rejects), which of them need the
// per-element mask (needs_mask), and the score modifier.
//
// BuiltinMods<Masked>: forward()'s masks from Params (none, or causal / sliding window), analytic ranges.
template <bool Masked>
struct BuiltinMods {
  static constexpr bool kSparse = false;    // every tile of [jb, je) is visited
  static constexpr bool kScoreMod = false;
  static constexpr bool kClampRows = false;  // the mask may see rows past seq_q (they are never stored)
  __device__ typename MaskOf<Masked>::type mask(const Params& p, const Seq& sq) const {
    return MaskOf<Masked>::make(p, sq);
  }
  __device__ NoScoreMod score() const { return {}; }
  template <int BN>
  __device__ void range(const Params& p, const Seq& sq, int, int, int mb, int& jb, int& je) const {
    kv_range<Masked, BN>(p, sq, mb, jb, je);
  }
  __device__ bool visits(int, int, int, int) const { return true; }
  // Tile j of consumer c's 64 rows: keys past seq_kv, or a mask that is partial on these rows.
  template <int BN, class M>
  __device__ bool needs_mask(const M& mask, const Seq& sq, int, int, int, int, int row_lo, int j) const {
    const int kv0 = j * BN;
    if (kv0 + BN > sq.skv) return true;
    return mask.classify(0, 0, row_lo, row_lo + 64, kv0, kv0 + BN) != TileClass::full;
  }
};

template <class T, int D, int BN, class Mods, bool IntraOverlap>
__global__ void __launch_bounds__(kThreads, 1)
    forward_kernel(const __grid_constant__ CUtensorMap tma_q, const __grid_constant__ CUtensorMap tma_k,
                   const __grid_constant__ CUtensorMap tma_v, const Params p, const __grid_constant__ Mods mods) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using C = Cfg<D, BN>;
  constexpr MmaType kMma = kMmaOf<T>;
  extern __shared__ unsigned char smem_raw[];
  unsigned char* smem =
      reinterpret_cast<unsigned char*>((reinterpret_cast<std::uintptr_t>(smem_raw) + 1023) & ~std::uintptr_t(1023));
  unsigned char* sQ = smem;
  unsigned char* sK = sQ + C::kQBytes;
  constexpr int kStages = C::kStages;
  unsigned char* sV = sK + kStages * C::kKVBytes;
  auto* bars = reinterpret_cast<std::uint64_t*>(sV + kStages * C::kKVBytes);
  const Pipeline<1> qpipe(bars);                      // Q: one slot, refilled per tile
  const Pipeline<kStages> kpipe(bars + 2);            // K ring
  const Pipeline<kStages> vpipe(bars + 2 + 2 * kStages);  // V ring

  const int wg = warpgroup_index();
  const int first = blockIdx.x, stride = gridDim.x;  // non-persistent: gridDim.x = tiles, one tile each

  if (threadIdx.x == 0) {
    tma_prefetch_descriptor(&tma_q);
    tma_prefetch_descriptor(&tma_k);
    tma_prefetch_descriptor(&tma_v);
    // full: the producer's arrive.expect_tx (TMA's bytes do the rest); empty: one arrive per consumer warpgroup.
    qpipe.init(1, 2);
    kpipe.init(1, 2);
    vpipe.init(1, 2);
    fence_barrier_init();
  }
  __syncthreads();

  if (wg == 0) {
    setmaxnreg_dec<24>();
    if (threadIdx.x == 0) {
      PipelineState<1> qs;
      PipelineState<kStages> ks, vs;
      for (int u = first; u < p.tiles; u += stride) {
        const Tile t = tile_of(p, u);
        const Seq sq = seq_of(p, t.b);
        int jb, je;
        mods.template range<BN>(p, sq, t.b, t.h, t.mb, jb, je);
        if (je <= jb) continue;  // no key visible to the whole row block: the consumers write zeros
        const int hk = t.h / (p.heads / p.kv_heads);
        const int tb = p.cu_q ? 0 : t.b;  // packed batches: one sequence after the other along the rows
        qpipe.producer_acquire(qs);
        qpipe.producer_expect_tx(qs, C::kQBytes);
#pragma unroll
        for (int c = 0; c < C::kChunks; ++c)
          tma_load_4d(sQ + c * C::kQChunkBytes, &tma_q, qpipe.full_bar(qs), c * kChunk, t.h, sq.q0 + t.mb * kBM, tb);
        qs.advance();
        for (int j = je - 1; j >= jb; --j) {
          if constexpr (Mods::kSparse)
            if (!mods.visits(t.b, t.h, t.mb, j)) continue;  // an empty tile: never loaded
          kpipe.producer_acquire(ks);
          kpipe.producer_expect_tx(ks, C::kKVBytes);
#pragma unroll
          for (int c = 0; c < C::kChunks; ++c)
            tma_load_4d(sK + ks.index * C::kKVBytes + c * C::kKVChunkBytes, &tma_k, kpipe.full_bar(ks), c * kChunk,
                        hk, sq.kv0 + j * BN, tb);
          ks.advance();
          vpipe.producer_acquire(vs);
          vpipe.producer_expect_tx(vs, C::kKVBytes);
#pragma unroll
          for (int c = 0; c < C::kChunks; ++c)
            tma_load_4d(sV + vs.index * C::kKVBytes + c * C::kKVChunkBytes, &tma_v, vpipe.full_bar(vs), c * kChunk,
                        hk, sq.kv0 + j * BN, tb);
          vs.advance();
        }
      }
    }
  } else {
    setmaxnreg_inc<240>();
    const int c = wg - 1;  // rows 64 c .. 64 c + 63 of the tile
    const int tid = threadIdx.x % 128, warp = tid / 32, lane = tid % 32;
    const bool pingpong = p.pingpong;
    // Pingpong turns: consumer c waits on barrier kBarPingpong + c for its turn, and after issuing its wgmma
    // hands the turn to the other (an arrive on the other's barrier). Consumer 0 goes first: consumer 1 opens it.
    auto turn_begin = [&] {
      if (pingpong) named_barrier_sync(kBarPingpong + c, 256);
    };
    auto turn_end = [&] {
      if (pingpong) named_barrier_arrive(kBarPingpong + (1 - c), 256);
    };
    if (pingpong && c == 1) named_barrier_arrive(kBarPingpong + 0, 256);

    // Descriptors of stage 0 / chunk 0; the rest are offsets in 16-byte units of the address field.
    const std::uint64_t dq0 = wgmma_desc_sw128(sQ + c * 64 * 128);
    const std::uint64_t dk0 = wgmma_desc_sw128(sK);
    const std::uint64_t dv0 = wgmma_desc_mn_sw128(sV, C::kKVChunkBytes);
    PipelineState<1> qs;
    PipelineState<kStages> ks, vs;

    // S = Q K^T of the K tile in ks's slot (one commit group).
    auto issue_s = [&](float (&s)[BN / 2]) {
      const std::uint64_t dk = dk0 + static_cast<std::uint32_t>(ks.index * (C::kKVBytes >> 4));
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        const int ch = kk / 4, sub = kk % 4;  // 64-element chunk, 16-element slice (32 bytes) within it
        wgmma_ss<BN, kMma>(s, dq0 + static_cast<std::uint32_t>((ch * C::kQChunkBytes) >> 4) + 2 * sub,
                     dk + static_cast<std::uint32_t>((ch * C::kKVChunkBytes) >> 4) + 2 * sub, kk > 0 ? 1 : 0);
      }
    };
    // O += P V of the V tile in vs's slot: k-step kk reads keys 16 kk .. 16 kk + 15 (16 rows = 2048 bytes).
    auto issue_pv = [&](float (&o)[D / 2], std::uint32_t (&pf)[BN / 4]) {
      const std::uint64_t dv = dv0 + static_cast<std::uint32_t>(vs.index * (C::kKVBytes >> 4));
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
        // The registers themselves, not copies: the wgmma reads them after this call returns.
        const auto& a = *reinterpret_cast<const std::uint32_t(*)[4]>(&pf[4 * kk]);
        wgmma_rs<D, kMma, kMma, true>(o, a, dv + static_cast<std::uint32_t>((kk * 2048) >> 4), 1);
      }
    };

    for (int u = first; u < p.tiles; u += stride) {
      const Tile t = tile_of(p, u);
      const Seq sq = seq_of(p, t.b);
      const auto& mask = mods.mask(p, sq);  // aligned on this sequence's lengths
      const auto& score = mods.score();
      int jb, je;
      mods.template range<BN>(p, sq, t.b, t.h, t.mb, jb, je);
      int n = je > jb ? je - jb : 0;
      if constexpr (Mods::kSparse) n = mods.visited(t.b, t.h, t.mb, jb, je);
      // The tile visited after tile j (downwards): the next one the producer loads.
      auto below = [&](int j) {
        if constexpr (Mods::kSparse) return mods.below(t.b, t.h, t.mb, jb, j);
        else return j - 1;
      };
      const int row_lo = t.mb * kBM + 64 * c;  // this warpgroup's first row
      const int rows[2] = {row_lo + 16 * warp + lane / 4, row_lo + 16 * warp + lane / 4 + 8};
      // The rows the functors see: clamped to the sequence where they may read arrays by position.
      int mrows[2] = {rows[0], rows[1]};
      if constexpr (Mods::kClampRows) {
        mrows[0] = min(rows[0], sq.sq - 1);
        mrows[1] = min(rows[1], sq.sq - 1);
      }
      // Tile j's scores -> logits: the score modifier (if any) on every tile, the mask on the tiles that need it.
      auto modify = [&](float (&sc)[BN / 2], int j) {
        if constexpr (Mods::kScoreMod) apply_score<BN>(sc, score, t.b, t.h, mrows, j * BN, sq.skv, p.scale);
        if (mods.template needs_mask<BN>(mask, sq, t.b, t.h, t.mb, c, row_lo, j))
          apply_mask<BN>(sc, mask, t.b, t.h, mrows, j * BN, sq.skv);
      };
      // With a score modifier the logits are already scaled (natural units): the softmax only converts to base 2.
      const float softmax_scale = Mods::kScoreMod ? 1.4426950408889634f : p.scale_log2;

      float o[D / 2];
#pragma unroll
      for (int i = 0; i < D / 2; ++i) o[i] = 0.f;
      RowState<BN> rs;
      rs.m[0] = rs.m[1] = -INFINITY;
      rs.l[0] = rs.l[1] = 0.f;
      float s[BN / 2];
      std::uint32_t pf[BN / 4];
      float corr[2];

      if (n > 0) {
        if constexpr (IntraOverlap) {
          // Prologue: S of the first tile alone.
          qpipe.consumer_wait(qs);
          kpipe.consumer_wait(ks);
          turn_begin();
          wgmma_fence();
          issue_s(s);
          wgmma_commit();
          turn_end();
          wgmma_wait<0>();
          fence_regs(s);
          if (tid == 0) kpipe.consumer_release(ks.index);
          ks.advance();
          if (n == 1 && tid == 0) qpipe.consumer_release(0);
          int j = je - 1;
          modify(s, j);
          online_softmax<BN>(s, rs, corr, softmax_scale);
          to_a_fragments<T, BN>(s, pf);
          for (int i = 1; i < n; ++i) {
            j = below(j);
            // S of tile j and O += P V of the tile before it, in one turn.
            kpipe.consumer_wait(ks);
            vpipe.consumer_wait(vs);
            turn_begin();
            fence_regs(s);
            fence_regs(o);
            fence_u32(pf);
            wgmma_fence();
            issue_s(s);
            wgmma_commit();
            issue_pv(o, pf);
            wgmma_commit();
            turn_end();
            wgmma_wait<1>();  // S done; P V may still run (it reads pf and writes o: neither is touched below)
            fence_regs(s);
            if (tid == 0) kpipe.consumer_release(ks.index);
            ks.advance();
            if (i == n - 1 && tid == 0) qpipe.consumer_release(0);
            modify(s, j);
            online_softmax<BN>(s, rs, corr, softmax_scale);
            wgmma_wait<0>();
            fence_regs(o);
            fence_u32(pf);
            if (tid == 0) vpipe.consumer_release(vs.index);
            vs.advance();
            rescale<D>(o, corr);
            to_a_fragments<T, BN>(s, pf);
          }
          // Epilogue: the last tile's P V.
          vpipe.consumer_wait(vs);
          turn_begin();
          fence_regs(o);
          fence_u32(pf);
          wgmma_fence();
          issue_pv(o, pf);
          wgmma_commit();
          turn_end();
          wgmma_wait<0>();
          fence_regs(o);
          fence_u32(pf);
          if (tid == 0) vpipe.consumer_release(vs.index);
          vs.advance();
        } else {
          for (int i = 0, j = je - 1; i < n; ++i, j = below(j)) {
            if (i == 0) qpipe.consumer_wait(qs);
            kpipe.consumer_wait(ks);
            turn_begin();
            fence_regs(s);
            wgmma_fence();
            issue_s(s);
            wgmma_commit();
            turn_end();
            wgmma_wait<0>();
            fence_regs(s);
            if (tid == 0) kpipe.consumer_release(ks.index);
            ks.advance();
            if (i == n - 1 && tid == 0) qpipe.consumer_release(0);
            modify(s, j);
            online_softmax<BN>(s, rs, corr, softmax_scale);
            rescale<D>(o, corr);
            to_a_fragments<T, BN>(s, pf);
            vpipe.consumer_wait(vs);
            turn_begin();
            fence_regs(o);
            fence_u32(pf);
            wgmma_fence();
            issue_pv(o, pf);
            wgmma_commit();
            turn_end();
            wgmma_wait<0>();
            fence_regs(o);
            fence_u32(pf);
            if (tid == 0) vpipe.consumer_release(vs.index);
            vs.advance();
          }
        }
        qs.advance();
      }

      // Epilogue: the quad's partial row sums, the sink, 1 / sum; O as BF16 pairs, LSE (natural log).
      const float sink = p.sinks ? p.sinks[t.h] : -INFINITY;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        float l = rs.l[h];
        l += __shfl_xor_sync(0xffffffffu, l, 1);
        l += __shfl_xor_sync(0xffffffffu, l, 2);
        // The row max in natural units (a score modifier's logits already are).
        const float ms = rs.m[h] == -INFINITY ? -INFINITY : (Mods::kScoreMod ? rs.m[h] : rs.m[h] * p.scale);
        const float big = fmaxf(ms, sink);
        float f = 0.f, lse = -INFINITY;
        if (big != -INFINITY) {
          const float keep = ms == -INFINITY ? 0.f : __expf(ms - big);  // l and O are relative to ms
          const float total = l * keep + (sink == -INFINITY ? 0.f : __expf(sink - big));
          f = total > 0.f ? keep / total : 0.f;
          lse = total > 0.f ? big + __logf(total) : -INFINITY;
        }
        const int row = rows[h];  // within the sequence
        if (row < sq.sq) {
          T* orow = static_cast<T*>(p.o) + (p.cu_q ? 0 : t.b * p.o_batch) + std::int64_t(sq.q0 + row) * p.o_row +
                    std::int64_t(t.h) * p.o_head + 2 * (lane % 4);
#pragma unroll
          for (int j = 0; j < D / 8; ++j)
            *reinterpret_cast<Pair<T>*>(orow + 8 * j) = to_pair<T>(o[4 * j + 2 * h] * f, o[4 * j + 2 * h + 1] * f);
          if (p.lse && lane % 4 == 0) p.lse[(std::int64_t(t.b) * p.heads + t.h) * p.seq_q + row] = lse;
        }
      }
    }
    // Balance the pingpong barriers: consumer 1's last hand-over to consumer 0 is still pending.
    if (pingpong && c == 0) named_barrier_sync(kBarPingpong + 0, 256);
  }
#else
  (void)tma_q; (void)tma_k; (void)tma_v; (void)p; (void)mods;
  __trap();
#endif
}

}  // namespace aipe::kernels::attention::sm90
