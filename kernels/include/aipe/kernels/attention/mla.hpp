// aipe::kernels::attention::mla_decode: DeepSeek-V2/V3 multi-head latent attention in its absorbed decode form
// (FlashMLA's problem), over a paged latent cache (kernels/src/attention_mla.cu).
//
// Absorbed MLA: W_UK is folded into the query and W_UV into the output projection, so every query head attends
// over one shared latent KV "head" of d = 576 per token (512 latent values, then 64 RoPE values), and V is the
// first 512 of those 576 values:
//   q    [batch][q_len][heads][576] BF16      q_len 1 or 2 (2: multi-token-prediction verification)
//   out  [batch][q_len][heads][512] BF16      O[h] = softmax(scale q_h . K^T) V,  V = K[:, :512]
//   lse  [batch][heads][q_len] FP32           natural log, optional
// Query token i of sequence b stands at position p = context_lens[b] - q_len + i (the new tokens are already in
// the cache) and sees the keys t <= p: causal between the two new tokens, aligned bottom-right. A row that sees
// no key (an empty sequence) gets O = 0 and LSE = -inf.
//
// The cache: pages of 64 tokens, a block table [batch][max_pages_per_seq] (int32 page indices, a sequence's
// pages in any order) and context_lens [batch]. Two formats of a page:
//   bf16           [64][576] BF16, 1,152 bytes a token
//   fp8_flashmla   [64][656] bytes, FlashMLA's FP8 layout, 656 bytes a token: bytes [0, 512) the 512 latent
//                  values as E4M3, [512, 528) four FP32 scales (scale j for latent values [128 j, 128 j + 128):
//                  value = e4m3 x scale), [528, 656) the 64 RoPE values as BF16, not quantized
//
// Algorithm (attention_mla.cu): every query head of a sequence shares the one KV head, so a CTA takes a tile of
// 64 query rows (heads x q_len) and streams the sequence's 64-token K tiles through shared memory once for all
// of them: S = Q K^T over 576 and O += P V over 512 on tensor cores (mma.sync m16n8k16). Split-KV (flash
// decoding) cuts the context when batch x row tiles would not fill the SMs; the splits are merged by their LSEs
// (decode.hpp's combine_splits). FP8 pages are dequantized to BF16 in shared memory with their per-128 scales.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "aipe/kernels/attention/decode.hpp"

namespace aipe::kernels::attention {

inline constexpr int kMlaPageTokens = 64;     // tokens per page
inline constexpr int kMlaDimQk = 576;         // latent 512 + RoPE 64
inline constexpr int kMlaDimV = 512;          // V = the latent part
inline constexpr int kMlaDimRope = 64;
inline constexpr int kMlaFp8TokenBytes = 656;  // 512 E4M3 + 4 FP32 scales + 64 BF16
inline constexpr int kMlaFp8ScaleGroup = 128;  // latent values per FP32 scale

enum class MlaKvFormat : std::uint8_t { bf16, fp8_flashmla };

// The stages of the kernel, switchable so that the ch18/mla_decode ladder can show each one's part.
struct MlaSchedule {
  int num_splits = 0;     // 0: plan_splits decides; otherwise this many (clamped to the 64-token tiles there are)
  // BF16: two page tiles, the next landing under this one's math; false: each tile loaded, waited for, then
  // used. The FP8 format always double-buffers its raw pages (they are dequantized into one BF16 tile).
  bool pipelined = true;
};

struct MlaDecodeArgs {
  const __nv_bfloat16* q = nullptr;  // [batch][q_len][heads][576]
  __nv_bfloat16* out = nullptr;      // [batch][q_len][heads][512]
  float* lse = nullptr;              // [batch][heads][q_len] or null
  const void* kv = nullptr;          // [num_pages][64][576] BF16 or [num_pages][64][656] bytes (format)
  MlaKvFormat format = MlaKvFormat::bf16;
  int num_pages = 0;
  const int* block_table = nullptr;   // [batch][max_pages_per_seq], device
  int max_pages_per_seq = 0;
  const int* context_lens = nullptr;  // [batch], device; each in [0, max_pages_per_seq * 64]
  int batch = 0, q_len = 1, heads = 0;
  int max_context = 0;           // bound of context_lens, to plan the splits; 0: the table's capacity
  long long total_context = 0;   // sum of context_lens, to plan the splits; 0: unknown
  float scale = 0.f;             // 0: 1/sqrt(576)
  void* workspace = nullptr;     // mla_decode_plan(args).workspace_bytes, 16-byte aligned (none for 1 split)
  std::size_t workspace_bytes = 0;
  MlaSchedule schedule{};
};

struct MlaDecodePlan {
  SplitPlan split{};
  int row_tiles = 1;  // ceil(q_len * heads / 64)
  std::size_t workspace_bytes = 0;
};

// The argument checks (std::invalid_argument naming the argument), without the device.
void check_mla_decode_args(const MlaDecodeArgs& args);
// The plan for a device of `sm_count` SMs (one CTA per SM: the kernel's tiles fill shared memory). Host-only.
// A requested split count goes through plan_splits. Otherwise the count minimizes a model of the time in
// page tiles per SM: max(all CTAs' tiles / SMs, the longest CTA's tiles), where a CTA also costs one tile
// for its Q and, once split, the partial O it writes and the combine reads back (64 rows x 512 x 4 B, twice:
// 3.6 BF16 tiles, 6.2 FP8 tiles). With 128 heads that traffic is 15% of a 3,000-token sequence's cache per
// split, which is why MLA splits far less than GQA decode (plan_splits would cut batch 64 x 4096 in 6).
MlaDecodePlan plan_mla_decode(const MlaDecodeArgs& args, int sm_count);
// The checks and the plan on the current device.
MlaDecodePlan mla_decode_plan(const MlaDecodeArgs& args);
// Launches on `stream`; std::invalid_argument for arguments the kernel cannot take or a short workspace.
void mla_decode(const MlaDecodeArgs& args, cudaStream_t stream);

// Packs BF16 latent rows [tokens][576] into FlashMLA's FP8 rows [tokens][656]: per group of 128 latent values
// scale = amax / 448 (1 for an all-zero group), e4m3 = round-to-nearest(x / scale) saturating; RoPE copied.
// Both pointers 16-byte aligned.
void quantize_mla_fp8(const __nv_bfloat16* kv, void* kv8, std::int64_t tokens, cudaStream_t stream);

// ---- host-side helpers (the CPU reference; CPU-testable) ----

// One E4M3 byte as a float (bias 7, subnormals, 0x7F / 0xFF NaN).
float e4m3_to_float(std::uint8_t bits);
// One FP8 token row (656 bytes) back to 576 floats: latent e4m3 x its group's scale, RoPE from BF16.
void dequantize_mla_fp8_row(const std::uint8_t* row, float* out576);

// The float32 reference on host copies: q [batch][q_len][heads][576] and the cache as floats
// [num_pages][64][576] (an FP8 cache dequantized by dequantize_mla_fp8_row), block table, context lengths;
// out [batch][q_len][heads][512], lse [batch][heads][q_len] (natural log). Two exact passes per row.
struct MlaReferenceArgs {
  std::span<const float> q;
  std::span<const float> kv;
  std::span<const int> block_table;
  std::span<const int> context_lens;
  int max_pages_per_seq = 0, q_len = 1, heads = 0;
  float scale = 0.f;  // 0: 1/sqrt(576)
};
void mla_reference(const MlaReferenceArgs& args, std::vector<float>& out, std::vector<float>& lse);

}  // namespace aipe::kernels::attention
