// Paged decode attention: split-KV flash decoding with GQA-packed mma.sync tiles and a cp.async page ring
// (the API, layouts and masking rules: aipe/kernels/attention/decode.hpp).
//
// One CTA = (KV head kvh, row block rb, sequence b, split s); 4 warps, 128 threads.
//   rows     the q_len x group query rows of kvh, row r = hg * q_len + qi (hg: head within the group); a row
//            block is 16 of them, the M side of mma.m16n8k16 (GQA 32/8 with q_len 4, or 64/8 with q_len 2,
//            fill it exactly; plain decode with group 4 uses 4 of 16 rows: the tensor cores idle, the bytes
//            are what count)
//   tiles    the split's keys in tiles of 64 tokens; the tile's K and V ([64][d] BF16 each, 16-byte chunks
//            XOR-swizzled by row so that ldmatrix is conflict-free) come through a ring of Stages slots
//            filled by cp.async, Stages - 1 tiles ahead of the one being used (3 slots of 32 KiB at d = 128:
//            two CTAs per SM, ~128 KiB of loads in flight per SM; 4 slots of 16 KiB at d = 64)
//   warps    warp w takes tokens [16w, 16w + 16) of every tile: S = Q K^T (16 x 16: 2 n-tiles x d/16
//            k-steps), online softmax in the log2 domain, O += P V (16 x d: d/8 n-tiles, one k-step), with
//            its own running max and sum; the four warps' states are merged through shared memory at the end
// Pages: a 64-token tile spans 64 / P pages (P < 64) or part of one (P >= 64); each 16-byte chunk finds its
// token's page in the block table, so the pages of a sequence may lie anywhere.
// Tokens past the split's end are zero-filled by cp.async (src-size 0), never read: V must be 0 there, since
// P = 0 times a stale NaN would still be NaN.
#include <cuda_bf16.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "aipe/check.hpp"
#include "aipe/kernels/attention/decode.hpp"
#include "aipe/kernels/launch.cuh"
#include "aipe/kernels/mma_sync.cuh"
#include "aipe/kernels/ptx.cuh"

