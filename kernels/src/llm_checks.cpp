// Argument checks of the LLM engine's small kernels (norm, RoPE, SwiGLU, embedding, sampling): plain C++ so the
// CPU tests reach every rule (tests/kernels/llm_checks_test.cpp). Each throws std::invalid_argument naming the
// kernel, the argument and the rule.
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "aipe/kernels/embedding.hpp"
#include "aipe/kernels/logits.hpp"
#include "aipe/kernels/norm.hpp"
#include "aipe/kernels/rope.hpp"
#include "aipe/kernels/sampling.hpp"
#include "aipe/kernels/swiglu.hpp"

namespace aipe::kernels {
namespace {

[[noreturn]] void bad(const char* kernel, const std::string& what) {
  throw std::invalid_argument(std::string("kernels::") + kernel + ": " + what);
}
void need(const char* kernel, const void* p, const char* name) {
  if (p == nullptr) bad(kernel, std::string(name) + " is null");
}
std::string num(double v) {
  std::string s = std::to_string(v);
  return s;
}

}  // namespace

void check_rmsnorm(const void* x, const void* weight, const void* y, int tokens, int hidden, float eps) {
  const char* k = "rmsnorm";
  if (tokens < 0) bad(k, "tokens must be >= 0, got " + std::to_string(tokens));
  if (hidden < 1 || hidden > kRmsNormMaxHidden)
    bad(k, "hidden must be in [1, " + std::to_string(kRmsNormMaxHidden) + "], got " + std::to_string(hidden));
  if (!std::isfinite(eps) || eps < 0.0f) bad(k, "eps must be finite and >= 0, got " + num(eps));
  if (tokens == 0) return;
  need(k, x, "x");
  need(k, weight, "weight");
  need(k, y, "y");
}

void check_fused_add_rmsnorm(const void* hidden, const void* delta, const void* y, int tokens) {
  if (tokens == 0) return;
  need("fused_add_rmsnorm", delta, "delta");
  if (y == hidden) bad("fused_add_rmsnorm", "y must not be the hidden (residual) buffer it normalizes");
}

void check_rope(const RopeArgs& a, const float2* table, int max_positions, int dim) {
  const char* k = "apply_rope";
  if (a.tokens < 0) bad(k, "tokens must be >= 0, got " + std::to_string(a.tokens));
  if (a.heads < 0 || a.kv_heads < 0)
    bad(k, "heads and kv_heads must be >= 0, got " + std::to_string(a.heads) + " and " + std::to_string(a.kv_heads));
  if (table == nullptr || max_positions < 1) bad(k, "the cos/sin table is empty");
  if (dim < 2 || dim % 2 || dim > kRopeMaxHeadDim) bad(k, "the table's head dim " + std::to_string(dim) + " is invalid");
  if (a.head_dim != 0 && a.head_dim != dim)
    bad(k, "head_dim " + std::to_string(a.head_dim) + " is not the cos/sin table's rotary dim " + std::to_string(dim));
  if (a.tokens == 0) return;
  need(k, a.positions, "positions");
  if (a.heads > 0) {
    need(k, a.q, "q");
    if (a.q_stride < std::int64_t(a.heads) * dim)
      bad(k, "q_stride " + std::to_string(a.q_stride) + " is below heads * dim = " + std::to_string(std::int64_t(a.heads) * dim));
  }
  if (a.kv_heads > 0) {
    need(k, a.k, "k");
    if (a.k_stride < std::int64_t(a.kv_heads) * dim)
      bad(k, "k_stride " + std::to_string(a.k_stride) + " is below kv_heads * dim = " +
                 std::to_string(std::int64_t(a.kv_heads) * dim));
  }
}

void check_swiglu(const void* gate_up, const void* out, int tokens, int inter) {
  const char* k = "swiglu";
  if (tokens < 0) bad(k, "tokens must be >= 0, got " + std::to_string(tokens));
  if (inter < 1) bad(k, "inter must be >= 1, got " + std::to_string(inter));
  if (tokens == 0) return;
  need(k, gate_up, "gate_up");
  need(k, out, "out");
  const auto* g = static_cast<const char*>(gate_up);
  const auto* o = static_cast<const char*>(out);
  const std::size_t in_bytes = std::size_t(tokens) * 2 * std::size_t(inter) * 2, out_bytes = std::size_t(tokens) * inter * 2;
  if (o < g + in_bytes && g < o + out_bytes) bad(k, "out overlaps gate_up (the kernel reads gate_up after writing out)");
}

void check_swiglu_clamped(const void* gate_up, const void* out, int rows, int inter, const ClampedSwiglu& act) {
  check_swiglu(gate_up, out, rows, inter);
  const char* k = "swiglu_clamped";
  if (!(std::isfinite(act.alpha) && act.alpha > 0.f)) bad(k, "alpha must be finite and > 0, got " + std::to_string(act.alpha));
  if (!(std::isfinite(act.limit) && act.limit > 0.f)) bad(k, "limit must be finite and > 0, got " + std::to_string(act.limit));
}

void check_embedding(const int* ids, const void* table, const void* out, const int* error, int tokens, int vocab,
                     int hidden) {
  const char* k = "embedding";
  if (tokens < 0) bad(k, "tokens must be >= 0, got " + std::to_string(tokens));
  if (vocab < 1) bad(k, "vocab must be >= 1, got " + std::to_string(vocab));
  if (hidden < 1) bad(k, "hidden must be >= 1, got " + std::to_string(hidden));
  if (tokens == 0) return;
  need(k, ids, "ids");
  need(k, table, "table");
  need(k, out, "out");
  need(k, error, "error (the out-of-range id flag)");
}

void check_sampling_params(const SamplingParams& p) {
  const char* k = "sample";
  if (!(p.temperature >= 0.0f) || !std::isfinite(p.temperature))
    bad(k, "temperature must be finite and >= 0, got " + num(p.temperature));
  if (p.top_k < 0) bad(k, "top_k must be >= 0 (0: off), got " + std::to_string(p.top_k));
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) bad(k, "top_p must be in (0, 1] (1: off), got " + num(p.top_p));
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) bad(k, "min_p must be in [0, 1] (0: off), got " + num(p.min_p));
}

