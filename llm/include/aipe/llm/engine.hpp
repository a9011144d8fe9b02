#pragma once
// Generation on a LlamaModel: prefill the prompts, then decode every sequence one token per step, each decode
// step replayed from a CUDA graph captured once per batch size (the launches of ~10 kernels per layer cost more
// than the kernels themselves at small batch). Tokens are chosen on the device (kernels::sample) and the host
// reads one int per sequence per step. KV pages are handed out so that a sequence's pages are scattered through
// the cache (page s, s + S, s + 2S, ... for sequence s of S), which is what a long-running server's cache looks
// like and what the paged attention kernels must handle.
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>
#include <vector>

#include "aipe/kernels/sampling.hpp"
#include "aipe/llm/llama.hpp"

namespace aipe::llm {

struct GenerationRequest {
  std::vector<int> prompt;          // token ids
  int max_new_tokens = 16;
  kernels::SamplingParams sampling{.temperature = 0.f};  // greedy unless set
  std::vector<int> stop_ids;        // generation ends after emitting one of these
};

struct GenerationOutput {
  std::vector<int> tokens;           // generated ids (the stop id included when one ended it)
  std::string finish_reason;         // "stop" or "length"
  double ttft_s = 0;                 // from the start of generate() to the first token on the host
  std::vector<double> token_times_s; // when each token reached the host, from the start of generate()
};

struct EngineOptions {
  bool cuda_graphs = true;
};

struct GenerationStats {
  double prefill_s = 0;             // the prefill steps (all prompts)
  std::vector<double> decode_step_s;  // every decode step, in order (batch shrinks as sequences finish)
  std::vector<int> decode_step_batch;
  int graphs_captured = 0;
};

// Pages a batch of sequences needs (each its prompt plus max_new_tokens), for sizing the cache.
int pages_needed(const std::vector<GenerationRequest>& reqs, int page_size);

class Engine {
 public:
  Engine(LlamaModel& model, const EngineOptions& opt);
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Runs every request to completion as one batch. Throws std::invalid_argument (naming the request) for an
  // empty prompt, a bad token id, a prompt plus max_new_tokens beyond the model's context or the cache's pages.
  std::vector<GenerationOutput> generate(const std::vector<GenerationRequest>& reqs, cudaStream_t stream);
  const GenerationStats& stats() const { return stats_; }

 private:
  void decode_step(const StepBatch& b, cudaStream_t stream);
  LlamaModel& model_;
  EngineOptions opt_;
  GenerationStats stats_;
  std::vector<GraphExec> graphs_;  // by batch size; empty where none captured yet
  DeviceBuffer<kernels::SamplingParams> d_params_;
  DeviceBuffer<int> d_next_;
  PinnedBuffer<kernels::SamplingParams> h_params_;
  PinnedBuffer<int> h_next_;
};

}  // namespace aipe::llm