namespace aipe::kernels::attention {

namespace {

using bf16 = __nv_bfloat16;

constexpr int kTile = 64;     // tokens per KV tile
constexpr int kWarps = 4;     // 16 tokens of each tile per warp
constexpr int kThreads = kWarps * 32;
constexpr int kRows = 16;     // query rows per CTA: one m16 tile
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

struct Params {
  const bf16* q;
  bf16* out;
  float* lse;
  const bf16* k;
  const bf16* v;
  const int* block_table;
  const int* context_lens;
  const float* sinks;
  float* o_part;    // [splits][R][d], R = batch * q_len * heads
  float* lse_part;  // [splits][R]
  int q_len, heads, kv_heads, group, rows, row_blocks;
  int page_shift, max_pages, capacity;
  int splits, tokens_per_split, window;
  float scale_log2;  // scale * log2(e): scores go straight to exp2
};

__host__ __device__ constexpr int stages_for(int d, bool pipelined) { return !pipelined ? 1 : d == 128 ? 3 : 4; }

// The ring, and after it the warps' merge area ([4 warps][16 rows][d] FP32 and [2][4][16] FP32 statistics)
// that reuses the ring once it is drained.
__host__ __device__ constexpr std::size_t smem_bytes(int d, int stages) {
  const std::size_t ring = std::size_t(stages) * 2 * kTile * d * sizeof(bf16);
  const std::size_t merge = std::size_t(kWarps) * kRows * d * sizeof(float);
  return (ring > merge ? ring : merge) + 2 * kWarps * kRows * sizeof(float);
}

__device__ __forceinline__ float log_add_exp(float a, float b) {
  if (a == -INFINITY) return b;
  if (b == -INFINITY) return a;
  const float m = fmaxf(a, b);
  return m + log1pf(expf(-fabsf(a - b)));
}

// Element offset of (row, 16-byte chunk) in a [64][D] tile whose chunks are XOR-swizzled by row: the 8 rows an
// ldmatrix reads (same logical chunk) land in 8 different 16-byte bank groups.
template <int D>
__device__ __forceinline__ int swz(int row, int chunk) {
  return row * D + ((chunk ^ (row & 7)) << 3);
}

template <int D, int Stages>
__global__ void __launch_bounds__(kThreads) decode_kernel(const Params p) {
  extern __shared__ __align__(128) unsigned char smem_raw[];
  bf16* ring = reinterpret_cast<bf16*>(smem_raw);
  constexpr int kChunks = D / 8;                                   // 16-byte chunks per token row
  constexpr int kLoadsPerThread = kTile * kChunks / kThreads;      // per tile, for K and for V each
  constexpr int kStageElems = 2 * kTile * D;

  const int kvh = blockIdx.x / p.row_blocks, rb = blockIdx.x % p.row_blocks;
  const int b = blockIdx.y, split = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t4 = lane % 4;

  const int ctx = min(max(p.context_lens[b], 0), p.capacity);
  const int lo = split * p.tokens_per_split;
  const int hi = split == p.splits - 1 ? ctx : min(ctx, lo + p.tokens_per_split);
  // With a window, the earliest query (position ctx - q_len) sees nothing before ctx - q_len - window + 1:
  // the tiles before that are not read at all.
  int first = lo;
  if (p.window > 0) first = max(lo, (max(0, ctx - p.q_len - p.window + 1) / kTile) * kTile);
  const int n_tiles = hi > first ? (hi - first + kTile - 1) / kTile : 0;

  // This thread's two rows (g and g + 8 of the row block): their query position, for the causal and window tests.
  int pos[2];
  bool row_ok[2];
  const bf16* qrow[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int r = rb * kRows + g + 8 * i;
    row_ok[i] = r < p.rows;
    const int hg = r / p.q_len, qi = r % p.q_len;
    pos[i] = ctx - p.q_len + qi;
    qrow[i] = p.q + ((std::size_t(b) * p.q_len + qi) * p.heads + kvh * p.group + hg) * D;
  }

  // Q as A fragments, straight from global memory (read once per CTA): qa[ks] covers dims [16ks, 16ks + 16).
  std::uint32_t qa[D / 16][4];
#pragma unroll
  for (int ks = 0; ks < D / 16; ++ks) {
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int i = j & 1, col = ks * 16 + 2 * t4 + (j >> 1) * 8;
      qa[ks][j] = row_ok[i] ? *reinterpret_cast<const std::uint32_t*>(qrow[i] + col) : 0u;
    }
  }

  const std::size_t table_row = std::size_t(b) * p.max_pages;
  const int page_mask = (1 << p.page_shift) - 1;
  auto load_tile = [&](int tile, int stage) {
    bf16* sk = ring + stage * kStageElems;
    bf16* sv = sk + kTile * D;
    const int t0 = first + tile * kTile;
#pragma unroll
    for (int i = 0; i < kLoadsPerThread; ++i) {
      const int c = threadIdx.x + i * kThreads;
      const int row = c / kChunks, ch = c % kChunks;
      const int tok = t0 + row;
      const bool valid = tok < hi;
      std::size_t off = 0;
      if (valid) {
        const int page = p.block_table[table_row + (tok >> p.page_shift)];
        off = ((std::size_t(page) << p.page_shift | unsigned(tok & page_mask)) * p.kv_heads + kvh) * D + ch * 8;
      }
      cp_async_16(sk + swz<D>(row, ch), p.k + off, valid);
      cp_async_16(sv + swz<D>(row, ch), p.v + off, valid);
    }
  };

  float o[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY};  // running row max (log2 domain), the same in the 4 lanes of a row
  float l[2] = {0.f, 0.f};              // this lane's part of the running row sum (its 4 columns per tile)
  const int mat = lane >> 3;            // which of ldmatrix.x4's four matrices this lane addresses

