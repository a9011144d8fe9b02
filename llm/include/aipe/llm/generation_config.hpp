#pragma once
// generation_config.json: the sampling defaults a model ships with (Llama 3.1 Instruct: temperature 0.6,
// top_p 0.9, eos 128001/128008/128009). Missing keys take transformers' GenerationConfig defaults; a wrong type
// or range is a std::invalid_argument naming the file and the key.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "aipe/llm/config.hpp"

namespace aipe::llm {

struct GenerationConfig {
  std::vector<std::int64_t> eos_token_ids;  // int or list in the file; else config.json's
  std::optional<std::int64_t> bos_token_id, pad_token_id;
  bool do_sample = false;                   // false: greedy, whatever temperature says
  double temperature = 1.0;                 // > 0
  double top_p = 1.0;                       // (0, 1]
  std::int64_t top_k = 50;                  // 0: no top-k cut
  double repetition_penalty = 1.0;          // > 0; 1 is none
  std::optional<std::int64_t> max_new_tokens, max_length;

  // The temperature a sampler should use: 0 (greedy) unless do_sample.
  double effective_temperature() const { return do_sample ? temperature : 0.0; }
};

GenerationConfig parse_generation_config(const std::string& json_text, const std::string& where,
                                         const ModelConfig& model);
// DIR/generation_config.json when it exists, else the defaults with the model config's eos ids. A synthetic
// model gets the defaults and its built-in eos.
GenerationConfig load_generation_config(const std::string& model_dir, const ModelConfig& model);

}  // namespace aipe::llm
