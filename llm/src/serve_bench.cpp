#include "aipe/llm/serve_bench.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <cmath>
#include <chrono>
#include <fstream>
#include <mutex>
#include <numeric>
#include <random>
#include <sstream>
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
    if (x.malformed) {
      ++r.malformed;
      if (x.ok) {
        ++r.malformed_rejected;
      } else {
        ++r.malformed_unexpected;
        if (r.malformed_errors.size() < 5) r.malformed_errors.push_back(x.error);
      }
      continue;
    }
    if (!x.ok) {
      ++r.failed;
      if (r.errors.size() < 5) r.errors.push_back(x.error);
      continue;
    }
    if (x.disconnected) {
      ++r.disconnected;
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
          {"errors", r.errors},
          {"disconnected", r.disconnected},
          {"malformed", r.malformed},
          {"malformed_rejected", r.malformed_rejected},
          {"malformed_unexpected", r.malformed_unexpected},
          {"malformed_errors", r.malformed_errors}};
}

std::string outputs_jsonl(const BenchServeResult& r, int run) {
  std::string out;
  for (std::size_t i = 0; i < r.output_ids.size(); ++i) {
    const std::string text = i < r.output_text.size() ? r.output_text[i] : std::string{};
    if (r.output_ids[i].empty() && text.empty()) continue;
    // Lossy UTF-8 replacement: a token's bytes may split a character, and the line must stay JSON.
    out += json{{"run", run}, {"request", i}, {"token_ids", r.output_ids[i]}, {"text", text}}
               .dump(-1, ' ', false, json::error_handler_t::replace) +
           "\n";
  }
  return out;
}

void check_bench_options(const BenchServeOptions& o) {
  if (o.shared_prefix < 0) throw std::invalid_argument("--shared-prefix must be >= 0");
  if (o.shared_prefix > 0 && !o.dataset.empty())
    throw std::invalid_argument("--shared-prefix shapes the random prompts: it does not go with --dataset");
  if (o.shared_prefix > o.input_len)
    throw std::invalid_argument("--shared-prefix " + std::to_string(o.shared_prefix) + " is longer than --input-len " +
                                std::to_string(o.input_len) + " (the input length counts the whole prompt)");
  for (const auto& [name, f] : {std::pair{"--malformed-fraction", o.malformed_fraction},
                                std::pair{"--disconnect-fraction", o.disconnect_fraction}})
    if (!(f >= 0 && f <= 1)) throw std::invalid_argument(std::string(name) + " must be in [0, 1]");
  if (o.malformed_fraction + o.disconnect_fraction > 1)
    throw std::invalid_argument("--malformed-fraction and --disconnect-fraction add up to more than 1");
  if (!(o.metrics_wait_s >= 0)) throw std::invalid_argument("--metrics-wait must be >= 0");
}

const std::vector<std::string>& malformed_kinds() {
  static const std::vector<std::string> k = {"bad_json", "wrong_type", "out_of_range", "past_context"};
  return k;
}

std::string malformed_body(const std::string& kind, const ServerInfo& s, std::uint64_t salt) {
  // Each body is a valid streaming request but for the one defect its kind names.
  json base = {{"model", s.model}, {"prompt", {1, 2, 3}}, {"max_tokens", 4}, {"stream", true}, {"ignore_eos", true}};
  if (kind == "bad_json") {
    // Any proper prefix of an object's text is not JSON: the object is never closed.
    const std::string whole = base.dump();
    return whole.substr(0, 1 + salt % (whole.size() - 1));
  }
  if (kind == "wrong_type") {
    switch (salt % 4) {
      case 0: base["prompt"] = {{"ids", {1, 2, 3}}}; break;
      case 1: base["max_tokens"] = "4"; break;
      case 2: base["stream"] = "yes"; break;
      default: base["temperature"] = "hot";
    }
    return base.dump();
  }
  if (kind == "out_of_range") {
    switch (salt % (s.vocab_size > 0 ? 4 : 3)) {
      case 0: base["max_tokens"] = 0; break;
      case 1: base["temperature"] = 5; break;
      case 2: base["top_p"] = 0; break;
      default: base["prompt"] = {1, s.vocab_size};  // one past the vocabulary
    }
    return base.dump();
  }
  if (kind == "past_context") {
    if (s.max_model_len <= 0)
      throw std::invalid_argument("a prompt past the context needs the server's max_model_len (its /v1/models has none)");
    // The whole context in the prompt leaves no room for a single output token.
    base["prompt"] = std::vector<TokenId>(std::size_t(s.max_model_len), 1);
    return base.dump();
  }
  throw std::invalid_argument("no malformed body of kind '" + kind + "'");
}

