#pragma once
// The engine as a server drives it: requests join and leave between steps (continuous batching). llm/engine.hpp
// implements it on a Model; the HTTP server and its tests drive an engine through this interface only, so that a
// CPU stand-in can take the GPU engine's place in tests. Not thread-safe: one thread makes every call.
#include <vector>

#include "aipe/llm/model.hpp"
#include "aipe/llm/scheduler.hpp"

namespace aipe::llm {

class StepEngine {
 public:
  virtual ~StepEngine() = default;
  virtual const ModelInfo& info() const = 0;
  virtual const SchedulerConfig& scheduler_config() const = 0;  // max_model_len, eos_id, vocab_size, budgets
  // Queues a request (std::invalid_argument naming the problem, as Scheduler::add_request).
  virtual void add_request(Request r) = 0;
  // Cancels a waiting or running request at the next step; false when the id is unknown or already finished.
  virtual bool cancel(RequestId id) = 0;
  // One iteration: schedule, run the model, sample, update. `now` is the caller's clock in seconds (arrival
  // times use the same clock). Returns the tokens the step produced, in plan order; empty when idle.
  virtual std::vector<TokenEvent> step(double now) = 0;
  virtual bool has_unfinished() const = 0;
  virtual SchedulerStats stats() const = 0;
  // Requests that finished or were cancelled since the last call, in the order they ended.
  virtual std::vector<FinishedRequest> take_finished() = 0;
};

}  // namespace aipe::llm
