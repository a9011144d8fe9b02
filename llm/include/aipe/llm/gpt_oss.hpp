#pragma once
// The gpt-oss model family (openai/gpt-oss-20b, gpt-oss-120b) as a sequence of kernel calls over buffers allocated
// once, as transformers' modeling_gpt_oss.py computes it. Per layer:
//   h = rmsnorm(x)
//   q, k, v = h Wqkv^T + bqkv                 rope(q, k) (YaRN: cos and sin carry its attention factor)
//   attn = AttentionStep (attention_step.hpp): k, v appended to the pages, attention causal; sliding layers see
//                                             the last 128 positions (the query's own included); a learned sink
//                                             logit per head joins each softmax denominator
//   x += attn Wo^T + bo;  h = rmsnorm(x)
//   logits_r = h Wr^T + br                    ids, w = top-4 of the experts, softmax over the 4 chosen logits
//   gate_up = h[tokens of e] W_gu,e^T + b_gu,e     every expert in one grouped GEMM, MXFP4 weights
//   a = clamped_swiglu(gate_up)               interleaved columns: gate 2i, up 2i + 1
//   y = a W_down,e^T + b_down,e               one grouped GEMM;  x += sum_j w_j y_j  (combine)
// then the last token of each sequence: logits = rmsnorm(x) Wlm^T. Every GEMM, attention, routing and small
// kernel is from kernels/; none lives here.
//
// A step takes any mix of decodes and prefill chunks (model.hpp); a decode-only step runs nothing on the host
// inside run_decode (CUDA-graph capturable).
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/kernels/rope.hpp"
#include "aipe/kernels/swiglu.hpp"
#include "aipe/llm/attention_step.hpp"
#include "aipe/llm/config.hpp"
#include "aipe/llm/loader.hpp"
#include "aipe/llm/decoder_shape.hpp"
#include "aipe/llm/model.hpp"
#include "aipe/llm/step_inputs.hpp"
#include "aipe/llm/model_files.hpp"
#include "aipe/llm/weights.hpp"

namespace aipe::llm {

// The shapes a gpt-oss model needs (config.json after validation).
struct GptOssShape : DecoderShape {
  int experts = 0, top_k = 0;
  int sliding_window = 0;
  std::vector<bool> sliding;  // [layers]: true for a sliding-window layer
  kernels::ClampedSwiglu act{};
};

// From a config (std::invalid_argument naming the field for a family other than gpt_oss, a dtype other than BF16,
// or a shape the kernels cannot take). CPU-testable, as is check_gpt_oss_shape.
GptOssShape gpt_oss_shape(const ModelConfig& c);
void check_gpt_oss_shape(const GptOssShape& s);

// What one batch-1 decode step reads of the weights: per layer the attention (q, k, v, o with biases, sinks, two
// norms), the router and top_k experts (MXFP4 blocks and scales, BF16 biases); the final norm and the unembedding.
std::size_t gpt_oss_active_weight_bytes(const GptOssShape& s);
// 2 x the weights one token multiplies by (attention projections, router, top_k experts, unembedding).
double gpt_oss_active_flops(const GptOssShape& s);

struct GptOssCache {
  int num_pages = 0, page_size = 16;
};

class GptOssModel final : public Model {
 public:
  // `weights` holds weight_specs(config, BF16) (q, k and v fused into self_attn.qkv_proj); `info` the name and
  // whether the weights are synthetic (the rest is filled in here).
  GptOssModel(const GptOssShape& shape, DeviceWeights weights, const GptOssCache& cache, const ModelLimits& limits,
              ModelInfo info, cudaStream_t stream);
  GptOssModel(const GptOssModel&) = delete;
  GptOssModel& operator=(const GptOssModel&) = delete;

  const ModelInfo& info() const override { return info_; }
  const ModelLimits& limits() const override { return limits_; }
  void step(const StepBatch& batch, cudaStream_t stream) override;
  void upload(const StepBatch& batch, cudaStream_t stream) override;
  void run_decode(int seqs, cudaStream_t stream) override;
  const __nv_bfloat16* logits() const override { return logits_.get(); }
  bool take_error(cudaStream_t stream) override;

  const GptOssShape& shape() const { return shape_; }
  const DeviceWeights& weights() const { return weights_; }

 private:
  void run(int tokens, int seqs, cudaStream_t stream);
  void attention(int l, int tokens, cudaStream_t stream);
  void moe(int l, int tokens, cudaStream_t stream);

  GptOssShape shape_;
  DeviceWeights weights_;
  GptOssCache cache_;
  ModelLimits limits_;
  ModelInfo info_;
  kernels::RopeTable rope_;
  struct LayerWeights {
    const __nv_bfloat16 *in_norm, *post_norm, *wqkv, *bqkv, *wo, *bo, *router_w, *router_b;
    const std::uint8_t *gu_blocks, *gu_scales, *down_blocks, *down_scales;
    const __nv_bfloat16 *gu_bias, *down_bias;
    const float* sinks;  // [heads] FP32 (the attention kernels' type), converted once from the checkpoint
  };
  std::vector<LayerWeights> lw_;
  const __nv_bfloat16 *embed_ = nullptr, *final_norm_ = nullptr, *lm_head_ = nullptr;
  DeviceBuffer<float> sinks_;                      // [layers][heads]
  DeviceBuffer<__nv_bfloat16> k_cache_, v_cache_;  // [layers][pages][page][kvh][d]
  std::unique_ptr<StepInputs> in_;  // the step's inputs on the device (what a captured graph reads)
  // Activations: token rows, then the routed (token, expert) rows of the MoE.
  DeviceBuffer<__nv_bfloat16> x_, h_, qkv_, attn_, delta_, router_logits_, gate_up_, act_, yg_, last_, logits_;
  DeviceBuffer<int> ids_, offsets_, row_token_, pair_row_;
  DeviceBuffer<float> route_weights_;
  DeviceBuffer<unsigned char> routing_ws_;  // build_routing's
  std::unique_ptr<AttentionStep> attention_;  // planned once per step, run per layer
};

// The model of open_model_files(name) (load_model's gpt_oss case): the checkpoint's tensors (each checked against
// the config: dtype, shape; the MXFP4 blocks and scales U8) or synthetic weights of the exact shapes and formats
// generated on the GPU; the KV cache takes what the memory budget leaves. `progress`, when given, receives the
// checkpoint load's final progress.
std::unique_ptr<GptOssModel> load_gpt_oss(const ModelFiles& files, const LoadOptions& opt, cudaStream_t stream,
                                          LoadProgress* progress = nullptr);

}  // namespace aipe::llm
