#include "aipe/llm/gpt_oss.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "aipe/check.hpp"
#include "aipe/llm/step_inputs.hpp"
#include "aipe/kernels/attention/forward.hpp"
#include "aipe/kernels/attention/paged.hpp"
#include "aipe/kernels/embedding.hpp"
#include "aipe/kernels/gemm.hpp"
#include "aipe/kernels/grouped_gemm.hpp"
#include "aipe/kernels/moe.hpp"
#include "aipe/kernels/norm.hpp"
#include "aipe/llm/weight_specs.hpp"

namespace aipe::llm {
namespace {

namespace k = aipe::kernels;
namespace ka = aipe::kernels::attention;
namespace km = aipe::kernels::moe;
using bf16 = __nv_bfloat16;

std::string layer_name(int l, const char* rest) { return "model.layers." + std::to_string(l) + "." + rest; }

void need(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument("gpt_oss: " + what);
}

}  // namespace

GptOssModel::GptOssModel(const GptOssShape& shape, DeviceWeights weights, const GptOssCache& cache,
                         const ModelLimits& limits, ModelInfo info, cudaStream_t stream)
    : shape_(shape), weights_(std::move(weights)), cache_(cache), limits_(limits), info_(std::move(info)) {
  check_gpt_oss_shape(shape_);
  need(cache_.num_pages > 0 && cache_.page_size > 0, "the KV cache needs pages");
  if (limits_.max_pages_per_seq == 0)
    limits_.max_pages_per_seq = (shape_.max_positions + cache_.page_size - 1) / cache_.page_size;
  need(limits_.max_tokens > 0 && limits_.max_seqs > 0 && limits_.max_seqs <= limits_.max_tokens,
       "limits: max_tokens >= max_seqs > 0");
  rope_ = k::RopeTable(k::rope_frequencies(shape_.rope), shape_.max_positions, stream);

  embed_ = weights_.get<bf16>("model.embed_tokens.weight");
  final_norm_ = weights_.get<bf16>("model.norm.weight");
  lm_head_ = weights_.get<bf16>("lm_head.weight");
  // The sinks are BF16 in the checkpoint and FP32 in the attention kernels: converted once, on the host.
  std::vector<float> sinks(std::size_t(shape_.layers) * shape_.heads);
  std::vector<bf16> row(std::size_t(shape_.heads));
  for (int l = 0; l < shape_.layers; ++l) {
    AIPE_CUDA(cudaMemcpyAsync(row.data(), weights_.get<bf16>(layer_name(l, "self_attn.sinks")),
                              row.size() * sizeof(bf16), cudaMemcpyDeviceToHost, stream));
    AIPE_CUDA(cudaStreamSynchronize(stream));
    for (int h = 0; h < shape_.heads; ++h) sinks[std::size_t(l) * shape_.heads + h] = __bfloat162float(row[h]);
  }
  sinks_ = DeviceBuffer<float>(sinks.size());
  AIPE_CUDA(cudaMemcpyAsync(sinks_.get(), sinks.data(), sinks.size() * sizeof(float), cudaMemcpyHostToDevice, stream));
  AIPE_CUDA(cudaStreamSynchronize(stream));  // `sinks` leaves scope

  for (int l = 0; l < shape_.layers; ++l) {
    auto g = [&](const char* n) { return weights_.get<bf16>(layer_name(l, n)); };
    auto u = [&](const char* n) { return weights_.get<std::uint8_t>(layer_name(l, n)); };
    LayerWeights w{};
    w.in_norm = g("input_layernorm.weight");
    w.post_norm = g("post_attention_layernorm.weight");
    w.wqkv = g("self_attn.qkv_proj.weight");
    w.bqkv = g("self_attn.qkv_proj.bias");
    w.wo = g("self_attn.o_proj.weight");
    w.bo = g("self_attn.o_proj.bias");
    w.router_w = g("mlp.router.weight");
    w.router_b = g("mlp.router.bias");
    w.gu_blocks = u("mlp.experts.gate_up_proj_blocks");
    w.gu_scales = u("mlp.experts.gate_up_proj_scales");
    w.gu_bias = g("mlp.experts.gate_up_proj_bias");
    w.down_blocks = u("mlp.experts.down_proj_blocks");
    w.down_scales = u("mlp.experts.down_proj_scales");
    w.down_bias = g("mlp.experts.down_proj_bias");
    w.sinks = sinks_.get() + std::size_t(l) * shape_.heads;
    lw_.push_back(w);
  }

  const int H = shape_.hidden, I = shape_.intermediate, E = shape_.experts, K = shape_.top_k;
  const std::size_t nkv = std::size_t(shape_.kv_heads) * shape_.head_dim;
  const std::size_t nqkv = std::size_t(shape_.heads) * shape_.head_dim + 2 * nkv;
  const std::size_t layer_elems = std::size_t(cache_.num_pages) * cache_.page_size * nkv;
  k_cache_ = DeviceBuffer<bf16>(layer_elems * shape_.layers);
  v_cache_ = DeviceBuffer<bf16>(layer_elems * shape_.layers);

  const int T = limits_.max_tokens, S = limits_.max_seqs;
  const std::size_t TK = std::size_t(T) * K;
  in_ = std::make_unique<StepInputs>(StepGeometry{.max_tokens = T, .max_seqs = S,
                                                 .max_pages_per_seq = limits_.max_pages_per_seq,
                                                 .page_size = cache_.page_size, .num_pages = cache_.num_pages,
                                                 .max_positions = shape_.max_positions},
                                    stream);
  x_ = DeviceBuffer<bf16>(std::size_t(T) * H);
  h_ = DeviceBuffer<bf16>(std::size_t(T) * H);
  delta_ = DeviceBuffer<bf16>(std::size_t(T) * H);
  qkv_ = DeviceBuffer<bf16>(T * nqkv);
  attn_ = DeviceBuffer<bf16>(T * nqkv);  // forward() writes O with Q's row pitch (qkv_'s)
  router_logits_ = DeviceBuffer<bf16>(std::size_t(T) * E);
  gate_up_ = DeviceBuffer<bf16>(TK * 2 * I);
  act_ = DeviceBuffer<bf16>(TK * I);
  yg_ = DeviceBuffer<bf16>(TK * H);
  ids_ = DeviceBuffer<int>(TK);
  route_weights_ = DeviceBuffer<float>(TK);
  offsets_ = DeviceBuffer<int>(std::size_t(E) + 1);
  row_token_ = DeviceBuffer<int>(TK);
  pair_row_ = DeviceBuffer<int>(TK);
  routing_ws_ = DeviceBuffer<unsigned char>(std::max<std::size_t>(km::routing_workspace_bytes(T, K, E), 16));
  last_ = DeviceBuffer<bf16>(std::size_t(S) * H);
  logits_ = DeviceBuffer<bf16>(std::size_t(S) * shape_.vocab);
  attention_ = std::make_unique<AttentionStep>(
      AttentionGeometry{.heads = shape_.heads, .kv_heads = shape_.kv_heads, .head_dim = shape_.head_dim,
                        .num_pages = cache_.num_pages, .page_size = cache_.page_size, .max_tokens = T,
                        .max_seqs = S, .max_pages_per_seq = limits_.max_pages_per_seq},
      in_->block_table(), in_->context_lens(), in_->slots());

  info_.family = "gpt_oss";
  info_.vocab = shape_.vocab;
  info_.max_positions = shape_.max_positions;
  info_.page_size = cache_.page_size;
  info_.num_pages = cache_.num_pages;
  info_.kv_bytes_per_token = 2 * std::size_t(shape_.layers) * nkv * sizeof(bf16);
  info_.weight_bytes = weights_.bytes();
  info_.weight_bytes_per_token = gpt_oss_active_weight_bytes(shape_);
  info_.flops_per_token = gpt_oss_active_flops(shape_);
}

bool GptOssModel::take_error(cudaStream_t stream) { return in_->take_error(stream); }

void GptOssModel::upload(const StepBatch& b, cudaStream_t stream) {
  in_->upload(b, stream);
  attention_->plan(b, stream);
}

void GptOssModel::step(const StepBatch& b, cudaStream_t stream) {
  upload(b, stream);
  run(b.num_tokens(), b.seqs(), stream);
}

void GptOssModel::run_decode(int seqs, cudaStream_t stream) {
  need(seqs >= 1 && seqs <= limits_.max_seqs, "run_decode of " + std::to_string(seqs) + " sequences");
  attention_->plan_decode(seqs);
  run(seqs, seqs, stream);
}

void GptOssModel::run(int T, int S, cudaStream_t stream) {
  const int H = shape_.hidden;
  k::embedding(in_->tokens(), embed_, x_.get(), in_->error(), T, shape_.vocab, H, stream);
  for (int l = 0; l < shape_.layers; ++l) {
    // x holds the residual stream; the MoE's combine adds into it, so each layer starts with a plain norm.
    k::rmsnorm(x_.get(), lw_[l].in_norm, h_.get(), T, H, shape_.rms_eps, stream);
    attention(l, T, stream);
    moe(l, T, stream);
  }
  k::rmsnorm(x_.get(), final_norm_, h_.get(), T, H, shape_.rms_eps, stream);
  k::embedding(in_->last(), h_.get(), last_.get(), in_->error(), S, T, H, stream);
  k::gemm(k::matrix<const bf16>(last_.get(), S, H), k::matrix(lm_head_, shape_.vocab, H),
          k::matrix(logits_.get(), S, shape_.vocab), k::Epilogue::none(), stream);
}

void GptOssModel::attention(int l, int T, cudaStream_t stream) {
  const LayerWeights& w = lw_[l];
  const int H = shape_.hidden, d = shape_.head_dim, nq = shape_.heads * d, nkv = shape_.kv_heads * d;
  const int nqkv = nq + 2 * nkv;
  const bool sliding = shape_.sliding[std::size_t(l)];
  // Q, K and V (with their biases) from one GEMM over the fused weight: row t of qkv_ holds q (heads x d), then
  // k, then v (kv_heads x d each); RoPE, the cache append and both attention kernels read them in place.
  k::gemm(k::matrix<const bf16>(h_.get(), T, H), k::matrix(w.wqkv, nqkv, H), k::matrix(qkv_.get(), T, nqkv),
          k::Epilogue::bias(w.bqkv), stream);
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
  ra.head_dim = d;
  k::apply_rope(ra, rope_, stream);

  // The cache append, then paged decode for the decodes and forward() for the prefill chunks (one plan per step).
  const std::size_t layer_elems = std::size_t(cache_.num_pages) * cache_.page_size * nkv;
  attention_->run({.q = qp, .k = kp, .v = vp, .q_row = nqkv, .kv_row = nqkv, .k_cache = k_cache_.get() + l * layer_elems,
                   .v_cache = v_cache_.get() + l * layer_elems, .out = attn_.get(),
                   .mask = sliding ? ka::MaskKind::sliding_window : ka::MaskKind::causal,
                   .window = sliding ? shape_.sliding_window : 0, .sinks = w.sinks},
                  stream);
  k::gemm(k::matrix<const bf16>(attn_.get(), T, nq, attention_->out_row_stride(nqkv)), k::matrix(w.wo, H, nq),
          k::matrix(delta_.get(), T, H), k::Epilogue::bias(w.bo), stream);
  // x += attn Wo^T + bo, and h = rmsnorm(x) for the router and the experts.
  k::fused_add_rmsnorm(x_.get(), delta_.get(), w.post_norm, h_.get(), T, H, shape_.rms_eps, stream);
}

void GptOssModel::moe(int l, int T, cudaStream_t stream) {
  const LayerWeights& w = lw_[l];
  const int H = shape_.hidden, I = shape_.intermediate, E = shape_.experts, K = shape_.top_k;
  const int rows = T * K;  // every (token, choice) pair: the grouped GEMMs' capacity
  k::gemm(k::matrix<const bf16>(h_.get(), T, H), k::matrix(w.router_w, E, H), k::matrix(router_logits_.get(), T, E),
          k::Epilogue::bias(w.router_b), stream);
  km::topk_softmax(router_logits_.get(), E, T, E, K, ids_.get(), route_weights_.get(), stream);
  const km::Routing routing{.offsets = offsets_.get(), .row_token = row_token_.get(), .pair_row = pair_row_.get()};
  km::build_routing(ids_.get(), T, K, E, routing, routing_ws_.get(), routing_ws_.size(), in_->error(), stream);

  // gate_up of every pair, the activations gathered by row_token inside the GEMM (the fused permutation).
  k::GroupedGemmArgs gu{};
  gu.a = k::matrix<const bf16>(h_.get(), T, H);
  gu.gather = row_token_.get();
  gu.rows = rows;
  gu.experts = E;
  gu.n = 2 * I;
  gu.k = H;
  gu.offsets = offsets_.get();
  gu.w_blocks = w.gu_blocks;
  gu.w_scales = w.gu_scales;
  gu.bias = w.gu_bias;
  gu.c = k::matrix(gate_up_.get(), rows, 2 * I);
  k::grouped_gemm(gu, stream);
  // Rows past offsets[E] (dropped pairs) hold stale values: activated and multiplied like the rest, never combined.
  k::swiglu_clamped_interleaved(gate_up_.get(), act_.get(), rows, I, shape_.act, stream);
  k::GroupedGemmArgs dn{};
  dn.a = k::matrix<const bf16>(act_.get(), rows, I);
  dn.rows = rows;
  dn.experts = E;
  dn.n = H;
  dn.k = I;
  dn.offsets = offsets_.get();
  dn.w_blocks = w.down_blocks;
  dn.w_scales = w.down_scales;
  dn.bias = w.down_bias;
  dn.c = k::matrix(yg_.get(), rows, H);
  k::grouped_gemm(dn, stream);
  // x += sum_j w_j y_j, in token order.
  km::combine(yg_.get(), H, pair_row_.get(), route_weights_.get(), T, K, H, x_.get(), x_.get(), H, stream);
}

std::unique_ptr<GptOssModel> load_gpt_oss(const ModelFiles& files, const LoadOptions& opt, cudaStream_t stream,
                                          LoadProgress* progress) {
  if (!(opt.gpu_memory > 0 && opt.gpu_memory <= 1))
    throw std::invalid_argument("--gpu-memory must be in (0, 1], got " + std::to_string(opt.gpu_memory));
  const ModelConfig& c = files.config;
  const GptOssShape shape = gpt_oss_shape(c);
  DeviceWeights w(weight_specs(c, DType::BF16));
  const std::size_t weight_bytes = w.bytes();
  if (c.synthetic)
    w.fill_synthetic({.seed = opt.seed}, stream);
  else if (progress)
    *progress = w.load(*files.checkpoint, stream, opt.progress);
  else
    w.load(*files.checkpoint, stream, opt.progress);
  AIPE_CUDA(cudaStreamSynchronize(stream));

  ModelLimits lim = opt.limits;
  if (lim.max_pages_per_seq == 0) lim.max_pages_per_seq = (shape.max_positions + opt.page_size - 1) / opt.page_size;
  // The buffers GptOssModel allocates per step token (and per routed pair) and sequence, then the cache.
  const std::size_t T = lim.max_tokens, S = lim.max_seqs, TK = T * shape.top_k;
  const std::size_t nkv = std::size_t(shape.kv_heads) * shape.head_dim;
  const std::size_t nqkv = std::size_t(shape.heads) * shape.head_dim + 2 * nkv;
  const std::size_t act = 2 * (T * (3 * std::size_t(shape.hidden) + 2 * nqkv + shape.experts) +
                               TK * (3 * std::size_t(shape.intermediate) + shape.hidden) +
                               S * (shape.hidden + std::size_t(shape.vocab))) +
                          TK * 16 + T * 24 + S * lim.max_pages_per_seq * 4 + (std::size_t(64) << 20) +
                          // + K and V gathered for chunks that continue over cached tokens (AttentionStep)
                          2 * 2 * nkv * (T + std::size_t(lim.max_pages_per_seq) * opt.page_size);
  std::size_t free_b = 0, total_b = 0;
  AIPE_CUDA(cudaMemGetInfo(&free_b, &total_b));
  const double budget = opt.gpu_memory * double(free_b + weight_bytes) - double(weight_bytes) - double(act);
  const std::size_t page_bytes = std::size_t(opt.page_size) * 2 * shape.layers * nkv * 2;
  long long pages = budget > 0 ? (long long)(budget / double(page_bytes)) : 0;
  if (opt.max_cache_pages > 0) pages = std::min<long long>(pages, opt.max_cache_pages);
  if (pages < 1)
    throw std::runtime_error(c.name + ": no GPU memory left for the KV cache after " +
                             std::to_string(weight_bytes >> 20) + " MiB of weights (free " +
                             std::to_string(free_b >> 20) + " MiB)");
  ModelInfo info{.name = c.name, .family = c.model_type, .synthetic = c.synthetic};
  auto m = std::make_unique<GptOssModel>(shape, std::move(w),
                                         GptOssCache{int(std::min<long long>(pages, 1 << 30)), opt.page_size}, lim,
                                         std::move(info), stream);
  AIPE_CUDA(cudaStreamSynchronize(stream));
  return m;
}

}  // namespace aipe::llm
