#include "aipe/llm/serve_bench.hpp"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <fstream>
#include <mutex>
#include <numeric>
#include <random>
#include <stdexcept>
#include <thread>

#include "aipe/llm/openai.hpp"
#include "aipe/stats.hpp"

#if AIPE_HAVE_HTTPLIB
#include <httplib.h>
#endif

namespace aipe::llm {

using nlohmann::json;

HttpUrl parse_http_url(const std::string& url) {
  const std::string scheme = "http://";
  if (url.rfind(scheme, 0) != 0)
    throw std::invalid_argument("--url '" + url + "': must start with http:// (https is not supported)");
  std::string rest = url.substr(scheme.size());
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.find('/') != std::string::npos)
    throw std::invalid_argument("--url '" + url + "': give the server's root (http://HOST:PORT), not a path");
  HttpUrl u;
  const auto colon = rest.rfind(':');
  if (colon == std::string::npos) {
    u.host = rest;
  } else {
    u.host = rest.substr(0, colon);
    const std::string p = rest.substr(colon + 1);
    int port = 0;
    const auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
    if (p.empty() || ec != std::errc() || end != p.data() + p.size() || port < 1 || port > 65535)
      throw std::invalid_argument("--url '" + url + "': the port '" + p + "' is not a number in [1, 65535]");
    u.port = port;
  }
  if (u.host.empty()) throw std::invalid_argument("--url '" + url + "': no host");
  return u;
}

LatencyStats latency_stats(std::vector<double> v) {
  LatencyStats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  s.mean = std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
  s.p50 = percentile_sorted(v, 0.50);
  s.p90 = percentile_sorted(v, 0.90);
  s.p99 = percentile_sorted(v, 0.99);
  s.max = v.back();
  return s;
}

BenchServeResult summarize(const std::vector<RequestRecord>& recs, double duration_s, const BenchServeOptions& o,
                           double rate, int concurrency) {
  BenchServeResult r;
  r.rate = rate;
  r.concurrency = concurrency;
  r.num_requests = int(recs.size());
  r.duration_s = duration_s;
  std::vector<double> ttft, tpot, itl, e2e;
  for (const auto& x : recs) {
    if (!x.ok) {
      ++r.failed;
      if (r.errors.size() < 5) r.errors.push_back(x.error);
      continue;
    }
    ++r.completed;
    r.input_tokens += x.prompt_tokens;
    r.output_tokens += x.output_tokens;
    ttft.push_back(x.ttft_s);
    e2e.push_back(x.latency_s);
    if (x.output_tokens > 1) tpot.push_back(x.tpot_s());
    itl.insert(itl.end(), x.itl_s.begin(), x.itl_s.end());
    const bool ttft_ok = o.slo_ttft_ms <= 0 || x.ttft_s * 1e3 <= o.slo_ttft_ms;
    const bool tpot_ok = o.slo_tpot_ms <= 0 || x.tpot_s() * 1e3 <= o.slo_tpot_ms;
    if (ttft_ok && tpot_ok) ++r.good;
  }
  r.ttft = latency_stats(ttft);
  r.tpot = latency_stats(tpot);
  r.itl = latency_stats(itl);
  r.e2e = latency_stats(e2e);
  if (duration_s > 0) {
    r.request_throughput = r.completed / duration_s;
    r.output_throughput = double(r.output_tokens) / duration_s;
    r.total_token_throughput = double(r.input_tokens + r.output_tokens) / duration_s;
    r.goodput = r.good / duration_s;
  }
  return r;
}

json to_json(const BenchServeResult& r) {
  auto lat = [](const LatencyStats& s) {
    return json{{"mean", s.mean}, {"p50", s.p50}, {"p90", s.p90}, {"p99", s.p99}, {"max", s.max}};
  };
  return {{"rate", r.rate},
          {"concurrency", r.concurrency},
          {"num_requests", r.num_requests},
          {"completed", r.completed},
          {"failed", r.failed},
          {"duration_s", r.duration_s},
          {"input_tokens", r.input_tokens},
          {"output_tokens", r.output_tokens},
          {"request_throughput", r.request_throughput},
          {"output_throughput", r.output_throughput},
          {"total_token_throughput", r.total_token_throughput},
          {"ttft_s", lat(r.ttft)},
          {"tpot_s", lat(r.tpot)},
          {"itl_s", lat(r.itl)},
          {"e2e_s", lat(r.e2e)},
          {"good", r.good},
          {"goodput", r.goodput},
          {"errors", r.errors}};
}

