// aipe::kernels::attention::forward_flex: the forward kernel of forward.hpp with FlexAttention-style modifiers
// compiled in: a mask functor (masks.cuh: Causal, SlidingWindow, PrefixLM, Document and their And / Or / Not)
// and a score functor (score_mods.cuh: Alibi, SoftCap and their composition), each a template argument of the
// kernel, so the per-element work is inlined into the softmax, as torch.compile does for FlexAttention.
//
// A block map (build_block_map in block_map.cuh, once per mask) classifies every (64-row query block, 128-key
// KV tile) as empty, full or partial: the kernel never loads or multiplies an empty tile, runs full ones without
// the mask and applies the mask element by element only on partial ones. Without a map (classes = null) every
// tile is visited and masked element by element (the dense rung of ch18/flex_attention).
//
// Layouts, sizes, strides, scale, sinks and schedule as in ForwardArgs (forward.hpp), with these limits: BF16,
// d in {64, 128}, fixed-length batches (no cu_seqlens: packed documents are a Document mask), mask = none
// (the mask is the functor). The functors see positions within the sequence (0 <= q < seq_q, 0 <= kv < seq_kv);
// keys past seq_kv are always masked. A row that sees no key (and has no sink) gets O = 0 and LSE = -inf.
//
// Built (kernels/src/attention_flex_d*.cu: what the ch18 ladder and the tests use, not the cross product):
//   Causal, SlidingWindow, PrefixLM, Document, And<Causal, Document>, Or<SlidingWindow, PrefixLM>   x NoScoreMod
//   NoMask x Alibi, NoMask x SoftCap                                                            (d = 128)
//   And<Causal, Document> x Compose<SoftCap, Alibi>                                             (d = 64, 128)
// Another combination is one line in those files (and its extern line below).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "aipe/kernels/attention/forward.hpp"
#include "aipe/kernels/attention/masks.cuh"
#include "aipe/kernels/attention/score_mods.cuh"

namespace aipe::kernels::attention {

// Block-map granularity: the kernel's consumer warpgroup rows and KV tile keys (BN at d <= 128).
inline constexpr int kMapRows = 64, kMapKeys = 128;

// TileClass per block, [batch][heads][q_blocks][kv_blocks] (uint8 on the device); heads = 1 when the mask does
// not depend on the head (every built-in mask), else the problem's query heads.
struct BlockMap {
  const std::uint8_t* classes = nullptr;  // null: no map (dense)
  int batch = 0, heads = 0, q_blocks = 0, kv_blocks = 0;
  // The shape (classes null) of the map of a problem; allocate bytes() and fill with build_block_map.
  static BlockMap shape(int batch, int heads, int seq_q, int seq_kv) {
    return {nullptr, batch, heads, (seq_q + kMapRows - 1) / kMapRows, (seq_kv + kMapKeys - 1) / kMapKeys};
  }
  std::size_t bytes() const { return std::size_t(batch) * heads * q_blocks * kv_blocks; }
};

struct FlexArgs {
  ForwardArgs attn;      // tensors, sizes, strides, scale, sinks, schedule (mask none, no varlen)
  BlockMap block_map{};  // classes null: every tile visited and masked element by element
};

// Throws std::invalid_argument for a problem the kernel cannot take; launches on `stream` otherwise.
template <class Mask, class Score>
void forward_flex(const FlexArgs& args, const Mask& mask, const Score& score, cudaStream_t stream);

// The checks of forward_flex, without launching (CPU-testable; kernels/src/attention_flex_check.cpp).
void check_flex_args(const FlexArgs& args);

// The standard ALiBi slopes of `heads` heads (Press et al., as in their reference code and HF's BLOOM):
// 2^(-8 (i + 1) / n) for the n = 2^floor(log2 heads) heads, then every other slope of 2n for the rest.
std::vector<float> alibi_slopes(int heads);

extern template void forward_flex(const FlexArgs&, const Causal&, const NoScoreMod&, cudaStream_t);
extern template void forward_flex(const FlexArgs&, const SlidingWindow&, const NoScoreMod&, cudaStream_t);
extern template void forward_flex(const FlexArgs&, const PrefixLM&, const NoScoreMod&, cudaStream_t);
extern template void forward_flex(const FlexArgs&, const Document&, const NoScoreMod&, cudaStream_t);
extern template void forward_flex(const FlexArgs&, const And<Causal, Document>&, const NoScoreMod&, cudaStream_t);
extern template void forward_flex(const FlexArgs&, const Or<SlidingWindow, PrefixLM>&, const NoScoreMod&,
                                  cudaStream_t);
extern template void forward_flex(const FlexArgs&, const NoMask&, const Alibi&, cudaStream_t);
extern template void forward_flex(const FlexArgs&, const NoMask&, const SoftCap&, cudaStream_t);
extern template void forward_flex(const FlexArgs&, const And<Causal, Document>&, const Compose<SoftCap, Alibi>&,
                                  cudaStream_t);

}  // namespace aipe::kernels::attention
