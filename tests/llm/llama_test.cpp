// The Llama model's host side (CPU): the weight list of a config and its checks.
#include <gtest/gtest.h>

#include <set>

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
  EXPECT_DOUBLE_EQ(s.rope.theta, 500000.0);
  EXPECT_EQ(s.rope.original_max_positions, 8192);
  EXPECT_EQ(s.rope.dim, 128);
}

TEST(Llama, EngineRefusesWhatItCannotRun) {
  ModelConfig c = synthetic_config("llama-3.2-1b");
  EXPECT_TRUE(llama_shape(c).tied_embeddings);
  ModelConfig o = c;
  o.o_bias = true;
  EXPECT_THROW(llama_shape(o), std::invalid_argument);
  ModelConfig f = c;
  f.dtype = DType::F16;
  EXPECT_THROW(llama_shape(f), std::invalid_argument);
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
