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
//            filled by cp.async, Stages - 1 tiles ahead of the one being used (BF16: 3 slots of 32 KiB at
//            d = 128, two CTAs per SM, ~128 KiB of loads in flight per SM; 4 slots of 16 KiB at d = 64. FP8: 4
//            slots of half that. DecodeSchedule::stages picks 2 (three CTAs per SM), 3 or 4 instead)
//   warps    warp w takes tokens [16w, 16w + 16) of every tile: S = Q K^T (16 x 16: 2 n-tiles x d/16
//            k-steps), online softmax in the log2 domain, O += P V (16 x d: d/8 n-tiles, one k-step), with
//            its own running max and sum; the four warps' states are merged through shared memory at the end
// Pages: a 64-token tile spans 64 / P pages (P < 64) or part of one (P >= 64); each 16-byte chunk finds its
// token's page in the block table, so the pages of a sequence may lie anywhere.
// Tokens past the split's end are zero-filled by cp.async (src-size 0), never read: V must be 0 there, since
// P = 0 times a stale NaN would still be NaN.
// Measured on the H200 (ch18/paged_decode, batch 64 x contexts in [2048, 4096], 32/8 heads of 128, page 16, one
// split): 3,554 GB/s, 85% of the measured DRAM copy rate; unpipelined 3,211; the per-head CUDA-core kernel 600.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>

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
  const void* k;  // BF16 or E4M3
  const void* v;
  const float* k_scale;  // FP8: [num_pages][kv_heads]
  const float* v_scale;
  const int* block_table;
  const int* context_lens;
  const float* sinks;
  float* o_part;    // [splits][R][d], R = batch * q_len * heads
  float* lse_part;  // [splits][R]
  std::int64_t q_stride;  // elements between query token rows
  int q_len, heads, kv_heads, group, rows, row_blocks;
  int page_shift, max_pages, capacity;
  int splits, tokens_per_split, window;
  float scale_log2;  // scale * log2(e): scores go straight to exp2
};

// BF16: 3 stages of 32 KiB at d = 128 (two CTAs per SM), 4 of 16 KiB at d = 64. FP8 tiles are half the bytes:
// 4 stages. Unpipelined: 1.
__host__ __device__ constexpr int stages_for(int d, bool fp8, bool pipelined) {
  return !pipelined ? 1 : (d == 128 && !fp8) ? 3 : 4;
}

// One stage: the K tile, the V tile ([64][d] elements each) and, for FP8, the tile's 64 K and 64 V scales.
__host__ __device__ constexpr int stage_bytes(int d, bool fp8) {
  return 2 * kTile * d * (fp8 ? 1 : 2) + (fp8 ? 2 * kTile * 4 : 0);
}

// The ring, and after it the warps' merge area ([4 warps][16 rows][d] FP32 and [2][4][16] FP32 statistics)
// that reuses the ring once it is drained.
__host__ __device__ constexpr std::size_t smem_bytes(int d, bool fp8, int stages) {
  const std::size_t ring = std::size_t(stages) * stage_bytes(d, fp8);
  const std::size_t merge = std::size_t(kWarps) * kRows * d * sizeof(float);
  return (ring > merge ? ring : merge) + 2 * kWarps * kRows * sizeof(float);
}

__device__ __forceinline__ float log_add_exp(float a, float b) {
  if (a == -INFINITY) return b;
  if (b == -INFINITY) return a;
  const float m = fmaxf(a, b);
  return m + log1pf(expf(-fabsf(a - b)));
}

// 4-byte cp.async (.ca: sizes below 16 go through L1), zero-filling when !valid: the FP8 tiles' scales.
__device__ __forceinline__ void cp_async_4(void* smem, const void* gmem, bool valid) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_u32(smem)), "l"(gmem), "r"(valid ? 4 : 0)
               : "memory");
}

// Two E4M3 values (low byte first) as a BF16 pair: exact (3 mantissa bits fit in BF16's 7) through the
// hardware's e4m3x2 -> f16x2 conversion.
__device__ __forceinline__ std::uint32_t e4m3x2_to_bf16x2(std::uint32_t two) {
  const __half2_raw h = __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(two & 0xFFFFu), __NV_E4M3);
  const float2 f = __half22float2(__half2(h));
  return pack_bf16x2(f.x, f.y);
}

