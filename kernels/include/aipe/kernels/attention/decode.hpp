// aipe::kernels::attention::decode: attention of a few new query tokens per sequence over a paged KV cache
// (kernels/src/attention_decode.cu), the call the engine's decode step and the ch18/paged_decode ladder make.
//
//   q    [batch][q_len][heads][d] BF16      q_len 1..4 (token rows may be strided: q_row_stride) (1: plain decode; 2..4: speculative / MTP verification)
//   out  [batch][q_len][heads][d] BF16      lse [batch][heads][q_len] FP32, natural log, optional
//   K, V through the block table (paged.hpp); query head h reads KV head h / (heads / kv_heads)
//
// Query token i of sequence b stands at position p = context_lens[b] - q_len + i (the new tokens are already in
// the cache, as after append_kv) and sees the keys t <= p (causal among the q_len tokens: p + 1 keys), and with
// a sliding window only those with t > p - window. A learned sink logit per head (gpt-oss), when given, joins the
// softmax denominator only. A row that sees no key gets O = 0 and LSE = -inf (LSE = sink with a sink).
//
// Algorithm: split-KV flash decoding. The grid is (kv_head x row block, batch, split): a CTA takes all q_len x
// group query rows of its KV head (GQA packing: 16 rows form the M side of mma.sync m16n8k16 tiles, so K and V
// are read once per KV head, not once per query head) over one split of the context, streaming 64-token tiles
// of K and V through a cp.async multi-stage ring in shared memory. With one split the CTA writes the output;
// otherwise it writes a partial O and LSE to the workspace and a combine kernel merges the splits by their LSEs.
// The split count comes from the SM count, the kernel's occupancy and the longest context (plan_splits).
// FP8 E4M3 caches (per-(page, kv head) scales) are read at half the bytes: fragments are built from 16-byte
// shared-memory reads and converted to BF16 in registers; the K scale multiplies the scores, the V scale the
// probabilities, so no element is dequantized twice.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "aipe/kernels/attention/paged.hpp"

