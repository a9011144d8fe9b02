// The work decomposition of the Hopper forward kernel (forward_sm90.cuh), host and device code so that the CPU
// tests (tests/kernels/attention_forward_check_test.cpp) check it: the kernel's parameters, which (row block, head,
// batch) tile a CTA takes in which order, each tile's sequence bounds (fixed-length or packed varlen batches), and
// the KV tiles a row block must visit under its mask.
#pragma once
#include <climits>
#include <cstdint>

#include "aipe/hd.hpp"

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

}  // namespace aipe::kernels::attention::sm90
