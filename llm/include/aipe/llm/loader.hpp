#pragma once
// From a model name to a Model on the GPU: `DIR` (a Hugging Face folder: config.json, safetensors, optionally
// tokenizer.json and generation_config.json) or `synthetic:NAME` (a built-in config, random weights of its exact
// shapes). The config's model_type picks the family (llama, qwen2: LlamaModel). The KV cache takes what is left
// of the GPU memory budget after weights and activations.
#include <cuda_runtime_api.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "aipe/llm/config.hpp"
#include "aipe/llm/generation_config.hpp"
#include "aipe/llm/tokenizer.hpp"
#include "aipe/llm/llama.hpp"
#include "aipe/llm/model.hpp"

namespace aipe::llm {

// The model shape of a config (std::invalid_argument naming the field the engine cannot run: a bias on o_proj or
// the MLP, a dtype other than BF16).
LlamaShape llama_shape(const ModelConfig& c);

struct LoadOptions {
  double gpu_memory = 0.9;      // fraction of the GPU's free memory the model may take (weights + cache + buffers)
  int page_size = 16;
  ModelLimits limits{};         // max_pages_per_seq 0: the model's context
  int max_cache_pages = 0;      // > 0: at most this many pages (tests, benchmarks of a known size)
  std::uint64_t seed = 1;       // synthetic weights
  std::function<void(const LoadProgress&)> progress;
};

struct LoadedModel {
  ModelConfig config;
  GenerationConfig generation;
  std::optional<Tokenizer> tokenizer;  // absent for synthetic models and folders without tokenizer.json
  std::unique_ptr<Model> model;
  double load_s = 0;
  std::size_t weight_bytes = 0;
  LoadProgress progress{};      // of a checkpoint load (empty for synthetic weights)
};

// std::invalid_argument for a family the engine does not run (naming model_type) or a config it refuses.
LoadedModel load_model(const std::string& model, const LoadOptions& opt, cudaStream_t stream);

}  // namespace aipe::llm
