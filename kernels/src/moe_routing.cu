// MoE routing on the device (aipe/kernels/moe.hpp): top-k with the softmax over the chosen logits, the counting
// sort of the (token, choice) pairs by expert, the gather into expert order and the weighted combine back.
// Every launch is sized from host arguments alone and allocates nothing, so a decode step records into a CUDA graph.
//
// topk_softmax    a warp per token: lane l holds experts l, l + 32, ... (8 registers for 256 experts); k rounds of a
//                 warp argmax over (value, index), larger value first and then lower index, the same total order on
//                 every lane, so every lane ends with the same k picks. NaN logits rank as -inf; a token whose k
//                 picks are all -inf gets NaN weights (the softmax of nothing), as torch.softmax gives.
// build_routing   a stable counting sort, no atomics on global memory, no host sync; three launches:
//                   count    a warp per segment of kRoutingSegment pairs: its histogram over experts (shared memory)
//                   scan     one CTA, a thread per expert: the exclusive prefix of each expert's counts over the
//                            segments (in place), then the exclusive scan over experts: offsets
//                   scatter  a warp per segment again, 32 pairs at a time in pair order: __match_any_sync groups the
//                            lanes by expert, a lane's rank is its position in its group, the group's leader takes
//                            the rows from a per-warp cursor (offsets[e] + the segment's prefix for e)
//                 So an expert's rows follow pair order: by segment, then by batch, then by lane. Up to one
//                 segment (decode), one CTA does all three steps: one launch.
//                 Grouped rows past offsets[experts] (there are some only when pairs were dropped) get token 0, a
//                 row every reader may load, so a kernel reading whole tiles of row_token never leaves x.
// gather_rows     a CTA per grouped row, 16-byte copies when every row start is 16-byte aligned
// combine         a CTA per token; each thread owns 8 columns (or 1), sums its k grouped rows in FP32 in j order,
//                 adds the residual (out's layout: rows ld_out apart), rounds once. Reading residual[t][c] and then
//                 writing out[t][c] in the same thread is what makes out == residual safe.
#include <cuda_bf16.h>

#include <algorithm>
#include <climits>
#include <cmath>

#include "aipe/check.hpp"
#include "aipe/kernels/moe.hpp"
#include "aipe/kernels/moe_checks.hpp"
#include "aipe/kernels/vec.cuh"

