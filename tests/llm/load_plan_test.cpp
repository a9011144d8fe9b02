// The checkpoint validator on small Llama-shaped safetensors files written by the test (hidden 8, 2 heads of 4,
// 1 K/V head, intermediate 12, 2 layers, vocab 10 -- no dimension equal to another, so a swapped shape shows):
// valid single-file and sharded checkpoints, and each mismatch named with its tensor and file. Then a whole model
// folder through open_model_files.
#include "aipe/llm/load_plan.hpp"
#include "aipe/llm/model_files.hpp"
#include "aipe/llm/weight_specs.hpp"

#include <gtest/gtest.h>

#include "error_of.hpp"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <nlohmann/json.hpp>

namespace fs = std::filesystem;
using aipe::llm::Checkpoint;
using aipe::llm::DType;
using aipe::llm::ModelConfig;

namespace {

ModelConfig tiny(bool tied = false, bool bias = false) {
  nlohmann::json j = {{"model_type", "llama"}, {"hidden_size", 8},        {"intermediate_size", 12},
                      {"num_hidden_layers", 2}, {"num_attention_heads", 2}, {"num_key_value_heads", 1},
                      {"vocab_size", 10},        {"max_position_embeddings", 64}, {"rms_norm_eps", 1e-5},
                      {"tie_word_embeddings", tied}, {"attention_bias", bias}, {"torch_dtype", "bfloat16"}};
  return aipe::llm::parse_model_config(j.dump(), "tiny/config.json");
}

struct T {
  std::vector<std::int64_t> shape;
  std::string dtype = "BF16";
};

fs::path temp_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("aipe_plan_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::size_t elem(const std::string& dt) { return dt == "F32" ? 4 : 2; }

// A safetensors file of these tensors; tensor k's bytes are all (k + 1), in name order.
void write_st(const fs::path& p, const std::map<std::string, T>& ts) {
  nlohmann::json h = nlohmann::json::object();
  std::uint64_t off = 0;
  std::string data;
  char fill = 1;
  for (const auto& [n, t] : ts) {
    std::uint64_t b = elem(t.dtype);
    for (auto d : t.shape) b *= static_cast<std::uint64_t>(d);
    h[n] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {off, off + b}}};
    data.append(b, fill++);
    off += b;
  }
  const std::string hs = h.dump();
  std::ofstream o(p, std::ios::binary);
  const std::uint64_t len = hs.size();
  for (int i = 0; i < 8; ++i) o.put(static_cast<char>((len >> (8 * i)) & 0xff));
  o << hs << data;
}

// The tensors a correct checkpoint of `c` holds.
std::map<std::string, T> good(const ModelConfig& c) {
  std::map<std::string, T> m;
  for (const auto& e : aipe::llm::expected_tensors(c)) m[e.name] = {e.shape};
  return m;
}

using aipe::test::error_of;

}  // namespace

