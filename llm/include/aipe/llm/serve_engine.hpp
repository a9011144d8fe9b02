#pragma once
// The engine `aipe serve` puts behind its HTTP server: a StepEngine on the GPU model of `DIR` (a Hugging Face
// folder) or `synthetic:NAME`, with its tokenizer when the folder has one. The CLI builds it through this factory
// alone, so that the server, its options and its tests do not depend on how the GPU engine is made.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "aipe/llm/step_engine.hpp"
#include "aipe/llm/tokenizer.hpp"

namespace aipe::llm {

struct ServeEngineOptions {
  std::string model;                 // DIR or synthetic:NAME
  int max_batch = 128;               // sequences running at once (the scheduler's max_num_seqs)
  int max_batched_tokens = 2048;     // tokens of one step (prefill chunks and decodes together)
  int max_model_len = 0;             // 0: the model's context
  double gpu_memory = 0.9;           // fraction of the free GPU memory for weights, buffers and the KV cache
  int page_size = 16;
  int device = 0;
  std::uint64_t seed = 1;            // synthetic weights
  bool prefix_caching = true;        // where the build has it (block_manager.hpp's prefix_caching_available())
};

struct ServeBackend {
  std::unique_ptr<StepEngine> engine;
  std::optional<Tokenizer> tokenizer;  // absent: prompts are token ids
};

// The engine is llm/engine.hpp's Engine on load_model()'s model (the generation config's first eos id ends a
// request). std::runtime_error when it cannot be built (no GPU, the model does not fit); std::invalid_argument
// for a model name or option it cannot take.
ServeBackend make_gpu_engine(const ServeEngineOptions& o);

}  // namespace aipe::llm
