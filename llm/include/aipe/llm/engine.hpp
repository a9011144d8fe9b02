#pragma once
// The engine: continuous batching on a Model. Each step() is
//   Scheduler::schedule  (llm/scheduler.hpp: decodes first, then continuing prefill chunks, then admissions under
//                         the token budget; preemption by recomputation when pages run out; prefix-cache hits)
//   -> to_step_batch     (the plan as the model's StepBatch)
//   -> Model::step       (a decode-only step of a batch size seen before is replayed from its CUDA graph: the
//                         launches of ~10 kernels per layer cost more than the kernels themselves at small batch)
//   -> kernels::sample   (on the GPU, every request with its own seed and counter; the host reads one int per
//                         sequence)
//   -> Scheduler::update (tokens appended, pages marked computed, finished requests leave).
// Requests join and leave between steps (StepEngine, for the server); generate() is the batch convenience that
// `aipe generate` and `aipe bench generate` use.
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/kernels/sampling.hpp"
#include "aipe/llm/model.hpp"
#include "aipe/llm/scheduler.hpp"
#include "aipe/llm/step_engine.hpp"

namespace aipe::llm {

struct GenerationRequest {
  std::vector<int> prompt;          // token ids
  int max_new_tokens = 16;
  SamplingParams sampling{.temperature = 0.f};  // greedy unless set
  std::vector<int> stop_ids;        // generation ends after emitting one of these
  int arrival_step = 0;             // joins before this step of generate() (0: at once; staggered arrivals)
};

struct GenerationOutput {
  std::vector<int> tokens;           // generated ids (the stop id included when one ended it)
  std::string finish_reason;         // "stop" (a stop id or eos) or "length" (max tokens or the context limit)
  double ttft_s = 0;                 // from the step it joined to its first token on the host
  std::vector<double> token_times_s; // when each token reached the host, from the start of generate()
  int num_cached_tokens = 0;         // prompt tokens the prefix cache supplied
  int num_preemptions = 0;
};

struct EngineOptions {
  bool cuda_graphs = true;
  int max_batched_tokens = 0;   // token budget of a step (chunked prefill); 0: the model's max_tokens
  int max_seqs = 0;             // sequences running at once; 0: the model's max_seqs (at most the budget)
  bool chunked_prefill = true;
  bool prefix_caching = true;   // where the build has it (prefix_caching_available())
  double watermark = 0.01;      // fraction of the pages kept free at admission (block_manager.hpp)
  TokenId eos_id = -1;          // the model's end-of-sequence id; < 0: none (stop_ids still apply)
};

// What one step ran (the last step()'s, for benchmarks).
struct StepRecord {
  int seqs = 0, tokens = 0;
  bool decode_only = false;
  bool graph = false;           // replayed from a CUDA graph
};

struct GenerationStats {
  double prefill_s = 0;               // from the start until every request had its first token
  std::vector<double> decode_step_s;  // every decode-only step, in order (the batch shrinks as sequences finish)
  std::vector<int> decode_step_batch;
  int steps = 0, mixed_steps = 0;     // all steps; those with prefill chunks
  int graphs_captured = 0;            // over the engine's life
  std::uint64_t preemptions = 0;
};

// The scheduler's plan as the model's batch: tokens back to back in plan order, q_len = end - begin,
// context_len = end, block-table rows padded with page 0 to `max_pages_per_seq` (std::invalid_argument when a
// row is longer). `sample_seqs` gets the indices of the sequences whose logits are sampled, in plan order.
StepBatch to_step_batch(const StepPlan& plan, int max_pages_per_seq, std::vector<int>* sample_seqs = nullptr);

// The scheduler's limits for a model and options (CPU-testable): budget and sequences within the model's step
// limits, max_model_len = the context the block table, the positions and the cache (less its watermark) allow.
SchedulerConfig scheduler_config_for(const ModelInfo& info, const ModelLimits& limits, const EngineOptions& opt);
BlockManagerConfig block_manager_config_for(const ModelInfo& info, const EngineOptions& opt);

class Engine final : public StepEngine {
 public:
  // Every step runs on `stream`.
  Engine(Model& model, const EngineOptions& opt, cudaStream_t stream);
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const ModelInfo& info() const override { return model_.info(); }
  const SchedulerConfig& scheduler_config() const override { return sched_.config(); }
  void add_request(Request r) override { sched_.add_request(std::move(r)); }
  bool cancel(RequestId id) override { return sched_.cancel(id); }
  std::vector<TokenEvent> step(double now) override;
  bool has_unfinished() const override { return sched_.has_unfinished(); }
  SchedulerStats stats() const override { return sched_.stats(); }
  std::vector<FinishedRequest> take_finished() override { return sched_.take_finished(); }

  // Runs the requests to completion, each joining before its arrival_step (the engine must be idle). Throws
  // std::invalid_argument naming the request (empty prompt, ids outside the vocabulary, a prompt beyond the
  // context, bad sampling parameters). Outputs in request order.
  std::vector<GenerationOutput> generate(const std::vector<GenerationRequest>& reqs);
  const GenerationStats& generation_stats() const { return gen_stats_; }
  const StepRecord& last_step() const { return last_; }

 private:
  void run_model(const StepBatch& b, bool decode_only);
  Model& model_;
  EngineOptions opt_;
  cudaStream_t stream_;
  Scheduler sched_;
  StepRecord last_;
  GenerationStats gen_stats_;
  int graphs_captured_ = 0;
  std::vector<GraphExec> graphs_;  // by batch size; empty where none captured yet
  DeviceBuffer<kernels::SamplingParams> d_params_;
  DeviceBuffer<int> d_next_;
  PinnedBuffer<kernels::SamplingParams> h_params_;
  PinnedBuffer<int> h_next_;
};

}  // namespace aipe::llm
