#include "aipe/llm/config.hpp"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numbers>
#include <sstream>
#include <stdexcept>

namespace aipe::llm {
namespace {

using nlohmann::json;

[[noreturn]] void fail(const std::string& where, const std::string& key, const std::string& what) {
  throw std::invalid_argument(where + ": " + key + ": " + what);
}

std::string type_of(const json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  return "an object";
}

// Field readers: `j` is the enclosing object, `key` its path for messages ("rope_scaling.factor").
struct Reader {
  const json& j;
  const std::string& where;
  std::string prefix;  // "" or "rope_scaling."

  const json* find(const char* key) const {
    const auto it = j.find(key);
    return it == j.end() || it->is_null() ? nullptr : &*it;
  }
  std::string path(const char* key) const { return prefix + key; }

  // A positive integer in [1, max]; integral floats (8192.0) are refused: a shape is written as an integer.
  std::int64_t count(const char* key, std::int64_t max, std::optional<std::int64_t> dflt = {}) const {
    const json* v = find(key);
    if (!v) {
      if (dflt) return *dflt;
      fail(where, path(key), "missing (a positive integer is required)");
    }
    if (!v->is_number_integer()) fail(where, path(key), "must be an integer, not " + type_of(*v));
    // nlohmann stores a non-negative literal as unsigned, a negative one as signed.
    const bool in_range = v->is_number_unsigned()
                              ? v->get<std::uint64_t>() >= 1 && v->get<std::uint64_t>() <= static_cast<std::uint64_t>(max)
                              : v->get<std::int64_t>() >= 1 && v->get<std::int64_t>() <= max;
    if (!in_range) fail(where, path(key), v->dump() + " is out of range [1, " + std::to_string(max) + "]");
    return v->get<std::int64_t>();
  }
  // A finite number (integers accepted: rope_theta is often written 500000).
  double number(const char* key, std::optional<double> dflt = {}) const {
    const json* v = find(key);
    if (!v) {
      if (dflt) return *dflt;
      fail(where, path(key), "missing (a number is required)");
    }
    if (!v->is_number()) fail(where, path(key), "must be a number, not " + type_of(*v));
    const double d = v->get<double>();
    if (!std::isfinite(d)) fail(where, path(key), "must be finite");
    return d;
  }
  bool flag(const char* key, bool dflt) const {
    const json* v = find(key);
    if (!v) return dflt;
    if (!v->is_boolean()) fail(where, path(key), "must be true or false, not " + type_of(*v));
    return v->get<bool>();
  }
  std::optional<std::string> text(const char* key) const {
    const json* v = find(key);
    if (!v) return std::nullopt;
    if (!v->is_string()) fail(where, path(key), "must be a string, not " + type_of(*v));
    return v->get<std::string>();
  }
  // A token id, or a list of them (eos_token_id of the instruct models), each in [0, vocab).
  std::vector<std::int64_t> ids(const char* key, std::int64_t vocab) const {
    const json* v = find(key);
    std::vector<std::int64_t> out;
    if (!v) return out;
    auto one = [&](const json& e, const std::string& p) {
      if (!e.is_number_integer()) fail(where, p, "must be a token id (an integer), not " + type_of(e));
      if (e.is_number_unsigned() ? e.get<std::uint64_t>() >= static_cast<std::uint64_t>(vocab)
                                 : (e.get<std::int64_t>() < 0 || e.get<std::int64_t>() >= vocab))
        fail(where, p, "token id " + e.dump() + " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
      out.push_back(e.get<std::int64_t>());
    };
    if (v->is_array()) {
      for (std::size_t i = 0; i < v->size(); ++i) one((*v)[i], path(key) + "[" + std::to_string(i) + "]");
    } else {
      one(*v, path(key));
    }
    return out;
  }
};

// Upper bounds that keep every product of shapes inside int64 (and refuse a corrupt file before it sizes a buffer).
constexpr std::int64_t kMaxDim = 1 << 20, kMaxLayers = 4096, kMaxHeads = 4096, kMaxVocab = 1 << 24,
                       kMaxPositions = std::int64_t{1} << 30;

DType parse_torch_dtype(const std::string& where, const std::string& key, const std::string& s) {
  if (s == "bfloat16") return DType::BF16;
  if (s == "float16") return DType::F16;
  if (s == "float32") return DType::F32;
  fail(where, key, "'" + s + "' is not a supported weight dtype (bfloat16, float16, float32)");
}

// The gpt-oss fields (configuration_gpt_oss.py's names and defaults).
void parse_gpt_oss(const Reader& r, ModelConfig& c) {
  const std::string& where = r.where;
  GptOssConfig& g = c.gpt_oss;
  // The routing kernels take up to 256 experts and k <= 8 (aipe/kernels/moe.hpp).
  g.num_local_experts = r.count("num_local_experts", 256);
  g.num_experts_per_tok = r.count("num_experts_per_tok", 8);
  if (g.num_experts_per_tok > g.num_local_experts)
    fail(where, "num_experts_per_tok",
         std::to_string(g.num_experts_per_tok) + " exceeds num_local_experts " + std::to_string(g.num_local_experts));
  g.sliding_window = r.count("sliding_window", kMaxPositions);
  g.swiglu_alpha = r.number("swiglu_alpha", 1.702);
  g.swiglu_limit = r.number("swiglu_limit", 7.0);
  if (!(g.swiglu_alpha > 0 && g.swiglu_alpha <= 100))
    fail(where, "swiglu_alpha", std::to_string(g.swiglu_alpha) + " is not in (0, 100]");
  if (!(g.swiglu_limit > 0 && g.swiglu_limit <= 1e4))
    fail(where, "swiglu_limit", std::to_string(g.swiglu_limit) + " is not in (0, 1e4]");
  // layer_types: one entry per layer; absent, transformers alternates sliding (even layers) and full (odd).
  g.sliding.assign(std::size_t(c.num_hidden_layers), false);
  if (const json* lt = r.find("layer_types")) {
    if (!lt->is_array()) fail(where, "layer_types", "must be a list of strings, not " + type_of(*lt));
    if (std::int64_t(lt->size()) != c.num_hidden_layers)
      fail(where, "layer_types", "has " + std::to_string(lt->size()) + " entries for " +
                                     std::to_string(c.num_hidden_layers) + " num_hidden_layers");
    for (std::size_t i = 0; i < lt->size(); ++i) {
      const json& e = (*lt)[i];
      const std::string p = "layer_types[" + std::to_string(i) + "]";
      if (!e.is_string()) fail(where, p, "must be a string, not " + type_of(e));
      const std::string t = e.get<std::string>();
      if (t == "sliding_attention") g.sliding[i] = true;
      else if (t != "full_attention")
        fail(where, p, "'" + t + "' is not a layer type (sliding_attention, full_attention)");
    }
  } else {
    for (std::size_t i = 0; i < g.sliding.size(); ++i) g.sliding[i] = i % 2 == 0;
  }
  // The experts' format. transformers writes {"quant_method": "mxfp4", "modules_to_not_convert": [...]}.
  const json* q = r.find("quantization_config");
  if (!q) fail(where, "quantization_config", "missing (the experts must be MXFP4: quant_method \"mxfp4\")");
  if (!q->is_object()) fail(where, "quantization_config", "must be an object, not " + type_of(*q));
  const Reader qr{*q, where, "quantization_config."};
  const auto qm = qr.text("quant_method");
  if (!qm) fail(where, "quantization_config.quant_method", "missing (\"mxfp4\" is required)");
  if (*qm != "mxfp4") fail(where, "quantization_config.quant_method", "'" + *qm + "' is not supported (mxfp4)");
  g.quant_method = *qm;
  // MXFP4 blocks hold 32 elements along the input dimension of both expert projections.
  if (c.hidden_size % 32 != 0)
    fail(where, "hidden_size", std::to_string(c.hidden_size) + " is not a multiple of 32 (MXFP4 blocks)");
  if (c.intermediate_size % 32 != 0)
    fail(where, "intermediate_size", std::to_string(c.intermediate_size) + " is not a multiple of 32 (MXFP4 blocks)");
  if (c.rope_scaling) fail(where, "rope_scaling", "llama3 scaling is not gpt-oss's (yarn)");
}

}  // namespace

const char* family_name(Family f) {
  switch (f) {
    case Family::Llama: return "llama";
    case Family::Qwen2: return "qwen2";
    case Family::GptOss: return "gpt_oss";
  }
  return "?";
}

std::int64_t ModelConfig::parameter_count() const {
  const std::int64_t h = hidden_size;
  if (family == Family::GptOss) {
    // Attention with biases on q, k, v, o and a sink per head; the router; every expert's gate_up and down with
    // their biases (MXFP4 elements counted as parameters, scales not); two norms.
    const std::int64_t e = gpt_oss.num_local_experts, f = intermediate_size;
    const std::int64_t layer = h * q_dim() + 2 * h * kv_dim() + q_dim() * h + q_dim() + 2 * kv_dim() + h +
                               num_attention_heads + e * h + e + e * (2 * f * h + 2 * f + h * f + h) + 2 * h;
    return num_hidden_layers * layer + vocab_size * h * (tie_word_embeddings ? 1 : 2) + h;
  }
  std::int64_t layer = h * q_dim() + 2 * h * kv_dim() + q_dim() * h  // q, k, v, o
                       + 3 * h * intermediate_size                   // gate, up, down
                       + 2 * h;                                      // the two RMSNorm weights
  if (qkv_bias) layer += q_dim() + 2 * kv_dim();
  if (o_bias) layer += h;
  if (mlp_bias) layer += 2 * intermediate_size + h;
  return num_hidden_layers * layer + vocab_size * h * (tie_word_embeddings ? 1 : 2) + h;
}

ModelConfig parse_model_config(const std::string& json_text, const std::string& where) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::exception& e) {
    throw std::invalid_argument(where + ": not valid JSON: " + e.what());
  }
  if (!j.is_object()) throw std::invalid_argument(where + ": not a JSON object");
  const Reader r{j, where, ""};
  ModelConfig c;
  c.name = where;