// Byte offset of (row, 16-byte chunk) in a [64][RowBytes] tile whose chunks are XOR-swizzled by row: the 8 rows
// that one ldmatrix phase (or one quarter-warp's 16-byte reads) touches land in different bank groups.
template <int RowBytes>
__device__ __forceinline__ int swz(int row, int chunk) {
  constexpr int kChunks = RowBytes / 16;
  constexpr int kMask = (kChunks < 8 ? kChunks : 8) - 1;
  return row * RowBytes + ((chunk ^ (row & kMask)) << 4);
}

// Fp8: the cache is E4M3 with per-(page, kv head) scales. Its fragments cannot come from ldmatrix (which moves
// 16-bit elements), so the free orders of the two reductions are used instead: in S = Q K^T the thread's k-slots
// are mapped to 4 consecutive dims (dims t*d/4 + 4ks .. + 3 for k-step ks, Q loaded to match) so a thread reads
// one contiguous d/4-byte run of each of its two keys; in O = P V output column n of n-tile nt is dim
// n * d/8 + nt, so a thread reads one contiguous d/8-byte run of each of its four keys and byte-permutes pairs
// of keys together.
// Two stages: registers capped so that three CTAs fit an SM (3 x 64.5 KiB of ring at BF16 d = 128), the trade of
// ring depth for CTAs (the `stages` axis of ch18/paged_decode measures it).
template <int D, int Stages, bool Fp8>
__global__ void __launch_bounds__(kThreads, Stages == 2 ? 3 : 1) decode_kernel(const Params p) {
  pdl_begin();  // launched with launch_pdl
  extern __shared__ __align__(128) unsigned char smem_raw[];
  unsigned char* ring = smem_raw;
  constexpr int kRowBytes = D * (Fp8 ? 1 : 2);                  // one token's d values of one KV head
  constexpr int kChunks = kRowBytes / 16;                       // 16-byte chunks per token row
  constexpr int kLoadsPerThread = kTile * kChunks / kThreads;   // per tile, for K and for V each
  constexpr int kTileBytes = kTile * kRowBytes;
  constexpr int kStageBytes = stage_bytes(D, Fp8);

  const int kvh = blockIdx.x / p.row_blocks, rb = blockIdx.x % p.row_blocks;
  const int b = blockIdx.y, split = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t4 = lane % 4;

  const int ctx = min(max(p.context_lens[b], 0), p.capacity);
  const int lo = split * p.tokens_per_split;
  // A split past the end of its sequence leaves at once, writing nothing: combine_splits reads only the splits a
  // sequence has (ceil(ctx / tokens_per_split)). A grid planned for the table's capacity (a CUDA graph's fixed
  // launch) thus costs little more than one planned for the batch.
  if (split > 0 && lo >= ctx) return;
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
    qrow[i] = p.q + (std::size_t(b) * p.q_len + qi) * p.q_stride + std::size_t(kvh * p.group + hg) * D;
  }

  // Q as A fragments, straight from global memory (read once per CTA). BF16: qa[ks] covers dims [16ks, 16ks + 16)
  // in the natural order; FP8: k-slots 2t, 2t+1 / 2t+8, 2t+9 of k-step ks are dims t*d/4 + 4ks + {0, 1} / {2, 3}.
  std::uint32_t qa[D / 16][4];
