#include "aipe/llm/llama.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "aipe/check.hpp"
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

void check_llama_shape(const LlamaShape& s) {
  need(s.hidden > 0 && s.intermediate > 0 && s.layers > 0 && s.heads > 0 && s.kv_heads > 0 && s.vocab > 0,
       "hidden, intermediate, layers, heads, kv_heads and vocab must be positive");
  need(s.heads % s.kv_heads == 0, "heads (" + std::to_string(s.heads) + ") must be a multiple of kv_heads (" +
                                      std::to_string(s.kv_heads) + ")");
  need(s.head_dim == 64 || s.head_dim == 128,
       "head_dim " + std::to_string(s.head_dim) + " (the attention kernels take 64 and 128)");
  // TMA reads every GEMM operand row: rows must be a multiple of 16 bytes (8 BF16).
  need(s.hidden % 8 == 0, "hidden " + std::to_string(s.hidden) + " must be a multiple of 8");
  need(s.intermediate % 8 == 0, "intermediate " + std::to_string(s.intermediate) + " must be a multiple of 8");
  need(s.max_positions > 0, "max_positions must be positive");
  need(s.rms_eps >= 0.f, "rms_norm_eps must be >= 0");
  need(s.rope.dim == s.head_dim, "the rotary dimension must be head_dim (partial rotary is not supported)");
}

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
  d_tokens_ = DeviceBuffer<int>(T);
  d_positions_ = DeviceBuffer<int>(T);
  d_slots_ = DeviceBuffer<std::int64_t>(T);
  d_q_lens_ = DeviceBuffer<int>(S);
  d_context_lens_ = DeviceBuffer<int>(S);
  d_block_table_ = DeviceBuffer<int>(std::size_t(S) * limits_.max_pages_per_seq);
  d_last_ = DeviceBuffer<int>(S);
  d_error_ = DeviceBuffer<int>(1);
  AIPE_CUDA(cudaMemsetAsync(d_error_.get(), 0, sizeof(int), stream));
  h_stage_ = PinnedBuffer<unsigned char>(std::size_t(T) * (2 * sizeof(int) + sizeof(std::int64_t)) +
                                          std::size_t(S) * (3 + limits_.max_pages_per_seq) * sizeof(int));
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
      d_block_table_.get(), d_context_lens_.get(), d_slots_.get());

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

bool LlamaModel::take_error(cudaStream_t stream) {
  int e = 0;
  AIPE_CUDA(cudaMemcpyAsync(&e, d_error_.get(), sizeof(int), cudaMemcpyDeviceToHost, stream));
  AIPE_CUDA(cudaStreamSynchronize(stream));
  if (e) AIPE_CUDA(cudaMemsetAsync(d_error_.get(), 0, sizeof(int), stream));
  return e != 0;
}

void LlamaModel::upload(const StepBatch& b, cudaStream_t stream) {
  const int T = int(b.tokens.size()), S = b.seqs();
  need(T > 0 && S > 0, "an empty step");
  need(T <= limits_.max_tokens, "a step of " + std::to_string(T) + " tokens (limit " +
                                    std::to_string(limits_.max_tokens) + ")");
  need(S <= limits_.max_seqs, "a step of " + std::to_string(S) + " sequences (limit " +
                                  std::to_string(limits_.max_seqs) + ")");
  need(b.positions.size() == std::size_t(T) && b.slots.size() == std::size_t(T), "positions and slots need one entry per token");
  need(b.context_lens.size() == std::size_t(S), "context_lens needs one entry per sequence");
  need(b.block_table.size() == std::size_t(S) * limits_.max_pages_per_seq,
       "block_table must be [seqs][max_pages_per_seq = " + std::to_string(limits_.max_pages_per_seq) + "]");
  int sum = 0;
  std::vector<int> last(S);
  const int context_limit = std::min(shape_.max_positions, limits_.max_pages_per_seq * cache_.page_size);
  for (int s = 0; s < S; ++s) {
    const int ql = b.q_lens[s], ctx = b.context_lens[s];
    const std::string who = "sequence " + std::to_string(s) + ": ";
    need(ql >= 1, who + "no new token");
    need(ctx >= ql, who + "context_len " + std::to_string(ctx) + " < q_len " + std::to_string(ql));
    need(ctx <= context_limit, who + "context " + std::to_string(ctx) + " exceeds the model's limit of " +
                                   std::to_string(context_limit));
    need(sum <= T - ql, "q_lens add up to more than the " + std::to_string(T) + " tokens");
    for (int i = 0; i < ql; ++i)
      need(b.positions[std::size_t(sum + i)] == ctx - ql + i,
           who + "token " + std::to_string(i) + " is at position " + std::to_string(b.positions[std::size_t(sum + i)]) +
               ", expected " + std::to_string(ctx - ql + i) + " (the newest q_len of context_len positions)");
    sum += ql;
    last[s] = sum - 1;
  }
  need(sum == T, "q_lens must add up to the token count");
  ka::check_block_table(b.block_table, b.context_lens, limits_.max_pages_per_seq, cache_.page_size, cache_.num_pages);
  for (int t = 0; t < T; ++t)
    need(b.slots[t] >= 0 && b.slots[t] < std::int64_t(cache_.num_pages) * cache_.page_size,
         "token " + std::to_string(t) + ": slot " + std::to_string(b.slots[t]) + " outside the cache");

  // The stage is reused every step: the previous step's copies must have left it.
  AIPE_CUDA(cudaStreamSynchronize(stream));
  unsigned char* p = h_stage_.get();
  auto put = [&](void* dst, const void* src, std::size_t bytes) {
    std::memcpy(p, src, bytes);
    AIPE_CUDA(cudaMemcpyAsync(dst, p, bytes, cudaMemcpyHostToDevice, stream));
    p += bytes;
  };
  put(d_tokens_.get(), b.tokens.data(), T * sizeof(int));
  put(d_positions_.get(), b.positions.data(), T * sizeof(int));
  put(d_slots_.get(), b.slots.data(), T * sizeof(std::int64_t));
  put(d_q_lens_.get(), b.q_lens.data(), S * sizeof(int));
  put(d_context_lens_.get(), b.context_lens.data(), S * sizeof(int));
  put(d_block_table_.get(), b.block_table.data(), b.block_table.size() * sizeof(int));
  put(d_last_.get(), last.data(), S * sizeof(int));
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
  k::embedding(d_tokens_.get(), embed_, x_.get(), d_error_.get(), T, shape_.vocab, H, stream);
  k::rmsnorm(x_.get(), lw_[0].in_norm, h_.get(), T, H, shape_.rms_eps, stream);
  for (int l = 0; l < shape_.layers; ++l) layer(l, T, stream);
  // The last layer's MLP output joins the residual stream and the final norm in one pass (layer() leaves it in
  // delta_); then the last token of each sequence goes through the LM head.
  k::fused_add_rmsnorm(x_.get(), delta_.get(), final_norm_, h_.get(), T, H, shape_.rms_eps, stream);
  k::embedding(d_last_.get(), h_.get(), last_.get(), d_error_.get(), S, T, H, stream);
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
  ra.positions = d_positions_.get();
  ra.tokens = T;
  ra.error = d_error_.get();
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
