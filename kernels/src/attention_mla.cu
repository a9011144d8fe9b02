// MLA decode: the absorbed form over a paged latent cache, head-tiled on mma.sync tensor cores, split-KV,
// BF16 or FlashMLA's FP8 pages (the API, layouts and rules: aipe/kernels/attention/mla.hpp).
//
// One CTA = (row tile, sequence b, split); 8 warps, 256 threads, one CTA per SM (shared memory).
//   rows     the sequence's q_len x heads query rows, row r = qi * heads + h (q's own order, so a tile's rows are
//            one contiguous run of q); a tile is 64 of them (128 heads: 2 tiles; 16 heads: one, whose 3 padding
//            row blocks skip the math)
//   smem     Q [64][576] BF16 (73,728 B, loaded once) and the K tile [64 tokens][576] BF16 (73,728 B) of one
//            page: its first 512 columns are the V tile. Rows of 1,152 B: 16-byte chunks XOR-swizzled by
//            row & 7, so ldmatrix's 8 rows of one phase hit 8 different bank groups.
//            BF16 pipelined: two K tiles (221,184 B), the next page landing under this page's math.
//            FP8: two raw 656-byte-row tiles (2 x 41,984 B) land by cp.async; all 256 threads dequantize the
//            current one into the single BF16 tile (231,424 B in all, 1 KiB under the 227 KiB opt-in).
//   warps    warp w = (row block w % 4: 16 rows, column half w / 4: V columns [256 (w / 4), + 256)). Each
//            warp computes S = Q K^T for its 16 rows x 64 keys over d 576 (36 k-steps x 8 n-tiles) and the
//            online softmax, then O += P V for its 256 columns (4 k-steps x 32 n-tiles, 128 FP32 accumulators
//            a thread). The two column halves compute the same S (1.5x the minimal tensor work: the price of
//            needing no shared-memory exchange of P); their row max and sum agree bit for bit.
// A page is exactly one 64-token tile (splits are multiples of 64 tokens), so each tile costs one block-table
// read. Tokens past the split's end are zero-filled (cp.async src-size 0): V must be 0 there, since P = 0
// times a stale NaN is still NaN.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "aipe/check.hpp"
#include "aipe/kernels/attention/mla.hpp"
#include "aipe/kernels/launch.cuh"
#include "aipe/kernels/mma_sync.cuh"
#include "aipe/kernels/ptx.cuh"

