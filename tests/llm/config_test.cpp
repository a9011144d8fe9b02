// config.json and generation_config.json readers: the published Llama 3.x files parse to the built-in shapes,
// each malformed case is an std::invalid_argument naming the key, and the llama3 RoPE scaling matches its formula.
#include "aipe/llm/config.hpp"

#include <gtest/gtest.h>

#include "error_of.hpp"

#include <cmath>
#include <functional>
#include <nlohmann/json.hpp>
#include <numbers>

#include "aipe/llm/generation_config.hpp"

using aipe::llm::ModelConfig;
using aipe::llm::parse_model_config;
using nlohmann::json;

namespace {

// meta-llama/Llama-3.2-1B's config.json, as published.
json llama32_1b() {
  return json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
    "bos_token_id": 128000, "eos_token_id": 128001, "head_dim": 64, "hidden_act": "silu", "hidden_size": 2048,
    "initializer_range": 0.02, "intermediate_size": 8192, "max_position_embeddings": 131072, "mlp_bias": false,
    "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8,
    "pretraining_tp": 1, "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
    "transformers_version": "4.45.0.dev0", "use_cache": true, "vocab_size": 128256})");
}

using aipe::test::error_of;

// The error for config `j` after `edit`.
std::string bad(const std::function<void(json&)>& edit) {
  json j = llama32_1b();
  edit(j);
  return error_of([&] { parse_model_config(j.dump(), "m/config.json"); });
}

}  // namespace