  auto compute_tile = [&](int tile, int stage) {
    const bf16* sk = ring + stage * kStageElems;
    const bf16* sv = sk + kTile * D;
    const int t0 = first + tile * kTile;
    // S = Q K^T for this warp's 16 keys: one ldmatrix.x4 per k-step gives both n-tiles' B fragments
    // (matrices: keys 0-7 | dims lo, keys 0-7 | dims hi, keys 8-15 | dims lo, keys 8-15 | dims hi).
    float s[2][4] = {};
    const int kkey = warp * 16 + (mat >> 1) * 8 + (lane & 7);
#pragma unroll
    for (int ks = 0; ks < D / 16; ++ks) {
      std::uint32_t kb[4];
      ldmatrix_x4(kb, sk + swz<D>(kkey, 2 * ks + (mat & 1)));
      mma_bf16_16816(s[0], qa[ks], kb[0], kb[1]);
      mma_bf16_16816(s[1], qa[ks], kb[2], kb[3]);
    }
    // Mask (split end, causal among the new tokens, window) and scale into the log2 domain.
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int n = 0; n < 2; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int i = e >> 1;
        const int key = t0 + warp * 16 + n * 8 + 2 * t4 + (e & 1);
        const bool vis = key < hi && key <= pos[i] && (p.window <= 0 || key > pos[i] - p.window);
        s[n][e] = vis ? s[n][e] * p.scale_log2 : -INFINITY;
        mx[i] = fmaxf(mx[i], s[n][e]);
      }
    float alpha[2], base[2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 1));
      mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 2));
      const float m_new = fmaxf(m[i], mx[i]);
      base[i] = m_new == -INFINITY ? 0.f : m_new;  // a row with nothing visible yet: exp2(-inf - 0) = 0
      alpha[i] = exp2f(m[i] - base[i]);
      m[i] = m_new;
      l[i] *= alpha[i];
    }
#pragma unroll
    for (int n = 0; n < 2; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[n][e] = exp2f(s[n][e] - base[e >> 1]);
        l[e >> 1] += s[n][e];
      }
#pragma unroll
    for (int n = 0; n < D / 8; ++n) {
      o[n][0] *= alpha[0];
      o[n][1] *= alpha[0];
      o[n][2] *= alpha[1];
      o[n][3] *= alpha[1];
    }
    // P (the C fragments of the two n-tiles) is the A fragment of P V as it stands.
    const std::uint32_t pa[4] = {pack_bf16x2(s[0][0], s[0][1]), pack_bf16x2(s[0][2], s[0][3]),
                                 pack_bf16x2(s[1][0], s[1][1]), pack_bf16x2(s[1][2], s[1][3])};
    // O += P V: V [16 keys][d] is B (k = key) row-major, so ldmatrix.trans (matrices: keys 0-7 | dims lo,
    // keys 8-15 | dims lo, keys 0-7 | dims hi, keys 8-15 | dims hi).
    const int vkey = warp * 16 + (mat & 1) * 8 + (lane & 7);
#pragma unroll
    for (int dp = 0; dp < D / 16; ++dp) {
      std::uint32_t vb[4];
      ldmatrix_x4_trans(vb, sv + swz<D>(vkey, 2 * dp + (mat >> 1)));
      mma_bf16_16816(o[2 * dp], pa, vb[0], vb[1]);
      mma_bf16_16816(o[2 * dp + 1], pa, vb[2], vb[3]);
    }
  };

  // The ring: Stages - 1 tiles in flight ahead of the one in use. At the top of iteration t, tile t has landed
  // (wait_group leaves Stages - 2 younger groups pending) and the __syncthreads also says every warp is done
  // with tile t - 1, so its slot, (t + Stages - 1) % Stages, may be refilled. Empty commit groups keep the count.
  if constexpr (Stages == 1) {
    for (int t = 0; t < n_tiles; ++t) {
      load_tile(t, 0);
      cp_async_commit();
      cp_async_wait<0>();
      __syncthreads();
      compute_tile(t, 0);
      __syncthreads();
    }
  } else {
#pragma unroll
    for (int st = 0; st < Stages - 1; ++st) {
      if (st < n_tiles) load_tile(st, st);
      cp_async_commit();
    }
    for (int t = 0; t < n_tiles; ++t) {
      cp_async_wait<Stages - 2>();
      __syncthreads();
      const int next = t + Stages - 1;
      if (next < n_tiles) load_tile(next, next % Stages);
      cp_async_commit();
      compute_tile(t, t % Stages);
    }
    cp_async_wait<0>();
    __syncthreads();
  }

  // Merge the four warps' states: each leaves its unnormalized O, its row max and row sum in shared memory.
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 1);
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 2);
  }
  float* os = reinterpret_cast<float*>(smem_raw);  // [warp][16][D]
  float* ms = reinterpret_cast<float*>(smem_raw + smem_bytes(D, Stages) - 2 * kWarps * kRows * sizeof(float));
  float* ls = ms + kWarps * kRows;