std::map<std::string, double> parse_prometheus_text(std::string_view text) {
  std::map<std::string, double> out;
  std::size_t at = 0;
  for (int line_no = 1; at < text.size(); ++line_no) {
    const std::size_t nl = text.find('\n', at);
    std::string_view line = text.substr(at, nl == std::string_view::npos ? std::string_view::npos : nl - at);
    at = nl == std::string_view::npos ? text.size() : nl + 1;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    if (line.empty() || line.front() == '#') continue;
    const auto bad = [&](const std::string& why) {
      return std::invalid_argument("/metrics line " + std::to_string(line_no) + ": " + why);
    };
    std::size_t i = 0;
    while (i < line.size() && (std::isalnum(static_cast<unsigned char>(line[i])) || line[i] == '_' || line[i] == ':')) ++i;
    if (i == 0) throw bad("a sample must start with a metric name");
    const std::string name(line.substr(0, i));
    if (i < line.size() && line[i] == '{') {
      bool quoted = false;
      for (++i; i < line.size(); ++i) {
        if (quoted) {
          if (line[i] == '\\') ++i;  // an escaped character
          else if (line[i] == '"') quoted = false;
        } else if (line[i] == '"') {
          quoted = true;
        } else if (line[i] == '}') {
          break;
        }
      }
      if (i >= line.size()) throw bad("the labels of " + name + " are not closed");
      ++i;
    }
    if (i >= line.size() || (line[i] != ' ' && line[i] != '\t')) throw bad(name + " has no value");
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    std::size_t end = i;
    while (end < line.size() && line[end] != ' ' && line[end] != '\t') ++end;
    std::string_view v = line.substr(i, end - i);
    if (!v.empty() && v.front() == '+') v.remove_prefix(1);  // "+Inf"
    double x = 0;
    const auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
    if (v.empty() || ec != std::errc() || p != v.data() + v.size())
      throw bad(name + ": '" + std::string(line.substr(i, end - i)).substr(0, 40) + "' is not a number");
    out[name] += x;
  }
  return out;
}

namespace {
std::string number_text(double x) {
  std::ostringstream s;
  s << x;
  return s.str();
}
}  // namespace

const std::vector<std::string>& drained_gauges() {
  static const std::vector<std::string> g = {"aipe:num_requests_running", "aipe:num_requests_waiting",
                                             "aipe:kv_cache_pages_used"};
  return g;
}

std::vector<std::string> undrained(const std::map<std::string, double>& metrics) {
  std::vector<std::string> out;
  for (const auto& g : drained_gauges()) {
    const auto it = metrics.find(g);
    if (it == metrics.end()) out.push_back(g + " is not in /metrics");
    else if (it->second != 0) out.push_back(g + " is " + number_text(it->second) + ", not 0");
  }
  return out;
}