namespace aipe::kernels::moe {
namespace {

constexpr int kTopkWarps = 4;     // tokens per CTA of topk_softmax
constexpr int kRoutingWarps = 8;  // segments per CTA of the count and scatter kernels
constexpr unsigned kFull = 0xffffffffu;

// Threads for a CTA that loops over `vectors` items: a multiple of 32 in [32, 256].
int threads_for(int vectors) { return std::clamp((vectors + 31) / 32 * 32, 32, 256); }

// ---------------------------------------------------------------------------------------------------- top-k
__global__ void __launch_bounds__(kTopkWarps * 32)
    topk_softmax_kernel(const bf16* logits, std::int64_t ld, int tokens, int experts, int k, int* ids,
                        float* weights) {
  const int lane = threadIdx.x & 31;
  const int t = blockIdx.x * kTopkWarps + (threadIdx.x >> 5);
  if (t >= tokens) return;  // the whole warp: t is the same on its lanes
  const bf16* row = logits + std::int64_t(t) * ld;
  constexpr int kSlots = kTopkMaxExperts / 32;
  float v[kSlots];      // slot i: expert lane + 32 i
  unsigned avail = 0;   // bit i: slot i holds an expert not yet picked
#pragma unroll
  for (int i = 0; i < kSlots; ++i) {
    const int e = lane + 32 * i;
    const float x = e < experts ? __bfloat162float(row[e]) : -INFINITY;
    v[i] = isnan(x) ? -INFINITY : x;
    if (e < experts) avail |= 1u << i;
  }
  float pick_v[kTopkMaxK];
  int pick_e[kTopkMaxK];
#pragma unroll
  for (int j = 0; j < kTopkMaxK; ++j) {
    if (j >= k) break;  // k is the same on every lane
    // This lane's best: slots are in expert order, so a strictly larger value is needed to replace an earlier one.
    float bv = -INFINITY;
    int be = INT_MAX;  // no candidate: loses to every real one (k <= experts: some lane always has one)
#pragma unroll
    for (int i = 0; i < kSlots; ++i)
      if (((avail >> i) & 1u) && (be == INT_MAX || v[i] > bv)) {
        bv = v[i];
        be = lane + 32 * i;
      }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(kFull, bv, o);
      const int oe = __shfl_xor_sync(kFull, be, o);
      if (ov > bv || (ov == bv && oe < be)) {
        bv = ov;
        be = oe;
      }
    }
    if ((be & 31) == lane) avail &= ~(1u << (be >> 5));
    pick_v[j] = bv;
    pick_e[j] = be;
  }
  // Softmax over the picks; pick 0 is the largest.
  float p[kTopkMaxK];
  float sum = 0.f;
#pragma unroll
  for (int j = 0; j < kTopkMaxK; ++j)
    if (j < k) {
      p[j] = expf(pick_v[j] - pick_v[0]);
      sum += p[j];
    }
#pragma unroll
  for (int j = 0; j < kTopkMaxK; ++j)
    if (j < k && j == lane) {
      ids[std::int64_t(t) * k + j] = pick_e[j];
      weights[std::int64_t(t) * k + j] = p[j] / sum;
    }
}

// ---------------------------------------------------------------------------------------------------- routing
// counts[seg][e]: how many pairs of segment seg go to expert e (ids outside [0, experts) are not counted).
__global__ void routing_count_kernel(const int* ids, int pairs, int experts, int segments, int* counts) {
  extern __shared__ int hist_smem[];  // [kRoutingWarps][experts]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int seg = blockIdx.x * kRoutingWarps + warp;
  if (seg >= segments) return;  // no CTA-wide barrier below: a warp may leave alone
  int* hist = hist_smem + warp * experts;
  for (int e = lane; e < experts; e += 32) hist[e] = 0;
  __syncwarp();
  const int begin = seg * kRoutingSegment, end = min(begin + kRoutingSegment, pairs);
  for (int p = begin + lane; p < end; p += 32) {
    const int e = ids[p];
    if (e >= 0 && e < experts) atomicAdd(&hist[e], 1);
  }
  __syncwarp();
  int* out = counts + std::int64_t(seg) * experts;
  for (int e = lane; e < experts; e += 32) out[e] = hist[e];
}

// One CTA of blockDim.x >= experts threads (a multiple of 32). counts becomes each segment's exclusive prefix
// within its expert; offsets the exclusive scan of the experts' totals; grouped rows [offsets[experts], pairs)
// get token 0.
__global__ void __launch_bounds__(1024)
    routing_scan_kernel(int* counts, int segments, int experts, int pairs, int* offsets, int* row_token) {
  __shared__ unsigned long long scratch[33];
  const int e = threadIdx.x;
  int total = 0;
  if (e < experts)
    for (int s = 0; s < segments; ++s) {
      int* c = counts + std::int64_t(s) * experts + e;
      const int n = *c;
      *c = total;
      total += n;
    }
  unsigned long long kept = 0;
  const unsigned long long base = vec::block_exclusive_scan_u64((unsigned long long)total, scratch, &kept);
  if (e < experts) offsets[e] = int(base);
  if (e == 0) offsets[experts] = int(kept);
  for (int r = int(kept) + threadIdx.x; r < pairs; r += blockDim.x) row_token[r] = 0;
}

// Scatters pairs [begin, begin + n) in pair order, 32 at a time: __match_any_sync groups a batch's lanes by expert,
// a lane's rank is its position in its group, and the group's leader takes the group's rows from cursor[e] (the
// next grouped row of expert e for this warp). Called by a whole warp; true when a pair was dropped.
__device__ bool scatter_pairs(const int* ids, int begin, int n, int k, int experts, int* cursor, int* row_token,
                              int* pair_row) {
  const int lane = threadIdx.x & 31;
  bool dropped = false;
  for (int i0 = 0; i0 < n; i0 += 32) {  // the same trip count on every lane: __match_any_sync needs them all
    const int p = begin + i0 + lane;
    const bool live = i0 + lane < n;
    const int e = live ? ids[p] : -1;
    const bool ok = live && e >= 0 && e < experts;
    const unsigned peers = __match_any_sync(kFull, ok ? e : -1);
    const int leader = __ffs(peers) - 1;
    int first = 0;
    if (ok && lane == leader) {
      first = cursor[e];
      cursor[e] = first + __popc(peers);
    }
    first = __shfl_sync(kFull, first, leader);
    if (ok) {
      const int r = first + __popc(peers & ((1u << lane) - 1u));
      row_token[r] = p / k;
      pair_row[p] = r;
    } else if (live) {
      pair_row[p] = -1;
      dropped = true;
    }
    __syncwarp();  // this batch's cursor updates before the next batch's leaders read them
  }
  return dropped;
}

__global__ void routing_scatter_kernel(const int* ids, int pairs, int k, int experts, int segments, const int* counts,
                                       const int* offsets, int* row_token, int* pair_row, int* error) {
  extern __shared__ int cursor_smem[];  // [kRoutingWarps][experts]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int seg = blockIdx.x * kRoutingWarps + warp;
  if (seg >= segments) return;
  int* cursor = cursor_smem + warp * experts;
  const int* prefix = counts + std::int64_t(seg) * experts;
  for (int e = lane; e < experts; e += 32) cursor[e] = offsets[e] + prefix[e];
  __syncwarp();
  const int begin = seg * kRoutingSegment;
  const bool dropped =
      scatter_pairs(ids, begin, min(kRoutingSegment, pairs - begin), k, experts, cursor, row_token, pair_row);
  if (dropped && error != nullptr) *error = 1;
}

// At most one segment (decode: a few tokens x k): count, scan and scatter in one CTA of blockDim.x >= experts
// threads (a multiple of 32), one launch instead of three. The ids are read once, into shared memory, from which
// warp 0 scatters.
__global__ void __launch_bounds__(1024)
    routing_single_cta_kernel(const int* ids, int pairs, int k, int experts, int* offsets, int* row_token,
                              int* pair_row, int* error) {
  __shared__ int cursor[kRoutingMaxExperts];
  __shared__ int ids_smem[kRoutingSegment];
  __shared__ unsigned long long scratch[33];
  const int tid = threadIdx.x;
  if (tid < experts) cursor[tid] = 0;
  __syncthreads();
  for (int p = tid; p < pairs; p += blockDim.x) {
    const int e = ids[p];
    ids_smem[p] = e;
    if (e >= 0 && e < experts) atomicAdd(&cursor[e], 1);
  }
  __syncthreads();
  const int count = tid < experts ? cursor[tid] : 0;  // each thread reads only its own expert's count
  unsigned long long kept = 0;
  const int base = int(vec::block_exclusive_scan_u64((unsigned long long)count, scratch, &kept));
  if (tid < experts) {
    offsets[tid] = base;
    cursor[tid] = base;
  }
  if (tid == 0) offsets[experts] = int(kept);
  for (int r = int(kept) + tid; r < pairs; r += blockDim.x) row_token[r] = 0;
  __syncthreads();
  if (tid < 32) {
    const bool dropped = scatter_pairs(ids_smem, 0, pairs, k, experts, cursor, row_token, pair_row);
    if (dropped && error != nullptr) *error = 1;
  }
}

// ---------------------------------------------------------------------------------------------------- gather
template <int VEC>
__global__ void gather_rows_kernel(const bf16* x, std::int64_t ld_x, const int* row_token, int cols, bf16* xg,
                                   std::int64_t ld_xg) {
  const int r = blockIdx.x;
  const bf16* src = x + std::int64_t(row_token[r]) * ld_x;
  bf16* dst = xg + std::int64_t(r) * ld_xg;
  for (int c = threadIdx.x * VEC; c < cols; c += blockDim.x * VEC) {
    if constexpr (VEC == 8)
      *reinterpret_cast<uint4*>(dst + c) = __ldg(reinterpret_cast<const uint4*>(src + c));
    else
      dst[c] = src[c];
  }
}

// ---------------------------------------------------------------------------------------------------- combine
template <int VEC>
__global__ void combine_kernel(const bf16* yg, std::int64_t ld_yg, const int* pair_row, const float* weights, int k,
                               int cols, const bf16* residual, bf16* out, std::int64_t ld_out) {
  const int t = blockIdx.x;
  const int* rows = pair_row + std::int64_t(t) * k;
  const float* w = weights + std::int64_t(t) * k;
  for (int c = threadIdx.x * VEC; c < cols; c += blockDim.x * VEC) {
    float acc[VEC];
#pragma unroll
    for (int i = 0; i < VEC; ++i) acc[i] = 0.f;
    for (int j = 0; j < k; ++j) {
      const int r = rows[j];
      if (r < 0) continue;  // a dropped pair
      const float wj = w[j];
      const bf16* y = yg + std::int64_t(r) * ld_yg + c;
      if constexpr (VEC == 8) {
        float f[8];
        vec::load8_ro(y, f);
#pragma unroll
        for (int i = 0; i < 8; ++i) acc[i] = fmaf(wj, f[i], acc[i]);
      } else {
        acc[0] = fmaf(wj, __bfloat162float(*y), acc[0]);
      }
    }
    bf16* o = out + std::int64_t(t) * ld_out + c;
    if constexpr (VEC == 8) {
      if (residual != nullptr) {
        float f[8];
        vec::load8(residual + std::int64_t(t) * ld_out + c, f);  // not the read-only path: it may be out
#pragma unroll
        for (int i = 0; i < 8; ++i) acc[i] += f[i];
      }
      vec::store8(o, acc);
    } else {
      if (residual != nullptr) acc[0] += __bfloat162float(residual[std::int64_t(t) * ld_out + c]);
      *o = __float2bfloat16_rn(acc[0]);
    }
  }
}

}  // namespace

