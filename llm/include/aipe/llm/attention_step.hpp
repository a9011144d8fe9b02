#pragma once
// Attention of one layer for a mixed step (model.hpp's StepBatch: any mix of decodes and prefill chunks), written
// once for every model family. Per layer:
//   1. append this step's K and V to the paged cache (attention::append_kv, in place from the QKV rows);
//   2. the leading run of sequences with one new token (the scheduler puts decodes first): paged decode
//      attention (attention::decode) straight from the pages;
//   3. the other sequences: attention::forward over a variable-length packed batch (cu_seqlens), each chunk's
//      q_len queries against its context_len keys, causal aligned bottom-right. When every one of them starts at
//      position 0, the keys are this step's K and V rows themselves; when a chunk continues over cached tokens
//      (a prefix-cache hit, an earlier chunk), the K and V of all of them are first gathered out of the pages
//      (attention::gather_kv) into a contiguous buffer.
// What this needs per step (the split, cu_seqlens, the bounds) is planned once per step (plan()), not per layer.
// The masks (causal, sliding window) and learned sinks are per layer, so gpt-oss's alternating layers share one
// plan.
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/kernels/attention/forward.hpp"
#include "aipe/llm/model.hpp"

namespace aipe::llm {

// The host half of a step's plan, a pure function of the batch (CPU-tested).
struct AttentionStepPlan {
  int seqs = 0, tokens = 0;
  int decodes = 0;                // sequences [0, decodes) have q_len 1 and go to the decode kernel
  long long decode_context = 0;   // sum of their context lengths
  int decode_max_context = 0;
  // The rest, rebased: sequence decodes + i is forward()'s sequence i, its queries the rows from token
  // `decodes` on (decodes have one token each).
  std::vector<int> cu_q, cu_kv;   // [seqs - decodes + 1]: q_lens and context_lens, cumulative
  int max_q = 0, max_kv = 0;
  bool from_start = true;         // every such sequence starts at position 0: its keys are its own rows
  int prefills() const { return seqs - decodes; }
  bool decode_only() const { return decodes == seqs; }
};
// Expects a batch the model checked (lengths consistent); std::invalid_argument on an empty one.
AttentionStepPlan plan_attention_step(const StepBatch& b);

struct AttentionGeometry {
  int heads = 0, kv_heads = 0, head_dim = 0;
  int num_pages = 0, page_size = 0;
  int max_tokens = 0, max_seqs = 0, max_pages_per_seq = 0;
};

// One layer's operands. q, k and v are this step's token rows ([T] rows of heads x d, kv_heads x d), q_row and
// kv_row elements apart (a fused QKV projection's output read in place). out receives [T] rows of heads x d,
// out_row_stride(q_row) elements apart.
struct AttentionLayer {
  const __nv_bfloat16* q = nullptr;
  const __nv_bfloat16* k = nullptr;
  const __nv_bfloat16* v = nullptr;
  std::int64_t q_row = 0, kv_row = 0;
  __nv_bfloat16* k_cache = nullptr;  // this layer's pages [num_pages][page_size][kv_heads][d]
  __nv_bfloat16* v_cache = nullptr;
  __nv_bfloat16* out = nullptr;
  float scale = 0.f;                 // 0: 1/sqrt(d)
  kernels::attention::MaskKind mask = kernels::attention::MaskKind::causal;  // causal or sliding_window
  int window = 0;                    // sliding_window: keys within this many positions of the query
  const float* sinks = nullptr;      // [heads] learned sink logits, or null
};

class AttentionStep {
 public:
  // The step's device arrays the model owns, at fixed addresses: block_table [max_seqs][max_pages_per_seq],
  // context_lens [max_seqs], slots [max_tokens] (int64, one per token).
  AttentionStep(const AttentionGeometry& g, const int* d_block_table, const int* d_context_lens,
                const std::int64_t* d_slots);
  AttentionStep(const AttentionStep&) = delete;
  AttentionStep& operator=(const AttentionStep&) = delete;

  // Once per step, after the model uploaded the batch: plans it and copies cu_seqlens to the device.
  void plan(const StepBatch& b, cudaStream_t stream);
  // A decode-only step of `seqs` sequences whose lengths are on the device only (a CUDA graph's step): the
  // decode kernel plans its splits for the table's capacity. No device work.
  void plan_decode(int seqs);
  // Row stride of the layer output: packed (heads x d) in a decode-only step, q_row otherwise (forward() writes
  // O with Q's strides).
  std::int64_t out_row_stride(std::int64_t q_row) const;
  void run(const AttentionLayer& layer, cudaStream_t stream);
  const AttentionStepPlan& current() const { return plan_; }

 private:
  void ensure_workspace(std::size_t bytes, cudaStream_t stream);
  AttentionGeometry g_;
  const int* d_block_table_;
  const int* d_context_lens_;
  const std::int64_t* d_slots_;
  AttentionStepPlan plan_;
  bool graph_decode_ = false;
  DeviceBuffer<int> d_cu_q_, d_cu_kv_;
  PinnedBuffer<int> h_cu_;
  DeviceBuffer<__nv_bfloat16> decode_out_;          // [max_seqs][heads][d]: decodes of a mixed step
  DeviceBuffer<__nv_bfloat16> k_gathered_, v_gathered_;  // [sum of context_lens][kv_heads][d], grown on demand
  DeviceBuffer<unsigned char> workspace_;           // split-KV decode partials
  std::vector<DeviceBuffer<unsigned char>> retired_;  // earlier workspaces, which captured graphs may still use
};

}  // namespace aipe::llm