#pragma unroll
  for (int ks = 0; ks < D / 16; ++ks) {
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int i = j & 1;
      const int col = Fp8 ? t4 * (D / 4) + 4 * ks + (j >> 1) * 2 : ks * 16 + 2 * t4 + (j >> 1) * 8;
      qa[ks][j] = row_ok[i] ? *reinterpret_cast<const std::uint32_t*>(qrow[i] + col) : 0u;
    }
  }

  const std::size_t table_row = std::size_t(b) * p.max_pages;
  const int page_mask = (1 << p.page_shift) - 1;
  const auto* kg = static_cast<const unsigned char*>(p.k);
  const auto* vg = static_cast<const unsigned char*>(p.v);
  auto load_tile = [&](int tile, int stage) {
    unsigned char* sk = ring + stage * kStageBytes;
    unsigned char* sv = sk + kTileBytes;
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
        off = ((std::size_t(page) << p.page_shift | unsigned(tok & page_mask)) * p.kv_heads + kvh) * kRowBytes +
              ch * 16;
      }
      cp_async_16(sk + swz<kRowBytes>(row, ch), kg + off, valid);
      cp_async_16(sv + swz<kRowBytes>(row, ch), vg + off, valid);
    }
    if constexpr (Fp8) {
      if (threadIdx.x < kTile) {  // the scales of the tile's 64 tokens (0 past the split: those keys are masked)
        float* ksc = reinterpret_cast<float*>(sv + kTileBytes);
        const int tok = t0 + threadIdx.x;
        const bool valid = tok < hi;
        std::size_t at = 0;
        if (valid) at = std::size_t(p.block_table[table_row + (tok >> p.page_shift)]) * p.kv_heads + kvh;
        cp_async_4(ksc + threadIdx.x, p.k_scale + at, valid);
        cp_async_4(ksc + kTile + threadIdx.x, p.v_scale + at, valid);
      }
    }
  };

  float o[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY};  // running row max (log2 domain), the same in the 4 lanes of a row
  float l[2] = {0.f, 0.f};              // this lane's part of the running row sum (its 4 columns per tile)
  const int mat = lane >> 3;            // which of ldmatrix.x4's four matrices this lane addresses

  auto compute_tile = [&](int tile, int stage) {
    const unsigned char* sk = ring + stage * kStageBytes;
    const unsigned char* sv = sk + kTileBytes;
    const float* ksc = reinterpret_cast<const float*>(sv + kTileBytes);  // FP8 only
    const float* vsc = ksc + kTile;
    const int t0 = first + tile * kTile;
    float s[2][4] = {};
    if constexpr (!Fp8) {
      // S = Q K^T for this warp's 16 keys: one ldmatrix.x4 per k-step gives both n-tiles' B fragments
      // (matrices: keys 0-7 | dims lo, keys 0-7 | dims hi, keys 8-15 | dims lo, keys 8-15 | dims hi).
      const int kkey = warp * 16 + (mat >> 1) * 8 + (lane & 7);
#pragma unroll
      for (int ks = 0; ks < D / 16; ++ks) {
        std::uint32_t kb[4];
        ldmatrix_x4(kb, sk + swz<kRowBytes>(kkey, 2 * ks + (mat & 1)));
        mma_bf16_16816(s[0], qa[ks], kb[0], kb[1]);
        mma_bf16_16816(s[1], qa[ks], kb[2], kb[3]);
      }
    } else {
      // Keys 16w + g (n-tile 0) and 16w + 8 + g (n-tile 1): dims [t*d/4, t*d/4 + d/4), one word per k-step.
      std::uint32_t kw[2][D / 16];
#pragma unroll
      for (int n = 0; n < 2; ++n) {
        const int row = warp * 16 + 8 * n + g;
#pragma unroll
        for (int j = 0; j < D / 64; ++j) {
          const uint4 x = *reinterpret_cast<const uint4*>(sk + swz<kRowBytes>(row, t4 * (D / 64) + j));
          kw[n][4 * j] = x.x;
          kw[n][4 * j + 1] = x.y;
          kw[n][4 * j + 2] = x.z;
          kw[n][4 * j + 3] = x.w;
        }
      }
#pragma unroll
      for (int ks = 0; ks < D / 16; ++ks)
#pragma unroll
        for (int n = 0; n < 2; ++n)
          mma_bf16_16816(s[n], qa[ks], e4m3x2_to_bf16x2(kw[n][ks]), e4m3x2_to_bf16x2(kw[n][ks] >> 16));
    }
    // Mask (split end, causal among the new tokens, window) and scale into the log2 domain (FP8: times the
    // key's K scale).
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int n = 0; n < 2; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int i = e >> 1;
        const int local = warp * 16 + n * 8 + 2 * t4 + (e & 1);
        const int key = t0 + local;
        const bool vis = key < hi && key <= pos[i] && (p.window <= 0 || key > pos[i] - p.window);
        const float sc = Fp8 ? p.scale_log2 * ksc[local] : p.scale_log2;
        s[n][e] = vis ? s[n][e] * sc : -INFINITY;
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
        if constexpr (Fp8) s[n][e] *= vsc[warp * 16 + n * 8 + 2 * t4 + (e & 1)];  // P V_fp8 scale_v = (P scale_v) V_fp8
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
    if constexpr (!Fp8) {
      // O += P V: V [16 keys][d] is B (k = key) row-major, so ldmatrix.trans (matrices: keys 0-7 | dims lo,
      // keys 8-15 | dims lo, keys 0-7 | dims hi, keys 8-15 | dims hi).
      const int vkey = warp * 16 + (mat & 1) * 8 + (lane & 7);
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        std::uint32_t vb[4];
        ldmatrix_x4_trans(vb, sv + swz<kRowBytes>(vkey, 2 * dp + (mat >> 1)));
        mma_bf16_16816(o[2 * dp], pa, vb[0], vb[1]);
        mma_bf16_16816(o[2 * dp + 1], pa, vb[2], vb[3]);
      }
    } else {
      // Keys 16w + 2t + {0, 1, 8, 9} (the k-slots of b0 and b1), dims [g*d/8, g*d/8 + d/8): byte nt is n-tile nt.
      std::uint32_t vw[4][D / 32];
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int row = warp * 16 + 2 * t4 + (r & 1) + (r >> 1) * 8;
        if constexpr (D == 128) {
          const uint4 x = *reinterpret_cast<const uint4*>(sv + swz<kRowBytes>(row, g));
          vw[r][0] = x.x;
          vw[r][1] = x.y;
          vw[r][2] = x.z;
          vw[r][3] = x.w;
        } else {
          const uint2 x = *reinterpret_cast<const uint2*>(sv + swz<kRowBytes>(row, g >> 1) + (g & 1) * 8);
          vw[r][0] = x.x;
          vw[r][1] = x.y;
        }
      }