void topk_softmax(const bf16* logits, std::int64_t ld, int tokens, int experts, int k, int* ids, float* weights,
                  cudaStream_t stream) {
  check_topk_softmax(logits, ld, tokens, experts, k, ids, weights);
  if (tokens == 0) return;
  const int grid = (tokens + kTopkWarps - 1) / kTopkWarps;
  topk_softmax_kernel<<<grid, kTopkWarps * 32, 0, stream>>>(logits, ld, tokens, experts, k, ids, weights);
  AIPE_CHECK_LAUNCH();
}

void build_routing(const int* ids, int tokens, int k, int experts, const Routing& out, void* workspace,
                   std::size_t workspace_bytes, int* error, cudaStream_t stream) {
  check_build_routing(ids, tokens, k, experts, out, workspace, workspace_bytes);
  const int pairs = tokens * k;
  const int segments = (pairs + kRoutingSegment - 1) / kRoutingSegment;
  const int cta_threads = std::max(32, (experts + 31) / 32 * 32);  // a thread per expert
  if (segments <= 1) {
    routing_single_cta_kernel<<<1, cta_threads, 0, stream>>>(ids, pairs, k, experts, out.offsets, out.row_token,
                                                             out.pair_row, error);
    AIPE_CHECK_LAUNCH();
    return;
  }
  int* counts = static_cast<int*>(workspace);
  const std::size_t smem = std::size_t(kRoutingWarps) * experts * sizeof(int);  // <= 32 KiB: no opt-in
  const int grid = (segments + kRoutingWarps - 1) / kRoutingWarps;
  routing_count_kernel<<<grid, kRoutingWarps * 32, smem, stream>>>(ids, pairs, experts, segments, counts);
  AIPE_CHECK_LAUNCH();
  routing_scan_kernel<<<1, cta_threads, 0, stream>>>(counts, segments, experts, pairs, out.offsets, out.row_token);
  AIPE_CHECK_LAUNCH();
  routing_scatter_kernel<<<grid, kRoutingWarps * 32, smem, stream>>>(ids, pairs, k, experts, segments, counts,
                                                                     out.offsets, out.row_token, out.pair_row, error);
  AIPE_CHECK_LAUNCH();
}