  const auto mt = r.text("model_type");
  if (!mt) fail(where, "model_type", "missing (a supported family is required: llama, qwen2, gpt_oss)");
  c.model_type = *mt;
  if (c.model_type == "llama") c.family = Family::Llama;
  else if (c.model_type == "qwen2") c.family = Family::Qwen2;
  else if (c.model_type == "gpt_oss") c.family = Family::GptOss;
  else fail(where, "model_type", "'" + c.model_type + "' is not a supported family (llama, qwen2, gpt_oss)");
  if (const json* a = r.find("architectures")) {
    if (!a->is_array() || a->empty() || !(*a)[0].is_string())
      fail(where, "architectures", "must be a non-empty list of strings");
    c.architecture = (*a)[0].get<std::string>();
    const std::string suffix = "ForCausalLM";
    if (c.architecture.size() < suffix.size() ||
        c.architecture.compare(c.architecture.size() - suffix.size(), suffix.size(), suffix) != 0)
      fail(where, "architectures", "'" + c.architecture + "' is not a causal language model (*ForCausalLM)");
  }
  if (const auto act = r.text("hidden_act"); act && *act != "silu")
    fail(where, "hidden_act", "'" + *act + "' is not supported (the Llama MLP is SwiGLU: silu)");

  c.hidden_size = r.count("hidden_size", kMaxDim);
  c.intermediate_size = r.count("intermediate_size", 4 * kMaxDim);
  c.num_hidden_layers = r.count("num_hidden_layers", kMaxLayers);
  c.num_attention_heads = r.count("num_attention_heads", kMaxHeads);
  // Absent num_key_value_heads means multi-head attention (HF's default: one K/V head per query head).
  c.num_key_value_heads = r.count("num_key_value_heads", kMaxHeads, c.num_attention_heads);
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    fail(where, "num_key_value_heads",
         std::to_string(c.num_attention_heads) + " num_attention_heads are not a multiple of " +
             std::to_string(c.num_key_value_heads) + " key/value heads");
  if (!r.find("head_dim") && c.hidden_size % c.num_attention_heads != 0)
    fail(where, "num_attention_heads",
         "hidden_size " + std::to_string(c.hidden_size) + " is not divisible by " +
             std::to_string(c.num_attention_heads) + " heads (and no head_dim is given)");
  c.head_dim = r.count("head_dim", 4096, c.hidden_size / c.num_attention_heads);
  if (c.head_dim % 2 != 0) fail(where, "head_dim", std::to_string(c.head_dim) + " is odd: RoPE rotates pairs");
  // gpt-oss projects 64 heads x 64 = 4096 back to hidden 2880; the Llama family's heads tile hidden exactly.
  if (c.family != Family::GptOss && c.head_dim * c.num_attention_heads != c.hidden_size)
    fail(where, "head_dim",
         std::to_string(c.head_dim) + " x " + std::to_string(c.num_attention_heads) + " heads = " +
             std::to_string(c.head_dim * c.num_attention_heads) + ", not hidden_size " +
             std::to_string(c.hidden_size) + " (the " + family_name(c.family) + " family projects back to hidden)");
  c.vocab_size = r.count("vocab_size", kMaxVocab);
  c.max_position_embeddings = r.count("max_position_embeddings", kMaxPositions);

