#pragma once
// `aipe bench serve`: a load generator for an OpenAI-compatible server (aipe serve, or any server with the
// completions API), after vLLM's benchmark_serving. Requests arrive as a Poisson process of a given rate (or a
// fixed number stay in flight), each streams its output (token-id prompts with ignore_eos, so lengths are exact).
// Per request: TTFT, TPOT = (latency - TTFT) / (output tokens - 1) and the inter-token latencies; over a run:
// mean/p50/p90/p99, request and token throughput, and goodput (requests per second that met every SLO given).
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "aipe/llm/block_manager.hpp"

namespace aipe::llm {

struct HttpUrl {
  std::string host;
  int port = 80;
};
// "http://HOST[:PORT][/]" (std::invalid_argument naming what is wrong: another scheme, a path, a bad port).
HttpUrl parse_http_url(const std::string& url);

struct BenchServeOptions {
  std::string url = "http://127.0.0.1:8000";
  double rate = 0;        // requests/s of Poisson arrivals; 0 (and no concurrency): all at once
  int concurrency = 0;    // > 0: this many in flight, the next starting when one ends
  int num_prompts = 100, input_len = 128, output_len = 128;
  std::string dataset;    // JSON lines {"prompt": STRING or [ids], "max_tokens": N (optional)}, used in turn
  std::uint64_t seed = 1;
  double slo_ttft_ms = 0, slo_tpot_ms = 0;  // 0: no such SLO
  double timeout_s = 600;                   // one request, at most
};

// What GET /v1/models says (max_model_len and vocab_size are aipe serve's and vLLM's fields; 0 when absent).
struct ServerInfo {
  std::string model;
  std::int32_t max_model_len = 0, vocab_size = 0;
};
ServerInfo query_server(const std::string& url);  // std::runtime_error when the server cannot be asked

struct BenchPrompt {
  std::vector<TokenId> ids;  // empty: text
  std::string text;
  std::int32_t max_tokens = 0;
};
// Random ids in [0, vocab_size) of input_len tokens each (seeded), or the dataset's prompts in turn; throws
// std::invalid_argument naming the file and line of a malformed dataset, or a server without vocab_size.
std::vector<BenchPrompt> make_prompts(const BenchServeOptions& o, const ServerInfo& s);

struct RequestRecord {
  bool ok = false;
  std::string error;
  std::int64_t prompt_tokens = 0, output_tokens = 0;
  double start_s = 0, ttft_s = 0, latency_s = 0;  // start from the run's start; the others from the start
  std::vector<double> itl_s;
  double tpot_s() const { return output_tokens > 1 ? (latency_s - ttft_s) / double(output_tokens - 1) : 0; }
};

struct LatencyStats {
  double mean = 0, p50 = 0, p90 = 0, p99 = 0, max = 0;  // seconds
};
LatencyStats latency_stats(std::vector<double> v);

struct BenchServeResult {
  double rate = 0;  // 0: all at once, or closed loop (concurrency)
  int concurrency = 0;
  int num_requests = 0, completed = 0, failed = 0;
  double duration_s = 0;
  std::int64_t input_tokens = 0, output_tokens = 0;
  double request_throughput = 0, output_throughput = 0, total_token_throughput = 0;  // per second
  LatencyStats ttft, tpot, itl, e2e;
  int good = 0;         // completed and within every SLO given
  double goodput = 0;   // good / duration
  std::vector<std::string> errors;  // the first few failures
};
// A run's numbers from its records (pure: what the tests check).
BenchServeResult summarize(const std::vector<RequestRecord>& records, double duration_s, const BenchServeOptions& o,
                           double rate, int concurrency);
nlohmann::json to_json(const BenchServeResult& r);

// One run at `rate` (or `concurrency`): every prompt sent once, streamed to its end.
BenchServeResult run_bench_serve(const BenchServeOptions& o, const ServerInfo& s, const std::vector<BenchPrompt>& prompts,
                                 double rate, int concurrency);

}  // namespace aipe::llm