namespace aipe::kernels::attention {

// The stages of the kernel, switchable so that the ch18 ladder can show each one's part on one problem;
// production calls keep the defaults.
struct DecodeSchedule {
  int num_splits = 0;     // 0: plan_splits decides; otherwise this many (clamped to the 64-token tiles there are)
  bool pipelined = true;  // cp.async ring of page tiles; false: one stage, each tile loaded, waited for, then used
  int stages = 0;         // ring slots when pipelined: 0 the default (3 for BF16 at d = 128, else 4), or 2, 3, 4
};

struct DecodeArgs {
  const __nv_bfloat16* q = nullptr;  // [batch][q_len][heads][d], token rows q_row_stride apart
  __nv_bfloat16* out = nullptr;      // [batch][q_len][heads][d]
  float* lse = nullptr;              // [batch][heads][q_len] or null
  PagedKvCache cache{};
  int batch = 0, q_len = 1, heads = 0;
  // An upper bound of context_lens, used only to plan the splits; 0: the table's capacity. Best the batch's
  // longest context; a looser bound (a CUDA graph's fixed capacity) is correct and cheap (a split past its
  // sequence's end exits at once) but splits less. A longer context is still computed correctly (its last split
  // takes the rest).
  int max_context = 0;
  // The sum of context_lens (the scheduler knows it), so that the splits match the batch's real work; 0: unknown,
  // taken as 3/4 of batch x max_context (a ragged batch of lengths in [max/2, max]).
  long long total_context = 0;
  float scale = 0.f;              // 0: 1/sqrt(d)
  const float* sinks = nullptr;   // [heads] learned sink logits, or null
  int window = 0;                 // > 0: keys strictly within `window` positions of the query (itself included)
  void* workspace = nullptr;      // decode_plan(args).workspace_bytes bytes, 16-byte aligned (none for 1 split)
  std::size_t workspace_bytes = 0;
  DecodeSchedule schedule{};
  // Elements from one query token (b, i) to the next (b * q_len + i is the token's row); 0: heads * d (packed).
  // A fused QKV projection's [tokens][(heads + 2 kv_heads) d] output is read in place with its row length here.
  // At least heads * d and a multiple of 8 (16-byte rows). out stays packed.
  std::int64_t q_row_stride = 0;
};

// How the context is cut: `num_splits` ranges of `tokens_per_split` tokens (a multiple of the 64-token tile);
// the last split also takes any tokens beyond num_splits * tokens_per_split.
struct SplitPlan {
  int num_splits = 1;
  int tokens_per_split = 0;
};

struct SplitInputs {
  int sm_count = 0;        // the device's SMs
  int ctas_per_sm = 0;     // CTAs of the kernel that fit on one SM at once
  int ctas_per_split = 0;  // CTAs of one split: batch * kv_heads * row blocks
  int max_context = 0;     // the longest context, tokens
  int tile_tokens = 64;    // the kernel's KV tile
  int requested = 0;       // DecodeSchedule::num_splits
  // The tokens all CTAs of one split-less grid stream (CTAs per sequence x the sum of context lengths);
  // 0: unknown, taken as 3/4 of ctas_per_split x max_context.
  long long work_tokens = 0;
};

// Splits of about a quarter of each resident CTA slot's share of the work (slots = SMs x CTAs per SM): the block
// scheduler then balances a ragged batch to within about half a split per slot, while a split still streams at
// least 8 tiles (512 tokens) past its fixed cost; at most 128 splits, none left empty. Host-only.
SplitPlan plan_splits(const SplitInputs& in);

struct DecodePlan {
  SplitPlan split{};
  int row_blocks = 1;          // ceil(q_len * group / 16)
  std::size_t workspace_bytes = 0;
};

// Checks the arguments (std::invalid_argument naming the problem) and plans the launch on the current device.
DecodePlan decode_plan(const DecodeArgs& args);
// The same checks, without the device (CPU-testable).
void check_decode_args(const DecodeArgs& args);

// Throws std::invalid_argument for a problem the kernel cannot take; launches on `stream` otherwise.
void decode(const DecodeArgs& args, cudaStream_t stream);

// Merging split partials, the second kernel of split-KV decoding (also used by the ladder's split_kv rung).
//   o_partial   [splits][batch][q_len][heads][d] FP32, each split's output normalized by its own sum
//   lse_partial [splits][batch][q_len][heads] FP32 natural-log LSE of the split's scores; -inf: the split saw no
//               key (its O is then not read)
// out = sum_s exp(lse_s - L) O_s with L = log(sum_s exp(lse_s) + exp(sink)).
struct CombineArgs {
  const float* o_partial = nullptr;
  const float* lse_partial = nullptr;
  int splits = 0, batch = 0, q_len = 1, heads = 0, d = 0;
  const float* sinks = nullptr;  // [heads] or null
  __nv_bfloat16* out = nullptr;  // [batch][q_len][heads][d]
  float* lse = nullptr;          // [batch][heads][q_len] or null
  // Optional: with context_lens [batch] (device), sequence b has only its first max(1, ceil(min(ctx, context_cap)
  // / tokens_per_split)) splits (decode's kernel skips the rest without writing them).
  const int* context_lens = nullptr;
  int tokens_per_split = 0;
  int context_cap = 0;
};
void combine_splits(const CombineArgs& args, cudaStream_t stream);

// Writes new tokens' K and V into their cache slots (vLLM's reshape_and_cache):
//   k_new, v_new [tokens][kv_heads][d] BF16 (token rows kv_row_stride apart); slot_mapping [tokens] int64, slot = page * page_size + offset in
//   the page; a negative slot skips the token (padding). Slots at or beyond num_pages * page_size are skipped
//   on the device as well (the host cannot see the device mapping; check it where it is built).
struct AppendKvArgs {
  const __nv_bfloat16* k_new = nullptr;
  const __nv_bfloat16* v_new = nullptr;
  const std::int64_t* slot_mapping = nullptr;
  __nv_bfloat16* k_cache = nullptr;  // [num_pages][page_size][kv_heads][d]
  __nv_bfloat16* v_cache = nullptr;
  int tokens = 0, num_pages = 0, page_size = 0, kv_heads = 0, d = 0;
  // Elements from one token's k_new (and v_new) to the next; 0: kv_heads * d (packed). A fused QKV output is
  // appended in place: k_new = qkv + heads * d, v_new = qkv + (heads + kv_heads) * d, stride = its row length.
  // At least kv_heads * d and a multiple of 8.
  std::int64_t kv_row_stride = 0;
};
void append_kv(const AppendKvArgs& args, cudaStream_t stream);
void check_append_kv_args(const AppendKvArgs& args);

// Quantizes BF16 pages to FP8 E4M3 with one scale per (page, kv head): scale = amax / 448 (1 for an all-zero
// block), e4m3 = round-to-nearest(x / scale), saturating. Every page is quantized (whole pages: a page being
// filled is requantized once it is full). Inputs [num_pages][page_size][kv_heads][d].
struct QuantizePagesArgs {
  const void* k = nullptr;  // BF16
  const void* v = nullptr;
  void* k8 = nullptr;       // FP8 E4M3, same layout
  void* v8 = nullptr;
  float* k_scale = nullptr;  // [num_pages][kv_heads]
  float* v_scale = nullptr;
  int num_pages = 0, page_size = 0, kv_heads = 0, d = 0;
};
void quantize_pages_e4m3(const QuantizePagesArgs& args, cudaStream_t stream);

}  // namespace aipe::kernels::attention