  c.rms_norm_eps = r.number("rms_norm_eps");
  if (!(c.rms_norm_eps > 0 && c.rms_norm_eps < 1))
    fail(where, "rms_norm_eps", std::to_string(c.rms_norm_eps) + " is not in (0, 1)");
  // transformers 5 writes the RoPE settings as one object, rope_parameters {rope_theta, rope_type, factor, ...};
  // earlier versions as rope_theta and rope_scaling {rope_type, factor, ...} at the top level. Both are read; a
  // file with both must agree on theta.
  const json* rp = r.find("rope_parameters");
  if (rp && !rp->is_object()) fail(where, "rope_parameters", "must be an object or null, not " + type_of(*rp));
  const Reader params{rp ? *rp : j, where, "rope_parameters."};
  c.rope_theta = r.number("rope_theta", rp ? params.number("rope_theta", 10000.0) : 10000.0);
  if (rp && params.find("rope_theta") && r.find("rope_theta") && params.number("rope_theta") != c.rope_theta)
    fail(where, "rope_parameters.rope_theta", "disagrees with rope_theta");
  // Bounds keep every frequency a normal positive double (theta^(-2i/d) / factor); real models use 1e4..1e7.
  if (!(c.rope_theta > 1 && c.rope_theta <= 1e12))
    fail(where, "rope_theta", std::to_string(c.rope_theta) + " is not in (1, 1e12]");

