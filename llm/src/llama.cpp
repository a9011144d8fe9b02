#include "aipe/llm/llama.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "aipe/check.hpp"
#include "aipe/llm/step_inputs.hpp"
#include "aipe/kernels/attention/decode.hpp"
#include "aipe/kernels/attention/forward.hpp"
#include "aipe/kernels/attention/paged.hpp"
#include "aipe/kernels/embedding.hpp"
#include "aipe/kernels/gemm.hpp"
#include "aipe/kernels/norm.hpp"
#include "aipe/kernels/swiglu.hpp"

namespace aipe::llm {
namespace {

namespace k = aipe::kernels;
namespace ka = aipe::kernels::attention;
using bf16 = __nv_bfloat16;

std::string layer_name(int l, const char* rest) { return "model.layers." + std::to_string(l) + "." + rest; }

void need(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument("llama: " + what);
}

}  // namespace

void check_llama_shape(const LlamaShape& s) { check_decoder_shape(s, "llama"); }

LlamaModel::LlamaModel(const LlamaShape& shape, DeviceWeights weights, const KvCacheShape& cache,
                       const ModelLimits& limits, cudaStream_t stream, const ModelInfo& identity)
    : shape_(shape), weights_(std::move(weights)), cache_(cache), limits_(limits) {
  check_llama_shape(shape_);
  need(cache_.num_pages > 0 && cache_.page_size > 0, "the KV cache needs pages");
  if (limits_.max_pages_per_seq == 0)
    limits_.max_pages_per_seq = (shape_.max_positions + cache_.page_size - 1) / cache_.page_size;
  need(limits_.max_tokens > 0 && limits_.max_seqs > 0 && limits_.max_seqs <= limits_.max_tokens,
       "limits: max_tokens >= max_seqs > 0");
  rope_ = k::RopeTable(k::rope_frequencies(shape_.rope), shape_.max_positions, stream);

  embed_ = weights_.get<bf16>("model.embed_tokens.weight");
  final_norm_ = weights_.get<bf16>("model.norm.weight");
  lm_head_ = shape_.tied_embeddings ? embed_ : weights_.get<bf16>("lm_head.weight");
  for (int l = 0; l < shape_.layers; ++l) {
    auto g = [&](const char* n) { return weights_.get<bf16>(layer_name(l, n)); };
    LayerWeights w{};
    w.in_norm = g("input_layernorm.weight");
    w.post_norm = g("post_attention_layernorm.weight");
    w.wqkv = g("self_attn.qkv_proj.weight");
    w.bqkv = shape_.attention_bias ? g("self_attn.qkv_proj.bias") : nullptr;
    w.wo = g("self_attn.o_proj.weight");
    w.wgu = g("mlp.gate_up_proj.weight");
    w.wdown = g("mlp.down_proj.weight");
    lw_.push_back(w);
  }

  const std::size_t layer_elems = std::size_t(cache_.num_pages) * cache_.page_size * shape_.kv_heads * shape_.head_dim;
  k_cache_ = DeviceBuffer<bf16>(layer_elems * shape_.layers);
  v_cache_ = DeviceBuffer<bf16>(layer_elems * shape_.layers);

  const int T = limits_.max_tokens, S = limits_.max_seqs;
  const std::size_t q = std::size_t(shape_.heads) * shape_.head_dim, kv = std::size_t(shape_.kv_heads) * shape_.head_dim;
  in_ = std::make_unique<StepInputs>(StepGeometry{.max_tokens = T, .max_seqs = S,
                                                 .max_pages_per_seq = limits_.max_pages_per_seq,
                                                 .page_size = cache_.page_size, .num_pages = cache_.num_pages,
                                                 .max_positions = shape_.max_positions},
                                    stream);
  x_ = DeviceBuffer<bf16>(std::size_t(T) * shape_.hidden);
  h_ = DeviceBuffer<bf16>(std::size_t(T) * shape_.hidden);
  delta_ = DeviceBuffer<bf16>(std::size_t(T) * shape_.hidden);
  qkv_ = DeviceBuffer<bf16>(T * (q + 2 * kv));
  attn_ = DeviceBuffer<bf16>(T * (q + 2 * kv));  // forward() writes O with Q's row pitch (qkv_'s)
  gate_up_ = DeviceBuffer<bf16>(std::size_t(T) * 2 * shape_.intermediate);
  act_ = DeviceBuffer<bf16>(std::size_t(T) * shape_.intermediate);
  last_ = DeviceBuffer<bf16>(std::size_t(S) * shape_.hidden);
  logits_ = DeviceBuffer<bf16>(std::size_t(S) * shape_.vocab);
  attention_ = std::make_unique<AttentionStep>(
      AttentionGeometry{.heads = shape_.heads, .kv_heads = shape_.kv_heads, .head_dim = shape_.head_dim,
                        .num_pages = cache_.num_pages, .page_size = cache_.page_size, .max_tokens = T,
                        .max_seqs = S, .max_pages_per_seq = limits_.max_pages_per_seq},
      in_->block_table(), in_->context_lens(), in_->slots());

  info_.name = identity.name;
  info_.family = identity.family;
  info_.synthetic = identity.synthetic;
  info_.vocab = shape_.vocab;
  info_.max_positions = shape_.max_positions;
  info_.page_size = cache_.page_size;
  info_.num_pages = cache_.num_pages;
  info_.kv_bytes_per_token = std::size_t(2) * shape_.layers * shape_.kv_heads * shape_.head_dim * sizeof(bf16);
  info_.weight_bytes = weights_.bytes();
  // A decode step reads every weight once, except an untied embedding table, of which it reads one row a token.
  const std::size_t embed_bytes = std::size_t(shape_.vocab) * shape_.hidden * sizeof(bf16);
  info_.weight_bytes_per_token = info_.weight_bytes - (shape_.tied_embeddings ? 0 : embed_bytes);
  const double per_layer = double(shape_.hidden) * double(q + 2 * kv) + double(q) * shape_.hidden +
                           3.0 * double(shape_.hidden) * shape_.intermediate;
  info_.flops_per_token = 2.0 * (shape_.layers * per_layer + double(shape_.vocab) * shape_.hidden);
}

bool LlamaModel::take_error(cudaStream_t stream) { return in_->take_error(stream); }

void LlamaModel::upload(const StepBatch& b, cudaStream_t stream) {
  in_->upload(b, stream);
  attention_->plan(b, stream);
}

void LlamaModel::step(const StepBatch& b, cudaStream_t stream) {
  upload(b, stream);
  run(b.num_tokens(), b.seqs(), stream);
}

void LlamaModel::run_decode(int seqs, cudaStream_t stream) {
  attention_->plan_decode(seqs);
  run(seqs, seqs, stream);
}

void LlamaModel::run(int T, int S, cudaStream_t stream) {
  const int H = shape_.hidden;
  k::embedding(in_->tokens(), embed_, x_.get(), in_->error(), T, shape_.vocab, H, stream);
  k::rmsnorm(x_.get(), lw_[0].in_norm, h_.get(), T, H, shape_.rms_eps, stream);
  for (int l = 0; l < shape_.layers; ++l) layer(l, T, stream);
  // The last layer's MLP output joins the residual stream and the final norm in one pass (layer() leaves it in
  // delta_); then the last token of each sequence goes through the LM head.
  k::fused_add_rmsnorm(x_.get(), delta_.get(), final_norm_, h_.get(), T, H, shape_.rms_eps, stream);
  k::embedding(in_->last(), h_.get(), last_.get(), in_->error(), S, T, H, stream);
  k::gemm(k::matrix<const bf16>(last_.get(), S, H), k::matrix(lm_head_, shape_.vocab, H),
          k::matrix(logits_.get(), S, shape_.vocab), k::Epilogue::none(), stream);
}

void LlamaModel::layer(int l, int T, cudaStream_t stream) {
  const LayerWeights& w = lw_[l];
  const int H = shape_.hidden, d = shape_.head_dim, nq = shape_.heads * d, nkv = shape_.kv_heads * d;
  const int I = shape_.intermediate;
  auto proj = [&](const bf16* in, int in_cols, const bf16* wt, const bf16* bias, int out_cols, bf16* out) {
    k::gemm(k::matrix<const bf16>(in, T, in_cols), k::matrix(wt, out_cols, in_cols), k::matrix(out, T, out_cols),
            bias ? k::Epilogue::bias(bias) : k::Epilogue::none(), stream);
  };
  // Q, K and V from one GEMM over the fused weight: each token's row of qkv_ holds q (heads x d), then k, then v
  // (kv_heads x d each); RoPE, the cache append and both attention kernels read them in place by row stride.
  const int nqkv = nq + 2 * nkv;
  proj(h_.get(), H, w.wqkv, w.bqkv, nqkv, qkv_.get());
  bf16* const qp = qkv_.get();
  bf16* const kp = qkv_.get() + nq;
  bf16* const vp = qkv_.get() + nq + nkv;
  k::RopeArgs ra{};
  ra.q = qp;
  ra.q_stride = nqkv;
  ra.heads = shape_.heads;
  ra.k = kp;
  ra.k_stride = nqkv;
  ra.kv_heads = shape_.kv_heads;
  ra.positions = in_->positions();
  ra.tokens = T;
  ra.error = in_->error();
  k::apply_rope(ra, rope_, stream);

  const std::size_t layer_elems = std::size_t(cache_.num_pages) * cache_.page_size * nkv;
  attention_->run({.q = qp, .k = kp, .v = vp, .q_row = nqkv, .kv_row = nqkv, .k_cache = k_cache_.get() + l * layer_elems,
                   .v_cache = v_cache_.get() + l * layer_elems, .out = attn_.get()},
                  stream);

  k::gemm(k::matrix<const bf16>(attn_.get(), T, nq, attention_->out_row_stride(nqkv)), k::matrix(w.wo, H, nq),
          k::matrix(delta_.get(), T, H),
          k::Epilogue::none(), stream);
  k::fused_add_rmsnorm(x_.get(), delta_.get(), w.post_norm, h_.get(), T, H, shape_.rms_eps, stream);
  proj(h_.get(), H, w.wgu, nullptr, 2 * I, gate_up_.get());
  k::swiglu(gate_up_.get(), act_.get(), T, I, stream);
  k::gemm(k::matrix<const bf16>(act_.get(), T, I), k::matrix(w.wdown, H, I), k::matrix(delta_.get(), T, H),
          k::Epilogue::none(), stream);
  if (l + 1 < shape_.layers)
    k::fused_add_rmsnorm(x_.get(), delta_.get(), lw_[l + 1].in_norm, h_.get(), T, H, shape_.rms_eps, stream);
}

}  // namespace aipe::llm