std::vector<BenchPrompt> make_prompts(const BenchServeOptions& o, const ServerInfo& s) {
  std::vector<BenchPrompt> out;
  if (o.dataset.empty()) {
    if (s.vocab_size <= 0)
      throw std::invalid_argument("the server's /v1/models gives no vocab_size: random token prompts need it (use --dataset)");
    std::mt19937_64 g(o.seed);
    std::uniform_int_distribution<TokenId> id(0, s.vocab_size - 1);
    for (int i = 0; i < o.num_prompts; ++i) {
      BenchPrompt p{.ids = {}, .text = "", .max_tokens = o.output_len};
      for (int t = 0; t < o.input_len; ++t) p.ids.push_back(id(g));
      out.push_back(std::move(p));
    }
    return out;
  }
  std::ifstream f(o.dataset);
  if (!f) throw std::invalid_argument("--dataset " + o.dataset + ": cannot be read");
  std::vector<BenchPrompt> file;
  std::string line;
  for (int n = 1; std::getline(f, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = o.dataset + ":" + std::to_string(n);
    const json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("prompt"))
      throw std::invalid_argument(where + ": expected a JSON object with \"prompt\"");
    BenchPrompt p{.ids = {}, .text = "", .max_tokens = o.output_len};
    const json& pr = j["prompt"];
    if (pr.is_string() && !pr.get<std::string>().empty()) {
      p.text = pr.get<std::string>();
    } else if (pr.is_array() && !pr.empty()) {
      for (const auto& x : pr) {
        if (!x.is_number_unsigned() || x.get<std::uint64_t>() > 0x7fffffffull)
          throw std::invalid_argument(where + ": \"prompt\" must hold token ids (integers >= 0)");
        p.ids.push_back(TokenId(x.get<std::uint64_t>()));
      }
    } else {
      throw std::invalid_argument(where + ": \"prompt\" must be a non-empty string or array of token ids");
    }
    if (j.contains("max_tokens")) {
      if (!j["max_tokens"].is_number_unsigned() || j["max_tokens"].get<std::uint64_t>() < 1 ||
          j["max_tokens"].get<std::uint64_t>() > (1u << 30))
        throw std::invalid_argument(where + ": \"max_tokens\" must be an integer >= 1");
      p.max_tokens = std::int32_t(j["max_tokens"].get<std::uint64_t>());
    }
    file.push_back(std::move(p));
  }
  if (file.empty()) throw std::invalid_argument("--dataset " + o.dataset + ": no prompts");
  for (int i = 0; i < o.num_prompts; ++i) out.push_back(file[std::size_t(i) % file.size()]);
  return out;
}

#if AIPE_HAVE_HTTPLIB

ServerInfo query_server(const std::string& url) {
  const HttpUrl u = parse_http_url(url);
  httplib::Client cli(u.host, u.port);
  cli.set_connection_timeout(10);
  cli.set_read_timeout(30);
  const auto res = cli.Get("/v1/models");
  if (!res) throw std::runtime_error("GET " + url + "/v1/models: " + httplib::to_string(res.error()));
  if (res->status != 200)
    throw std::runtime_error("GET " + url + "/v1/models: HTTP " + std::to_string(res->status) + ": " + res->body.substr(0, 200));
  const json j = json::parse(res->body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("data") || !j["data"].is_array() || j["data"].empty() ||
      !j["data"][0].is_object() || !j["data"][0].contains("id") || !j["data"][0]["id"].is_string())
    throw std::runtime_error("GET " + url + "/v1/models: not a model list");
  const json& m = j["data"][0];
  ServerInfo s;
  s.model = m["id"].get<std::string>();
  auto int_field = [&](const char* k) -> std::int32_t {
    return m.contains(k) && m[k].is_number_unsigned() && m[k].get<std::uint64_t>() < (1u << 31)
               ? std::int32_t(m[k].get<std::uint64_t>())
               : 0;
  };
  s.max_model_len = int_field("max_model_len");
  s.vocab_size = int_field("vocab_size");
  return s;
}

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