namespace {

// round(fraction * n) requests, chosen by a seeded shuffle, become malformed; as many others hang up after a
// random number of tokens in [1, max_tokens - 1] (at least 1): the counts are exact, the choice seeded.
void mix_in_faults(const BenchServeOptions& o, const ServerInfo& s, std::vector<BenchPrompt>& prompts) {
  const std::size_t n = prompts.size();
  const std::size_t bad = std::min<std::size_t>(n, std::size_t(std::llround(o.malformed_fraction * double(n))));
  const std::size_t gone = std::min<std::size_t>(n - bad, std::size_t(std::llround(o.disconnect_fraction * double(n))));
  if (bad == 0 && gone == 0) return;
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), std::size_t(0));
  std::mt19937_64 g(o.seed ^ 0xfa017ull);
  std::shuffle(order.begin(), order.end(), g);
  std::vector<std::string> kinds;
  for (const auto& k : malformed_kinds())
    if (k != "past_context" || s.max_model_len > 0) kinds.push_back(k);
  for (std::size_t j = 0; j < bad; ++j) {
    BenchPrompt& p = prompts[order[j]];
    p.malformed_kind = kinds[j % kinds.size()];  // every kind, in turn
    p.malformed = malformed_body(p.malformed_kind, s, g());
  }
  for (std::size_t j = bad; j < bad + gone; ++j) {
    BenchPrompt& p = prompts[order[j]];
    std::uniform_int_distribution<std::int32_t> after(1, std::max(1, p.max_tokens - 1));
    p.disconnect_after = after(g);
  }
}

}  // namespace

