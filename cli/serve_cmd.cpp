// `aipe serve` (the engine behind an OpenAI-compatible HTTP server) and `aipe bench serve` (a load generator for
// such a server: Poisson or fixed-concurrency arrivals, TTFT / TPOT / ITL percentiles, throughput, goodput).
#include "serve_cmd.hpp"

#include <csignal>
#include <filesystem>
#include <iomanip>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "aipe/bench_report.hpp"
#include "aipe/device.hpp"
#include "aipe/llm/block_manager.hpp"
#include "aipe/llm/config.hpp"
#include "aipe/llm/serve_bench.hpp"
#include "aipe/llm/serve_engine.hpp"
#include "aipe/llm/server.hpp"
#include "aipe/version.hpp"
#include "app.hpp"
#include "command.hpp"

namespace aipe::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// ---- aipe serve ----

struct ServeArgs {
  llm::ServeEngineOptions engine;
  std::string host = "127.0.0.1";
  int port = 8000, http_threads = 128;
  std::string served_name;
  double drain_s = 30;
  bool no_prefix_caching = false;
};

volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void on_stop_signal(int sig) { g_stop_signal = sig; }

int cmd_serve(ServeArgs a, std::ostream& out, std::ostream& err) {
  a.engine.prefix_caching = !a.no_prefix_caching;
  const std::string& m = a.engine.model;
  if (m.rfind("synthetic:", 0) == 0) {
    try {
      llm::synthetic_config(m.substr(10));
    } catch (const std::invalid_argument& e) {
      throw UsageError(e.what());
    }
  } else if (!fs::is_directory(m)) {
    std::string names;
    for (const auto& x : llm::synthetic_names()) names += (names.empty() ? "" : ", ") + x;
    throw UsageError("--model " + m + ": no such folder (or use synthetic:NAME; names: " + names + ")");
  }
  if (!llm::http_available()) {
    err << "aipe: aipe serve needs cpp-httplib, and this build has none (Debian: libcpp-httplib-dev; then "
           "configure again)\n";
    return kFailed;
  }
  if (auto why = gpu_unavailable_reason()) {
    err << "aipe: " << *why << "\n";
    return kNoGpu;
  }
  llm::ServeBackend b = llm::make_gpu_engine(a.engine);
  llm::Server server(*b.engine, b.tokenizer ? &*b.tokenizer : nullptr,
                     {.host = a.host, .port = a.port, .model_name = a.served_name.empty() ? m : a.served_name,
                      .http_threads = a.http_threads});
  g_stop_signal = 0;
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  const int port = server.start();
  const auto& cfg = b.engine->scheduler_config();
  out << "aipe serve: " << m << " on http://" << a.host << ":" << port << " (context " << cfg.max_model_len
      << " tokens, up to " << cfg.max_num_seqs << " requests at once, " << cfg.max_num_batched_tokens
      << " tokens a step" << (a.engine.prefix_caching && llm::prefix_caching_available() ? "" : "; no prefix caching")
      << (b.tokenizer ? "" : "; no tokenizer: prompts are token ids") << ")\n"
      << std::flush;
  while (!g_stop_signal) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  out << "aipe serve: signal " << int(g_stop_signal) << ": finishing " << server.in_flight()
      << " request(s) in flight (at most " << a.drain_s << " s)\n"
      << std::flush;
  server.shutdown(a.drain_s);
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  out << "aipe serve: stopped\n";
  return kOk;
}

CLI::App* add_serve(CLI::App& app, Action& action) {
  auto* c = app.add_subcommand("serve", "serve a model over an OpenAI-compatible HTTP API (completions, chat, SSE)");
  auto a = std::make_shared<ServeArgs>();
  c->add_option("--model", a->engine.model, "a Hugging Face model folder, or synthetic:NAME")->required();
  c->add_option("--host", a->host, "address to bind (default: loopback only)");
  c->add_option("--port", a->port, "TCP port")->check(CLI::Range(1, 65535));
  c->add_option("--served-model-name", a->served_name, "the model id clients name (default: --model)");
  c->add_option("--max-batch", a->engine.max_batch, "requests running at once")->check(CLI::Range(1, 4096));
  c->add_option("--max-batched-tokens", a->engine.max_batched_tokens, "tokens of one engine step")
      ->check(CLI::Range(1, 1 << 20));
  c->add_option("--max-model-len", a->engine.max_model_len, "context limit, prompt and output (0: the model's)")
      ->check(CLI::Range(0, 1 << 24));
  c->add_option("--gpu-memory", a->engine.gpu_memory, "fraction of the free GPU memory for weights, buffers and KV cache")
      ->check(CLI::Range(0.01, 1.0));
  c->add_option("--page-size", a->engine.page_size, "tokens per KV-cache page (16 or 64)")->check(CLI::IsMember({16, 64}));
  c->add_option("--device", a->engine.device, "GPU ordinal")->check(non_negative_integer(kMaxDevice));
  c->add_option("--seed", a->engine.seed, "seed of synthetic weights");
  c->add_option("--http-threads", a->http_threads, "connections served at once (a stream holds one)")
      ->check(CLI::Range(1, 4096));
  c->add_flag("--no-prefix-caching", a->no_prefix_caching,
              "prefill every prompt in full (the baseline of a shared-prefix workload)");
  c->add_option("--drain-timeout", a->drain_s, "seconds in-flight requests get to finish on SIGINT/SIGTERM")
      ->check(non_negative_number());
  action = [a](std::ostream& out, std::ostream& err) { return cmd_serve(*a, out, err); };
  return c;
}
AIPE_CLI_COMMAND(72, add_serve);

