#pragma once
// What `aipe serve` exports on GET /metrics, in the Prometheus text format (version 0.0.4): gauges of the engine
// (running and waiting requests, KV-cache use, prefix-cache hit rate) from its SchedulerStats, counters of requests
// and tokens, and histograms of time to first token, inter-token latency and end-to-end latency from each
// FinishedRequest. Names follow vLLM's with the aipe: prefix. Thread-safe: the engine thread records, HTTP threads
// render.
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "aipe/llm/metrics.hpp"

namespace aipe::llm {

// Cumulative buckets (Prometheus `le`), plus +Inf, sum and count.
struct Histogram {
  std::vector<double> bounds;          // ascending upper bounds
  std::vector<std::uint64_t> counts;   // [bounds.size() + 1], not cumulative; the last is past every bound
  double sum = 0;
  std::uint64_t count = 0;
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double x);
};

class ServeMetrics {
 public:
  ServeMetrics();
  void record_rejected(int http_status);          // a request answered with an error before it ran
  void record_finished(const FinishedRequest& f);  // counts, tokens and latencies of a request at its end
  void set_engine_stats(const SchedulerStats& s);  // the latest snapshot (the engine thread, every step)
  SchedulerStats engine_stats() const;
  std::string render(const std::string& model_name) const;

 private:
  mutable std::mutex m_;
  SchedulerStats stats_;
  std::map<std::string, std::uint64_t> finished_by_reason_;
  std::map<int, std::uint64_t> rejected_by_status_;
  std::uint64_t prompt_tokens_ = 0, generation_tokens_ = 0;
  Histogram ttft_, itl_, e2e_, queue_;
};

}  // namespace aipe::llm