RequestRecord send_one(const HttpUrl& u, const std::string& model, const BenchPrompt& p, double timeout_s,
                       Clock::time_point run_start) {
  RequestRecord rec;
  rec.prompt_tokens = std::int64_t(p.ids.size());
  json body = {{"model", model}, {"max_tokens", p.max_tokens}, {"stream", true}, {"ignore_eos", true},
               {"temperature", 0}, {"stream_options", {{"include_usage", true}}}};
  if (p.ids.empty()) body["prompt"] = p.text;
  else body["prompt"] = p.ids;

  httplib::Client cli(u.host, u.port);
  cli.set_connection_timeout(30);
  cli.set_read_timeout(std::time_t(timeout_s));
  cli.set_write_timeout(30);
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.set_header("Content-Type", "application/json");
  req.set_header("Accept", "text/event-stream");
  req.body = body.dump();

  openai::SseParser sse;
  std::string raw;  // the start of what came back, for the error message
  bool done = false;
  std::string stream_error;
  std::vector<double> token_times;
  std::int64_t usage_tokens = -1;
  const Clock::time_point t0 = Clock::now();
  rec.start_s = std::chrono::duration<double>(t0 - run_start).count();
  req.content_receiver = [&](const char* d, std::size_t n, std::uint64_t, std::uint64_t) {
    if (raw.size() < 512) raw.append(d, std::min<std::size_t>(n, 512 - raw.size()));
    for (const std::string& ev : sse.push(std::string_view(d, n))) {
      if (ev == "[DONE]") {
        done = true;
        continue;
      }
      const json j = json::parse(ev, nullptr, false);
      if (j.is_discarded() || !j.is_object()) {
        stream_error = "an event that is not JSON: " + ev.substr(0, 100);
        return false;
      }
      if (j.contains("error")) {
        stream_error = "the stream reported an error: " + j["error"].dump().substr(0, 200);
        return false;
      }
      if (j.contains("usage") && j["usage"].is_object() && j["usage"].contains("completion_tokens") &&
          j["usage"]["completion_tokens"].is_number_integer()) {
        usage_tokens = j["usage"]["completion_tokens"].get<std::int64_t>();
        if (j["usage"].contains("prompt_tokens") && j["usage"]["prompt_tokens"].is_number_integer())
          rec.prompt_tokens = j["usage"]["prompt_tokens"].get<std::int64_t>();
      }
      if (!j.contains("choices") || !j["choices"].is_array() || j["choices"].empty()) continue;
      const json& c = j["choices"][0];
      std::size_t k = 0;
      if (c.is_object() && c.contains("token_ids") && c["token_ids"].is_array()) k = c["token_ids"].size();
      else if (c.is_object() && c.contains("text") && c["text"].is_string() && !c["text"].get<std::string>().empty()) k = 1;
      const double t = seconds_since(t0);
      for (std::size_t i = 0; i < k; ++i) token_times.push_back(t);
    }
    return true;
  };
  const httplib::Result res = cli.send(req);
  rec.latency_s = seconds_since(t0);
  if (!stream_error.empty()) {
    rec.error = stream_error;
  } else if (!res) {
    rec.error = "POST /v1/completions: " + httplib::to_string(res.error());
  } else if (res->status != 200) {
    rec.error = "HTTP " + std::to_string(res->status) + ": " + raw.substr(0, 200);
  } else if (!done) {
    rec.error = "the stream ended without [DONE]";
  } else if (token_times.empty()) {
    rec.error = "no tokens came back";
  } else {
    rec.ok = true;
    rec.output_tokens = usage_tokens >= 0 ? usage_tokens : std::int64_t(token_times.size());
    rec.ttft_s = token_times.front();
    for (std::size_t i = 1; i < token_times.size(); ++i) rec.itl_s.push_back(token_times[i] - token_times[i - 1]);
  }
  return rec;
}

}  // namespace

BenchServeResult run_bench_serve(const BenchServeOptions& o, const ServerInfo& s, const std::vector<BenchPrompt>& prompts,
                                 double rate, int concurrency) {
  const HttpUrl u = parse_http_url(o.url);
  std::vector<RequestRecord> recs(prompts.size());
  const Clock::time_point start = Clock::now();
  if (concurrency > 0) {
    std::atomic<std::size_t> next{0};
    std::vector<std::thread> workers;
    for (int w = 0; w < concurrency; ++w)
      workers.emplace_back([&] {
        for (std::size_t i; (i = next.fetch_add(1)) < prompts.size();)
          recs[i] = send_one(u, s.model, prompts[i], o.timeout_s, start);
      });
    for (auto& t : workers) t.join();
  } else {
    // Poisson arrivals: exponential gaps of mean 1 / rate; rate 0 sends everything at once.
    std::mt19937_64 g(o.seed ^ 0xa11ce5ull);
    std::exponential_distribution<double> gap(rate > 0 ? rate : 1.0);
    std::vector<std::thread> threads;
    double t = 0;
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      if (rate > 0) {
        if (i > 0) t += gap(g);
        std::this_thread::sleep_until(start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(t)));
      }
      threads.emplace_back([&, i] { recs[i] = send_one(u, s.model, prompts[i], o.timeout_s, start); });
    }
    for (auto& th : threads) th.join();
  }
  return summarize(recs, seconds_since(start), o, rate, concurrency);
}

#else

ServerInfo query_server(const std::string&) {
  throw std::runtime_error("aipe was built without cpp-httplib (Debian: libcpp-httplib-dev): no HTTP client");
}
BenchServeResult run_bench_serve(const BenchServeOptions&, const ServerInfo&, const std::vector<BenchPrompt>&, double, int) {
  throw std::runtime_error("aipe was built without cpp-httplib (Debian: libcpp-httplib-dev): no HTTP client");
}

#endif

}  // namespace aipe::llm