// ---- aipe bench serve ----

struct BenchServeArgs {
  llm::BenchServeOptions o;
  std::vector<double> sweep;
  std::string json, outputs;
  bool rate_given = false;
};

std::string ms(double s) {
  std::ostringstream o;
  o << std::fixed << std::setprecision(s * 1e3 < 10 ? 2 : 1) << s * 1e3;
  return o.str();
}

int cmd_bench_serve(const BenchServeArgs& a, std::ostream& out, std::ostream& err) {
  const llm::BenchServeOptions& o = a.o;
  if (o.concurrency > 0 && (a.rate_given || !a.sweep.empty()))
    throw UsageError("--concurrency is a closed loop: it does not go with --rate or --sweep");
  if (a.rate_given && !a.sweep.empty()) throw UsageError("give --rate R or --sweep R1,R2,..., not both");
  try {
    llm::parse_http_url(o.url);
    llm::check_bench_options(o);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  if (!o.dataset.empty() && !fs::is_regular_file(o.dataset)) throw UsageError("--dataset " + o.dataset + ": no such file");
  check_output(a.json, o.dataset.empty() ? std::vector<std::string>{} : std::vector<std::string>{o.dataset});
  check_output(a.outputs, o.dataset.empty() ? std::vector<std::string>{} : std::vector<std::string>{o.dataset});
  if (!a.outputs.empty() && a.outputs == a.json) throw UsageError("--outputs and --json name the same file");
  if (!llm::http_available()) {
    err << "aipe: aipe bench serve needs cpp-httplib, and this build has none (Debian: libcpp-httplib-dev)\n";
    return kFailed;
  }
  const llm::ServerInfo info = llm::query_server(o.url);
  std::vector<llm::BenchPrompt> prompts;
  try {
    prompts = llm::make_prompts(o, info);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  std::vector<double> rates = a.sweep.empty() ? std::vector<double>{o.rate} : a.sweep;

  json j = {{"schema", kBenchServeSchema},  {"aipe", version()},        {"git_revision", git_revision()}, {"timestamp", now_iso8601()},
            {"command", command_line()}, {"benchmark", "serve"},          {"url", o.url},
            {"model", info.model},       {"num_prompts", o.num_prompts},  {"input_len", o.input_len},
            {"output_len", o.output_len}, {"dataset", o.dataset},          {"seed", o.seed},
            {"slo_ttft_ms", o.slo_ttft_ms}, {"slo_tpot_ms", o.slo_tpot_ms}, {"runs", json::array()}};
  j["shared_prefix"] = o.shared_prefix;
  j["malformed_fraction"] = o.malformed_fraction;
  j["disconnect_fraction"] = o.disconnect_fraction;
  j["check_metrics"] = o.check_metrics;
  out << "aipe bench serve: " << info.model << " at " << o.url << "; " << o.num_prompts << " requests, "
      << (o.dataset.empty() ? "input " + std::to_string(o.input_len) + " tokens, " : "dataset " + o.dataset + ", ")
      << "output " << o.output_len << " tokens"
      << (o.shared_prefix > 0 ? ", the first " + std::to_string(o.shared_prefix) + " the same in every prompt" : "")
      << "\n";
  if (o.malformed_fraction > 0 || o.disconnect_fraction > 0)
    out << "   mixed in: " << o.malformed_fraction << " of the requests malformed (each must get a 400), "
        << o.disconnect_fraction << " hanging up mid-stream; the latencies are the other requests'\n";
  out << "   rate  done fail  req/s  out tok/s   TTFT ms p50 / p90 / p99   TPOT ms p50 / p90 / p99   ITL ms p99"
         "  goodput\n";
  int failed = 0;
  std::string outputs;
  for (const double rate : rates) {
    const llm::BenchServeResult r = llm::run_bench_serve(o, info, prompts, rate, o.concurrency);
    std::ostringstream row;
    row << std::fixed << std::setw(7)
        << (o.concurrency > 0 ? "c" + std::to_string(o.concurrency) : rate > 0 ? std::to_string(rate).substr(0, 6) : "inf")
        << std::setw(6) << r.completed << std::setw(5) << r.failed << std::setw(7) << std::setprecision(2)
        << r.request_throughput << std::setw(11) << std::setprecision(1) << r.output_throughput << std::setw(10)
        << ms(r.ttft.p50) << " / " << ms(r.ttft.p90) << " / " << ms(r.ttft.p99) << std::setw(10) << ms(r.tpot.p50)
        << " / " << ms(r.tpot.p90) << " / " << ms(r.tpot.p99) << std::setw(11) << ms(r.itl.p99) << std::setw(9)
        << std::setprecision(2) << r.goodput << "\n";
    out << row.str();
    if (r.malformed > 0 || r.disconnected > 0 || o.disconnect_fraction > 0)
      out << "         " << r.disconnected << " hung up as planned; " << r.malformed << " malformed: "
          << r.malformed_rejected << " answered 400, " << r.malformed_unexpected << " otherwise\n";
    for (const auto& e : r.errors) err << "aipe bench serve: a request failed: " << e << "\n";
    for (const auto& e : r.malformed_errors) err << "aipe bench serve: " << e << "\n";
    if (!r.passed()) ++failed;
    json run = llm::to_json(r);
    if (o.check_metrics) {
      const std::vector<std::string> left = llm::wait_drained(o.url, o.metrics_wait_s);
      run["metrics_drained"] = left.empty();
      run["metrics_not_drained"] = left;
      if (left.empty()) {
        out << "         /metrics: nothing running or waiting, no KV page held\n";
      } else {
        ++failed;
        for (const auto& l : left)
          err << "aipe bench serve: the server is not drained " << o.metrics_wait_s << " s after the run: " << l << "\n";
      }
    }
    outputs += llm::outputs_jsonl(r, int(j["runs"].size()));
    j["runs"].push_back(run);
  }
  if (!a.outputs.empty()) emit(a.outputs, outputs, out);
  emit(a.json, j.dump(2) + "\n", out);
  return failed > 0 ? kFailed : kOk;
}

}  // namespace

void add_bench_serve(CLI::App* bench, std::function<void(Action)> set_action) {
  auto* s = bench->add_subcommand("serve", "load an OpenAI-compatible server: TTFT, TPOT, ITL percentiles, goodput");
  auto a = std::make_shared<BenchServeArgs>();
  llm::BenchServeOptions& o = a->o;
  s->add_option("--url", o.url, "the server, http://HOST:PORT");
  s->add_option("--rate", o.rate, "requests per second, Poisson arrivals (default: all at once)")
      ->check(non_negative_number())
      ->each([a](const std::string&) { a->rate_given = true; });
  s->add_option("--concurrency", o.concurrency, "requests kept in flight (closed loop) instead of a rate")
      ->check(CLI::Range(1, 4096));
  s->add_option("--num-prompts", o.num_prompts, "requests to send (each rate of a sweep)")->check(CLI::Range(1, 100000));
  s->add_option("--input-len", o.input_len, "prompt tokens (random ids)")->check(CLI::Range(1, 1 << 24));
  s->add_option("--output-len", o.output_len, "tokens to generate (ignore_eos: exactly)")->check(CLI::Range(1, 1 << 24));
  s->add_option("--dataset", o.dataset, "JSON lines {\"prompt\": TEXT or [ids], \"max_tokens\": N} instead of random ids");
  s->add_option("--seed", o.seed, "seed of the prompts and the arrival times")->check(non_negative_integer());
  s->add_option("--sweep", a->sweep, "rates to run one after the other, e.g. 1,2,4,8")
      ->delimiter(',')
      ->check(non_negative_number());
  s->add_option("--slo-ttft-ms", o.slo_ttft_ms, "goodput counts requests with TTFT at most this")
      ->check(non_negative_number());
  s->add_option("--slo-tpot-ms", o.slo_tpot_ms, "goodput counts requests with TPOT at most this")
      ->check(non_negative_number());
  s->add_option("--timeout", o.timeout_s, "seconds one request may take")->check(CLI::Range(1.0, 86400.0));
  s->add_option("--shared-prefix", o.shared_prefix, "the first N prompt ids the same in every prompt (of --input-len)")
      ->check(CLI::Range(0, 1 << 24));
  s->add_option("--malformed-fraction", o.malformed_fraction, "share of requests sent malformed; each must get a 400")
      ->check(CLI::Range(0.0, 1.0));
  s->add_option("--disconnect-fraction", o.disconnect_fraction, "share of streams that hang up after a random token")
      ->check(CLI::Range(0.0, 1.0));
  s->add_flag("--check-metrics", o.check_metrics,
              "after each run, require /metrics to show nothing running or waiting and no KV page held");
  s->add_option("--metrics-wait", o.metrics_wait_s, "seconds the server gets to drain, with --check-metrics")
      ->check(CLI::Range(0.0, 600.0));
  s->add_option("--json", a->json, "write the results as JSON to FILE ('-' for stdout)");
  s->add_option("--outputs", a->outputs,
                "write what each completed request generated to FILE, as JSON lines (compare two runs with diff)");
  set_action([a](std::ostream& out, std::ostream& err) { return cmd_bench_serve(*a, out, err); });
}

}  // namespace aipe::cli