std::vector<BenchPrompt> make_prompts(const BenchServeOptions& o, const ServerInfo& s) {
  check_bench_options(o);
  std::vector<BenchPrompt> out;
  if (o.dataset.empty()) {
    if (s.vocab_size <= 0)
      throw std::invalid_argument("the server's /v1/models gives no vocab_size: random token prompts need it (use --dataset)");
    std::mt19937_64 g(o.seed);
    std::uniform_int_distribution<TokenId> id(0, s.vocab_size - 1);
    std::vector<TokenId> prefix;
    for (int t = 0; t < o.shared_prefix; ++t) prefix.push_back(id(g));
    for (int i = 0; i < o.num_prompts; ++i) {
      BenchPrompt p{.ids = prefix, .text = "", .max_tokens = o.output_len, .malformed = "", .malformed_kind = "",
                    .disconnect_after = 0};
      for (int t = o.shared_prefix; t < o.input_len; ++t) p.ids.push_back(id(g));
      out.push_back(std::move(p));
    }
    mix_in_faults(o, s, out);
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
    BenchPrompt p{.ids = {}, .text = "", .max_tokens = o.output_len, .malformed = "", .malformed_kind = "",
                  .disconnect_after = 0};
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
  mix_in_faults(o, s, out);
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

std::vector<std::string> wait_drained(const std::string& url, double wait_s) {
  const HttpUrl u = parse_http_url(url);
  httplib::Client cli(u.host, u.port);
  cli.set_connection_timeout(10);
  cli.set_read_timeout(30);
  // The engine publishes its gauges after a step: a request cancelled by a hang-up is freed a step later.
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(wait_s);
  for (;;) {
    std::vector<std::string> left;
    const auto res = cli.Get("/metrics");
    if (!res) {
      left.push_back("GET " + url + "/metrics: " + httplib::to_string(res.error()));
    } else if (res->status != 200) {
      left.push_back("GET " + url + "/metrics: HTTP " + std::to_string(res->status));
    } else {
      try {
        left = undrained(parse_prometheus_text(res->body));
      } catch (const std::invalid_argument& e) {
        left.push_back("GET " + url + e.what());
      }
    }
    if (left.empty() || std::chrono::steady_clock::now() >= until) return left;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// A malformed body must come back as a 400 whose body is an OpenAI error object; anything else fails the run.
RequestRecord send_malformed(const HttpUrl& u, const BenchPrompt& p, double timeout_s, Clock::time_point run_start) {
  RequestRecord rec;
  rec.malformed = true;
  httplib::Client cli(u.host, u.port);
  cli.set_connection_timeout(30);
  cli.set_read_timeout(std::time_t(timeout_s));
  cli.set_write_timeout(30);
  const Clock::time_point t0 = Clock::now();
  rec.start_s = std::chrono::duration<double>(t0 - run_start).count();
  const httplib::Result res = cli.Post("/v1/completions", p.malformed, "application/json");
  rec.latency_s = seconds_since(t0);
  const std::string what = "a malformed request (" + p.malformed_kind + ")";
  if (!res) {
    rec.error = what + " got no answer: " + httplib::to_string(res.error());
    return rec;
  }
  if (res->status != 400) {
    rec.error = what + " got HTTP " + std::to_string(res->status) + ", not 400: " + res->body.substr(0, 200);
    return rec;
  }
  const json j = json::parse(res->body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("error") || !j["error"].is_object() ||
      !j["error"].contains("message") || !j["error"]["message"].is_string()) {
    rec.error = what + " got a 400 without an OpenAI error body: " + res->body.substr(0, 200);
    return rec;
  }
  rec.ok = true;
  return rec;
}

struct Generated {
  std::vector<TokenId> ids;
  std::string text;
};

RequestRecord send_one(const HttpUrl& u, const std::string& model, const BenchPrompt& p, double timeout_s,
                       Clock::time_point run_start, Generated& gen) {
  if (!p.malformed.empty()) return send_malformed(u, p, timeout_s, run_start);
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
  bool hung_up = false;
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
      if (c.is_object() && c.contains("text") && c["text"].is_string()) gen.text += c["text"].get<std::string>();
      if (c.is_object() && c.contains("token_ids") && c["token_ids"].is_array()) {
        k = c["token_ids"].size();
        for (const auto& t : c["token_ids"])
          if (t.is_number_integer()) gen.ids.push_back(t.get<TokenId>());
      } else if (c.is_object() && c.contains("text") && c["text"].is_string() && !c["text"].get<std::string>().empty()) k = 1;
      const double t = seconds_since(t0);
      for (std::size_t i = 0; i < k; ++i) token_times.push_back(t);
      if (p.disconnect_after > 0 && token_times.size() >= std::size_t(p.disconnect_after)) {
        hung_up = true;  // the client goes away: the server must cancel the request and free its pages
        return false;
      }
    }
    return true;
  };
  const httplib::Result res = cli.send(req);
  rec.latency_s = seconds_since(t0);
  if (!stream_error.empty()) {
    rec.error = stream_error;
  } else if (hung_up || (p.disconnect_after > 0 && done && !token_times.empty())) {
    // Hung up as planned (or the stream ended first): counted apart, its latencies not a whole request's.
    rec.ok = true;
    rec.disconnected = true;
    rec.output_tokens = std::int64_t(token_times.size());
    rec.ttft_s = token_times.front();
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
  std::vector<Generated> gen(prompts.size());
  const Clock::time_point start = Clock::now();
  if (concurrency > 0) {
    std::atomic<std::size_t> next{0};
    std::vector<std::thread> workers;
    for (int w = 0; w < concurrency; ++w)
      workers.emplace_back([&] {
        for (std::size_t i; (i = next.fetch_add(1)) < prompts.size();)
          recs[i] = send_one(u, s.model, prompts[i], o.timeout_s, start, gen[i]);
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
      threads.emplace_back([&, i] { recs[i] = send_one(u, s.model, prompts[i], o.timeout_s, start, gen[i]); });
    }
    for (auto& th : threads) th.join();
  }
  BenchServeResult r = summarize(recs, seconds_since(start), o, rate, concurrency);
  for (std::size_t i = 0; i < recs.size(); ++i) {
    const bool whole = recs[i].ok && !recs[i].malformed && !recs[i].disconnected;
    r.output_ids.push_back(whole ? std::move(gen[i].ids) : std::vector<TokenId>{});
    r.output_text.push_back(whole ? std::move(gen[i].text) : std::string{});
  }
  return r;
}

#else

ServerInfo query_server(const std::string&) {
  throw std::runtime_error("aipe was built without cpp-httplib (Debian: libcpp-httplib-dev): no HTTP client");
}
BenchServeResult run_bench_serve(const BenchServeOptions&, const ServerInfo&, const std::vector<BenchPrompt>&, double, int) {
  throw std::runtime_error("aipe was built without cpp-httplib (Debian: libcpp-httplib-dev): no HTTP client");
}
std::vector<std::string> wait_drained(const std::string&, double) {
  throw std::runtime_error("aipe was built without cpp-httplib (Debian: libcpp-httplib-dev): no HTTP client");
}

#endif

}  // namespace aipe::llm