#pragma unroll
  for (int n = 0; n < D / 8; ++n) {
    const int col = n * 8 + 2 * t4;
    float* r0 = os + (warp * kRows + g) * D + col;
    r0[0] = o[n][0];
    r0[1] = o[n][1];
    r0[8 * D] = o[n][2];
    r0[8 * D + 1] = o[n][3];
  }
  if (t4 == 0) {
    ms[warp * kRows + g] = m[0];
    ms[warp * kRows + g + 8] = m[1];
    ls[warp * kRows + g] = l[0];
    ls[warp * kRows + g + 8] = l[1];
  }
  __syncthreads();

  const int R = gridDim.y * p.q_len * p.heads;
  for (int idx = threadIdx.x; idx < kRows * D; idx += kThreads) {
    const int row = idx / D, col = idx % D;
    const int r = rb * kRows + row;
    if (r >= p.rows) break;  // rows are in order: the rest of this CTA's indices are padding too
    float M = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) M = fmaxf(M, ms[w * kRows + row]);
    float L = 0.f, acc = 0.f;
    if (M != -INFINITY) {
#pragma unroll
      for (int w = 0; w < kWarps; ++w) {
        const float f = exp2f(ms[w * kRows + row] - M);
        L += ls[w * kRows + row] * f;
        acc += os[(w * kRows + row) * D + col] * f;
      }
    }
    const float o_split = L > 0.f ? acc / L : 0.f;
    const float lse_split = L > 0.f ? (M + log2f(L)) * kLn2 : -INFINITY;  // natural log
    const int hg = r / p.q_len, qi = r % p.q_len, head = kvh * p.group + hg;
    const std::size_t rowid = (std::size_t(b) * p.q_len + qi) * p.heads + head;
    if (p.splits == 1) {
      const float sink = p.sinks ? p.sinks[head] : -INFINITY;
      const float total = log_add_exp(lse_split, sink);
      const float w = lse_split == -INFINITY ? 0.f : expf(lse_split - total);
      p.out[rowid * D + col] = __float2bfloat16_rn(o_split * w);
      if (p.lse && col == 0) p.lse[(std::size_t(b) * p.heads + head) * p.q_len + qi] = total;
    } else {
      const std::size_t prow = std::size_t(split) * R + rowid;
      if (lse_split != -INFINITY) p.o_part[prow * D + col] = o_split;  // an empty split's O is never read
      if (col == 0) p.lse_part[prow] = lse_split;
    }
  }
}

