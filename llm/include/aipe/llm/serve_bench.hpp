#pragma once
// `aipe bench serve`: a load generator for an OpenAI-compatible server (aipe serve, or any server with the
// completions API), after vLLM's benchmark_serving. Requests arrive as a Poisson process of a given rate (or a
// fixed number stay in flight), each streams its output (token-id prompts with ignore_eos, so lengths are exact).
// Per request: TTFT, TPOT = (latency - TTFT) / (output tokens - 1) and the inter-token latencies; over a run:
// mean/p50/p90/p99, request and token throughput, and goodput (requests per second that met every SLO given).
// The workloads a server must survive are mixed in on request: prompts that share their first N ids (what prefix
// caching is for), malformed bodies that must be answered 400, and streams whose client hangs up mid-way; after a
// run the server's /metrics can be required to show nothing running, waiting or holding KV pages.
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
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
  int shared_prefix = 0;            // random prompts: the first N ids are the same in every prompt (seeded)
  double malformed_fraction = 0;    // this share of the requests is sent as a malformed body (must get a 400)
  double disconnect_fraction = 0;   // this share hangs up after a random number of streamed tokens
  bool check_metrics = false;       // after each run, /metrics must show the server drained
  double metrics_wait_s = 5;        // how long the gauges get to come back to 0
};
// The options' own consistency (std::invalid_argument naming the option): what is checked before a server is asked.
void check_bench_options(const BenchServeOptions& o);

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
  std::string malformed;            // not empty: this body is sent instead, and must be answered 400
  std::string malformed_kind;       // bad_json, wrong_type, out_of_range, past_context
  std::int32_t disconnect_after = 0;  // > 0: the client hangs up once this many tokens came back
};
// Random ids in [0, vocab_size) of input_len tokens each (seeded; the first shared_prefix of them the same in
// every prompt), or the dataset's prompts in turn; then round(fraction * num_prompts) of them, chosen by the seed,
// made malformed, and as many others made to disconnect. Throws std::invalid_argument naming the file and line of
// a malformed dataset, or a server without vocab_size.
std::vector<BenchPrompt> make_prompts(const BenchServeOptions& o, const ServerInfo& s);
// A malformed body of `kind` (one of malformed_kinds()) for a server of `s`; `salt` varies it.
std::string malformed_body(const std::string& kind, const ServerInfo& s, std::uint64_t salt);
const std::vector<std::string>& malformed_kinds();

struct RequestRecord {
  bool ok = false;
  std::string error;
  std::int64_t prompt_tokens = 0, output_tokens = 0;
  double start_s = 0, ttft_s = 0, latency_s = 0;  // start from the run's start; the others from the start
  std::vector<double> itl_s;
  bool malformed = false;     // sent malformed: ok means it was answered 400 with an OpenAI error body
  bool disconnected = false;  // ok and hung up as planned (its latencies are not a full request's)
  double tpot_s() const { return output_tokens > 1 ? (latency_s - ttft_s) / double(output_tokens - 1) : 0; }
};

struct LatencyStats {
  double mean = 0, p50 = 0, p90 = 0, p99 = 0, max = 0;  // seconds
};
LatencyStats latency_stats(std::vector<double> v);

struct BenchServeResult {
  double rate = 0;  // 0: all at once, or closed loop (concurrency)
  int concurrency = 0;
  int num_requests = 0, completed = 0, failed = 0;  // completed / failed: of the valid requests
  int disconnected = 0;                           // valid requests that hung up as planned
  int malformed = 0, malformed_rejected = 0, malformed_unexpected = 0;  // rejected: answered 400 as they must be
  double duration_s = 0;
  std::int64_t input_tokens = 0, output_tokens = 0;
  double request_throughput = 0, output_throughput = 0, total_token_throughput = 0;  // per second
  LatencyStats ttft, tpot, itl, e2e;
  int good = 0;         // completed and within every SLO given
  double goodput = 0;   // good / duration
  std::vector<std::string> errors;  // the first few failures
  std::vector<std::string> malformed_errors;  // the first few malformed requests answered otherwise than 400
  bool passed() const { return failed == 0 && malformed_unexpected == 0; }
  // What each request generated, by prompt index (empty unless it completed): greedy runs with and without a
  // server feature (prefix caching) must agree. Filled by run_bench_serve, not by summarize.
  std::vector<std::vector<TokenId>> output_ids;
  std::vector<std::string> output_text;
};
// Those outputs as JSON lines {"run": RUN, "request": I, "token_ids": [...], "text": "..."}, completed requests only.
std::string outputs_jsonl(const BenchServeResult& r, int run);
// A run's numbers from its records (pure: what the tests check).
BenchServeResult summarize(const std::vector<RequestRecord>& records, double duration_s, const BenchServeOptions& o,
                           double rate, int concurrency);
nlohmann::json to_json(const BenchServeResult& r);

// One run at `rate` (or `concurrency`): every prompt sent once, streamed to its end.
BenchServeResult run_bench_serve(const BenchServeOptions& o, const ServerInfo& s, const std::vector<BenchPrompt>& prompts,
                                 double rate, int concurrency);

// The samples of a Prometheus text exposition, summed over label sets by metric name (a `_bucket` series is a name
// of its own). Comments and blank lines are skipped; std::invalid_argument names the line of one that is malformed.
std::map<std::string, double> parse_prometheus_text(std::string_view text);

// The gauges that say a server is drained (nothing running, nothing waiting, no KV page held).
const std::vector<std::string>& drained_gauges();
// What in `metrics` is not drained: one line per gauge that is absent or not 0 (empty: drained).
std::vector<std::string> undrained(const std::map<std::string, double>& metrics);
// Polls GET /metrics until it is drained or `wait_s` passed; returns what was still not drained (empty: drained).
std::vector<std::string> wait_drained(const std::string& url, double wait_s);

}  // namespace aipe::llm
