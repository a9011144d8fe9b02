#pragma once
#include "aipe/kernels/rope.hpp"
// Model configuration of the Llama family and gpt-oss, read from a Hugging Face config.json or built in (synthetic:NAME).
// Every key is validated for presence and type; an error is a std::invalid_argument naming the file and the key,
// e.g. "config.json: num_key_value_heads: 32 num_attention_heads are not a multiple of 6 key/value heads".
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "aipe/llm/safetensors.hpp"

namespace aipe::llm {

// model_type "llama" (Llama 2/3.x: optional bias on q, k, v and o together), "qwen2" (bias on q, k, v only) or
// "gpt_oss" (mixture-of-experts MLP with MXFP4 experts, attention sinks, alternating sliding-window layers).
enum class Family { Llama, Qwen2, GptOss };
const char* family_name(Family f);

// rope_scaling {"rope_type": "llama3", ...}: the Llama 3.1 frequency-dependent stretch of the RoPE wavelengths.
struct Llama3RopeScaling {
  double factor = 0;                          // long-wavelength (low) frequencies are divided by this
  double low_freq_factor = 0;                 // wavelength > original_max / low_freq_factor: fully scaled
  double high_freq_factor = 0;                // wavelength < original_max / high_freq_factor: unchanged
  std::int64_t original_max_position_embeddings = 0;  // the context length the model was pretrained at
};

// rope_scaling {"rope_type": "yarn", ...} (gpt-oss): transformers' _compute_yarn_parameters inputs.
struct YarnRopeScaling {
  double factor = 0;
  double beta_fast = 32.0, beta_slow = 1.0;
  bool truncate = true;           // gpt-oss's config writes false
  double attention_factor = 0;    // 0: absent, derived from factor (and mscale / mscale_all_dim)
  double mscale = 0, mscale_all_dim = 0;
  std::int64_t original_max_position_embeddings = 0;
};

// The gpt-oss mixture-of-experts MLP and attention pattern (config.json of openai/gpt-oss-20b and -120b).
struct GptOssConfig {
  std::int64_t num_local_experts = 0;      // experts per layer (32, 128)
  std::int64_t num_experts_per_tok = 0;    // top-k (4)
  std::int64_t sliding_window = 0;         // keys a sliding layer's query sees, itself included (128)
  std::vector<bool> sliding;               // layer_types: true for "sliding_attention", false for "full_attention"
  double swiglu_alpha = 1.702, swiglu_limit = 7.0;
  std::string quant_method;                // quantization_config.quant_method: "mxfp4" (the experts' format)
};

struct ModelConfig {
  std::string name;          // the folder or "synthetic:llama-3.2-1b"
  bool synthetic = false;    // built in: no checkpoint behind it, weights are generated
  Family family = Family::Llama;
  std::string model_type;    // as written: "llama", "qwen2"
  std::string architecture;  // architectures[0], e.g. "LlamaForCausalLM"
  std::int64_t hidden_size = 0;
  std::int64_t intermediate_size = 0;
  std::int64_t num_hidden_layers = 0;
  std::int64_t num_attention_heads = 0;
  std::int64_t num_key_value_heads = 0;  // GQA: each K/V head serves heads / kv_heads query heads
  std::int64_t head_dim = 0;             // default hidden_size / num_attention_heads
  std::int64_t vocab_size = 0;
  std::int64_t max_position_embeddings = 0;
  double rms_norm_eps = 0;
  double rope_theta = 10000.0;
  std::optional<Llama3RopeScaling> rope_scaling;  // absent: plain RoPE
  std::optional<YarnRopeScaling> yarn;            // rope_type "yarn" (never together with rope_scaling)
  GptOssConfig gpt_oss;                           // Family::GptOss only
  bool tie_word_embeddings = false;               // lm_head shares model.embed_tokens.weight
  bool qkv_bias = false, o_bias = false, mlp_bias = false;
  DType dtype = DType::BF16;  // torch_dtype (or "dtype"): the checkpoint's weight dtype
  bool dtype_given = false;   // false: the file named none, so the checkpoint's own dtype is taken
  std::optional<std::int64_t> bos_token_id;
  std::vector<std::int64_t> eos_token_ids;  // an int or a list in the file

  std::int64_t q_dim() const { return num_attention_heads * head_dim; }
  std::int64_t kv_dim() const { return num_key_value_heads * head_dim; }
  // Parameters of the model (lm_head counted once when tied; gpt-oss: every expert), and per-token K+V cache
  // bytes over all layers.
  std::int64_t parameter_count() const;
  std::int64_t kv_bytes_per_token(std::size_t elem_bytes) const {
    return 2 * num_hidden_layers * kv_dim() * static_cast<std::int64_t>(elem_bytes);
  }
};

// Parses config.json text; `where` names the file in errors. Pure function (tests and the fuzz target use it).
ModelConfig parse_model_config(const std::string& json_text, const std::string& where = "config.json");
// DIR/config.json, or a built-in shape when `model` starts with "synthetic:".
ModelConfig load_model_config(const std::string& model);
// The built-in shapes: the published config.json values of meta-llama/Llama-3.2-1B, Llama-3.1-8B, Llama-3.1-70B,
// openai/gpt-oss-20b and gpt-oss-120b.
ModelConfig synthetic_config(const std::string& name);  // name without the "synthetic:" prefix
std::vector<std::string> synthetic_names();

// The RoPE the kernels apply for this config (theta, the rotary dimension = head_dim, the llama3 scaling when
// present, or yarn); kernels::rope_frequencies computes the inverse frequencies from it as transformers does.
kernels::RopeConfig rope_config(const ModelConfig& c);

}  // namespace aipe::llm