// One CTA per output row (b, qi, head): L = log(sum_s exp(lse_s) + exp(sink)), O = sum_s exp(lse_s - L) O_s.
__global__ void __launch_bounds__(128) combine_kernel(const CombineArgs c) {
  const int R = c.batch * c.q_len * c.heads;
  const int rowid = blockIdx.x;
  const int head = rowid % c.heads, bq = rowid / c.heads, qi = bq % c.q_len, b = bq / c.q_len;
  float M = c.sinks ? c.sinks[head] : -INFINITY;
  for (int s = 0; s < c.splits; ++s) M = fmaxf(M, c.lse_partial[std::size_t(s) * R + rowid]);
  float sum = 0.f;
  if (M != -INFINITY) {
    for (int s = 0; s < c.splits; ++s) sum += expf(c.lse_partial[std::size_t(s) * R + rowid] - M);
    if (c.sinks) sum += expf(c.sinks[head] - M);
  }
  const float total = sum > 0.f ? M + logf(sum) : -INFINITY;
  for (int col = threadIdx.x; col < c.d; col += blockDim.x) {
    float acc = 0.f;
    if (total != -INFINITY)
      for (int s = 0; s < c.splits; ++s) {
        const std::size_t prow = std::size_t(s) * R + rowid;
        const float ls = c.lse_partial[prow];
        if (ls != -INFINITY) acc += expf(ls - total) * c.o_partial[prow * c.d + col];
      }
    c.out[std::size_t(rowid) * c.d + col] = __float2bfloat16_rn(acc);
  }
  if (c.lse && threadIdx.x == 0) c.lse[(std::size_t(b) * c.heads + head) * c.q_len + qi] = total;
}

// One CTA per new token; 16-byte chunks of its kv_heads * d values, K and V.
__global__ void append_kernel(const AppendKvArgs a) {
  const std::int64_t slot = a.slot_mapping[blockIdx.x];
  if (slot < 0 || slot >= std::int64_t(a.num_pages) * a.page_size) return;
  const int chunks = a.kv_heads * a.d / 8;
  const uint4* ks = reinterpret_cast<const uint4*>(a.k_new + std::size_t(blockIdx.x) * a.kv_heads * a.d);
  const uint4* vs = reinterpret_cast<const uint4*>(a.v_new + std::size_t(blockIdx.x) * a.kv_heads * a.d);
  uint4* kd = reinterpret_cast<uint4*>(a.k_cache + std::size_t(slot) * a.kv_heads * a.d);
  uint4* vd = reinterpret_cast<uint4*>(a.v_cache + std::size_t(slot) * a.kv_heads * a.d);
  for (int c = threadIdx.x; c < chunks; c += blockDim.x) {
    kd[c] = ks[c];
    vd[c] = vs[c];
  }
}

using KernelFn = void (*)(Params);

KernelFn kernel_for(int d, int stages) {
  if (d == 128) return stages == 1 ? decode_kernel<128, 1> : decode_kernel<128, 3>;
  return stages == 1 ? decode_kernel<64, 1> : decode_kernel<64, 4>;
}

struct Launch {
  DecodePlan plan;
  KernelFn kernel;
  int stages;
  std::size_t smem;
};

Launch plan_launch(const DecodeArgs& a) {
  check_decode_args(a);
  Launch L{};
  const int d = a.cache.d;
  L.stages = stages_for(d, a.schedule.pipelined);
  L.kernel = kernel_for(d, L.stages);
  L.smem = smem_bytes(d, L.stages);
  set_max_dynamic_smem(L.kernel, L.smem);
  int dev = 0, sms = 0, per_sm = 0;
  AIPE_CUDA(cudaGetDevice(&dev));
  AIPE_CUDA(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  AIPE_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, L.kernel, kThreads, L.smem));
  const int group = a.heads / a.cache.kv_heads;
  L.plan.row_blocks = (a.q_len * group + kRows - 1) / kRows;
  const int max_ctx = a.max_context > 0 ? a.max_context : int(a.cache.capacity());
  L.plan.split = plan_splits({.sm_count = sms,
                              .ctas_per_sm = std::max(per_sm, 1),
                              .ctas_per_split = a.batch * a.cache.kv_heads * L.plan.row_blocks,
                              .max_context = max_ctx,
                              .tile_tokens = kTile,
                              .requested = a.schedule.num_splits});
  const std::size_t R = std::size_t(a.batch) * a.q_len * a.heads;
  if (L.plan.split.num_splits > 1)
    L.plan.workspace_bytes = std::size_t(L.plan.split.num_splits) * R * (std::size_t(d) + 1) * sizeof(float);
  return L;
}

}  // namespace