namespace aipe::kernels::attention {

namespace {

using bf16 = __nv_bfloat16;

constexpr int kTile = kMlaPageTokens;   // keys per tile = tokens per page
constexpr int kRowTile = 64;            // query rows per CTA
constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kRowBytes = kMlaDimQk * 2;          // 1,152: one BF16 token row
constexpr int kChunks = kRowBytes / 16;           // 72
constexpr int kTileBytes = kTile * kRowBytes;     // 73,728
constexpr int kRawChunks = kMlaFp8TokenBytes / 16;  // 41 per FP8 token row
constexpr int kRawTileBytes = kTile * kMlaFp8TokenBytes;  // 41,984
constexpr int kColsPerWarp = kMlaDimV / 2;        // 256
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

static_assert(kMlaFp8TokenBytes % 16 == 0 && kTile * kChunks % kThreads == 0);

struct Params {
  const bf16* q;
  bf16* out;
  float* lse;
  const unsigned char* kv;
  const int* block_table;
  const int* context_lens;
  float* o_part;    // [splits][batch * rows][512]
  float* lse_part;  // [splits][batch * rows]
  int rows, heads, q_len, max_pages, capacity, splits, tokens_per_split;
  float scale_log2;
};

__host__ __device__ constexpr std::size_t smem_bytes(bool fp8, int stages) {
  return fp8 ? std::size_t(2) * kTileBytes + 2 * kRawTileBytes : std::size_t(1 + stages) * kTileBytes;
}

// Byte offset of (row, 16-byte chunk) in a [64][1152] tile: chunks XOR-swizzled within aligned groups of 8.
__device__ __forceinline__ int swz(int row, int chunk) { return row * kRowBytes + ((chunk ^ (row & 7)) << 4); }

// Two E4M3 values (low byte first) times `scale` as a BF16 pair.
__device__ __forceinline__ std::uint32_t e4m3x2_scaled(std::uint32_t two, float scale) {
  const __half2_raw h = __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(two & 0xFFFFu), __NV_E4M3);
  const float2 f = __half22float2(__half2(h));
  return pack_bf16x2(f.x * scale, f.y * scale);
}

// Stages: 1 (load, wait, use) or 2 (the next tile in flight under this one); FP8 always double-buffers its raw
// tiles and dequantizes into one BF16 tile.
template <bool Fp8, int Stages>
__global__ void __launch_bounds__(kThreads, 1) mla_kernel(const Params p) {
  pdl_begin();  // launched with launch_pdl, like the rest of the decode step
  extern __shared__ __align__(128) unsigned char smem[];
  unsigned char* const sq = smem;
  unsigned char* const skv = smem + kTileBytes;               // BF16 tile(s)
  unsigned char* const sraw = smem + 2 * kTileBytes;          // FP8: two raw tiles

  const int tile_r = blockIdx.x, b = blockIdx.y, split = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t4 = lane % 4, mat = lane >> 3;
  const int rw = warp % 4, cw = warp / 4;

  const int ctx = min(max(p.context_lens[b], 0), p.capacity);
  const int lo = split * p.tokens_per_split;
  // A split past its sequence's end writes nothing: combine_splits reads only the splits the sequence has.
  if (split > 0 && lo >= ctx) return;
  const int hi = split == p.splits - 1 ? ctx : min(ctx, lo + p.tokens_per_split);
  const int n_tiles = hi > lo ? (hi - lo + kTile - 1) / kTile : 0;

  // Q: rows past the sequence's rows are zero-filled (their results are never written).
  const int row0 = tile_r * kRowTile;
  const bf16* qbase = p.q + (std::size_t(b) * p.rows + row0) * kMlaDimQk;
#pragma unroll 2
  for (int i = 0; i < kRowTile * kChunks / kThreads; ++i) {
    const int c = threadIdx.x + i * kThreads;
    const int row = c / kChunks, ch = c % kChunks;
    const bool valid = row0 + row < p.rows;
    cp_async_16(sq + swz(row, ch), valid ? qbase + std::size_t(row) * kMlaDimQk + ch * 8 : p.q, valid);
  }

  const int* table = p.block_table + std::size_t(b) * p.max_pages;
  // One tile = one page (lo and every tile start are multiples of 64).
  auto load_tile = [&](int tile, unsigned char* dst) {
    const int t0 = lo + tile * kTile;
    const int page = table[t0 / kTile];
    const int valid_rows = min(kTile, hi - t0);
    if constexpr (!Fp8) {
      const unsigned char* src = p.kv + std::size_t(page) * kTileBytes;
#pragma unroll 2
      for (int i = 0; i < kTile * kChunks / kThreads; ++i) {
        const int c = threadIdx.x + i * kThreads;
        const int row = c / kChunks, ch = c % kChunks;
        const bool valid = row < valid_rows;
        cp_async_16(dst + swz(row, ch), valid ? src + row * kRowBytes + ch * 16 : p.kv, valid);
      }
    } else {
      const unsigned char* src = p.kv + std::size_t(page) * kRawTileBytes;
      for (int c = threadIdx.x; c < kTile * kRawChunks; c += kThreads) {
        const bool valid = c / kRawChunks < valid_rows;  // chunks are consecutive bytes of the page
        cp_async_16(dst + c * 16, valid ? src + c * 16 : p.kv, valid);
      }
    }
  };
  // FP8: raw tile -> BF16 tile. Per token 32 latent chunks (16 E4M3 values -> two BF16 chunks, one scale per
  // 8 chunks) and 8 RoPE chunks copied as they are.
  auto dequantize = [&](const unsigned char* raw) {
    for (int it = threadIdx.x; it < kTile * 40; it += kThreads) {
      const int row = it / 40, c = it % 40;
      const unsigned char* src = raw + row * kMlaFp8TokenBytes;
      if (c < 32) {
        const uint4 x = *reinterpret_cast<const uint4*>(src + c * 16);
        const float sc = reinterpret_cast<const float*>(src + kMlaDimV)[c / 8];
        const uint4 a = {e4m3x2_scaled(x.x, sc), e4m3x2_scaled(x.x >> 16, sc), e4m3x2_scaled(x.y, sc),
                         e4m3x2_scaled(x.y >> 16, sc)};
        const uint4 z = {e4m3x2_scaled(x.z, sc), e4m3x2_scaled(x.z >> 16, sc), e4m3x2_scaled(x.w, sc),
                         e4m3x2_scaled(x.w >> 16, sc)};
        *reinterpret_cast<uint4*>(skv + swz(row, 2 * c)) = a;
        *reinterpret_cast<uint4*>(skv + swz(row, 2 * c + 1)) = z;
      } else {
        const uint4 x = *reinterpret_cast<const uint4*>(src + kMlaDimV + 16 + (c - 32) * 16);
        *reinterpret_cast<uint4*>(skv + swz(row, 64 + (c - 32))) = x;
      }
    }
  };

  // This thread's two rows: g and g + 8 of the warp's row block; their query positions for the causal test.
  int pos[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int r = row0 + rw * 16 + g + 8 * i;
    pos[i] = ctx - p.q_len + r / p.heads;
  }
  float o[kColsPerWarp / 8][4];
#pragma unroll
  for (int n = 0; n < kColsPerWarp / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY};  // running row max (log2 domain), equal in the 4 lanes of a row
  float l[2] = {0.f, 0.f};              // this lane's part of the running row sum
  // A warp whose 16 rows are all padding (16 heads: 3 of the 4 row blocks) only helps load: the shared-memory
  // reads and MMAs of the tile are what bound the kernel, not the loads.
  const bool active = row0 + rw * 16 < p.rows;

  auto compute_tile = [&](int tile, const unsigned char* sk) {
    const int t0 = lo + tile * kTile;
    float s[8][4];
#pragma unroll
    for (int n = 0; n < 8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
    // S = Q K^T: A from Q (matrices: rows 0-7 | 8-15 x k lo | hi), B from K (keys 0-7 | 8-15 x k lo | hi).
    const int qrow = rw * 16 + (mat & 1) * 8 + (lane & 7);
#pragma unroll 4
    for (int ks = 0; ks < kMlaDimQk / 16; ++ks) {
      std::uint32_t qa[4];
      ldmatrix_x4(qa, sq + swz(qrow, 2 * ks + (mat >> 1)));
#pragma unroll
      for (int np = 0; np < 4; ++np) {
        std::uint32_t kb[4];
        ldmatrix_x4(kb, sk + swz(np * 16 + (mat >> 1) * 8 + (lane & 7), 2 * ks + (mat & 1)));
        mma_bf16_16816(s[2 * np], qa, kb[0], kb[1]);
        mma_bf16_16816(s[2 * np + 1], qa, kb[2], kb[3]);
      }
    }
    // Mask (split end; causal between the new tokens) and scale into the log2 domain.
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int n = 0; n < 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int i = e >> 1;
        const int key = t0 + n * 8 + 2 * t4 + (e & 1);
        s[n][e] = key < hi && key <= pos[i] ? s[n][e] * p.scale_log2 : -INFINITY;
        mx[i] = fmaxf(mx[i], s[n][e]);
      }
    float alpha[2], base[2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 1));
      mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 2));
      const float m_new = fmaxf(m[i], mx[i]);
      base[i] = m_new == -INFINITY ? 0.f : m_new;  // nothing visible yet: exp2(-inf - 0) = 0
      alpha[i] = exp2f(m[i] - base[i]);
      m[i] = m_new;
      l[i] *= alpha[i];
    }
