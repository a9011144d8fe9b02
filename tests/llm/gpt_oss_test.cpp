// gpt-oss on the host: the published config.json of openai/gpt-oss-20b parses to the built-in shape (and -120b's
// differs only in depth and experts), each malformed gpt-oss field is an std::invalid_argument naming it, the
// YaRN frequencies follow transformers' formula, the checkpoint's tensors (MXFP4 blocks and scales as U8) are
// listed, validated and fused as the model reads them, the model shape and its per-token bytes; then the harmony
// chat format, and its special tokens through a tokenizer.json that has them.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <nlohmann/json.hpp>

#include "aipe/llm/config.hpp"
#include "aipe/llm/gpt_oss.hpp"
#include "aipe/llm/harmony.hpp"
#include "aipe/llm/load_plan.hpp"
#include "aipe/llm/tokenizer.hpp"
#include "aipe/llm/weight_specs.hpp"
#include "error_of.hpp"

namespace fs = std::filesystem;
using aipe::llm::DType;
using aipe::llm::ModelConfig;
using aipe::llm::parse_model_config;
using aipe::test::error_of;
using nlohmann::json;

namespace {

// openai/gpt-oss-20b's config.json, as published (its fields; layer_types spelled out below).
json gpt_oss_20b() {
  json j = json::parse(R"({
    "architectures": ["GptOssForCausalLM"], "attention_bias": true, "attention_dropout": 0.0,
    "eos_token_id": 200002, "experts_per_token": 4, "head_dim": 64, "hidden_act": "silu", "hidden_size": 2880,
    "initial_context_length": 4096, "initializer_range": 0.02, "intermediate_size": 2880,
    "max_position_embeddings": 131072, "model_type": "gpt_oss", "num_attention_heads": 64,
    "num_experts_per_tok": 4, "num_hidden_layers": 24, "num_key_value_heads": 8, "num_local_experts": 32,
    "output_router_logits": false, "pad_token_id": 199999,
    "quantization_config": {"modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router",
                                                       "model.embed_tokens", "lm_head"],
                            "quant_method": "mxfp4"},
    "rms_norm_eps": 1e-05,
    "rope_scaling": {"beta_fast": 32.0, "beta_slow": 1.0, "factor": 32.0, "original_max_position_embeddings": 4096,
                     "rope_type": "yarn", "truncate": false},
    "rope_theta": 150000, "router_aux_loss_coef": 0.9, "sliding_window": 128, "swiglu_limit": 7.0,
    "tie_word_embeddings": false, "torch_dtype": "bfloat16", "transformers_version": "4.55.0.dev0",
    "use_cache": true, "vocab_size": 201088})");
  json lt = json::array();
  for (int i = 0; i < 24; ++i) lt.push_back(i % 2 == 0 ? "sliding_attention" : "full_attention");
  j["layer_types"] = lt;
  return j;
}

std::string bad(const std::function<void(json&)>& edit) {
  json j = gpt_oss_20b();
  edit(j);
  return error_of([&] { parse_model_config(j.dump(), "oss/config.json"); });
}

void has(const std::string& msg, const std::string& needle) {
  EXPECT_NE(msg.find(needle), std::string::npos) << "message: " << msg << "\nexpected to contain: " << needle;
}