#pragma unroll
      for (int w = 0; w < D / 32; ++w) {
        // (key 2t, key 2t+1) byte pairs of n-tiles 4w, 4w+1 | 4w+2, 4w+3; likewise keys 2t+8, 2t+9.
        const std::uint32_t lo01 = __byte_perm(vw[0][w], vw[1][w], 0x5140), hi01 = __byte_perm(vw[0][w], vw[1][w], 0x7362);
        const std::uint32_t lo89 = __byte_perm(vw[2][w], vw[3][w], 0x5140), hi89 = __byte_perm(vw[2][w], vw[3][w], 0x7362);
        mma_bf16_16816(o[4 * w], pa, e4m3x2_to_bf16x2(lo01), e4m3x2_to_bf16x2(lo89));
        mma_bf16_16816(o[4 * w + 1], pa, e4m3x2_to_bf16x2(lo01 >> 16), e4m3x2_to_bf16x2(lo89 >> 16));
        mma_bf16_16816(o[4 * w + 2], pa, e4m3x2_to_bf16x2(hi01), e4m3x2_to_bf16x2(hi89));
        mma_bf16_16816(o[4 * w + 3], pa, e4m3x2_to_bf16x2(hi01 >> 16), e4m3x2_to_bf16x2(hi89 >> 16));
      }
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
  float* ms = reinterpret_cast<float*>(smem_raw + smem_bytes(D, Fp8, Stages) - 2 * kWarps * kRows * sizeof(float));
  float* ls = ms + kWarps * kRows;