TEST(LoadPlan, ExpectedTensorsOfTheLlamaFamily) {
  const auto v = aipe::llm::expected_tensors(tiny());
  ASSERT_EQ(v.size(), 1 + 2 * 9 + 2u);
  EXPECT_EQ(v[0].name, "model.embed_tokens.weight");
  EXPECT_EQ(v[0].shape, (std::vector<std::int64_t>{10, 8}));
  EXPECT_EQ(v[2].name, "model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(v[2].shape, (std::vector<std::int64_t>{8, 8}));
  EXPECT_EQ(v[3].shape, (std::vector<std::int64_t>{4, 8}));  // k: 1 kv head x 4
  EXPECT_EQ(v[9].name, "model.layers.0.mlp.down_proj.weight");
  EXPECT_EQ(v[9].shape, (std::vector<std::int64_t>{8, 12}));
  EXPECT_EQ(v.back().name, "lm_head.weight");
  EXPECT_EQ(aipe::llm::expected_tensors(tiny(true)).back().name, "model.norm.weight");
  const auto b = aipe::llm::expected_tensors(tiny(false, true));
  EXPECT_EQ(b.size(), v.size() + 2 * 4);  // q, k, v, o biases per layer
  // The 1B shape: 1 + 16 x 9 + 1 tensors (tied), and its parameter count is the sum of their sizes.
  const auto s = aipe::llm::synthetic_config("llama-3.2-1b");
  const auto e = aipe::llm::expected_tensors(s);
  EXPECT_EQ(e.size(), 146u);
  std::int64_t params = 0;
  for (const auto& t : e) {
    std::int64_t n = 1;
    for (auto d : t.shape) n *= d;
    params += n;
  }
  EXPECT_EQ(params, s.parameter_count());
}

TEST(LoadPlan, SingleFilePlanPointsAtTheBytes) {
  const auto d = temp_dir("single");
  const auto c = tiny();
  write_st(d / "model.safetensors", good(c));
  const auto ck = Checkpoint::open_dir(d.string());
  const auto plan = aipe::llm::plan_checkpoint(c, ck);
  ASSERT_EQ(plan.tensors.size(), aipe::llm::expected_tensors(c).size());
  EXPECT_EQ(plan.dtype, DType::BF16);
  EXPECT_EQ(plan.total_bytes, static_cast<std::uint64_t>(c.parameter_count()) * 2);
  // Each planned range, read back from the file, holds that tensor's fill byte.
  std::ifstream f(d / "model.safetensors", std::ios::binary);
  const std::string all((std::istreambuf_iterator<char>(f)), {});
  for (const auto& t : plan.tensors) {
    ASSERT_LE(t.offset + t.bytes, all.size()) << t.name;
    const char want = static_cast<char>(*t.data);
    EXPECT_EQ(all[t.offset], want) << t.name;
    EXPECT_EQ(all[t.offset + t.bytes - 1], want) << t.name;
    EXPECT_EQ(t.file, (d / "model.safetensors").string());
  }
  EXPECT_TRUE(plan.ignored.empty());
}

TEST(LoadPlan, ShardedTiedCheckpointWithIgnoredBuffers) {
  const auto d = temp_dir("sharded");
  const auto c = tiny(true);
  auto all = good(c);
  std::map<std::string, T> s1, s2;
  for (auto& [n, t] : all) (n.find("layers.1.") != std::string::npos || n == "model.norm.weight" ? s2 : s1)[n] = t;
  s1["model.layers.0.self_attn.rotary_emb.inv_freq"] = {{2}, "F32"};
  s2["lm_head.weight"] = {{10, 8}};  // redundant with the tied embedding
  write_st(d / "model-00001-of-00002.safetensors", s1);
  write_st(d / "model-00002-of-00002.safetensors", s2);
  nlohmann::json wm;
  for (const auto& [n, t] : s1) wm[n] = "model-00001-of-00002.safetensors";
  for (const auto& [n, t] : s2) wm[n] = "model-00002-of-00002.safetensors";
  std::ofstream(d / "model.safetensors.index.json") << nlohmann::json{{"weight_map", wm}}.dump();
  const auto plan = aipe::llm::plan_checkpoint(c, Checkpoint::open_dir(d.string()));
  EXPECT_EQ(plan.tensors.size(), aipe::llm::expected_tensors(c).size());
  EXPECT_EQ(plan.ignored.size(), 2u);
  for (const auto& t : plan.tensors)
    EXPECT_EQ(fs::path(t.file).filename().string(),
              t.name.find("layers.1.") != std::string::npos || t.name == "model.norm.weight"
                  ? "model-00002-of-00002.safetensors"
                  : "model-00001-of-00002.safetensors")
        << t.name;
}

TEST(LoadPlan, MismatchesNameTensorAndFile) {
  const auto c = tiny();
  auto run = [&](const std::string& name, const std::function<void(std::map<std::string, T>&)>& edit,
                 const ModelConfig& cfg) {
    const auto d = temp_dir(name);
    auto m = good(c);
    edit(m);
    write_st(d / "model.safetensors", m);
    return error_of([&] { aipe::llm::plan_checkpoint(cfg, Checkpoint::open_dir(d.string())); });
  };
  auto has = [](const std::string& e, const std::string& s) {
    EXPECT_NE(e.find(s), std::string::npos) << "'" << e << "' lacks '" << s << "'";
  };
  has(run("missing", [](auto& m) { m.erase("model.layers.1.mlp.up_proj.weight"); }, c),
      "tensor 'model.layers.1.mlp.up_proj.weight' is missing (expected [12, 8] BF16)");
  has(run("extra", [](auto& m) { m["model.layers.2.mlp.up_proj.weight"] = {{12, 8}}; }, c),
      "model.safetensors: tensor 'model.layers.2.mlp.up_proj.weight' is not a weight of the llama family");
  has(run("shape", [](auto& m) { m["model.layers.0.self_attn.k_proj.weight"] = {{8, 8}}; }, c),
      "model.safetensors: tensor 'model.layers.0.self_attn.k_proj.weight' has shape [8, 8], expected [4, 8]");
  has(run("transposed", [](auto& m) { m["model.layers.0.mlp.down_proj.weight"] = {{12, 8}}; }, c),
      "tensor 'model.layers.0.mlp.down_proj.weight' has shape [12, 8], expected [8, 12]");
  has(run("dtype", [](auto& m) { m["model.norm.weight"] = {{8}, "F32"}; }, c),
      "model.safetensors: tensor 'model.norm.weight' is F32, expected BF16 (config.json torch_dtype)");
  // A checkpoint with biases given a config without them: the biases are unexpected.
  has(run("bias", [](auto& m) { m["model.layers.0.self_attn.q_proj.bias"] = {{8}}; }, c),
      "tensor 'model.layers.0.self_attn.q_proj.bias' is not a weight");
  // A config with biases given a checkpoint without them: every bias is missing, and the count says so.
  const std::string e = run("nobias", [](auto&) {}, tiny(false, true));
  has(e, "8 problems");
  has(e, "tensor 'model.layers.0.self_attn.q_proj.bias' is missing (expected [8] BF16)");
  // Many problems: the first 8 are listed and the rest counted.
  has(run("many", [](auto& m) { for (auto& [n, t] : m) t.dtype = "F32"; }, c), "(13 more)");
}

TEST(LoadPlan, DtypeFromTheCheckpointWhenTheConfigNamesNone) {
  nlohmann::json j = {{"model_type", "llama"}, {"hidden_size", 8},        {"intermediate_size", 12},
                      {"num_hidden_layers", 1}, {"num_attention_heads", 2}, {"vocab_size", 10},
                      {"max_position_embeddings", 64}, {"rms_norm_eps", 1e-6}};
  const auto c = aipe::llm::parse_model_config(j.dump());
  auto m = good(c);
  for (auto& [n, t] : m) t.dtype = "F32";
  const auto d = temp_dir("f32");
  write_st(d / "model.safetensors", m);
  const auto plan = aipe::llm::plan_checkpoint(c, Checkpoint::open_dir(d.string()));
  EXPECT_EQ(plan.dtype, DType::F32);
  EXPECT_EQ(plan.total_bytes, static_cast<std::uint64_t>(c.parameter_count()) * 4);
}

// A whole model folder: config, weights, tokenizer and generation config, opened together and checked against
// each other (the tokenizer's ids must index the embedding).
TEST(ModelFiles, OpensAFolderAndChecksTheTokenizerFits) {
  const auto d = temp_dir("folder");
  nlohmann::json j = {{"model_type", "llama"},        {"hidden_size", 8},        {"intermediate_size", 12},
                      {"num_hidden_layers", 1},       {"num_attention_heads", 2}, {"vocab_size", 288},
                      {"max_position_embeddings", 64}, {"rms_norm_eps", 1e-5},     {"torch_dtype", "bfloat16"},
                      {"eos_token_id", 283}};
  std::ofstream(d / "config.json") << j.dump();
  const auto c = aipe::llm::parse_model_config(j.dump());
  write_st(d / "model.safetensors", good(c));
  std::ofstream(d / "generation_config.json") << R"({"temperature": 0.7, "do_sample": true, "eos_token_id": [283, 280]})";
  // Without a tokenizer.json: fine, unless one is needed.
  auto m = aipe::llm::open_model_files(d.string());
  EXPECT_FALSE(m.tokenizer.has_value());
  EXPECT_EQ(m.plan.tensors.size(), aipe::llm::expected_tensors(c).size());
  EXPECT_EQ(m.generation.eos_token_ids, (std::vector<std::int64_t>{283, 280}));
  EXPECT_EQ(m.generation.effective_temperature(), 0.7);
  EXPECT_NE(error_of([&] { aipe::llm::open_model_files(d.string(), true); }).find("tokenizer.json: missing"),
            std::string::npos);
  if (!aipe::llm::tokenizer_available()) GTEST_SKIP() << "aipe was built without PCRE2: the tokenizer is disabled";
  fs::copy_file(fs::path(AIPE_SOURCE_DIR) / "tests/llm/data/tiny-tokenizer.json", d / "tokenizer.json");
  m = aipe::llm::open_model_files(d.string(), true);
  ASSERT_TRUE(m.tokenizer.has_value());
  EXPECT_EQ(m.tokenizer->encode("hello"), (std::vector<std::int32_t>{262}));
  // A model with a smaller vocabulary than the tokenizer's 285 ids cannot embed its tokens.
  j["vocab_size"] = 200;
  j["eos_token_id"] = 2;
  std::ofstream(d / "config.json") << j.dump();
  std::ofstream(d / "generation_config.json") << "{}";
  write_st(d / "model.safetensors", good(aipe::llm::parse_model_config(j.dump())));
  const std::string e = error_of([&] { aipe::llm::open_model_files(d.string()); });
  EXPECT_NE(e.find("tokenizer.json: ids run to 284 but " + d.string() + " has vocab_size 200"), std::string::npos) << e;
}

TEST(ModelFiles, SyntheticModelsHaveNoFiles) {
  const auto m = aipe::llm::open_model_files("synthetic:llama-3.2-1b");
  EXPECT_TRUE(m.config.synthetic);
  EXPECT_EQ(m.checkpoint, nullptr);
  EXPECT_TRUE(m.plan.tensors.empty());
  EXPECT_EQ(m.generation.eos_token_ids, (std::vector<std::int64_t>{128001}));
  EXPECT_NE(error_of([] { aipe::llm::open_model_files("synthetic:llama-3.2-1b", true); }).find("no tokenizer"),
            std::string::npos);
}

// The arena specs: fused q/k/v and gate/up, the same bytes as the checkpoint's tensors, every part a tensor the
// load plan holds (what DeviceWeights::load copies from).
TEST(WeightSpecs, FusedProjectionsCoverTheCheckpoint) {
  const auto c = tiny(false, true);  // with q/k/v/o biases
  const auto f = aipe::llm::weight_specs(c, DType::BF16, true);
  ASSERT_EQ(f.size(), 1 + 2 * 8 + 2u);  // per layer: 2 norms, qkv w+b, o w+b, gate_up, down
  const auto& qkv = f[2];
  EXPECT_EQ(qkv.name, "model.layers.0.self_attn.qkv_proj.weight");
  EXPECT_EQ(qkv.shape, (std::vector<std::int64_t>{8 + 2 * 4, 8}));
  EXPECT_EQ(qkv.parts, (std::vector<std::string>{"model.layers.0.self_attn.q_proj.weight",
                                                 "model.layers.0.self_attn.k_proj.weight",
                                                 "model.layers.0.self_attn.v_proj.weight"}));
  EXPECT_EQ(f[3].name, "model.layers.0.self_attn.qkv_proj.bias");
  EXPECT_EQ(f[3].shape, (std::vector<std::int64_t>{16}));
  bool gate_up = false;
  for (const auto& s : f)
    if (s.name == "model.layers.1.mlp.gate_up_proj.weight") {
      gate_up = true;
      EXPECT_EQ(s.shape, (std::vector<std::int64_t>{24, 8}));
    }
  EXPECT_TRUE(gate_up);
  // Every name the arena reads exists in a valid checkpoint of this config.
  const auto d = temp_dir("specs");
  write_st(d / "model.safetensors", good(c));
  const auto ck = Checkpoint::open_dir(d.string());
  const auto plan = aipe::llm::plan_checkpoint(c, ck);
  std::set<std::string> have;
  for (const auto& t : plan.tensors) have.insert(t.name);
  std::size_t bytes = 0;
  for (const auto& s : f) {
    bytes += s.bytes();
    for (const auto& p : s.parts.empty() ? std::vector<std::string>{s.name} : s.parts)
      EXPECT_TRUE(have.count(p)) << p << " (for " << s.name << ")";
  }
  EXPECT_EQ(bytes, plan.total_bytes);
  // The 1B shape, fused or not: its parameter count in BF16 bytes, and an arena layout exists.
  const auto s1 = aipe::llm::synthetic_config("llama-3.2-1b");
  for (const bool fuse : {false, true}) {
    std::size_t b = 0;
    const auto sp = aipe::llm::weight_specs(s1, DType::BF16, fuse);
    for (const auto& s : sp) b += s.bytes();
    EXPECT_EQ(b, static_cast<std::size_t>(s1.parameter_count()) * 2) << fuse;
    EXPECT_GE(aipe::llm::plan_arena(sp).total, b);
  }
}