void gather_rows(const bf16* x, std::int64_t ld_x, const int* row_token, int rows, int cols, bf16* xg,
                 std::int64_t ld_xg, cudaStream_t stream) {
  check_gather_rows(x, ld_x, row_token, rows, cols, xg, ld_xg);
  if (rows == 0) return;
  const bool v8 = cols % 8 == 0 && ld_x % 8 == 0 && ld_xg % 8 == 0 && vec::aligned16(x) && vec::aligned16(xg);
  if (v8)
    gather_rows_kernel<8><<<rows, threads_for(cols / 8), 0, stream>>>(x, ld_x, row_token, cols, xg, ld_xg);
  else
    gather_rows_kernel<1><<<rows, threads_for(cols), 0, stream>>>(x, ld_x, row_token, cols, xg, ld_xg);
  AIPE_CHECK_LAUNCH();
}

void combine(const bf16* yg, std::int64_t ld_yg, const int* pair_row, const float* weights, int tokens, int k,
             int cols, const bf16* residual, bf16* out, std::int64_t ld_out, cudaStream_t stream) {
  check_combine(yg, ld_yg, pair_row, weights, tokens, k, cols, residual, out, ld_out);
  if (tokens == 0) return;
  const bool v8 = cols % 8 == 0 && ld_yg % 8 == 0 && ld_out % 8 == 0 && vec::aligned16(yg) && vec::aligned16(out) &&
                  (residual == nullptr || vec::aligned16(residual));
  if (v8)
    combine_kernel<8><<<tokens, threads_for(cols / 8), 0, stream>>>(yg, ld_yg, pair_row, weights, k, cols, residual,
                                                                    out, ld_out);
  else
    combine_kernel<1><<<tokens, threads_for(cols), 0, stream>>>(yg, ld_yg, pair_row, weights, k, cols, residual, out,
                                                                ld_out);
  AIPE_CHECK_LAUNCH();
}

}  // namespace aipe::kernels::moe