// A small gpt-oss config: hidden 64, 2 heads of 64 (q 128 wide), 1 K/V head, 3 experts top-2, intermediate 96,
// 2 layers, vocab 10: no two dimensions of one tensor equal, so a swapped shape shows.
ModelConfig small() {
  json j = {{"model_type", "gpt_oss"},     {"hidden_size", 64},        {"intermediate_size", 96},
            {"num_hidden_layers", 2},      {"num_attention_heads", 2}, {"num_key_value_heads", 1},
            {"head_dim", 64},              {"vocab_size", 10},         {"max_position_embeddings", 256},
            {"rms_norm_eps", 1e-5},        {"num_local_experts", 3},   {"num_experts_per_tok", 2},
            {"sliding_window", 8},         {"torch_dtype", "bfloat16"},
            {"quantization_config", {{"quant_method", "mxfp4"}}},
            {"rope_scaling", {{"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 64}}}};
  return parse_model_config(j.dump(), "small/config.json");
}

}  // namespace

TEST(GptOssConfig, Published20BMatchesTheBuiltInShape) {
  const ModelConfig c = parse_model_config(gpt_oss_20b().dump(), "config.json");
  const ModelConfig s = aipe::llm::synthetic_config("gpt-oss-20b");
  EXPECT_EQ(c.family, aipe::llm::Family::GptOss);
  EXPECT_STREQ(aipe::llm::family_name(c.family), "gpt_oss");
  for (const auto& [a, b] : {std::pair{c.hidden_size, s.hidden_size}, {c.intermediate_size, s.intermediate_size},
                             {c.num_hidden_layers, s.num_hidden_layers}, {c.num_attention_heads, s.num_attention_heads},
                             {c.num_key_value_heads, s.num_key_value_heads}, {c.head_dim, s.head_dim},
                             {c.vocab_size, s.vocab_size}, {c.max_position_embeddings, s.max_position_embeddings},
                             {c.gpt_oss.num_local_experts, s.gpt_oss.num_local_experts},
                             {c.gpt_oss.num_experts_per_tok, s.gpt_oss.num_experts_per_tok},
                             {c.gpt_oss.sliding_window, s.gpt_oss.sliding_window}})
    EXPECT_EQ(a, b);
  EXPECT_EQ(c.gpt_oss.num_local_experts, 32);
  EXPECT_EQ(c.gpt_oss.num_experts_per_tok, 4);
  EXPECT_EQ(c.gpt_oss.sliding, s.gpt_oss.sliding);
  ASSERT_EQ(c.gpt_oss.sliding.size(), 24u);
  EXPECT_TRUE(c.gpt_oss.sliding[0]);
  EXPECT_FALSE(c.gpt_oss.sliding[1]);
  EXPECT_EQ(c.gpt_oss.swiglu_limit, 7.0);
  EXPECT_EQ(c.gpt_oss.swiglu_alpha, 1.702);  // not in the released file: transformers' default
  EXPECT_EQ(c.gpt_oss.quant_method, "mxfp4");
  EXPECT_TRUE(c.qkv_bias && c.o_bias);
  EXPECT_EQ(c.rope_theta, 150000.0);
  ASSERT_TRUE(c.yarn && s.yarn);
  EXPECT_FALSE(c.rope_scaling.has_value());
  EXPECT_EQ(c.yarn->factor, 32.0);
  EXPECT_FALSE(c.yarn->truncate);
  EXPECT_FALSE(s.yarn->truncate);
  EXPECT_EQ(c.yarn->original_max_position_embeddings, 4096);
  EXPECT_EQ(c.yarn->beta_fast, s.yarn->beta_fast);
  EXPECT_EQ(c.eos_token_ids, s.eos_token_ids);
  // Published totals: 20.9B and 116.8B parameters (the MXFP4 elements counted one each).
  EXPECT_EQ(c.parameter_count(), 20914757184);
  EXPECT_EQ(aipe::llm::synthetic_config("gpt-oss-120b").parameter_count(), 116829156672);
  const ModelConfig b = aipe::llm::synthetic_config("gpt-oss-120b");
  EXPECT_EQ(b.num_hidden_layers, 36);
  EXPECT_EQ(b.gpt_oss.num_local_experts, 128);
  EXPECT_EQ(b.gpt_oss.sliding.size(), 36u);
}

TEST(GptOssConfig, DefaultsOfTheReferenceConfiguration) {
  // Without layer_types, transformers alternates sliding (even layers) and full; swiglu_limit defaults to 7.
  const ModelConfig c = parse_model_config(
      [] {
        json j = gpt_oss_20b();
        j.erase("layer_types");
        j.erase("swiglu_limit");
        j.erase("attention_bias");
        return j.dump();
      }(),
      "config.json");
  for (std::size_t i = 0; i < c.gpt_oss.sliding.size(); ++i) EXPECT_EQ(c.gpt_oss.sliding[i], i % 2 == 0) << i;
  EXPECT_EQ(c.gpt_oss.swiglu_limit, 7.0);
  EXPECT_TRUE(c.qkv_bias && c.o_bias);
}

TEST(GptOssConfig, EachMalformedFieldIsNamed) {
  has(bad([](json& j) { j.erase("quantization_config"); }), "quantization_config: missing");
  has(bad([](json& j) { j["quantization_config"] = "mxfp4"; }), "quantization_config: must be an object");
  has(bad([](json& j) { j["quantization_config"]["quant_method"] = "fp8"; }),
      "quantization_config.quant_method: 'fp8' is not supported (mxfp4)");
  has(bad([](json& j) { j["quantization_config"].erase("quant_method"); }), "quantization_config.quant_method: missing");
  has(bad([](json& j) { j.erase("num_local_experts"); }), "num_local_experts: missing");
  has(bad([](json& j) { j["num_local_experts"] = 0; }), "num_local_experts: 0 is out of range [1, 256]");
  has(bad([](json& j) { j["num_local_experts"] = 257; }), "num_local_experts: 257 is out of range");
  has(bad([](json& j) { j["num_experts_per_tok"] = 9; }), "num_experts_per_tok: 9 is out of range [1, 8]");
  has(bad([](json& j) { j["num_local_experts"] = 3; }), "num_experts_per_tok: 4 exceeds num_local_experts 3");
  has(bad([](json& j) { j["num_experts_per_tok"] = 4.0; }), "num_experts_per_tok: must be an integer");
  has(bad([](json& j) { j["sliding_window"] = 0; }), "sliding_window: 0 is out of range");
  has(bad([](json& j) { j.erase("sliding_window"); }), "sliding_window: missing");
  has(bad([](json& j) { j["layer_types"].erase(0); }), "layer_types: has 23 entries for 24 num_hidden_layers");
  has(bad([](json& j) { j["layer_types"][3] = "chunked_attention"; }),
      "layer_types[3]: 'chunked_attention' is not a layer type");
  has(bad([](json& j) { j["layer_types"][5] = 1; }), "layer_types[5]: must be a string");
  has(bad([](json& j) { j["layer_types"] = "sliding_attention"; }), "layer_types: must be a list");
  has(bad([](json& j) { j["swiglu_limit"] = -7.0; }), "swiglu_limit:");
  has(bad([](json& j) { j["swiglu_limit"] = "7"; }), "swiglu_limit: must be a number");
  has(bad([](json& j) { j["hidden_size"] = 2888; }), "hidden_size: 2888 is not a multiple of 32");
  has(bad([](json& j) { j["intermediate_size"] = 2890; }), "intermediate_size: 2890 is not a multiple of 32");
  has(bad([](json& j) { j["attention_bias"] = false; }), "attention_bias: false is not supported");
  has(bad([](json& j) { j["rope_scaling"].erase("factor"); }), "rope_scaling.factor: missing");
  has(bad([](json& j) { j["rope_scaling"].erase("original_max_position_embeddings"); }),
      "rope_scaling.original_max_position_embeddings: missing");
  has(bad([](json& j) { j["rope_scaling"]["beta_slow"] = 64.0; }), "rope_scaling.beta_fast: need 0 < beta_slow");
  has(bad([](json& j) { j["rope_scaling"]["truncate"] = "no"; }), "rope_scaling.truncate: must be true or false");
  has(bad([](json& j) { j["rope_scaling"]["factor"] = 0.5; }), "rope_scaling.factor: 0.500000 is not in [1, 1024]");
  has(bad([](json& j) {
        j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                             {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
      }),
      "rope_scaling: llama3 scaling is not gpt-oss's (yarn)");
  has(bad([](json& j) { j["model_type"] = "gpt-oss"; }), "model_type: 'gpt-oss' is not a supported family");
}

TEST(GptOssConfig, YarnFrequenciesFollowTransformers) {
  const ModelConfig c = aipe::llm::synthetic_config("gpt-oss-20b");
  const aipe::kernels::RopeConfig r = aipe::llm::rope_config(c);
  EXPECT_EQ(r.type, aipe::kernels::RopeType::yarn);
  EXPECT_EQ(r.dim, 64);
  EXPECT_FALSE(r.truncate);
  const auto f = aipe::kernels::rope_frequencies(r);
  ASSERT_EQ(f.inv_freq.size(), 32u);
  // attention factor 0.1 ln(32) + 1; the correction range (truncate false: not rounded) from
  // dim ln(4096 / (beta 2 pi)) / (2 ln 150000): low 8.09 (beta_fast 32), high 17.40 (beta_slow 1).
  EXPECT_NEAR(f.attention_scaling, 0.1 * std::log(32.0) + 1.0, 1e-6);
  const double lo = 64 * std::log(4096 / (32 * 2 * M_PI)) / (2 * std::log(150000.0));
  const double hi = 64 * std::log(4096 / (1 * 2 * M_PI)) / (2 * std::log(150000.0));
  for (int j = 0; j < 32; ++j) {
    const double extra = std::pow(150000.0, -2.0 * j / 64), inter = extra / 32;
    const double ramp = std::clamp((j - lo) / (hi - lo), 0.0, 1.0);
    const double want = inter * ramp + extra * (1 - ramp);
    EXPECT_NEAR(f.inv_freq[std::size_t(j)], want, 2e-6 * want) << "j " << j;
  }
}

TEST(GptOssCheckpoint, TensorsSpecsAndFusion) {
  const ModelConfig c = small();
  const auto want = aipe::llm::expected_tensors(c);
  // Embedding, 19 per layer, norm, lm_head.
  ASSERT_EQ(want.size(), 1u + 2 * 19 + 2);
  std::map<std::string, aipe::llm::ExpectedTensor> by;
  for (const auto& e : want) by[e.name] = e;
  const std::string p = "model.layers.1.";
  using S = std::vector<std::int64_t>;
  EXPECT_EQ(by.at(p + "mlp.experts.gate_up_proj_blocks").shape, (S{3, 192, 2, 16}));
  EXPECT_EQ(by.at(p + "mlp.experts.gate_up_proj_scales").shape, (S{3, 192, 2}));
  EXPECT_EQ(by.at(p + "mlp.experts.gate_up_proj_bias").shape, (S{3, 192}));
  EXPECT_EQ(by.at(p + "mlp.experts.down_proj_blocks").shape, (S{3, 64, 3, 16}));
  EXPECT_EQ(by.at(p + "mlp.experts.down_proj_scales").shape, (S{3, 64, 3}));
  EXPECT_EQ(by.at(p + "mlp.experts.down_proj_bias").shape, (S{3, 64}));
  EXPECT_EQ(by.at(p + "mlp.router.weight").shape, (S{3, 64}));
  EXPECT_EQ(by.at(p + "mlp.router.bias").shape, (S{3}));
  EXPECT_EQ(by.at(p + "self_attn.sinks").shape, (S{2}));
  EXPECT_EQ(by.at(p + "self_attn.q_proj.weight").shape, (S{128, 64}));
  EXPECT_EQ(by.at(p + "self_attn.o_proj.weight").shape, (S{64, 128}));
  EXPECT_EQ(by.at(p + "self_attn.o_proj.bias").shape, (S{64}));
  EXPECT_EQ(by.at(p + "mlp.experts.down_proj_blocks").dtype, DType::U8);
  EXPECT_EQ(by.at(p + "mlp.experts.gate_up_proj_scales").dtype, DType::U8);
  EXPECT_FALSE(by.at(p + "mlp.experts.down_proj_bias").dtype.has_value());
  EXPECT_EQ(by.count(p + "mlp.gate_proj.weight"), 0u);

  const auto specs = aipe::llm::weight_specs(c, DType::BF16);
  std::map<std::string, aipe::llm::TensorSpec> sp;
  for (const auto& s : specs) sp[s.name] = s;
  EXPECT_EQ(sp.at(p + "self_attn.qkv_proj.weight").shape, (S{256, 64}));
  EXPECT_EQ(sp.at(p + "self_attn.qkv_proj.bias").shape, (S{256}));
  EXPECT_EQ(sp.at(p + "self_attn.qkv_proj.bias").parts.size(), 3u);
  EXPECT_EQ(sp.count(p + "self_attn.q_proj.weight"), 0u);
  EXPECT_EQ(sp.at(p + "mlp.experts.gate_up_proj_blocks").dtype, DType::U8);
  EXPECT_EQ(sp.at(p + "mlp.experts.gate_up_proj_blocks").bytes(), 3u * 192 * 2 * 16);
  EXPECT_EQ(sp.at(p + "self_attn.sinks").dtype, DType::BF16);
}

namespace {

struct T {
  std::vector<std::int64_t> shape;
  std::string dtype = "BF16";
};

// One safetensors file of these tensors (zero bytes).
void write_st(const fs::path& path, const std::map<std::string, T>& ts) {
  json h = json::object();
  std::uint64_t off = 0;
  for (const auto& [n, t] : ts) {
    std::uint64_t b = t.dtype == "U8" ? 1 : 2;
    for (auto d : t.shape) b *= std::uint64_t(d);
    h[n] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {off, off + b}}};
    off += b;
  }
  std::string hs = h.dump();
  while (hs.size() % 8) hs += ' ';
  std::ofstream f(path, std::ios::binary);
  const std::uint64_t n = hs.size();
  f.write(reinterpret_cast<const char*>(&n), 8);
  f << hs << std::string(off, '\0');
}

std::map<std::string, T> full_checkpoint(const ModelConfig& c) {
  std::map<std::string, T> ts;
  for (const auto& e : aipe::llm::expected_tensors(c)) ts[e.name] = {e.shape, e.dtype ? "U8" : "BF16"};
  return ts;
}

std::string plan_error(const std::function<void(std::map<std::string, T>&)>& edit) {
  const ModelConfig c = small();
  const fs::path d = fs::temp_directory_path() / ("aipe_gptoss_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  auto ts = full_checkpoint(c);
  edit(ts);
  write_st(d / "model.safetensors", ts);
  const std::string e = error_of([&] {
    const auto ck = aipe::llm::Checkpoint::open_dir(d.string());
    aipe::llm::plan_checkpoint(c, ck);
  });
  fs::remove_all(d);
  return e;
}

}  // namespace

TEST(GptOssCheckpoint, ValidatorNamesTensorAndFile) {
  {
    const ModelConfig c = small();
    const fs::path d = fs::temp_directory_path() / ("aipe_gptoss_ok_" + std::to_string(::getpid()));
    fs::remove_all(d);
    fs::create_directories(d);
    write_st(d / "model.safetensors", full_checkpoint(c));
    const auto ck = aipe::llm::Checkpoint::open_dir(d.string());
    const auto plan = aipe::llm::plan_checkpoint(c, ck);
    EXPECT_EQ(plan.tensors.size(), aipe::llm::expected_tensors(c).size());
    fs::remove_all(d);
  }
  const std::string b = "model.layers.0.mlp.experts.gate_up_proj_blocks";
  has(plan_error([&](auto& ts) { ts[b].dtype = "BF16"; }),
      "model.safetensors: tensor '" + b + "' is BF16, expected U8 (MXFP4 blocks and scales are bytes)");
  has(plan_error([&](auto& ts) { ts[b].shape = {3, 192, 4, 8}; }),
      "model.safetensors: tensor '" + b + "' has shape [3, 192, 4, 8], expected [3, 192, 2, 16]");
  has(plan_error([](auto& ts) { ts.erase("model.layers.1.self_attn.sinks"); }),
      "tensor 'model.layers.1.self_attn.sinks' is missing");
  has(plan_error([](auto& ts) { ts["model.layers.0.mlp.experts.down_proj_scales"].dtype = "BF16"; }),
      "'model.layers.0.mlp.experts.down_proj_scales' is BF16, expected U8");
  has(plan_error([](auto& ts) { ts["model.layers.0.mlp.gate_proj.weight"] = {{96, 64}}; }),
      "tensor 'model.layers.0.mlp.gate_proj.weight' is not a weight of the gpt_oss family");
}

TEST(GptOssShape, FromConfigAndChecks) {
  const auto s = aipe::llm::gpt_oss_shape(aipe::llm::synthetic_config("gpt-oss-120b"));
  EXPECT_EQ(s.hidden, 2880);
  EXPECT_EQ(s.experts, 128);
  EXPECT_EQ(s.top_k, 4);
  EXPECT_EQ(s.sliding_window, 128);
  EXPECT_EQ(s.rope.type, aipe::kernels::RopeType::yarn);
  EXPECT_FLOAT_EQ(s.act.limit, 7.0f);
  EXPECT_FLOAT_EQ(s.act.alpha, 1.702f);
  // Per layer: attention 53.1 MB (BF16), router 0.74 MB, 4 experts of 13.2 MB (MXFP4); plus the 1.16 GB
  // unembedding: 5.00 GB for a batch-1 decode step of gpt-oss-120b, 3.71 GB for gpt-oss-20b.
  EXPECT_EQ(aipe::llm::gpt_oss_active_weight_bytes(s), 5002902144u);
  EXPECT_EQ(aipe::llm::gpt_oss_active_weight_bytes(aipe::llm::gpt_oss_shape(aipe::llm::synthetic_config("gpt-oss-20b"))),
            3708083328u);
  // 5.1B active parameters (published: 5.1B), 2 FLOPs each.
  EXPECT_NEAR(aipe::llm::gpt_oss_active_flops(s) / 2, 5.13e9, 0.02e9);

  has(error_of([] { aipe::llm::gpt_oss_shape(aipe::llm::synthetic_config("llama-3.2-1b")); }), "is not gpt_oss");
  auto bad_shape = [&](const std::function<void(aipe::llm::GptOssShape&)>& edit) {
    auto t = s;
    edit(t);
    return error_of([&] { aipe::llm::check_gpt_oss_shape(t); });
  };
  has(bad_shape([](auto& t) { t.head_dim = 96; t.rope.dim = 96; }), "head_dim 96");
  has(bad_shape([](auto& t) { t.top_k = 9; }), "top_k 9");
  has(bad_shape([](auto& t) { t.experts = 300; }), "experts 300");
  has(bad_shape([](auto& t) { t.sliding.pop_back(); }), "sliding has 35 entries for 36 layers");
  has(bad_shape([](auto& t) { t.intermediate = 2888; }), "intermediate 2888 must be a multiple of 32");
  has(bad_shape([](auto& t) { t.heads = 60; }), "heads (60) must be a multiple of kv_heads (8)");
}

// ------------------------------------------------------------------------------------------------- harmony
TEST(Harmony, FormatsMessagesWithChannels) {
  using aipe::llm::HarmonyMessage;
  const std::vector<HarmonyMessage> m = {
      {.role = "system", .content = "S"},
      {.role = "developer", .content = "# Instructions\n\nBe brief."},
      {.role = "user", .content = "2 + 2?"},
      {.role = "assistant", .content = "Easy.", .channel = "analysis"},
      {.role = "assistant", .content = "4", .channel = "final"},
      {.role = "user", .content = "and 3 + 3?"}};
  EXPECT_EQ(aipe::llm::format_harmony(m),
            "<|start|>system<|message|>S<|end|>"
            "<|start|>developer<|message|># Instructions\n\nBe brief.<|end|>"
            "<|start|>user<|message|>2 + 2?<|end|>"
            "<|start|>assistant<|channel|>analysis<|message|>Easy.<|end|>"
            "<|start|>assistant<|channel|>final<|message|>4<|end|>"
            "<|start|>user<|message|>and 3 + 3?<|end|>"
            "<|start|>assistant");
  EXPECT_EQ(aipe::llm::format_harmony({{.role = "user", .content = "x"}}, false), "<|start|>user<|message|>x<|end|>");
  EXPECT_EQ(aipe::llm::harmony_system_content({.current_date = "2025-08-05", .reasoning = "high"}),
            "You are ChatGPT, a large language model trained by OpenAI.\nKnowledge cutoff: 2024-06\n"
            "Current date: 2025-08-05\n\nReasoning: high\n\n"
            "# Valid channels: analysis, commentary, final. Channel must be included for every message.");
  const auto p = aipe::llm::harmony_prompt("hi", "Answer in French.");
  ASSERT_EQ(p.size(), 3u);
  EXPECT_EQ(p[0].role, "system");
  EXPECT_EQ(p[1].content, "# Instructions\n\nAnswer in French.");
  EXPECT_EQ(p[2].content, "hi");
  EXPECT_EQ(aipe::llm::harmony_prompt("hi").size(), 2u);

  has(error_of([] { aipe::llm::format_harmony({{.role = "tool", .content = "x"}}); }),
      "harmony message 0: role 'tool' is not one of");
  has(error_of([] { aipe::llm::format_harmony({{.role = "assistant", .content = "x"}}); }),
      "an assistant message needs a channel");
  has(error_of([] { aipe::llm::format_harmony({{.role = "assistant", .content = "x", .channel = "chat"}}); }),
      "needs a channel (analysis, commentary, final), got 'chat'");
  has(error_of([] { aipe::llm::format_harmony({{.role = "user", .content = "x", .channel = "final"}}); }),
      "a user message has no channel");
  has(error_of([] { aipe::llm::harmony_system_content({.reasoning = "max"}); }), "reasoning 'max'");
}

namespace {

std::string tiny_json() {
  std::ifstream f(std::string(AIPE_SOURCE_DIR) + "/tests/llm/data/tiny-tokenizer.json", std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

}  // namespace

// The tiny test tokenizer with o200k_harmony's framing tokens added (at the next free ids: tokenizers numbers
// added tokens right after the vocabulary) is what a gpt-oss tokenizer.json looks like to the reader: added
// special tokens. They are recognized as single ids in text, and
// encode_harmony puts them where format_harmony writes them, keeping a user's "<|end|>" as text.
TEST(Harmony, SpecialTokensOfATokenizerJson) {
  if (!aipe::llm::tokenizer_available()) GTEST_SKIP() << "aipe was built without PCRE2: the tokenizer is disabled";
  json j = json::parse(tiny_json());
  const std::vector<std::pair<int, const char*>> added = {{285, "<|return|>"}, {286, "<|channel|>"},
                                                          {287, "<|start|>"},  {288, "<|end|>"},
                                                          {289, "<|message|>"}, {290, "<|call|>"}};
  for (const auto& [id, s] : added)
    j["added_tokens"].push_back({{"id", id}, {"content", s}, {"single_word", false}, {"lstrip", false},
                                 {"rstrip", false}, {"normalized", false}, {"special", true}});
  const auto t = aipe::llm::Tokenizer::from_json(j.dump(), "harmony-tokenizer.json");
  const auto h = aipe::llm::harmony_tokens(t);
  EXPECT_EQ(h.start, 287);
  EXPECT_EQ(h.end, 288);
  EXPECT_EQ(h.message, 289);
  EXPECT_EQ(h.channel, 286);
  EXPECT_EQ(h.stops(), (std::vector<std::int32_t>{285, 290}));
  // Recognized in text, as single ids.
  const auto ids = t.encode("<|start|>user<|message|>hi<|end|>");
  EXPECT_EQ(ids.front(), 287);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 289), 1);
  EXPECT_EQ(ids.back(), 288);

  using aipe::llm::HarmonyMessage;
  const std::vector<HarmonyMessage> m = {{.role = "user", .content = "hello <|end|>"},
                                         {.role = "assistant", .content = "ok", .channel = "final"}};
  const auto e = aipe::llm::encode_harmony(t, m);
  EXPECT_EQ(std::count(e.begin(), e.end(), 287), 3);  // two messages and the generation prompt
  EXPECT_EQ(std::count(e.begin(), e.end(), 288), 2);  // the user's "<|end|>" stays text
  EXPECT_EQ(std::count(e.begin(), e.end(), 286), 1);
  EXPECT_EQ(t.decode(e), aipe::llm::format_harmony(m));
  // Without typed special tokens, both paths give the same ids.
  const std::vector<HarmonyMessage> plain = {{.role = "user", .content = "hello world"}};
  EXPECT_EQ(aipe::llm::encode_harmony(t, plain), t.encode(aipe::llm::format_harmony(plain)));
  // A tokenizer without them is named.
  has(error_of([] {
        aipe::llm::harmony_tokens(aipe::llm::Tokenizer::from_json(tiny_json(), "tiny.json"));
      }),
      "the tokenizer has no '<|start|>' token");
}