  const json* rs = r.find("rope_scaling");
  const char* rs_name = "rope_scaling";
  if (!rs && rp) rs = rp, rs_name = "rope_parameters";
  if (rs) {
    if (!rs->is_object()) fail(where, rs_name, "must be an object or null, not " + type_of(*rs));
    const Reader s{*rs, where, std::string(rs_name) + "."};
    // "type" is the key older transformers versions wrote.
    const char* tkey = s.find("rope_type") ? "rope_type" : "type";
    const auto type = s.text(tkey);
    if (!type) fail(where, std::string(rs_name) + ".rope_type", "missing");
    if (*type == "llama3") {
      Llama3RopeScaling l;
      l.factor = s.number("factor");
      l.low_freq_factor = s.number("low_freq_factor");
      l.high_freq_factor = s.number("high_freq_factor");
      l.original_max_position_embeddings = s.count("original_max_position_embeddings", kMaxPositions);
      if (!(l.factor >= 1 && l.factor <= 1024))
        fail(where, std::string(rs_name) + ".factor", std::to_string(l.factor) + " is not in [1, 1024]");
      if (!(l.low_freq_factor > 0 && l.low_freq_factor <= 1e4))
        fail(where, std::string(rs_name) + ".low_freq_factor", std::to_string(l.low_freq_factor) + " is not in (0, 1e4]");
      if (!(l.high_freq_factor > l.low_freq_factor && l.high_freq_factor <= 1e4))
        fail(where, std::string(rs_name) + ".high_freq_factor",
             std::to_string(l.high_freq_factor) + " must be greater than low_freq_factor " +
                 std::to_string(l.low_freq_factor) + " (and at most 1e4)");
      c.rope_scaling = l;
    } else if (*type == "yarn") {
      const std::string p = std::string(rs_name) + ".";
      YarnRopeScaling y;
      y.factor = s.number("factor");
      y.beta_fast = s.number("beta_fast", 32.0);
      y.beta_slow = s.number("beta_slow", 1.0);
      y.truncate = s.flag("truncate", true);
      y.attention_factor = s.number("attention_factor", 0.0);
      y.mscale = s.number("mscale", 0.0);
      y.mscale_all_dim = s.number("mscale_all_dim", 0.0);
      y.original_max_position_embeddings = s.count("original_max_position_embeddings", kMaxPositions);
      if (!(y.factor >= 1 && y.factor <= 1024))
        fail(where, p + "factor", std::to_string(y.factor) + " is not in [1, 1024]");
      if (!(y.beta_slow > 0 && y.beta_fast > y.beta_slow && y.beta_fast <= 1e4))
        fail(where, p + "beta_fast", "need 0 < beta_slow < beta_fast <= 1e4, got beta_fast " +
                                         std::to_string(y.beta_fast) + ", beta_slow " + std::to_string(y.beta_slow));
      if (!(y.attention_factor >= 0 && y.attention_factor <= 100))
        fail(where, p + "attention_factor", std::to_string(y.attention_factor) + " is not in (0, 100]");
      if (!(y.mscale >= 0 && y.mscale <= 100 && y.mscale_all_dim >= 0 && y.mscale_all_dim <= 100))
        fail(where, p + "mscale", "mscale and mscale_all_dim must be in [0, 100]");
      c.yarn = y;
    } else if (*type != "default") {
      fail(where, std::string(rs_name) + "." + tkey,
           "'" + *type + "' is not supported (llama3, yarn, default)");
    }
  }

