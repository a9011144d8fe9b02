#pragma once
// The Llama model family (Llama 3.x; Qwen-style QKV bias optional) as a plain sequence of kernel calls over
// buffers allocated once: every GEMM is aipe::kernels::gemm, prefill attention aipe::kernels::attention::forward,
// decode attention aipe::kernels::attention::decode over the paged KV cache, and the small kernels (RMSNorm,
// RoPE, SwiGLU, embedding) come from kernels/ too. No kernel lives here.
//
// One step runs a batch of sequences that are all prefilling (each its whole prompt, from position 0) or all
// decoding (one new token each); per layer:
//   h = rmsnorm(x)                         (fused with the previous block's residual add)
//   q, k, v = h Wqkv^T (+b)                rope(q, k) at the tokens' positions
//   append k, v to the sequence's pages    attn = attention(q, paged K/V)
//   x += attn Wo^T;  h = rmsnorm(x)        gate_up = h Wgu^T (gate and up fused: one GEMM reads both)
//   x += swiglu(gate_up) Wdown^T
// then the last token of each sequence: logits = rmsnorm(x) Wlm^T (the embedding when the weights are tied).
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/kernels/rope.hpp"
#include "aipe/llm/weights.hpp"

namespace aipe::llm {

// The shapes a Llama model needs (what config.json says, after validation).
struct LlamaShape {
  int hidden = 0, intermediate = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0, vocab = 0;
  float rms_eps = 1e-5f;
  kernels::RopeConfig rope{};
  int max_positions = 0;
  bool tied_embeddings = false;
  bool attention_bias = false;  // q, k and v projections carry a bias (Qwen2; Llama's attention_bias)
};

// The weights the model reads are llm/weight_specs.hpp's fused form: model.layers.N.self_attn.qkv_proj.weight
// ([(heads + 2 kv_heads) head_dim][hidden], q then k then v) and model.layers.N.mlp.gate_up_proj.weight
// ([2 intermediate][hidden], gate then up), so one GEMM reads each.
// Throws std::invalid_argument naming the field for shapes the kernels cannot take (head_dim not 64/128,
// heads % kv_heads, hidden % 8 for TMA, ...). CPU-testable.
void check_llama_shape(const LlamaShape& s);

// The paged KV cache of every layer: [layers][num_pages][page_size][kv_heads][head_dim] BF16 for K and for V.
struct KvCacheShape {
  int num_pages = 0, page_size = 16;
};

// A step as the host describes it (the scheduler builds it). Tokens of the sequences back to back.
struct StepBatch {
  bool prefill = false;              // true: every sequence prefills q_lens[i] = context_lens[i] tokens from 0
  std::vector<int> tokens;           // [T]
  std::vector<int> positions;        // [T]
  std::vector<std::int64_t> slots;   // [T] cache slot of each token: page * page_size + offset
  std::vector<int> q_lens;           // [S] new tokens per sequence (1 when decoding)
  std::vector<int> context_lens;     // [S] tokens in the cache after this step
  std::vector<int> block_table;      // [S][max_pages_per_seq]
  int seqs() const { return int(q_lens.size()); }
};

struct LlamaLimits {
  int max_tokens = 2048;         // tokens of one step (prefill chunk or decode batch)
  int max_seqs = 256;            // sequences of one step
  int max_pages_per_seq = 0;     // block-table width; 0: max_positions / page_size
};

class LlamaModel {
 public:
  LlamaModel(const LlamaShape& shape, DeviceWeights weights, const KvCacheShape& cache, const LlamaLimits& limits,
             cudaStream_t stream);
  LlamaModel(const LlamaModel&) = delete;
  LlamaModel& operator=(const LlamaModel&) = delete;

  // Checks the batch against the limits (std::invalid_argument naming the problem), copies its arrays to the
  // device and runs the step on `stream`; logits() then holds [seqs][vocab] BF16 (asynchronously).
  void step(const StepBatch& batch, cudaStream_t stream);
  // The device part of a decode step alone, over inputs already on the device (upload()): what a CUDA graph
  // captures, for `seqs` sequences of one token each.
  void upload(const StepBatch& batch, cudaStream_t stream);
  void run_decode(int seqs, cudaStream_t stream);

  const __nv_bfloat16* logits() const { return logits_.get(); }
  const LlamaShape& shape() const { return shape_; }
  const KvCacheShape& cache_shape() const { return cache_; }
  const LlamaLimits& limits() const { return limits_; }
  const DeviceWeights& weights() const { return weights_; }
  std::size_t kv_bytes_per_token() const;  // K and V of every layer
  // Set by the embedding and RoPE kernels on an out-of-range token id or position; reads and clears it.
  bool take_error(cudaStream_t stream);

 private:
  void run(bool prefill, int tokens, int seqs, int max_context, cudaStream_t stream);
  void layer(int l, bool prefill, int tokens, int seqs, int max_context, cudaStream_t stream);

  LlamaShape shape_;
  DeviceWeights weights_;
  KvCacheShape cache_;
  LlamaLimits limits_;
  kernels::RopeTable rope_;
  struct LayerWeights {
    const __nv_bfloat16 *in_norm, *post_norm, *wqkv, *bqkv, *wo, *wgu, *wdown;
  };
  std::vector<LayerWeights> lw_;
  const __nv_bfloat16 *embed_ = nullptr, *final_norm_ = nullptr, *lm_head_ = nullptr;
  DeviceBuffer<__nv_bfloat16> k_cache_, v_cache_;  // [layers][pages][page][kvh][d]
  // Step inputs on the device, at fixed addresses (what a captured graph reads).
  DeviceBuffer<int> d_tokens_, d_positions_, d_q_lens_, d_context_lens_, d_block_table_, d_last_, d_error_;
  DeviceBuffer<std::int64_t> d_slots_;
  PinnedBuffer<unsigned char> h_stage_;
  // Activations.
  DeviceBuffer<__nv_bfloat16> x_, h_, qkv_, attn_, gate_up_, act_, delta_, last_, logits_;
  DeviceBuffer<unsigned char> workspace_;  // decode attention's split partials
  std::vector<int> h_q_lens_, h_context_lens_;  // of the last upload (prefill walks sequences on the host)
};

}  // namespace aipe::llm
