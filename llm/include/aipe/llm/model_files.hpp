#pragma once
// Everything the host reads of a model before any GPU work, checked against each other: config.json, the
// safetensors set (as a LoadPlan), tokenizer.json and generation_config.json of a Hugging Face folder; or a
// built-in shape (synthetic:NAME: no files, weights generated on the GPU, no tokenizer).
// Cross-file checks: every tokenizer id and every eos/bos id must index the embedding (id < vocab_size).
#include <memory>
#include <optional>
#include <string>

#include "aipe/llm/config.hpp"
#include "aipe/llm/generation_config.hpp"
#include "aipe/llm/load_plan.hpp"
#include "aipe/llm/safetensors.hpp"
#include "aipe/llm/tokenizer.hpp"

namespace aipe::llm {

struct ModelFiles {
  ModelConfig config;
  GenerationConfig generation;
  std::unique_ptr<Checkpoint> checkpoint;  // null for synthetic models; owns the mappings `plan` points into
  LoadPlan plan;                           // empty for synthetic models
  std::optional<Tokenizer> tokenizer;      // absent: synthetic, or the folder has no tokenizer.json
};

// `need_tokenizer`: a missing tokenizer.json (or a build without PCRE2) is an error instead of an absent tokenizer.
ModelFiles open_model_files(const std::string& model, bool need_tokenizer = false);

// The cross-file checks alone (open_model_files runs them): throws std::invalid_argument naming both files.
void check_tokenizer_fits(const Tokenizer& t, const ModelConfig& c, const std::string& tokenizer_path);

}  // namespace aipe::llm