void check_sampling(const void* logits, std::int64_t ld, int batch, int vocab, const void* tokens) {
  const char* k = "sample";
  if (batch < 0) bad(k, "batch must be >= 0, got " + std::to_string(batch));
  if (vocab < 1 || vocab > kSamplingMaxVocab)
    bad(k, "vocab must be in [1, " + std::to_string(kSamplingMaxVocab) + "], got " + std::to_string(vocab));
  if (ld < vocab) bad(k, "ld " + std::to_string(ld) + " is below vocab " + std::to_string(vocab));
  if (batch == 0) return;
  need(k, logits, "logits");
  need(k, tokens, "tokens");
}

void check_softcap(const void* logits, std::int64_t ld, int batch, int vocab, float cap) {
  const char* k = "softcap";
  if (!(cap > 0.0f) || !std::isfinite(cap)) bad(k, "cap must be finite and > 0, got " + num(cap));
  if (batch < 0) bad(k, "batch must be >= 0, got " + std::to_string(batch));
  if (vocab < 1) bad(k, "vocab must be >= 1, got " + std::to_string(vocab));
  if (ld < vocab) bad(k, "ld " + std::to_string(ld) + " is below vocab " + std::to_string(vocab));
  if (batch > 0) need(k, logits, "logits");
}

void check_log_softmax(const void* logits, std::int64_t ld, int batch, int vocab, const float* out, std::int64_t ld_out) {
  const char* k = "log_softmax";
  if (batch < 0) bad(k, "batch must be >= 0, got " + std::to_string(batch));
  if (vocab < 1) bad(k, "vocab must be >= 1, got " + std::to_string(vocab));
  if (ld < vocab) bad(k, "ld " + std::to_string(ld) + " is below vocab " + std::to_string(vocab));
  if (ld_out < vocab) bad(k, "ld_out " + std::to_string(ld_out) + " is below vocab " + std::to_string(vocab));
  if (batch == 0) return;
  need(k, logits, "logits");
  need(k, out, "out");
}

}  // namespace aipe::kernels