TEST(ModelConfig, PublishedLlama32_1BMatchesTheBuiltInShape) {
  const ModelConfig c = parse_model_config(llama32_1b().dump(), "config.json");
  const ModelConfig s = aipe::llm::synthetic_config("llama-3.2-1b");
  EXPECT_EQ(c.family, aipe::llm::Family::Llama);
  EXPECT_EQ(c.architecture, "LlamaForCausalLM");
  for (const auto& [a, b] : {std::pair{c.hidden_size, s.hidden_size}, {c.intermediate_size, s.intermediate_size},
                             {c.num_hidden_layers, s.num_hidden_layers}, {c.num_attention_heads, s.num_attention_heads},
                             {c.num_key_value_heads, s.num_key_value_heads}, {c.head_dim, s.head_dim},
                             {c.vocab_size, s.vocab_size}, {c.max_position_embeddings, s.max_position_embeddings}})
    EXPECT_EQ(a, b);
  EXPECT_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_EQ(c.rope_theta, 500000.0);
  ASSERT_TRUE(c.rope_scaling && s.rope_scaling);
  EXPECT_EQ(c.rope_scaling->factor, 32.0);
  EXPECT_EQ(s.rope_scaling->factor, 32.0);
  EXPECT_EQ(c.rope_scaling->original_max_position_embeddings, 8192);
  EXPECT_TRUE(c.tie_word_embeddings && s.tie_word_embeddings);
  EXPECT_EQ(c.dtype, aipe::llm::DType::BF16);
  EXPECT_EQ(c.bos_token_id, 128000);
  EXPECT_EQ(c.eos_token_ids, (std::vector<std::int64_t>{128001}));
  EXPECT_FALSE(c.qkv_bias || c.o_bias || c.mlp_bias);
  // 1.24B parameters with the tied head (the published count), 32 KiB of BF16 K+V per token (16 layers x 2 x 512).
  EXPECT_EQ(c.parameter_count(), 1'235'814'400);
  EXPECT_EQ(s.parameter_count(), 1'235'814'400);
  EXPECT_EQ(c.kv_bytes_per_token(2), 16 * 2 * 512 * 2);
}

TEST(ModelConfig, BuiltInShapes) {
  const auto b8 = aipe::llm::load_model_config("synthetic:llama-3.1-8b");
  EXPECT_TRUE(b8.synthetic);
  EXPECT_EQ(b8.hidden_size, 4096);
  EXPECT_EQ(b8.intermediate_size, 14336);
  EXPECT_EQ(b8.num_hidden_layers, 32);
  EXPECT_EQ(b8.head_dim, 128);
  EXPECT_FALSE(b8.tie_word_embeddings);
  EXPECT_EQ(b8.rope_scaling->factor, 8.0);
  EXPECT_EQ(b8.parameter_count(), 8'030'261'248);  // "8.03B"
  const auto b70 = aipe::llm::synthetic_config("llama-3.1-70b");
  EXPECT_EQ(b70.hidden_size, 8192);
  EXPECT_EQ(b70.intermediate_size, 28672);
  EXPECT_EQ(b70.num_hidden_layers, 80);
  EXPECT_EQ(b70.num_attention_heads, 64);
  EXPECT_EQ(b70.parameter_count(), 70'553'706'496);  // "70.6B"
  const std::string e = error_of([] { aipe::llm::load_model_config("synthetic:llama-9"); });
  EXPECT_NE(e.find("no built-in model 'synthetic:llama-9' (known: synthetic:llama-3.2-1b"), std::string::npos) << e;
}

TEST(ModelConfig, OptionalKeysTakeHuggingFaceDefaults) {
  json j = llama32_1b();
  for (const char* k : {"head_dim", "num_key_value_heads", "rope_scaling", "tie_word_embeddings", "attention_bias",
                        "rope_theta", "eos_token_id", "bos_token_id", "torch_dtype", "architectures"})
    j.erase(k);
  j["eos_token_id"] = {128001, 128008, 128009};  // the Instruct models list three
  const auto c = parse_model_config(j.dump());
  EXPECT_EQ(c.head_dim, 64);                // hidden / heads
  EXPECT_EQ(c.num_key_value_heads, 32);     // MHA
  EXPECT_FALSE(c.rope_scaling.has_value());
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_FALSE(c.dtype_given);
  EXPECT_EQ(c.eos_token_ids, (std::vector<std::int64_t>{128001, 128008, 128009}));
  EXPECT_FALSE(c.bos_token_id.has_value());
  j["rope_scaling"] = {{"type", "default"}};  // the older spelling
  j["dtype"] = "float16";                    // the newer spelling of torch_dtype
  const auto d = parse_model_config(j.dump());
  EXPECT_FALSE(d.rope_scaling.has_value());
  EXPECT_EQ(d.dtype, aipe::llm::DType::F16);
  EXPECT_TRUE(d.dtype_given);
}

TEST(ModelConfig, QwenStyleAttentionBias) {
  json j = llama32_1b();
  j["attention_bias"] = true;
  const auto l = parse_model_config(j.dump());
  EXPECT_TRUE(l.qkv_bias && l.o_bias);
  j["model_type"] = "qwen2";
  j["architectures"] = {"Qwen2ForCausalLM"};
  j.erase("attention_bias");
  const auto q = parse_model_config(j.dump());
  EXPECT_EQ(q.family, aipe::llm::Family::Qwen2);
  EXPECT_TRUE(q.qkv_bias);
  EXPECT_FALSE(q.o_bias);
}

TEST(ModelConfig, MalformedConfigsNameTheKey) {
  auto has = [](const std::string& e, const std::string& s) {
    EXPECT_NE(e.find(s), std::string::npos) << "'" << e << "' lacks '" << s << "'";
  };
  has(bad([](json& j) { j.erase("hidden_size"); }), "m/config.json: hidden_size: missing");
  has(bad([](json& j) { j["hidden_size"] = "2048"; }), "hidden_size: must be an integer, not a string");
  has(bad([](json& j) { j["hidden_size"] = 2048.0; }), "hidden_size: must be an integer, not a number");
  has(bad([](json& j) { j["num_hidden_layers"] = -3; }), "num_hidden_layers: -3 is out of range [1, 4096]");
  has(bad([](json& j) { j["num_hidden_layers"] = 0; }), "num_hidden_layers: 0 is out of range");
  has(bad([](json& j) { j["vocab_size"] = 1e30; }), "vocab_size: must be an integer");
  has(bad([](json& j) { j["num_key_value_heads"] = 6; }),
      "num_key_value_heads: 32 num_attention_heads are not a multiple of 6 key/value heads");
  has(bad([](json& j) { j["head_dim"] = 128; }), "head_dim: 128 x 32 heads = 4096, not hidden_size 2048");
  has(bad([](json& j) { j["head_dim"] = 63; }), "head_dim: 63 is odd");
  has(bad([](json& j) { j.erase("head_dim"); j["num_attention_heads"] = 30; j["num_key_value_heads"] = 10; }),
      "num_attention_heads: hidden_size 2048 is not divisible by 30 heads");
  has(bad([](json& j) { j["rope_scaling"]["rope_type"] = "longrope"; }),
      "rope_scaling.rope_type: 'longrope' is not supported (llama3, yarn, default)");
  has(bad([](json& j) { j["rope_scaling"].erase("rope_type"); }), "rope_scaling.rope_type: missing");
  has(bad([](json& j) { j["rope_scaling"].erase("factor"); }), "rope_scaling.factor: missing");
  has(bad([](json& j) { j["rope_scaling"]["high_freq_factor"] = 0.5; }),
      "rope_scaling.high_freq_factor: 0.500000 must be greater than low_freq_factor");
  has(bad([](json& j) { j["rope_scaling"] = 5; }), "rope_scaling: must be an object or null");
  has(bad([](json& j) { j["model_type"] = "mistral"; }), "model_type: 'mistral' is not a supported family");
  has(bad([](json& j) { j.erase("model_type"); }), "model_type: missing");
  has(bad([](json& j) { j["architectures"] = {"LlamaForSequenceClassification"}; }), "is not a causal language model");
  has(bad([](json& j) { j["hidden_act"] = "gelu"; }), "hidden_act: 'gelu' is not supported");
  has(bad([](json& j) { j["rms_norm_eps"] = 0; }), "rms_norm_eps: 0.000000 is not in (0, 1)");
  has(bad([](json& j) { j["rms_norm_eps"] = "1e-5"; }), "rms_norm_eps: must be a number, not a string");
  has(bad([](json& j) { j["tie_word_embeddings"] = 1; }), "tie_word_embeddings: must be true or false");
  has(bad([](json& j) { j["torch_dtype"] = "int8"; }), "torch_dtype: 'int8' is not a supported weight dtype");
  has(bad([](json& j) { j["eos_token_id"] = {128001, "x"}; }), "eos_token_id[1]: must be a token id");
  has(bad([](json& j) { j["eos_token_id"] = 200000; }), "eos_token_id: token id 200000 is outside the vocabulary");
  has(bad([](json& j) { j["bos_token_id"] = {1, 2}; }), "bos_token_id: must be one token id");
  has(error_of([] { parse_model_config("{not json", "x.json"); }), "x.json: not valid JSON");
  has(error_of([] { parse_model_config("[1]", "x.json"); }), "x.json: not a JSON object");
  has(error_of([] { aipe::llm::load_model_config("/nonexistent/model"); }), "config.json: cannot open");
}

// The RoPE the config asks for, through the kernels' frequency function (FP32, as transformers computes it):
// _compute_llama3_parameters at a high frequency (unchanged), a low one (divided by factor) and the smooth band.
TEST(ModelConfig, Llama3RopeFrequencies) {
  const auto c = aipe::llm::synthetic_config("llama-3.1-8b");  // theta 5e5, d 128, factor 8, 1..4, 8192
  const auto r = aipe::llm::rope_config(c);
  EXPECT_EQ(r.type, aipe::kernels::RopeType::llama3);
  EXPECT_EQ(r.dim, 128);
  const auto f = aipe::kernels::rope_frequencies(r).inv_freq;
  ASSERT_EQ(f.size(), 64u);
  auto base = [&](int i) { return 1.0 / std::pow(500000.0, 2.0 * i / 128.0); };
  EXPECT_FLOAT_EQ(f[0], 1.0f);
  EXPECT_NEAR(f[10], base(10), 1e-6 * base(10));  // wavelength 2 pi / base(10) = 48.6 < 8192 / 4
  EXPECT_NEAR(f[63], base(63) / 8, 1e-6 * base(63));
  int smooth = 0;
  for (int i = 0; i < 64; ++i) {
    const double wl = 2 * std::numbers::pi / base(i);
    if (wl < 2048 || wl > 8192) continue;
    const double s = (8192 / wl - 1) / 3;
    EXPECT_NEAR(f[i], (1 - s) * base(i) / 8 + s * base(i), 1e-5 * base(i)) << i;
    ++smooth;
  }
  EXPECT_GT(smooth, 0);  // the band is not empty at this theta
  ModelConfig plain = c;
  plain.rope_scaling.reset();
  EXPECT_EQ(aipe::llm::rope_config(plain).type, aipe::kernels::RopeType::plain);
  EXPECT_NEAR(aipe::kernels::rope_frequencies(aipe::llm::rope_config(plain)).inv_freq[63], base(63), 1e-6 * base(63));
}

TEST(GenerationConfig, Llama31InstructAndDefaults) {
  const auto m = aipe::llm::synthetic_config("llama-3.1-8b");
  const auto g = aipe::llm::parse_generation_config(
      R"({"bos_token_id": 128000, "do_sample": true, "eos_token_id": [128001, 128008, 128009],
          "temperature": 0.6, "top_p": 0.9, "transformers_version": "4.42.3"})",
      "generation_config.json", m);
  EXPECT_EQ(g.eos_token_ids, (std::vector<std::int64_t>{128001, 128008, 128009}));
  EXPECT_EQ(g.temperature, 0.6);
  EXPECT_EQ(g.top_p, 0.9);
  EXPECT_EQ(g.top_k, 50);
  EXPECT_EQ(g.effective_temperature(), 0.6);
  const auto d = aipe::llm::parse_generation_config("{}", "g.json", m);
  EXPECT_EQ(d.eos_token_ids, m.eos_token_ids);  // from config.json
  EXPECT_EQ(d.bos_token_id, 128000);
  EXPECT_FALSE(d.do_sample);
  EXPECT_EQ(d.effective_temperature(), 0.0);  // greedy
  const auto s = aipe::llm::load_generation_config("synthetic:llama-3.1-8b", m);
  EXPECT_EQ(s.eos_token_ids, m.eos_token_ids);
  auto err = [&](const std::string& t) {
    return error_of([&] { aipe::llm::parse_generation_config(t, "g.json", m); });
  };
  EXPECT_NE(err(R"({"temperature": 0})").find("g.json: temperature: 0.000000 must be > 0"), std::string::npos);
  EXPECT_NE(err(R"({"top_p": 1.5})").find("top_p: 1.500000 is not in (0, 1]"), std::string::npos);
  EXPECT_NE(err(R"({"top_k": -1})").find("top_k: -1 is out of range"), std::string::npos);
  EXPECT_NE(err(R"({"eos_token_id": [1, 999999]})").find("eos_token_id: 999999 is out of range"), std::string::npos);
  EXPECT_NE(err(R"({"do_sample": "yes"})").find("do_sample: must be true or false"), std::string::npos);
  EXPECT_NE(err(R"({"temperature": "hot"})").find("temperature: must be a number"), std::string::npos);
  EXPECT_NE(err("[").find("g.json: not valid JSON"), std::string::npos);
}

// transformers 5 writes theta and the scaling as one object, rope_parameters; read the same as the older layout.
TEST(ModelConfig, Transformers5RopeParameters) {
  json j = llama32_1b();
  const json scaling = j["rope_scaling"];
  j.erase("rope_scaling");
  j.erase("rope_theta");
  j["rope_parameters"] = scaling;
  j["rope_parameters"]["rope_theta"] = 500000.0;
  const auto c = parse_model_config(j.dump());
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  ASSERT_TRUE(c.rope_scaling.has_value());
  EXPECT_DOUBLE_EQ(c.rope_scaling->factor, 32.0);
  EXPECT_EQ(c.rope_scaling->original_max_position_embeddings, 8192);
  // Plain RoPE in the new layout.
  json p = llama32_1b();
  p.erase("rope_scaling");
  p.erase("rope_theta");
  p["rope_parameters"] = {{"rope_theta", 10000.0}, {"rope_type", "default"}};
  const auto cp = parse_model_config(p.dump());
  EXPECT_DOUBLE_EQ(cp.rope_theta, 10000.0);
  EXPECT_FALSE(cp.rope_scaling.has_value());
  // Errors name the object they are in; two thetas must agree.
  EXPECT_NE(bad([](json& x) {
              x.erase("rope_scaling");
              x["rope_parameters"] = {{"rope_theta", 5e5}, {"rope_type", "llama3"}, {"factor", 0.5},
                                      {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
                                      {"original_max_position_embeddings", 8192}};
            }).find("rope_parameters.factor"),
            std::string::npos);
  EXPECT_NE(bad([](json& x) { x["rope_parameters"] = {{"rope_theta", 1e4}}; }).find("disagrees with rope_theta"),
            std::string::npos);
}