#pragma unroll
    for (int n = 0; n < 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[n][e] = exp2f(s[n][e] - base[e >> 1]);
        l[e >> 1] += s[n][e];
      }
#pragma unroll
    for (int n = 0; n < kColsPerWarp / 8; ++n) {
      o[n][0] *= alpha[0];
      o[n][1] *= alpha[0];
      o[n][2] *= alpha[1];
      o[n][3] *= alpha[1];
    }
    // O += P V: P's C fragments are the A fragments of keys [16 kk, 16 kk + 16) as they stand; V's B
    // fragments by ldmatrix.trans (matrices: keys 0-7 | 8-15 x columns c0 | c0 + 8).
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      const std::uint32_t pa[4] = {pack_bf16x2(s[2 * kk][0], s[2 * kk][1]), pack_bf16x2(s[2 * kk][2], s[2 * kk][3]),
                                   pack_bf16x2(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                   pack_bf16x2(s[2 * kk + 1][2], s[2 * kk + 1][3])};
      const int vkey = kk * 16 + (mat & 1) * 8 + (lane & 7);
#pragma unroll
      for (int cp = 0; cp < kColsPerWarp / 16; ++cp) {
        std::uint32_t vb[4];
        ldmatrix_x4_trans(vb, sk + swz(vkey, (cw * kColsPerWarp + cp * 16) / 8 + (mat >> 1)));
        mma_bf16_16816(o[2 * cp], pa, vb[0], vb[1]);
        mma_bf16_16816(o[2 * cp + 1], pa, vb[2], vb[3]);
      }
    }
  };

  if constexpr (Fp8) {
    // Raw tiles double-buffered; at the top of iteration t, raw tile t has landed, every warp is done with
    // tile t - 1's math (the BF16 tile is free) and with dequantizing it (raw slot (t + 1) % 2 is free).
    if (n_tiles > 0) load_tile(0, sraw);
    cp_async_commit();
    for (int t = 0; t < n_tiles; ++t) {
      cp_async_wait<0>();
      __syncthreads();
      if (t + 1 < n_tiles) load_tile(t + 1, sraw + ((t + 1) % 2) * kRawTileBytes);
      cp_async_commit();
      dequantize(sraw + (t % 2) * kRawTileBytes);
      __syncthreads();
      if (active) compute_tile(t, skv);
    }
  } else if constexpr (Stages == 1) {
    for (int t = 0; t < n_tiles; ++t) {
      load_tile(t, skv);
      cp_async_commit();  // the first group also carries Q
      cp_async_wait<0>();
      __syncthreads();
      if (active) compute_tile(t, skv);
      __syncthreads();
    }
  } else {
    // Two slots: at the top of iteration t, tile t has landed and every warp is done with tile t - 1, whose
    // slot then takes tile t + 1 while tile t is multiplied.
    if (n_tiles > 0) load_tile(0, skv);
    cp_async_commit();
    for (int t = 0; t < n_tiles; ++t) {
      cp_async_wait<0>();
      __syncthreads();
      if (t + 1 < n_tiles) load_tile(t + 1, skv + ((t + 1) % 2) * kTileBytes);
      cp_async_commit();
      if (active) compute_tile(t, skv + (t % 2) * kTileBytes);
    }
  }
  cp_async_commit();  // Q's copies form a group of their own when there was no tile
  cp_async_wait<0>();

  // Epilogue: both column halves hold the same row statistics; each writes its 256 columns.
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 1);
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 2);
  }
  const std::size_t R = std::size_t(gridDim.y) * p.rows;
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int r = row0 + rw * 16 + g + 8 * i;
    if (r >= p.rows) continue;
    const std::size_t rowid = std::size_t(b) * p.rows + r;  // = (b * q_len + qi) * heads + h
    const float inv = l[i] > 0.f ? 1.f / l[i] : 0.f;
    const float lse = l[i] > 0.f ? (m[i] + log2f(l[i])) * kLn2 : -INFINITY;
    if (p.splits == 1) {
      bf16* orow = p.out + rowid * kMlaDimV + cw * kColsPerWarp + 2 * t4;
#pragma unroll
      for (int n = 0; n < kColsPerWarp / 8; ++n)
        *reinterpret_cast<std::uint32_t*>(orow + n * 8) = pack_bf16x2(o[n][2 * i] * inv, o[n][2 * i + 1] * inv);
      if (p.lse && cw == 0 && t4 == 0) {
        const int qi = r / p.heads, h = r % p.heads;
        p.lse[(std::size_t(b) * p.heads + h) * p.q_len + qi] = lse;
      }
    } else {
      const std::size_t prow = std::size_t(split) * R + rowid;
      if (lse != -INFINITY) {  // an empty split's O is never read
        float* orow = p.o_part + prow * kMlaDimV + cw * kColsPerWarp + 2 * t4;
#pragma unroll
        for (int n = 0; n < kColsPerWarp / 8; ++n)
          *reinterpret_cast<float2*>(orow + n * 8) = make_float2(o[n][2 * i] * inv, o[n][2 * i + 1] * inv);
      }
      if (cw == 0 && t4 == 0) p.lse_part[prow] = lse;
    }
  }
}

