#include "aipe/bench_report.hpp"

#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "aipe/json_fields.hpp"
#include "aipe/printable.hpp"

namespace aipe {

namespace {

namespace F = fields;
using nlohmann::json;

constexpr double kMax = std::numeric_limits<double>::max();
constexpr std::int64_t kMaxCount = std::numeric_limits<std::int64_t>::max();

// A quantity the report cannot do without: present, finite, >= 0.
double required(const json& j, const std::string& key, const std::string& w) {
  if (!j.contains(key) || j.at(key).is_null()) throw std::runtime_error(F::field_name(w, key) + ": missing");
  return F::number(j, key, w, 0.0, 0.0, kMax);
}
double optional(const json& j, const std::string& key, const std::string& w) { return F::number(j, key, w, 0.0, 0.0, kMax); }

Percentiles percentiles(const json& j, const std::string& key, const std::string& w) {
  const auto& o = F::object(j, key, w);
  const std::string where = F::field_name(w, key);
  return {.p50 = required(o, "p50", where), .p90 = required(o, "p90", where), .p99 = required(o, "p99", where)};
}

const json& runs_array(const json& j) {
  if (!j.contains("runs") || !j.at("runs").is_array()) throw std::runtime_error("runs: missing or not an array");
  return j.at("runs");
}

std::optional<bool> maybe_bool(const json& j, const std::string& key) {
  if (!j.contains(key) || j.at(key).is_null()) return std::nullopt;
  return F::boolean(j, key, "");
}

// What kind of report `j` is, from its schema or (files recorded before the schema field) its shape.
enum class Kind { run, generate, serve };
Kind kind_of(const json& j) {
  if (!j.is_object()) throw std::runtime_error("not an aipe report: the top level is not a JSON object");
  if (j.contains("schema")) {
    const auto& s = j.at("schema");
    if (s == kRunSchema) return Kind::run;
    if (s == kBenchGenerateSchema) return Kind::generate;
    if (s == kBenchServeSchema) return Kind::serve;
    throw std::runtime_error("schema: unknown " + printable(s.dump().substr(0, 60)) + " (expected \"" + kRunSchema +
                             "\", \"" + kBenchGenerateSchema + "\" or \"" + kBenchServeSchema + "\")");
  }
  if (j.contains("benchmark") && j.at("benchmark") == "serve") return Kind::serve;
  if (j.contains("runs") && j.at("runs").is_array() && !j.at("runs").empty() && j.at("runs")[0].is_object() &&
      j.at("runs")[0].contains("batch") && j.at("runs")[0].contains("tpot_s"))
    return Kind::generate;
  throw std::runtime_error(std::string("not an aipe report (expected \"schema\": \"") + kRunSchema + "\", \"" +
                           kBenchGenerateSchema + "\" or \"" + kBenchServeSchema + "\")");
}

}  // namespace

BenchGenerateReport bench_generate_from_json(const json& j) {
  try {
    BenchGenerateReport r;
    r.aipe_version = F::string(j, "aipe", "", "");
    r.git_revision = F::string(j, "git_revision", "", "");
    r.timestamp = F::string(j, "timestamp", "", "");
    r.command = F::string(j, "command", "", "");
    r.device = F::string(j, "device", "", "");
    const auto& m = F::object(j, "model", "");
    r.model = F::string(m, "name", "model");
    r.synthetic = F::boolean(m, "synthetic", "model", false);
    r.weight_bytes = optional(m, "weight_bytes", "model");
    r.parameters = F::integer(m, "parameters", "model", 0, kMaxCount, 0);
    r.input_len = F::integer(j, "input_len", "", 0, kMaxCount, 0);
    r.output_len = F::integer(j, "output_len", "", 0, kMaxCount, 0);
    r.cuda_graphs = maybe_bool(j, "cuda_graphs");
    r.programmatic_launch = maybe_bool(j, "programmatic_launch");
    r.dram_gbps = optional(j, "dram_gbps", "");
    r.dram_source = F::string(j, "dram_source", "", "");
    r.bf16_tflops = optional(j, "bf16_tflops", "");
    r.bf16_source = F::string(j, "bf16_source", "", "");
    const auto& runs = runs_array(j);
    for (std::size_t i = 0; i < runs.size(); ++i) {
      const std::string w = "runs[" + std::to_string(i) + "]";
      const auto& x = runs[i];
      if (!x.is_object()) throw std::runtime_error(w + ": not an object");
      BenchGenerateRun g;
      g.batch = F::integer(x, "batch", w, 1, kMaxCount);
      g.ttft_s = required(x, "ttft_s", w);
      g.tpot_s = percentiles(x, "tpot_s", w);
      g.decode_tokens_per_s = required(x, "decode_tokens_per_s", w);
      g.decode_steps = F::integer(x, "decode_steps", w, 0, kMaxCount, 0);
      g.bound_step_s = optional(x, "bound_step_s", w);
      g.bound_bytes = optional(x, "bound_bytes", w);
      g.fraction_of_bound = optional(x, "fraction_of_bound", w);
      g.bound = F::string(x, "bound", w, "");
      if (!g.bound.empty() && g.bound != "memory" && g.bound != "compute")
        throw std::runtime_error(w + ".bound: '" + printable(g.bound) + "' (expected memory or compute)");
      g.graphs_captured = F::integer(x, "graphs_captured", w, 0, kMaxCount, 0);
      r.runs.push_back(g);
    }
    return r;
  } catch (const json::exception& e) {
    throw std::runtime_error(std::string("malformed aipe bench generate report: ") + e.what());
  }
}

BenchServeReport bench_serve_from_json(const json& j) {
  try {
    BenchServeReport r;
    r.aipe_version = F::string(j, "aipe", "", "");
    r.git_revision = F::string(j, "git_revision", "", "");
    r.timestamp = F::string(j, "timestamp", "", "");
    r.command = F::string(j, "command", "", "");
    r.model = F::string(j, "model", "", "");
    r.url = F::string(j, "url", "", "");
    r.dataset = F::string(j, "dataset", "", "");
    r.num_prompts = F::integer(j, "num_prompts", "", 0, kMaxCount, 0);
    r.input_len = F::integer(j, "input_len", "", 0, kMaxCount, 0);
    r.output_len = F::integer(j, "output_len", "", 0, kMaxCount, 0);
    r.slo_ttft_ms = optional(j, "slo_ttft_ms", "");
    r.slo_tpot_ms = optional(j, "slo_tpot_ms", "");
    r.shared_prefix = F::integer(j, "shared_prefix", "", 0, kMaxCount, 0);
    r.malformed_fraction = F::number(j, "malformed_fraction", "", 0.0, 0.0, 1.0);
    r.disconnect_fraction = F::number(j, "disconnect_fraction", "", 0.0, 0.0, 1.0);
    const auto& runs = runs_array(j);
    for (std::size_t i = 0; i < runs.size(); ++i) {
      const std::string w = "runs[" + std::to_string(i) + "]";
      const auto& x = runs[i];
      if (!x.is_object()) throw std::runtime_error(w + ": not an object");
      BenchServeRun s;
      s.rate = optional(x, "rate", w);
      s.concurrency = F::integer(x, "concurrency", w, 0, kMaxCount, 0);
      s.num_requests = F::integer(x, "num_requests", w, 0, kMaxCount, 0);
      s.completed = F::integer(x, "completed", w, 0, kMaxCount);
      s.failed = F::integer(x, "failed", w, 0, kMaxCount);
      s.duration_s = optional(x, "duration_s", w);
      s.request_throughput = required(x, "request_throughput", w);
      s.output_throughput = required(x, "output_throughput", w);
      s.ttft_s = percentiles(x, "ttft_s", w);
      s.tpot_s = percentiles(x, "tpot_s", w);
      s.itl_s = percentiles(x, "itl_s", w);
      if (x.contains("e2e_s") && !x.at("e2e_s").is_null()) s.e2e_s = percentiles(x, "e2e_s", w);
      s.good = F::integer(x, "good", w, 0, kMaxCount, 0);
      s.goodput = optional(x, "goodput", w);
      s.disconnected = F::integer(x, "disconnected", w, 0, kMaxCount, 0);
      s.malformed = F::integer(x, "malformed", w, 0, kMaxCount, 0);
      s.malformed_rejected = F::integer(x, "malformed_rejected", w, 0, s.malformed, 0);
      s.malformed_unexpected = F::integer(x, "malformed_unexpected", w, 0, s.malformed - s.malformed_rejected, 0);
      if (x.contains("metrics_drained") && !x.at("metrics_drained").is_null())
        s.metrics_drained = F::boolean(x, "metrics_drained", w);
      r.runs.push_back(s);
    }
    return r;
  } catch (const json::exception& e) {
    throw std::runtime_error(std::string("malformed aipe bench serve report: ") + e.what());
  }
}

AnyReport read_any_report(std::istream& is) {
  json j;
  try {
    j = json::parse(is);
  } catch (const json::exception& e) {
    throw std::runtime_error(std::string("not valid JSON: ") + e.what());
  }
  switch (kind_of(j)) {
    case Kind::run: return run_report_from_json(j);
    case Kind::generate: return bench_generate_from_json(j);
    case Kind::serve: return bench_serve_from_json(j);
  }
  throw std::logic_error("unreachable report kind");
}

}  // namespace aipe
