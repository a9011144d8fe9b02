#pragma once
// The Llama model family (Llama 3.x; Qwen-style QKV bias optional) as a plain sequence of kernel calls over
// buffers allocated once: every GEMM is aipe::kernels::gemm, prefill attention aipe::kernels::attention::forward,
// decode attention aipe::kernels::attention::decode over the paged KV cache, and the small kernels (RMSNorm,
// RoPE, SwiGLU, embedding) come from kernels/ too. No kernel lives here.
//
// One step runs any mix of decodes and prefill chunks (model.hpp's StepBatch); per layer:
//   h = rmsnorm(x)                         (fused with the previous block's residual add)
//   q, k, v = h Wqkv^T (+b)                rope(q, k) at the tokens' positions
//   attn = AttentionStep (attention_step.hpp): append k, v to the pages, paged decode for the decodes,
//          varlen forward for the chunks (over K/V gathered from the pages where a chunk continues)
//   x += attn Wo^T;  h = rmsnorm(x)        gate_up = h Wgu^T (gate and up fused: one GEMM reads both)
//   x += swiglu(gate_up) Wdown^T
// then the last token of each sequence: logits = rmsnorm(x) Wlm^T (the embedding when the weights are tied).
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/kernels/rope.hpp"
#include "aipe/llm/attention_step.hpp"
#include "aipe/llm/decoder_shape.hpp"
#include "aipe/llm/model.hpp"
#include "aipe/llm/step_inputs.hpp"
#include "aipe/llm/weights.hpp"

namespace aipe::llm {

// The shapes a Llama model needs (what config.json says, after validation).
struct LlamaShape : DecoderShape {
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

class LlamaModel final : public Model {
 public:
  // `identity` gives info()'s name, family and synthetic; the rest of info() comes from the shape and cache.
  LlamaModel(const LlamaShape& shape, DeviceWeights weights, const KvCacheShape& cache, const ModelLimits& limits,
             cudaStream_t stream, const ModelInfo& identity = {.name = "llama", .family = "llama"});
  LlamaModel(const LlamaModel&) = delete;
  LlamaModel& operator=(const LlamaModel&) = delete;

  const ModelInfo& info() const override { return info_; }
  const ModelLimits& limits() const override { return limits_; }
  void step(const StepBatch& batch, cudaStream_t stream) override;
  void upload(const StepBatch& batch, cudaStream_t stream) override;
  void run_decode(int seqs, cudaStream_t stream) override;
  const __nv_bfloat16* logits() const override { return logits_.get(); }
  bool take_error(cudaStream_t stream) override;

  const LlamaShape& shape() const { return shape_; }
  const KvCacheShape& cache_shape() const { return cache_; }
  const DeviceWeights& weights() const { return weights_; }

 private:
  void run(int tokens, int seqs, cudaStream_t stream);
  void layer(int l, int tokens, cudaStream_t stream);

  LlamaShape shape_;
  DeviceWeights weights_;
  KvCacheShape cache_;
  ModelLimits limits_;
  ModelInfo info_;
  kernels::RopeTable rope_;
  struct LayerWeights {
    const __nv_bfloat16 *in_norm, *post_norm, *wqkv, *bqkv, *wo, *wgu, *wdown;
  };
  std::vector<LayerWeights> lw_;
  const __nv_bfloat16 *embed_ = nullptr, *final_norm_ = nullptr, *lm_head_ = nullptr;
  DeviceBuffer<__nv_bfloat16> k_cache_, v_cache_;  // [layers][pages][page][kvh][d]
  std::unique_ptr<StepInputs> in_;  // the step's inputs on the device (what a captured graph reads)
  // Activations.
  DeviceBuffer<__nv_bfloat16> x_, h_, qkv_, attn_, gate_up_, act_, delta_, last_, logits_;
  std::unique_ptr<AttentionStep> attention_;  // planned once per step, run per layer
};

}  // namespace aipe::llm