#pragma unroll
  for (int n = 0; n < D / 8; ++n) {
    // BF16: columns 2t, 2t+1 of n-tile n are dims 8n + 2t (+1); FP8: dims (2t) d/8 + n and (2t+1) d/8 + n.
    const int c0 = Fp8 ? (2 * t4) * (D / 8) + n : n * 8 + 2 * t4;
    const int c1 = Fp8 ? c0 + D / 8 : c0 + 1;
    float* r0 = os + (warp * kRows + g) * D;
    r0[c0] = o[n][0];
    r0[c1] = o[n][1];
    r0[8 * D + c0] = o[n][2];
    r0[8 * D + c1] = o[n][3];
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
  pdl_begin();  // launched with launch_pdl
  const int R = c.batch * c.q_len * c.heads;
  const int rowid = blockIdx.x;
  const int head = rowid % c.heads, bq = rowid / c.heads, qi = bq % c.q_len, b = bq / c.q_len;
  int splits = c.splits;  // the splits this sequence has (the others did not run)
  if (c.context_lens) {
    const int ctx = min(max(c.context_lens[b], 0), c.context_cap);
    splits = max(1, min(splits, (ctx + c.tokens_per_split - 1) / c.tokens_per_split));
  }
  float M = c.sinks ? c.sinks[head] : -INFINITY;
  for (int s = 0; s < splits; ++s) M = fmaxf(M, c.lse_partial[std::size_t(s) * R + rowid]);
  float sum = 0.f;
  if (M != -INFINITY) {
    for (int s = 0; s < splits; ++s) sum += expf(c.lse_partial[std::size_t(s) * R + rowid] - M);
    if (c.sinks) sum += expf(c.sinks[head] - M);
  }
  const float total = sum > 0.f ? M + logf(sum) : -INFINITY;
  for (int col = threadIdx.x; col < c.d; col += blockDim.x) {
    float acc = 0.f;
    if (total != -INFINITY)
      for (int s = 0; s < splits; ++s) {
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
  pdl_begin();  // launched with launch_pdl
  const std::int64_t slot = a.slot_mapping[blockIdx.x];
  if (slot < 0 || slot >= std::int64_t(a.num_pages) * a.page_size) return;
  const int chunks = a.kv_heads * a.d / 8;
  const std::size_t stride = a.kv_row_stride > 0 ? std::size_t(a.kv_row_stride) : std::size_t(a.kv_heads) * a.d;
  const uint4* ks = reinterpret_cast<const uint4*>(a.k_new + blockIdx.x * stride);
  const uint4* vs = reinterpret_cast<const uint4*>(a.v_new + blockIdx.x * stride);
  uint4* kd = reinterpret_cast<uint4*>(a.k_cache + std::size_t(slot) * a.kv_heads * a.d);
  uint4* vd = reinterpret_cast<uint4*>(a.v_cache + std::size_t(slot) * a.kv_heads * a.d);
  for (int c = threadIdx.x; c < chunks; c += blockDim.x) {
    kd[c] = ks[c];
    vd[c] = vs[c];
  }
}

// One CTA per (page, kv head): the block's amax (K and V separately), its scale, then the E4M3 values.
__global__ void __launch_bounds__(128) quantize_kernel(const QuantizePagesArgs a) {
  __shared__ float red[4];
  const int page = blockIdx.x, h = blockIdx.y;
  const int n = a.page_size * a.d;
  for (int which = 0; which < 2; ++which) {
    const bf16* src = static_cast<const bf16*>(which ? a.v : a.k);
    auto* dst = static_cast<__nv_fp8_storage_t*>(which ? a.v8 : a.k8);
    auto at = [&](int i) { return (std::size_t(page) * a.page_size + i / a.d) * a.kv_heads * a.d + h * a.d + i % a.d; };
    float amax = 0.f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) amax = fmaxf(amax, fabsf(__bfloat162float(src[at(i)])));
    for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = amax;
    __syncthreads();
    amax = fmaxf(fmaxf(red[0], red[1]), fmaxf(red[2], red[3]));
    __syncthreads();  // red is rewritten for V
    const float scale = amax > 0.f ? amax / 448.f : 1.f;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
      dst[at(i)] = __nv_cvt_float_to_fp8(__bfloat162float(src[at(i)]) / scale, __NV_SATFINITE, __NV_E4M3);
    if (threadIdx.x == 0) (which ? a.v_scale : a.k_scale)[std::size_t(page) * a.kv_heads + h] = scale;
  }
}

using KernelFn = void (*)(Params);

template <int D, bool Fp8>
KernelFn kernel_for(int stages) {
  switch (stages) {
    case 1: return decode_kernel<D, 1, Fp8>;
    case 2: return decode_kernel<D, 2, Fp8>;
    case 3: return decode_kernel<D, 3, Fp8>;
    default: return decode_kernel<D, 4, Fp8>;
  }
}

KernelFn kernel_for(int d, bool fp8, int stages) {
  if (d == 128) return fp8 ? kernel_for<128, true>(stages) : kernel_for<128, false>(stages);
  return fp8 ? kernel_for<64, true>(stages) : kernel_for<64, false>(stages);
}

// The SM count and the kernel's CTAs per SM, queried once per (device, kernel): decode() runs every engine
// step, and the occupancy calculator costs microseconds.
struct Occupancy {
  int sms = 0, per_sm = 0;
};
Occupancy occupancy_of(KernelFn kernel, std::size_t smem) {
  static std::mutex mu;
  static std::map<std::pair<int, KernelFn>, Occupancy> known;
  int dev = 0;
  AIPE_CUDA(cudaGetDevice(&dev));
  const std::lock_guard<std::mutex> lock(mu);
  auto it = known.find({dev, kernel});
  if (it != known.end()) return it->second;
  Occupancy o;
  AIPE_CUDA(cudaDeviceGetAttribute(&o.sms, cudaDevAttrMultiProcessorCount, dev));
  AIPE_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&o.per_sm, kernel, kThreads, smem));
  known.emplace(std::make_pair(dev, kernel), o);
  return o;
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
  const bool fp8 = a.cache.dtype == KvDType::fp8_e4m3;
  L.stages = !a.schedule.pipelined ? 1 : a.schedule.stages > 0 ? a.schedule.stages : stages_for(d, fp8, true);
  L.kernel = kernel_for(d, fp8, L.stages);
  L.smem = smem_bytes(d, fp8, L.stages);
  set_max_dynamic_smem(L.kernel, L.smem);
  const Occupancy occ = occupancy_of(L.kernel, L.smem);
  const int sms = occ.sms, per_sm = occ.per_sm;
  const int group = a.heads / a.cache.kv_heads;
  L.plan.row_blocks = (a.q_len * group + kRows - 1) / kRows;
  const int max_ctx = a.max_context > 0 ? a.max_context : int(a.cache.capacity());
  L.plan.split = plan_splits({.sm_count = sms,
                              .ctas_per_sm = std::max(per_sm, 1),
                              .ctas_per_split = a.batch * a.cache.kv_heads * L.plan.row_blocks,
                              .max_context = max_ctx,
                              .tile_tokens = kTile,
                              .requested = a.schedule.num_splits,
                              .work_tokens = a.total_context * a.cache.kv_heads * L.plan.row_blocks});
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
  p.k = a.cache.k;
  p.v = a.cache.v;
  p.k_scale = a.cache.k_scale;
  p.v_scale = a.cache.v_scale;
  p.block_table = a.cache.block_table;
  p.context_lens = a.cache.context_lens;
  p.sinks = a.sinks;
  p.o_part = splits > 1 ? static_cast<float*>(a.workspace) : nullptr;
  p.lse_part = splits > 1 ? p.o_part + std::size_t(splits) * R * a.cache.d : nullptr;
  p.q_stride = a.q_row_stride > 0 ? a.q_row_stride : std::int64_t(a.heads) * a.cache.d;
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
  launch_pdl(L.kernel, dim3(unsigned(gx), unsigned(a.batch), unsigned(splits)), dim3(kThreads), L.smem, stream, p);
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
                    .lse = a.lse,
                    .context_lens = a.cache.context_lens,
                    .tokens_per_split = p.tokens_per_split,
                    .context_cap = p.capacity},
                   stream);
  }
}