DecodePlan decode_plan(const DecodeArgs& a) { return plan_launch(a).plan; }

void decode(const DecodeArgs& a, cudaStream_t stream) {
  const Launch L = plan_launch(a);
  const int splits = L.plan.split.num_splits;
  if (splits > 1 && (!a.workspace || a.workspace_bytes < L.plan.workspace_bytes))
    throw std::invalid_argument("decode: " + std::to_string(splits) + " splits need a workspace of " +
                                std::to_string(L.plan.workspace_bytes) + " bytes (decode_plan), got " +
                                std::to_string(a.workspace ? a.workspace_bytes : 0));
  const int group = a.heads / a.cache.kv_heads;
  const std::size_t R = std::size_t(a.batch) * a.q_len * a.heads;
  Params p{};
  p.q = a.q;
  p.out = a.out;
  p.lse = a.lse;
  p.k = static_cast<const bf16*>(a.cache.k);
  p.v = static_cast<const bf16*>(a.cache.v);
  p.block_table = a.cache.block_table;
  p.context_lens = a.cache.context_lens;
  p.sinks = a.sinks;
  p.o_part = splits > 1 ? static_cast<float*>(a.workspace) : nullptr;
  p.lse_part = splits > 1 ? p.o_part + std::size_t(splits) * R * a.cache.d : nullptr;
  p.q_len = a.q_len;
  p.heads = a.heads;
  p.kv_heads = a.cache.kv_heads;
  p.group = group;
  p.rows = a.q_len * group;
  p.row_blocks = L.plan.row_blocks;
  p.page_shift = std::countr_zero(unsigned(a.cache.page_size));
  p.max_pages = a.cache.max_pages_per_seq;
  p.capacity = int(a.cache.capacity());
  p.splits = splits;
  p.tokens_per_split = L.plan.split.tokens_per_split;
  p.window = a.window;
  const float scale = a.scale > 0.f ? a.scale : 1.f / std::sqrt(float(a.cache.d));
  p.scale_log2 = scale * kLog2e;
  const long long gx = static_cast<long long>(a.cache.kv_heads) * L.plan.row_blocks;
  if (gx > INT32_MAX) throw std::invalid_argument("decode: kv_heads * row blocks exceeds the grid");
  L.kernel<<<dim3(unsigned(gx), unsigned(a.batch), unsigned(splits)), kThreads, L.smem, stream>>>(p);
  AIPE_CHECK_LAUNCH();
  if (splits > 1) {
    combine_splits({.o_partial = p.o_part,
                    .lse_partial = p.lse_part,
                    .splits = splits,
                    .batch = a.batch,
                    .q_len = a.q_len,
                    .heads = a.heads,
                    .d = a.cache.d,
                    .sinks = a.sinks,
                    .out = a.out,
                    .lse = a.lse},
                   stream);
  }
}

void combine_splits(const CombineArgs& c, cudaStream_t stream) {
  if (!c.o_partial || !c.lse_partial || !c.out) throw std::invalid_argument("combine_splits: null pointer");
  if (c.splits < 1 || c.batch < 1 || c.q_len < 1 || c.heads < 1 || c.d < 1)
    throw std::invalid_argument("combine_splits: splits, batch, q_len, heads and d must be at least 1");
  const long long rows = static_cast<long long>(c.batch) * c.q_len * c.heads;
  if (rows > INT32_MAX) throw std::invalid_argument("combine_splits: batch * q_len * heads exceeds the grid");
  combine_kernel<<<unsigned(rows), 128, 0, stream>>>(c);
  AIPE_CHECK_LAUNCH();
}

void append_kv(const AppendKvArgs& a, cudaStream_t stream) {
  check_append_kv_args(a);
  if (a.tokens == 0) return;
  append_kernel<<<unsigned(a.tokens), 128, 0, stream>>>(a);
  AIPE_CHECK_LAUNCH();
}

}  // namespace aipe::kernels::attention
