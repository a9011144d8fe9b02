// The host side of the gpt-oss family (aipe/llm/gpt_oss.hpp): its shape from a config, the checks, and what a
// decode step reads: host logic, CPU-tested.
#include <algorithm>
#include <stdexcept>
#include <string>

#include "aipe/llm/gpt_oss.hpp"

namespace aipe::llm {
namespace {

void need(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument("gpt_oss: " + what);
}

}  // namespace

GptOssShape gpt_oss_shape(const ModelConfig& c) {
  if (c.family != Family::GptOss)
    throw std::invalid_argument(c.name + ": model_type '" + c.model_type + "' is not gpt_oss");
  if (c.dtype != DType::BF16)
    throw std::invalid_argument(c.name + ": gpt-oss runs BF16 attention and embeddings; this one is " +
                                dtype_name(c.dtype));
  if (c.tie_word_embeddings)
    throw std::invalid_argument(c.name + ": tie_word_embeddings: gpt-oss has its own lm_head");
  auto narrow = [&](std::int64_t v, const char* key) {
    if (v <= 0 || v > (1 << 30)) throw std::invalid_argument(c.name + ": " + key + " " + std::to_string(v) + " is out of range");
    return int(v);
  };
  GptOssShape s;
  static_cast<DecoderShape&>(s) = decoder_shape(c);
  s.experts = narrow(c.gpt_oss.num_local_experts, "num_local_experts");
  s.top_k = narrow(c.gpt_oss.num_experts_per_tok, "num_experts_per_tok");
  s.sliding_window = narrow(c.gpt_oss.sliding_window, "sliding_window");
  s.sliding = c.gpt_oss.sliding;
  s.act = {.alpha = float(c.gpt_oss.swiglu_alpha), .limit = float(c.gpt_oss.swiglu_limit)};
  check_gpt_oss_shape(s);
  return s;
}

void check_gpt_oss_shape(const GptOssShape& s) {
  check_decoder_shape(s, "gpt_oss");
  // MXFP4 blocks run along K of both expert GEMMs; TMA rows are multiples of 16 bytes.
  need(s.hidden % 32 == 0, "hidden " + std::to_string(s.hidden) + " must be a multiple of 32 (MXFP4 blocks)");
  need(s.intermediate % 32 == 0,
       "intermediate " + std::to_string(s.intermediate) + " must be a multiple of 32 (MXFP4 blocks)");
  need(s.experts >= 1 && s.experts <= 256, "experts " + std::to_string(s.experts) + " (the router takes 1..256)");
  need(s.top_k >= 1 && s.top_k <= std::min(s.experts, 8),
       "top_k " + std::to_string(s.top_k) + " must be in [1, min(experts, 8)]");
  need(s.sliding_window >= 1, "sliding_window must be >= 1");
  need(s.sliding.size() == std::size_t(s.layers),
       "sliding has " + std::to_string(s.sliding.size()) + " entries for " + std::to_string(s.layers) + " layers");
  need(s.act.alpha > 0.f && s.act.limit > 0.f, "swiglu_alpha and swiglu_limit must be > 0");
}

std::size_t gpt_oss_active_weight_bytes(const GptOssShape& s) {
  const std::size_t h = s.hidden, f = s.intermediate, d = s.head_dim;
  const std::size_t q = s.heads * d, kv = s.kv_heads * d, e = s.experts, k = s.top_k;
  const std::size_t attention = 2 * ((q + 2 * kv) * h + (q + 2 * kv) + h * q + h + s.heads + 2 * h);
  const std::size_t router = 2 * (e * h + e);
  // MXFP4: half a byte per element and one scale byte per 32; the biases BF16.
  const std::size_t expert = (2 * f * h) / 2 + (2 * f * h) / 32 + 2 * (2 * f) + (h * f) / 2 + (h * f) / 32 + 2 * h;
  return std::size_t(s.layers) * (attention + router + k * expert) + 2 * h + 2 * std::size_t(s.vocab) * h;
}

double gpt_oss_active_flops(const GptOssShape& s) {
  const double h = s.hidden, f = s.intermediate, q = double(s.heads) * s.head_dim, kv = double(s.kv_heads) * s.head_dim;
  const double layer = (q + 2 * kv) * h + h * q + double(s.experts) * h + double(s.top_k) * (2 * f * h + h * f);
  return 2.0 * (s.layers * layer + double(s.vocab) * h);
}

}  // namespace aipe::llm