void combine_splits(const CombineArgs& c, cudaStream_t stream) {
  if (!c.o_partial || !c.lse_partial || !c.out) throw std::invalid_argument("combine_splits: null pointer");
  if (c.splits < 1 || c.batch < 1 || c.q_len < 1 || c.heads < 1 || c.d < 1)
    throw std::invalid_argument("combine_splits: splits, batch, q_len, heads and d must be at least 1");
  if (c.context_lens && (c.tokens_per_split < 1 || c.context_cap < 0))
    throw std::invalid_argument("combine_splits: with context_lens, tokens_per_split must be >= 1 and context_cap >= 0");
  const long long rows = static_cast<long long>(c.batch) * c.q_len * c.heads;
  if (rows > INT32_MAX) throw std::invalid_argument("combine_splits: batch * q_len * heads exceeds the grid");
  launch_pdl(combine_kernel, dim3(unsigned(rows)), dim3(128), 0, stream, c);
  AIPE_CHECK_LAUNCH();
}

void append_kv(const AppendKvArgs& a, cudaStream_t stream) {
  check_append_kv_args(a);
  if (a.tokens == 0) return;
  launch_pdl(append_kernel, dim3(unsigned(a.tokens)), dim3(128), 0, stream, a);
  AIPE_CHECK_LAUNCH();
}

void quantize_pages_e4m3(const QuantizePagesArgs& a, cudaStream_t stream) {
  if (!a.k || !a.v || !a.k8 || !a.v8 || !a.k_scale || !a.v_scale)
    throw std::invalid_argument("quantize_pages_e4m3: k, v, k8, v8, k_scale and v_scale must not be null");
  if (a.num_pages < 1 || a.page_size < 1 || a.kv_heads < 1 || a.d < 1)
    throw std::invalid_argument("quantize_pages_e4m3: num_pages, page_size, kv_heads and d must be at least 1");
  if (a.kv_heads > 65535) throw std::invalid_argument("quantize_pages_e4m3: kv_heads must be at most 65535");
  quantize_kernel<<<dim3(unsigned(a.num_pages), unsigned(a.kv_heads)), 128, 0, stream>>>(a);
  AIPE_CHECK_LAUNCH();
}

}  // namespace aipe::kernels::attention