// One CTA of 128 threads per token: warp w owns latent group w (128 values, 4 a thread), its amax a warp
// reduction; threads 0-7 copy the 128 bytes of RoPE.
__global__ void __launch_bounds__(128) quantize_mla_kernel(const bf16* kv, unsigned char* kv8) {
  const std::size_t tok = blockIdx.x;
  const bf16* src = kv + tok * kMlaDimQk;
  unsigned char* dst = kv8 + tok * kMlaFp8TokenBytes;
  const int i = threadIdx.x, lane = i % 32, w = i / 32;
  const uint2 raw = reinterpret_cast<const uint2*>(src)[i];  // values 4i .. 4i + 3
  const __nv_bfloat162 lo2 = *reinterpret_cast<const __nv_bfloat162*>(&raw.x);
  const __nv_bfloat162 hi2 = *reinterpret_cast<const __nv_bfloat162*>(&raw.y);
  const float x[4] = {__low2float(lo2), __high2float(lo2), __low2float(hi2), __high2float(hi2)};
  float amax = fmaxf(fmaxf(fabsf(x[0]), fabsf(x[1])), fmaxf(fabsf(x[2]), fabsf(x[3])));
  for (int off = 16; off > 0; off >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
  const float scale = amax > 0.f ? amax / 448.f : 1.f;
  std::uint32_t packed = 0;
#pragma unroll
  for (int j = 0; j < 4; ++j)
    packed |= std::uint32_t(__nv_cvt_float_to_fp8(x[j] / scale, __NV_SATFINITE, __NV_E4M3)) << (8 * j);
  reinterpret_cast<std::uint32_t*>(dst)[i] = packed;
  if (lane == 0) reinterpret_cast<float*>(dst + kMlaDimV)[w] = scale;
  if (i < 8)
    reinterpret_cast<uint4*>(dst + kMlaDimV + 16)[i] = reinterpret_cast<const uint4*>(src + kMlaDimV)[i];
}

int sm_count() {
  int dev = 0, sms = 0;
  AIPE_CUDA(cudaGetDevice(&dev));
  AIPE_CUDA(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  return sms;
}

}  // namespace

MlaDecodePlan mla_decode_plan(const MlaDecodeArgs& a) { return plan_mla_decode(a, sm_count()); }

void mla_decode(const MlaDecodeArgs& a, cudaStream_t stream) {
  const MlaDecodePlan plan = plan_mla_decode(a, sm_count());
  const int splits = plan.split.num_splits;
  if (splits > 1 && (!a.workspace || a.workspace_bytes < plan.workspace_bytes))
    throw std::invalid_argument("mla_decode: " + std::to_string(splits) + " splits need a workspace of " +
                                std::to_string(plan.workspace_bytes) + " bytes (mla_decode_plan), got " +
                                std::to_string(a.workspace ? a.workspace_bytes : 0));
  const std::size_t R = std::size_t(a.batch) * a.q_len * a.heads;
  Params p{};
  p.q = a.q;
  p.out = a.out;
  p.lse = a.lse;
  p.kv = static_cast<const unsigned char*>(a.kv);
  p.block_table = a.block_table;
  p.context_lens = a.context_lens;
  p.o_part = splits > 1 ? static_cast<float*>(a.workspace) : nullptr;
  p.lse_part = splits > 1 ? p.o_part + std::size_t(splits) * R * kMlaDimV : nullptr;
  p.rows = a.q_len * a.heads;
  p.heads = a.heads;
  p.q_len = a.q_len;
  p.max_pages = a.max_pages_per_seq;
  p.capacity = a.max_pages_per_seq * kMlaPageTokens;
  p.splits = splits;
  p.tokens_per_split = plan.split.tokens_per_split;
  const float scale = a.scale > 0.f ? a.scale : 1.f / std::sqrt(float(kMlaDimQk));
  p.scale_log2 = scale * kLog2e;

  const bool fp8 = a.format == MlaKvFormat::fp8_flashmla;
  const int stages = fp8 || a.schedule.pipelined ? 2 : 1;
  void (*kernel)(Params) = fp8 ? mla_kernel<true, 2> : stages == 2 ? mla_kernel<false, 2> : mla_kernel<false, 1>;
  const std::size_t smem = smem_bytes(fp8, stages);
  set_max_dynamic_smem(kernel, smem);
  launch_pdl(kernel, dim3(unsigned(plan.row_tiles), unsigned(a.batch), unsigned(splits)), dim3(kThreads), smem, stream,
             p);
  AIPE_CHECK_LAUNCH();
  if (splits > 1)
    combine_splits({.o_partial = p.o_part,
                    .lse_partial = p.lse_part,
                    .splits = splits,
                    .batch = a.batch,
                    .q_len = a.q_len,
                    .heads = a.heads,
                    .d = kMlaDimV,
                    .out = a.out,
                    .lse = a.lse,
                    .context_lens = a.context_lens,
                    .tokens_per_split = p.tokens_per_split,
                    .context_cap = p.capacity},
                   stream);
}

void quantize_mla_fp8(const bf16* kv, void* kv8, std::int64_t tokens, cudaStream_t stream) {
  if (!kv || !kv8) throw std::invalid_argument("quantize_mla_fp8: kv and kv8 must not be null");
  if (tokens < 0 || tokens > 0x7FFFFFFF)
    throw std::invalid_argument("quantize_mla_fp8: tokens must be in [0, 2^31) (got " + std::to_string(tokens) + ")");
  if ((reinterpret_cast<std::uintptr_t>(kv) | reinterpret_cast<std::uintptr_t>(kv8)) & 15u)
    throw std::invalid_argument("quantize_mla_fp8: kv and kv8 must be 16-byte aligned");
  if (tokens == 0) return;
  quantize_mla_kernel<<<unsigned(tokens), 128, 0, stream>>>(kv, static_cast<unsigned char*>(kv8));
  AIPE_CHECK_LAUNCH();
}

}  // namespace aipe::kernels::attention