  c.tie_word_embeddings = r.flag("tie_word_embeddings", false);
  if (c.family == Family::Llama) {
    c.qkv_bias = c.o_bias = r.flag("attention_bias", false);
  } else if (c.family == Family::GptOss) {
    // The released models have biases on q, k, v and o (transformers' default attention_bias true).
    c.qkv_bias = c.o_bias = r.flag("attention_bias", true);
    if (!c.qkv_bias) fail(where, "attention_bias", "false is not supported (gpt-oss has biases on q, k, v and o)");
    parse_gpt_oss(r, c);
  } else {
    // Qwen2 always has q/k/v biases and none on o_proj; its config has no attention_bias key.
    c.qkv_bias = true;
    if (r.flag("use_sliding_window", false))
      fail(where, "use_sliding_window", "sliding-window attention is not supported");
  }
  c.mlp_bias = r.flag("mlp_bias", false);

  const char* dkey = r.find("torch_dtype") ? "torch_dtype" : "dtype";
  if (const auto d = r.text(dkey)) c.dtype = parse_torch_dtype(where, dkey, *d);
  c.dtype_given = r.find(dkey) != nullptr;

  const auto bos = r.ids("bos_token_id", c.vocab_size);
  if (bos.size() > 1) fail(where, "bos_token_id", "must be one token id, not a list");
  if (!bos.empty()) c.bos_token_id = bos[0];
  c.eos_token_ids = r.ids("eos_token_id", c.vocab_size);
  return c;
}

ModelConfig load_model_config(const std::string& model) {
  const std::string prefix = "synthetic:";
  if (model.rfind(prefix, 0) == 0) return synthetic_config(model.substr(prefix.size()));
  namespace fs = std::filesystem;
  const fs::path p = fs::path(model) / "config.json";
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::invalid_argument(p.string() + ": cannot open (a model is a Hugging Face folder with "
                                       "config.json, or synthetic:NAME)");
  std::ostringstream s;
  s << in.rdbuf();
  ModelConfig c = parse_model_config(s.str(), p.string());
  c.name = model;
  return c;
}

