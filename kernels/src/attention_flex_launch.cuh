// Internal to kernels/src/attention_flex*.cu: forward_flex's host entry (a template over the functors) and the
// launcher of its kernels. attention_flex.cu instantiates forward_flex for the built functor pairs (host code
// only: the launchers are declared here, extern); attention_flex_d64.cu and attention_flex_d128.cu instantiate
// the kernels (attention_flex_kernels.cuh), the two heavy translation units, compiled in parallel.
#pragma once
#include <cuda.h>
#include <cuda_bf16.h>

#include <climits>
#include <cmath>
#include <stdexcept>
#include <type_traits>

#include "aipe/check.hpp"
#include "aipe/kernels/attention/forward_flex.hpp"
#include "aipe/kernels/attention/forward_sm90.cuh"
#include "attention_forward_host.hpp"

namespace aipe::kernels::attention::sm90 {

template <int D, class Mask, class Score>
struct FlexLaunch {
  static_assert(D == 64 || D == 128, "forward_flex has d = 64 and 128 (BN = 128 = the block map's kMapKeys)");
  static constexpr int kBN = 128;
  static constexpr std::size_t kSmem = Cfg<D, kBN>::kSmem;
  static void run(const CUtensorMap& tq, const CUtensorMap& tk, const CUtensorMap& tv, const Params& p,
                  const FlexMods<Mask, Score>& mods, int grid, cudaStream_t stream);
};

// Which (d, mask, score) kernels exist: every built pair at d = 128; at d = 64 the ch18 ladder's.
template <int D, class Mask, class Score>
inline constexpr bool kFlexBuilt = D == 128;
template <>
inline constexpr bool kFlexBuilt<64, And<Causal, Document>, Compose<SoftCap, Alibi>> = true;

}  // namespace aipe::kernels::attention::sm90

namespace aipe::kernels::attention {

template <class Mask, class Score>
void forward_flex(const FlexArgs& args, const Mask& mask, const Score& score, cudaStream_t stream) {
  check_flex_args(args);
  const ForwardArgs& a = args.attn;
  if (a.d == 64 && !sm90::kFlexBuilt<64, Mask, Score>)
    throw std::invalid_argument("attention::forward_flex: d = 64 is not built for this mask and score modifier "
                                "(kernels/src/attention_flex_d64.cu lists what is)");
#if !AIPE_HAVE_SM90A
  (void)mask, (void)score, (void)stream;
  throw std::runtime_error("attention::forward_flex: this build has no sm_90a code (set CMAKE_CUDA_ARCHITECTURES to 90a)");
#else
  int device = 0;
  AIPE_CUDA(cudaGetDevice(&device));
  const int resident = detail::resident_ctas(device);  // and the Hopper check
  sm90::Params p;
  p.o = a.o;
  p.lse = a.lse;
  p.sinks = a.sinks;
  p.o_batch = a.q_batch;
  p.o_row = a.q_row;
  p.o_head = a.q_head;
  p.batch = a.batch;
  p.heads = a.heads;
  p.kv_heads = a.kv_heads;
  p.seq_q = a.seq_q;
  p.seq_kv = a.seq_kv;
  p.scale = a.scale > 0.f ? a.scale : 1.f / std::sqrt(float(a.d));
  p.scale_log2 = p.scale * 1.4426950408889634f;
  p.window = INT_MAX;
  p.mblocks = (a.seq_q + sm90::kBM - 1) / sm90::kBM;
  p.tiles = p.mblocks * a.heads * a.batch;
  p.pingpong = a.schedule.pingpong;
  // Longest first where rows differ in work (any mask); the default order keeps a head's K and V in L2.
  p.longest_first = a.schedule.persistent && !std::is_same_v<Mask, NoMask>;
  const int grid = a.schedule.persistent ? (p.tiles < resident ? p.tiles : resident) : p.tiles;
  const sm90::FlexMods<Mask, Score> mods{.m = mask,
                                         .s = score,
                                         .map = args.block_map.classes,
                                         .map_heads = args.block_map.heads,
                                         .q_blocks = args.block_map.q_blocks,
                                         .kv_blocks = args.block_map.kv_blocks};
  const CUtensorMapDataType dt = CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
  const CUtensorMap tq = detail::head_map(dt, a.q, a.batch, a.seq_q, a.heads, a.d, a.q_batch, a.q_row, a.q_head, sm90::kBM);
  const CUtensorMap tk = detail::head_map(dt, a.k, a.batch, a.seq_kv, a.kv_heads, a.d, a.kv_batch, a.kv_row,
                                          a.kv_head, 128);
  const CUtensorMap tv = detail::head_map(dt, a.v, a.batch, a.seq_kv, a.kv_heads, a.d, a.kv_batch, a.kv_row,
                                          a.kv_head, 128);
  if (a.d == 128) {
    sm90::FlexLaunch<128, Mask, Score>::run(tq, tk, tv, p, mods, grid, stream);
  } else {
    if constexpr (sm90::kFlexBuilt<64, Mask, Score>) sm90::FlexLaunch<64, Mask, Score>::run(tq, tk, tv, p, mods, grid, stream);
  }
#endif
}

}  // namespace aipe::kernels::attention
