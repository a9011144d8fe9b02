// The files `aipe bench generate --json` and `aipe bench serve --json` write, read back for `aipe report`
// (schemas "aipe.bench.generate/1" and "aipe.bench.serve/1"). Files recorded before
// the schema field existed are recognized by their shape: a serve file by "benchmark": "serve", a generate
// file by runs[] holding batch and tpot_s. Every field is checked against its type and range; an error
// names the field ("runs[1].tpot_s.p99: ..."). Host-only.
#pragma once
#include <cstdint>
#include <istream>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "aipe/report.hpp"

namespace aipe {

inline constexpr const char* kRunSchema = "aipe.run/1";
inline constexpr const char* kBenchGenerateSchema = "aipe.bench.generate/1";
inline constexpr const char* kBenchServeSchema = "aipe.bench.serve/1";

struct Percentiles {
  double p50 = 0, p90 = 0, p99 = 0;
};

// One batch size of `aipe bench generate`: prefill time, decode step percentiles and the step's roofline bound.
struct BenchGenerateRun {
  std::int64_t batch = 0;
  double ttft_s = 0;
  Percentiles tpot_s;
  double decode_tokens_per_s = 0;
  std::int64_t decode_steps = 0;
  double bound_step_s = 0;       // max(bytes / DRAM, FLOPs / BF16): the fastest a decode step can be
  double bound_bytes = 0;
  double fraction_of_bound = 0;  // bound_step_s / TPOT p50
  std::string bound;             // "memory" or "compute"; empty in files that predate it
  std::int64_t graphs_captured = 0;
};

struct BenchGenerateReport {
  std::string aipe_version, git_revision, timestamp, command, device;
  std::string model;
  bool synthetic = false;
  double weight_bytes = 0;
  std::int64_t parameters = 0;
  std::int64_t input_len = 0, output_len = 0;
  std::optional<bool> cuda_graphs, programmatic_launch;  // absent from files that predate the switch
  double dram_gbps = 0;
  std::string dram_source;   // "spec" or "measured (aipe peak)"
  double bf16_tflops = 0;    // 0: not recorded (the bound was DRAM only)
  std::string bf16_source;
  std::vector<BenchGenerateRun> runs;
};

// One arrival rate (or concurrency) of `aipe bench serve`.
struct BenchServeRun {
  double rate = 0;               // requests/s; 0 with concurrency 0: all at once
  std::int64_t concurrency = 0;  // > 0: closed loop with that many requests in flight
  std::int64_t num_requests = 0, completed = 0, failed = 0;
  double duration_s = 0, request_throughput = 0, output_throughput = 0;
  Percentiles ttft_s, tpot_s, itl_s, e2e_s;
  std::int64_t good = 0;
  double goodput = 0;            // requests/s that met both SLOs
  // Mixed in (0 in files that predate them): hang-ups as planned; malformed bodies, those answered 400 and the rest.
  std::int64_t disconnected = 0, malformed = 0, malformed_rejected = 0, malformed_unexpected = 0;
  std::optional<bool> metrics_drained;  // with --check-metrics: the server's gauges came back to 0
};

struct BenchServeReport {
  std::string aipe_version, git_revision, timestamp, command, model, url, dataset;
  std::int64_t num_prompts = 0, input_len = 0, output_len = 0;
  double slo_ttft_ms = 0, slo_tpot_ms = 0;  // 0: no SLO
  std::int64_t shared_prefix = 0;           // the first N prompt ids the same in every prompt
  double malformed_fraction = 0, disconnect_fraction = 0;
  std::vector<BenchServeRun> runs;
};

using AnyReport = std::variant<RunReport, BenchGenerateReport, BenchServeReport>;

// Parses JSON and reads whichever of the three reports it is; throws std::runtime_error naming what is
// malformed, or saying that the file is none of them.
AnyReport read_any_report(std::istream& is);

// On parsed JSON of a known kind; throw std::runtime_error naming the field.
BenchGenerateReport bench_generate_from_json(const nlohmann::json& j);
BenchServeReport bench_serve_from_json(const nlohmann::json& j);

}  // namespace aipe