namespace {

// openai/gpt-oss-20b and gpt-oss-120b's config.json: they differ only in depth and expert count.
ModelConfig gpt_oss_config(const std::string& name, std::int64_t layers, std::int64_t experts) {
  ModelConfig c;
  c.name = "synthetic:" + name;
  c.synthetic = true;
  c.family = Family::GptOss;
  c.model_type = "gpt_oss";
  c.architecture = "GptOssForCausalLM";
  c.hidden_size = 2880;
  c.intermediate_size = 2880;
  c.num_hidden_layers = layers;
  c.num_attention_heads = 64;
  c.num_key_value_heads = 8;
  c.head_dim = 64;
  c.vocab_size = 201088;
  c.max_position_embeddings = 131072;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 150000.0;
  c.yarn = YarnRopeScaling{.factor = 32.0, .beta_fast = 32.0, .beta_slow = 1.0, .truncate = false,
                           .original_max_position_embeddings = 4096};
  c.qkv_bias = c.o_bias = true;
  c.dtype = DType::BF16;
  c.eos_token_ids = {200002};  // <|return|>
  c.gpt_oss.num_local_experts = experts;
  c.gpt_oss.num_experts_per_tok = 4;
  c.gpt_oss.sliding_window = 128;
  c.gpt_oss.sliding.assign(std::size_t(layers), false);
  for (std::size_t i = 0; i < c.gpt_oss.sliding.size(); ++i) c.gpt_oss.sliding[i] = i % 2 == 0;
  c.gpt_oss.quant_method = "mxfp4";
  return c;
}

}  // namespace

// The published config.json files (meta-llama and openai on the Hugging Face hub); only the fields aipe reads.
ModelConfig synthetic_config(const std::string& name) {
  if (name == "gpt-oss-20b") return gpt_oss_config(name, 24, 32);
  if (name == "gpt-oss-120b") return gpt_oss_config(name, 36, 128);
  ModelConfig c;
  c.name = "synthetic:" + name;
  c.synthetic = true;
  c.family = Family::Llama;
  c.model_type = "llama";
  c.architecture = "LlamaForCausalLM";
  c.vocab_size = 128256;
  c.max_position_embeddings = 131072;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 500000.0;
  c.dtype = DType::BF16;
  c.bos_token_id = 128000;
  c.eos_token_ids = {128001};  // the base models; the Instruct configs list 128001, 128008, 128009
  c.num_key_value_heads = 8;
  Llama3RopeScaling rs{.factor = 8.0, .low_freq_factor = 1.0, .high_freq_factor = 4.0,
                       .original_max_position_embeddings = 8192};
  if (name == "llama-3.2-1b") {
    c.hidden_size = 2048;
    c.intermediate_size = 8192;
    c.num_hidden_layers = 16;
    c.num_attention_heads = 32;
    c.head_dim = 64;
    c.tie_word_embeddings = true;
    rs.factor = 32.0;
  } else if (name == "llama-3.1-8b") {
    c.hidden_size = 4096;
    c.intermediate_size = 14336;
    c.num_hidden_layers = 32;
    c.num_attention_heads = 32;
    c.head_dim = 128;
  } else if (name == "llama-3.1-70b") {
    c.hidden_size = 8192;
    c.intermediate_size = 28672;
    c.num_hidden_layers = 80;
    c.num_attention_heads = 64;
    c.head_dim = 128;
  } else {
    std::string all;
    for (const auto& n : synthetic_names()) all += (all.empty() ? "" : ", ") + std::string("synthetic:") + n;
    throw std::invalid_argument("no built-in model 'synthetic:" + name + "' (known: " + all + ")");
  }
  c.rope_scaling = rs;
  return c;
}

std::vector<std::string> synthetic_names() {
  return {"llama-3.2-1b", "llama-3.1-8b", "llama-3.1-70b", "gpt-oss-20b", "gpt-oss-120b"};
}

kernels::RopeConfig rope_config(const ModelConfig& c) {
  kernels::RopeConfig r;
  r.theta = c.rope_theta;
  r.dim = int(c.head_dim);
  if (c.rope_scaling) {
    r.type = kernels::RopeType::llama3;
    r.factor = c.rope_scaling->factor;
    r.low_freq_factor = c.rope_scaling->low_freq_factor;
    r.high_freq_factor = c.rope_scaling->high_freq_factor;
    r.original_max_positions = int(c.rope_scaling->original_max_position_embeddings);
  } else if (c.yarn) {
    r.type = kernels::RopeType::yarn;
    r.factor = c.yarn->factor;
    r.beta_fast = c.yarn->beta_fast;
    r.beta_slow = c.yarn->beta_slow;
    r.truncate = c.yarn->truncate;
    r.attention_factor = c.yarn->attention_factor;
    r.mscale = c.yarn->mscale;
    r.mscale_all_dim = c.yarn->mscale_all_dim;
    r.original_max_positions = int(c.yarn->original_max_position_embeddings);
  }
  return r;
}

}  // namespace aipe::llm
