#pragma once
// What the scheduler reports for the server's /metrics and for `aipe bench`: gauges of the queues and the KV
// cache, prefix-cache counters, and per-request timestamps from which TTFT and inter-token latencies follow.
// Plain structs; times are seconds on whatever clock the caller passes to schedule() and update().
#include <cstdint>
#include <vector>

#include "aipe/llm/block_manager.hpp"

namespace aipe::llm {

using RequestId = std::int64_t;

enum class FinishReason {
  none,           // still running
  eos,            // sampled the model's end-of-sequence id
  stop_token,     // sampled one of the request's stop ids
  max_tokens,     // produced max_tokens
  context_limit,  // prompt + output reached max_model_len
  cancelled,      // the client went away (cancel())
};
const char* finish_reason_name(FinishReason r);  // "eos", "stop_token", ...

struct RequestTimes {
  double arrival = 0;           // the request's arrival_time
  double first_scheduled = -1;  // schedule() time of its first prefill chunk; -1 while waiting
  double first_token = -1;      // update() time of its first output token; -1 before
  double finished = -1;         // when it finished or its cancellation took effect
  std::vector<double> token_times;  // update() time of each output token

  double queue_time() const { return first_scheduled < 0 ? -1 : first_scheduled - arrival; }
  double ttft() const { return first_token < 0 ? -1 : first_token - arrival; }  // time to first token
  std::vector<double> inter_token_latencies() const {  // token_times[i] - token_times[i-1]
    std::vector<double> d;
    for (std::size_t i = 1; i < token_times.size(); ++i) d.push_back(token_times[i] - token_times[i - 1]);
    return d;
  }
};

// One request at its end (finished or cancelled).
struct FinishedRequest {
  RequestId id = 0;
  FinishReason reason = FinishReason::none;
  std::vector<TokenId> output;        // generated ids (a stop or eos id included)
  std::int32_t num_prompt_tokens = 0;
  std::int32_t num_cached_tokens = 0;  // prompt tokens the prefix cache supplied at its first admission
  std::int32_t num_preemptions = 0;    // times its pages were taken back and it was recomputed
  RequestTimes times;
};

// A snapshot, cheap to take every step.
struct SchedulerStats {
  std::int32_t num_running = 0, num_waiting = 0;
  std::int32_t kv_pages_total = 0, kv_pages_used = 0, kv_pages_cached = 0, kv_pages_free = 0;
  double kv_usage = 0;  // used / total: the KV-cache gauge (cached pages are reclaimable, so not "used")
  PrefixCacheStats prefix;
  double prefix_hit_rate = 0;
  std::uint64_t num_steps = 0, num_preemptions = 0, num_finished = 0, num_cancelled = 0;
};

}  // namespace aipe::llm
