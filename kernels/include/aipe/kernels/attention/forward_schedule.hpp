// The work decomposition of the Hopper forward kernel (forward_sm90.cuh), host and device code so that the CPU
// tests (tests/kernels/attention_forward_check_test.cpp) check it: the kernel's parameters, which (row block, head,
// batch) tile a CTA takes in which order, each tile's sequence bounds (fixed-length or packed varlen batches), and
// the KV tiles a row block must visit under its mask, and forward_flex's tile policy over a block map.
#pragma once
#include <climits>
#include <cstdint>

#include "aipe/hd.hpp"
#include "aipe/kernels/attention/masks.cuh"

namespace aipe::kernels::attention::sm90 {

constexpr int kBM = 128;  // query rows of a CTA tile: two consumer warpgroups of 64

// Everything the kernel needs besides the tensor maps (elements for strides).
struct Params {
  void* o = nullptr;
  float* lse = nullptr;
  const float* sinks = nullptr;
  const int* cu_q = nullptr;   // varlen: [batch + 1] row offsets into packed Q / O, or null
  const int* cu_kv = nullptr;  // varlen: [batch + 1] row offsets into packed K / V
  std::int64_t o_batch = 0, o_row = 0, o_head = 0;
  int batch = 0, heads = 0, kv_heads = 0, seq_q = 0, seq_kv = 0;
  float scale = 0.f;       // natural-log units: the sink and the LSE
  float scale_log2 = 0.f;  // scale * log2(e): what exp2 sees
  int window = INT_MAX;    // masked kernels: causal = INT_MAX
  int mblocks = 0, tiles = 0;  // row blocks of the longest sequence; x heads x batch
  bool pingpong = true, longest_first = false;
};

struct Tile {
  int mb, h, b;
};
// Tile u of the launch. longest_first: row blocks from the last (most keys under a causal mask) down, every
// (batch, head) of a row block together; otherwise the row blocks of one head are adjacent (they share K, V in L2).
AIPE_HD Tile tile_of(const Params& p, int u) {
  Tile t;
  if (p.longest_first) {
    const int bh = p.heads * p.batch;
    t.mb = p.mblocks - 1 - u / bh;
    const int r = u % bh;
    t.h = r % p.heads;
    t.b = r / p.heads;
  } else {
    t.mb = u % p.mblocks;
    const int r = u / p.mblocks;
    t.h = r % p.heads;
    t.b = r / p.heads;
  }
  return t;
}

// One sequence of the batch: where its rows start in the (packed) tensors (0 for fixed-length batches, whose
// batch index selects the sequence instead) and its lengths.
struct Seq {
  int q0, kv0, sq, skv;
  AIPE_HD int offset() const { return skv - sq; }  // bottom-right alignment
};
AIPE_HD Seq seq_of(const Params& p, int b) {
  if (p.cu_q) {
    const int q0 = p.cu_q[b], kv0 = p.cu_kv[b];
    return {q0, kv0, p.cu_q[b + 1] - q0, p.cu_kv[b + 1] - kv0};
  }
  return {0, 0, p.seq_q, p.seq_kv};
}

// KV tiles [jb, je) that some row of row block mb sees (the producer and both consumers agree on it).
template <bool Masked, int BN>
AIPE_HD void kv_range(const Params& p, const Seq& sq, int mb, int& jb, int& je) {
  const int nkv = (sq.skv + BN - 1) / BN;
  jb = 0;
  je = nkv;
  if (mb * kBM >= sq.sq) {  // a row block past this sequence's end (varlen: shorter than the longest)
    je = 0;
    return;
  }
  if constexpr (Masked) {
    const int q_lo = mb * kBM, q_hi = (q_lo + kBM < sq.sq ? q_lo + kBM : sq.sq) - 1;
    const long long kv_hi = (long long)q_hi + sq.offset();                 // the last row's last key
    const long long kv_lo = (long long)q_lo + sq.offset() - p.window + 1;  // the first row's first key
    const long long e = kv_hi / BN + 1, b = kv_lo / BN;
    je = kv_hi < 0 ? 0 : (e < nkv ? static_cast<int>(e) : nkv);
    jb = kv_lo <= 0 ? 0 : (b < nkv ? static_cast<int>(b) : nkv);
  }
}

// FlexMods<Mask, Score>: the per-tile policy of forward_flex()'s kernels (forward_sm90.cuh: BuiltinMods is
// forward()'s): the functors and the block map (classes [batch][map_heads][q_blocks]
// [kv_blocks] of 64-row x BN-key blocks; null: dense, every tile visited and masked).
template <class Mask, class Score>
struct FlexMods {
  static constexpr bool kSparse = true;
  static constexpr bool kScoreMod = !Score::kIdentity;
  static constexpr bool kClampRows = true;  // functors may read arrays by position: rows past seq_q are clamped
  Mask m;
  Score s;
  const std::uint8_t* map = nullptr;
  int map_heads = 1, q_blocks = 0, kv_blocks = 0;

  AIPE_HD const Mask& mask(const Params&, const Seq&) const { return m; }
  AIPE_HD const Score& score() const { return s; }
  // The class of 64-row block qb (past the last one: empty) against KV tile j.
  AIPE_HD TileClass cls(int b, int h, int qb, int j) const {
    if (qb >= q_blocks) return TileClass::empty;
    const int hm = map_heads > 1 ? h : 0;
    return static_cast<TileClass>(map[((std::int64_t(b) * map_heads + hm) * q_blocks + qb) * kv_blocks + j]);
  }
  AIPE_HD bool visits(int b, int h, int mb, int j) const {
    return !map || cls(b, h, 2 * mb, j) != TileClass::empty || cls(b, h, 2 * mb + 1, j) != TileClass::empty;
  }
  template <int BN>
  AIPE_HD void range(const Params&, const Seq& sq, int b, int h, int mb, int& jb, int& je) const {
    const int nkv = (sq.skv + BN - 1) / BN;
    jb = 0;
    je = mb * kBM >= sq.sq ? 0 : nkv;
    if (!map) return;
    while (je > 0 && !visits(b, h, mb, je - 1)) --je;
    while (jb < je && !visits(b, h, mb, jb)) ++jb;
  }
  // Tiles of [jb, je) visited, and the one visited after j going down (jb is visited: range's bounds are).
  AIPE_HD int visited(int b, int h, int mb, int jb, int je) const {
    int n = 0;
    for (int j = jb; j < je; ++j) n += visits(b, h, mb, j) ? 1 : 0;
    return n;
  }
  AIPE_HD int below(int b, int h, int mb, int jb, int j) const {
    --j;
    while (j > jb && !visits(b, h, mb, j)) --j;
    return j;
  }
  template <int BN, class M>
  AIPE_HD bool needs_mask(const M&, const Seq& sq, int b, int h, int mb, int c, int, int j) const {
    if ((j + 1) * BN > sq.skv) return true;
    return !map || cls(b, h, 2 * mb + c, j) != TileClass::full;
  }
};


}  // namespace aipe::kernels::attention::sm90
