#include "aipe/llm/load_plan.hpp"

#include <filesystem>
#include <map>
#include <set>
#include <stdexcept>

namespace aipe::llm {
namespace {

std::string shape_str(const std::vector<std::int64_t>& s) {
  std::string o = "[";
  for (std::size_t i = 0; i < s.size(); ++i) o += (i ? ", " : "") + std::to_string(s[i]);
  return o + "]";
}

std::string base(const std::string& p) { return std::filesystem::path(p).filename().string(); }

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

std::vector<ExpectedTensor> expected_tensors(const ModelConfig& c) {
  const std::int64_t h = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), f = c.intermediate_size;
  std::vector<ExpectedTensor> v;
  v.push_back({"model.embed_tokens.weight", {c.vocab_size, h}});
  if (c.family == Family::GptOss) {
    const std::int64_t e = c.gpt_oss.num_local_experts;
    for (std::int64_t l = 0; l < c.num_hidden_layers; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      auto add = [&](const std::string& n, std::vector<std::int64_t> s, std::optional<DType> dt = {}) {
        v.push_back({p + n, std::move(s), l, dt});
      };
      add("input_layernorm.weight", {h});
      add("self_attn.q_proj.weight", {q, h});
      add("self_attn.k_proj.weight", {kv, h});
      add("self_attn.v_proj.weight", {kv, h});
      add("self_attn.q_proj.bias", {q});
      add("self_attn.k_proj.bias", {kv});
      add("self_attn.v_proj.bias", {kv});
      add("self_attn.o_proj.weight", {h, q});
      add("self_attn.o_proj.bias", {h});
      add("self_attn.sinks", {c.num_attention_heads});
      add("post_attention_layernorm.weight", {h});
      add("mlp.router.weight", {e, h});
      add("mlp.router.bias", {e});
      add("mlp.experts.gate_up_proj_blocks", {e, 2 * f, h / 32, 16}, DType::U8);
      add("mlp.experts.gate_up_proj_scales", {e, 2 * f, h / 32}, DType::U8);
      add("mlp.experts.gate_up_proj_bias", {e, 2 * f});
      add("mlp.experts.down_proj_blocks", {e, h, f / 32, 16}, DType::U8);
      add("mlp.experts.down_proj_scales", {e, h, f / 32}, DType::U8);
      add("mlp.experts.down_proj_bias", {e, h});
    }
    v.push_back({"model.norm.weight", {h}});
    if (!c.tie_word_embeddings) v.push_back({"lm_head.weight", {c.vocab_size, h}});
    return v;
  }
  for (std::int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    auto add = [&](const std::string& n, std::vector<std::int64_t> s) { v.push_back({p + n, std::move(s), l}); };
    add("input_layernorm.weight", {h});
    add("self_attn.q_proj.weight", {q, h});
    add("self_attn.k_proj.weight", {kv, h});
    add("self_attn.v_proj.weight", {kv, h});
    if (c.qkv_bias) {
      add("self_attn.q_proj.bias", {q});
      add("self_attn.k_proj.bias", {kv});
      add("self_attn.v_proj.bias", {kv});
    }
    add("self_attn.o_proj.weight", {h, q});
    if (c.o_bias) add("self_attn.o_proj.bias", {h});
    add("post_attention_layernorm.weight", {h});
    add("mlp.gate_proj.weight", {f, h});
    add("mlp.up_proj.weight", {f, h});
    add("mlp.down_proj.weight", {h, f});
    if (c.mlp_bias) {
      add("mlp.gate_proj.bias", {f});
      add("mlp.up_proj.bias", {f});
      add("mlp.down_proj.bias", {h});
    }
  }
  v.push_back({"model.norm.weight", {h}});
  if (!c.tie_word_embeddings) v.push_back({"lm_head.weight", {c.vocab_size, h}});
  return v;
}

LoadPlan plan_checkpoint(const ModelConfig& c, const Checkpoint& ckpt) {
  const auto want = expected_tensors(c);
  LoadPlan plan;
  std::vector<std::string> problems;
  if (c.dtype_given) {
    plan.dtype = c.dtype;
  } else if (ckpt.has("model.embed_tokens.weight")) {
    plan.dtype = ckpt.tensor("model.embed_tokens.weight").dtype;
  } else {
    plan.dtype = DType::BF16;
  }
  const std::string from = c.dtype_given ? " (config.json torch_dtype)" : " (the embedding's dtype)";
  std::set<std::string> known;
  for (const auto& e : want) {
    known.insert(e.name);
    if (!ckpt.has(e.name)) {
      problems.push_back(base(ckpt.dir()) + ": tensor '" + e.name + "' is missing (expected " + shape_str(e.shape) +
                         " " + dtype_name(plan.dtype) + ")");
      continue;
    }
    const SafetensorsFile& f = ckpt.file(e.name);
    const ParsedTensor& t = f.tensors().at(e.name);
    const std::string w = base(f.path()) + ": tensor '" + e.name + "' ";
    if (t.shape != e.shape) {
      problems.push_back(w + "has shape " + shape_str(t.shape) + ", expected " + shape_str(e.shape) + " from " +
                         base(c.name));
      continue;
    }
    if (t.dtype != e.dtype.value_or(plan.dtype)) {
      problems.push_back(w + "is " + dtype_name(t.dtype) + ", expected " + dtype_name(e.dtype.value_or(plan.dtype)) +
                         (e.dtype ? " (MXFP4 blocks and scales are bytes)" : from));
      continue;
    }
    const TensorView view = f.tensor(e.name);
    plan.tensors.push_back({.name = e.name,
                            .shape = e.shape,
                            .dtype = t.dtype,
                            .file = f.path(),
                            .offset = f.data_start() + t.begin,
                            .bytes = t.end - t.begin,
                            .data = view.data});
    plan.total_bytes += t.end - t.begin;
  }
  for (const auto& n : ckpt.names()) {
    if (known.count(n)) continue;
    // Older exports keep the RoPE table as a buffer, and some tied checkpoints still carry lm_head: both are
    // recomputable or redundant, so they are listed and skipped; anything else means a different architecture.
    const bool tied_head = n == "lm_head.weight" && c.tie_word_embeddings;
    if (ends_with(n, ".rotary_emb.inv_freq") || tied_head) {
      if (tied_head) {
        const auto& t = ckpt.file(n).tensors().at(n);
        if (t.shape != std::vector<std::int64_t>{c.vocab_size, c.hidden_size})
          problems.push_back(base(ckpt.file_of(n)) + ": tensor '" + n + "' has shape " + shape_str(t.shape) +
                             ", expected " + shape_str({c.vocab_size, c.hidden_size}));
      }
      plan.ignored.push_back(n);
      continue;
    }
    problems.push_back(base(ckpt.file_of(n)) + ": tensor '" + n + "' is not a weight of the " + family_name(c.family) +
                       " family with this config (" + std::to_string(c.num_hidden_layers) + " layers" +
                       (c.qkv_bias ? "" : ", no attention bias") + ")");
  }
  if (!problems.empty()) {
    std::string msg = "checkpoint " + ckpt.dir() + " does not match " + c.name + ": " +
                      std::to_string(problems.size()) + " problem" + (problems.size() > 1 ? "s" : "");
    for (std::size_t i = 0; i < problems.size() && i < 8; ++i) msg += "\n  " + problems[i];
    if (problems.size() > 8) msg += "\n  (" + std::to_string(problems.size() - 8) + " more)";
    throw std::invalid_argument(msg);
  }
  return plan;
}

}  // namespace aipe::llm
