// The Llama model's host side (CPU): the weight list of a config, its checks, and the pages a batch needs.
#include <gtest/gtest.h>

#include <set>

#include "aipe/llm/engine.hpp"
#include "aipe/llm/llama.hpp"
#include "aipe/llm/loader.hpp"

using namespace aipe::llm;

TEST(Llama, ShapeOfLlama31_8BMatchesThePublishedModel) {
  const LlamaShape s = llama_shape(synthetic_config("llama-3.1-8b"));
  EXPECT_EQ(s.hidden, 4096);
  EXPECT_EQ(s.intermediate, 14336);
  EXPECT_EQ(s.layers, 32);
  EXPECT_EQ(s.heads, 32);
  EXPECT_EQ(s.kv_heads, 8);
  EXPECT_EQ(s.head_dim, 128);
  EXPECT_EQ(s.vocab, 128256);
  EXPECT_FALSE(s.tied_embeddings);
  EXPECT_EQ(s.rope.type, aipe::kernels::RopeType::llama3);
  EXPECT_DOUBLE_EQ(s.rope.factor, 8.0);
  // meta-llama/Llama-3.1-8B: 8,030,261,248 parameters.
  EXPECT_EQ(s.parameters(), 8030261248ull);
}

TEST(Llama, Llama32_1BTiesItsEmbeddings) {
  const LlamaShape s = llama_shape(synthetic_config("llama-3.2-1b"));
  EXPECT_TRUE(s.tied_embeddings);
  EXPECT_EQ(s.head_dim, 64);
  // meta-llama/Llama-3.2-1B: 1,235,814,400 parameters (the LM head is the embedding).
  EXPECT_EQ(s.parameters(), 1235814400ull);
  for (const auto& t : llama_weight_specs(s)) EXPECT_NE(t.name, "lm_head.weight");
}

TEST(Llama, WeightSpecsFuseGateAndUpInCheckpointOrder) {
  LlamaShape s = llama_shape(synthetic_config("llama-3.2-1b"));
  const auto specs = llama_weight_specs(s);
  std::set<std::string> names;
  for (const auto& t : specs) EXPECT_TRUE(names.insert(t.name).second) << t.name << " twice";
  const auto it = std::find_if(specs.begin(), specs.end(),
                               [](const TensorSpec& t) { return t.name == "model.layers.3.mlp.gate_up_proj.weight"; });
  ASSERT_NE(it, specs.end());
  EXPECT_EQ(it->shape, (std::vector<std::int64_t>{2 * 8192, 2048}));
  EXPECT_EQ(it->parts, (std::vector<std::string>{"model.layers.3.mlp.gate_proj.weight", "model.layers.3.mlp.up_proj.weight"}));
  EXPECT_EQ(names.count("model.layers.15.self_attn.k_proj.weight"), 1u);
  EXPECT_EQ(names.count("model.layers.16.self_attn.k_proj.weight"), 0u);  // 16 layers
}

TEST(Llama, ShapeChecksNameTheField) {
  LlamaShape s = llama_shape(synthetic_config("llama-3.2-1b"));
  auto msg = [](LlamaShape x) {
    try {
      check_llama_shape(x);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(msg(s), "");
  LlamaShape a = s;
  a.head_dim = 96;
  EXPECT_NE(msg(a).find("head_dim"), std::string::npos);
  LlamaShape b = s;
  b.kv_heads = 5;
  EXPECT_NE(msg(b).find("kv_heads"), std::string::npos);
  LlamaShape c = s;
  c.hidden = 2050;
  EXPECT_NE(msg(c).find("hidden"), std::string::npos);
}

TEST(Llama, PagesNeededRoundsEachSequenceUp) {
  std::vector<GenerationRequest> r(2);
  r[0].prompt.assign(15, 1);
  r[0].max_new_tokens = 1;   // 16 tokens: 1 page of 16
  r[1].prompt.assign(16, 1);
  r[1].max_new_tokens = 1;   // 17 tokens: 2 pages
  EXPECT_EQ(pages_needed(r, 16), 3);
  EXPECT_EQ(pages_needed(r, 64), 2);
}
