// `aipe bench serve`'s mixed-in workloads: prompts that share a prefix, malformed bodies, streams whose client hangs
// up, and the /metrics drain check. First the pure parts (the prompts, the bodies through the server's own parser,
// the Prometheus reader against the server's own metrics text), then runs against aipe serve's HTTP server with
// the CPU stand-in engine (fake_step_engine.hpp), and against a lax server that must make the run fail.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "aipe/llm/openai.hpp"
#include "aipe/llm/serve_bench.hpp"
#include "aipe/llm/serve_metrics.hpp"
#include "aipe/llm/server.hpp"
#include "cli/run_cli.hpp"
#include "fake_step_engine.hpp"

#if AIPE_HAVE_HTTPLIB
#include <httplib.h>
#endif

namespace {

using namespace aipe;
using nlohmann::json;

const llm::ServerInfo kInfo{.model = "m", .max_model_len = 64, .vocab_size = 1000};

TEST(BenchServeWorkloads, PromptsShareTheirPrefixAndFaultsComeInExactCounts) {
  llm::BenchServeOptions o;
  o.num_prompts = 40;
  o.input_len = 30;
  o.output_len = 8;
  o.shared_prefix = 21;
  o.malformed_fraction = 0.25;
  o.disconnect_fraction = 0.2;
  const auto p = llm::make_prompts(o, kInfo);
  ASSERT_EQ(p.size(), 40u);
  int bad = 0, gone = 0;
  bool tails_differ = false;
  std::set<std::string> kinds;
  for (const auto& x : p) {
    ASSERT_EQ(x.ids.size(), 30u);  // --input-len counts the whole prompt
    EXPECT_TRUE(std::equal(x.ids.begin(), x.ids.begin() + 21, p[0].ids.begin()));
    tails_differ |= !std::equal(x.ids.begin() + 21, x.ids.end(), p[0].ids.begin() + 21);
    if (!x.malformed.empty()) {
      ++bad;
      kinds.insert(x.malformed_kind);
      EXPECT_EQ(x.disconnect_after, 0);
    }
    if (x.disconnect_after > 0) {
      ++gone;
      EXPECT_LE(x.disconnect_after, 7);  // before the last token
    }
  }
  EXPECT_TRUE(tails_differ);
  EXPECT_EQ(bad, 10);
  EXPECT_EQ(gone, 8);
  EXPECT_EQ(kinds, (std::set<std::string>{"bad_json", "wrong_type", "out_of_range", "past_context"}));
  // Seeded: the same seed gives the same workload, another seed another one.
  const auto again = llm::make_prompts(o, kInfo);
  for (std::size_t i = 0; i < p.size(); ++i) {
    EXPECT_EQ(again[i].ids, p[i].ids);
    EXPECT_EQ(again[i].malformed, p[i].malformed);
    EXPECT_EQ(again[i].disconnect_after, p[i].disconnect_after);
  }
  o.seed = 2;
  EXPECT_NE(llm::make_prompts(o, kInfo)[0].ids, p[0].ids);
  // A server that states no context gets no prompt past it.
  for (const auto& x : llm::make_prompts(o, {.model = "m", .max_model_len = 0, .vocab_size = 1000}))
    EXPECT_NE(x.malformed_kind, "past_context");
  // The whole prompt shared, no fault: every prompt the same.
  o.shared_prefix = 30;
  o.malformed_fraction = o.disconnect_fraction = 0;
  const auto same = llm::make_prompts(o, kInfo);
  for (const auto& x : same) EXPECT_EQ(x.ids, same[0].ids);
}

TEST(BenchServeWorkloads, OptionsThatContradictEachOtherAreRefused) {
  const auto refused = [](auto change) {
    llm::BenchServeOptions o;
    o.input_len = 16;
    change(o);
    EXPECT_THROW(llm::check_bench_options(o), std::invalid_argument);
  };
  refused([](llm::BenchServeOptions& o) { o.shared_prefix = 17; });
  refused([](llm::BenchServeOptions& o) { o.shared_prefix = -1; });
  refused([](llm::BenchServeOptions& o) { o.shared_prefix = 4, o.dataset = "d.jsonl"; });
  refused([](llm::BenchServeOptions& o) { o.malformed_fraction = 1.5; });
  refused([](llm::BenchServeOptions& o) { o.disconnect_fraction = std::nan(""); });
  refused([](llm::BenchServeOptions& o) { o.malformed_fraction = 0.6, o.disconnect_fraction = 0.5; });
  llm::BenchServeOptions ok;
  ok.input_len = 16;
  ok.shared_prefix = 16;
  ok.malformed_fraction = ok.disconnect_fraction = 0.5;
  EXPECT_NO_THROW(llm::check_bench_options(ok));
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"bench", "serve", "--input-len", "8", "--shared-prefix", "9"},
           {"bench", "serve", "--malformed-fraction", "0.7", "--disconnect-fraction", "0.7"},
           {"bench", "serve", "--malformed-fraction", "2"},
           {"bench", "serve", "--disconnect-fraction", "-0.1"},
           {"bench", "serve", "--metrics-wait", "-1"}}) {
    const auto r = test::run_cli(args);
    EXPECT_EQ(r.code, 2) << args[2] << " " << args[3] << "\n" << r.err;
    EXPECT_FALSE(r.err.empty());
  }
}

// Every malformed body is refused by aipe serve's own parser with a 400, whatever the variant.
TEST(BenchServeWorkloads, EveryMalformedBodyIsA400ForTheServersParser) {
  namespace oa = llm::openai;
  for (const auto& kind : llm::malformed_kinds())
    for (std::uint64_t salt = 0; salt < 40; ++salt) {
      const std::string body = llm::malformed_body(kind, kInfo, salt);
      try {
        const oa::ParsedRequest p = oa::parse_request(body, oa::Endpoint::completions);
        oa::to_engine_request(p, nullptr, {.max_model_len = kInfo.max_model_len, .vocab_size = kInfo.vocab_size}, 1, 0);
        ADD_FAILURE() << kind << " accepted: " << body.substr(0, 200);
      } catch (const oa::ApiError& e) {
        EXPECT_EQ(e.status, 400) << kind << ": " << body.substr(0, 200);
      }
    }
  EXPECT_THROW(llm::malformed_body("past_context", {.model = "m", .max_model_len = 0, .vocab_size = 10}, 0),
               std::invalid_argument);
  EXPECT_THROW(llm::malformed_body("no_such_kind", kInfo, 0), std::invalid_argument);
}

TEST(BenchServeWorkloads, PrometheusTextIsReadAndTheServersGaugesAreFound) {
  const auto m = llm::parse_prometheus_text(
      "# HELP a A gauge.\n# TYPE a gauge\na{model_name=\"x}\\\"y\"} 2\n  a{model_name=\"z\"} 3\r\n\n"
      "b 1.5e3 1700000000\nc_bucket{le=\"+Inf\"} +Inf\nd NaN");
  EXPECT_EQ(m.at("a"), 5);  // summed over its label sets
  EXPECT_EQ(m.at("b"), 1500);
  EXPECT_TRUE(std::isinf(m.at("c_bucket")));
  EXPECT_TRUE(std::isnan(m.at("d")));
  EXPECT_EQ(m.size(), 4u);
  for (const char* bad : {"ok 1\na{x=\"1\" 2", "ok 1\na", "ok 1\na{} x", "ok 1\n{} 1", "ok 1\na 1x", "ok 1\na{x=\"}"}) {
    try {
      llm::parse_prometheus_text(bad);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
    }
  }
  // The server's own /metrics text: every gauge the drain check needs is there, and 0 with nothing running.
  llm::ServeMetrics metrics;
  const auto served = llm::parse_prometheus_text(metrics.render("fake \"model\""));
  EXPECT_TRUE(llm::undrained(served).empty());
  llm::SchedulerStats busy;
  busy.num_running = 2;
  busy.kv_pages_used = 7;
  metrics.set_engine_stats(busy);
  const auto left = llm::undrained(llm::parse_prometheus_text(metrics.render("m")));
  ASSERT_EQ(left.size(), 2u);
  EXPECT_EQ(left[0], "aipe:num_requests_running is 2, not 0");
  EXPECT_EQ(left[1], "aipe:kv_cache_pages_used is 7, not 0");
  const auto absent = llm::undrained({{"aipe:num_requests_running", 0}});
  ASSERT_EQ(absent.size(), 2u);
  EXPECT_EQ(absent[0], "aipe:num_requests_waiting is not in /metrics");
}

#if AIPE_HAVE_HTTPLIB

// The stand-in, recording every prompt that reached the engine.
class RecordingEngine : public test::FakeStepEngine {
 public:
  using FakeStepEngine::FakeStepEngine;
  void add_request(llm::Request r) override {
    {
      std::lock_guard<std::mutex> l(m_);
      prompts_.push_back(r.prompt);
    }
    FakeStepEngine::add_request(std::move(r));
  }
  std::vector<std::vector<llm::TokenId>> prompts() const {
    std::lock_guard<std::mutex> l(m_);
    return prompts_;
  }

 private:
  mutable std::mutex m_;
  std::vector<std::vector<llm::TokenId>> prompts_;
};

class BenchServeAgainstServer : public ::testing::Test {
 protected:
  void start(test::FakeStepEngine::Options o = {}) {
    engine = std::make_unique<RecordingEngine>(o);
    server = std::make_unique<llm::Server>(*engine, nullptr, llm::ServerOptions{.host = "127.0.0.1", .port = 0,
                                                                                 .model_name = "fake-model"});
    url = "http://127.0.0.1:" + std::to_string(server->start());
    dir = std::filesystem::temp_directory_path() / ("aipe_bench_workloads_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
  }
  void TearDown() override {
    if (server) server->shutdown(5);
    std::filesystem::remove_all(dir);
  }
  json read_json(const std::string& path) {
    std::ifstream f(path);
    return json::parse(f);
  }
  double metric(const std::string& name_and_labels) {
    httplib::Client cli("127.0.0.1", std::stoi(url.substr(url.rfind(':') + 1)));
    const auto res = cli.Get("/metrics");
    if (!res) return -1;
    const std::string key = "\n" + name_and_labels + " ";
    const auto at = res->body.find(key);
    return at == std::string::npos ? -1 : std::stod(res->body.substr(at + key.size()));
  }

  std::unique_ptr<RecordingEngine> engine;
  std::unique_ptr<llm::Server> server;
  std::string url;
  std::filesystem::path dir;
};

TEST_F(BenchServeAgainstServer, SharedPrefixReachesTheEngineShared) {
  start();
  const std::string path = (dir / "prefix.json").string();
  const auto r = test::run_cli({"bench", "serve", "--url", url, "--num-prompts", "12", "--input-len", "40",
                                "--shared-prefix", "32", "--output-len", "4", "--json", path});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("the first 32 the same in every prompt"), std::string::npos) << r.out;
  const auto seen = engine->prompts();
  ASSERT_EQ(seen.size(), 12u);
  std::set<std::vector<llm::TokenId>> tails;
  for (const auto& p : seen) {
    ASSERT_EQ(p.size(), 40u);
    EXPECT_TRUE(std::equal(p.begin(), p.begin() + 32, seen[0].begin()));
    tails.emplace(p.begin() + 32, p.end());
  }
  EXPECT_GT(tails.size(), 1u);  // each its own random tail
  const json j = read_json(path);
  EXPECT_EQ(j["shared_prefix"], 32);
  EXPECT_EQ(j["runs"][0]["completed"], 12);

  // --outputs: what each request generated, by prompt index; the same workload again gives the same file.
  const auto outputs = [&](const std::string& name) {
    const std::string f = (dir / name).string();
    const auto o = test::run_cli({"bench", "serve", "--url", url, "--num-prompts", "12", "--input-len", "40",
                                  "--shared-prefix", "32", "--output-len", "4", "--sweep", "0,500", "--outputs", f});
    EXPECT_EQ(o.code, 0) << o.err;
    std::ifstream in(f);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  const std::string first = outputs("a.jsonl");
  EXPECT_EQ(outputs("b.jsonl"), first);
  llm::BenchServeOptions o;
  o.num_prompts = 12;
  o.input_len = 40;
  o.shared_prefix = 32;
  o.output_len = 4;
  const auto prompts = llm::make_prompts(o, llm::query_server(url));
  std::istringstream lines(first);
  int n = 0;
  for (std::string line; std::getline(lines, line); ++n) {
    const json l = json::parse(line);
    const std::size_t i = l["request"];
    ASSERT_LT(i, prompts.size());
    EXPECT_EQ(l["run"], n / 12);  // the sweep's runs in turn
    std::vector<int> want;
    for (int k = 0; k < 4; ++k) want.push_back((prompts[i].ids.back() + 1 + k) % 1000);  // the stand-in's rule
    EXPECT_EQ(l["token_ids"], json(want)) << line;
  }
  EXPECT_EQ(n, 24);
}

// Malformed bodies and hang-ups mixed in: counted apart, every valid request completes, the server drains.
TEST_F(BenchServeAgainstServer, MalformedBodiesAndHangUpsAreCountedApartAndTheServerDrains) {
  start({.max_num_seqs = 16, .num_pages = 512, .step_delay_s = 0.001});
  const std::string path = (dir / "faults.json").string();
  const auto r = test::run_cli({"bench", "serve", "--url", url, "--num-prompts", "40", "--input-len", "6",
                                "--output-len", "40", "--malformed-fraction", "0.25", "--disconnect-fraction",
                                "0.25", "--check-metrics", "--json", path});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("10 hung up as planned; 10 malformed: 10 answered 400, 0 otherwise"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("/metrics: nothing running or waiting, no KV page held"), std::string::npos) << r.out;
  const json j = read_json(path);
  EXPECT_EQ(j["malformed_fraction"], 0.25);
  EXPECT_EQ(j["disconnect_fraction"], 0.25);
  EXPECT_EQ(j["check_metrics"], true);
  const json& run = j["runs"][0];
  EXPECT_EQ(run["num_requests"], 40);
  EXPECT_EQ(run["completed"], 20);
  EXPECT_EQ(run["failed"], 0);
  EXPECT_EQ(run["disconnected"], 10);
  EXPECT_EQ(run["malformed"], 10);
  EXPECT_EQ(run["malformed_rejected"], 10);
  EXPECT_EQ(run["malformed_unexpected"], 0);
  EXPECT_EQ(run["output_tokens"], 20 * 40);  // the completed requests' only
  EXPECT_EQ(run["input_tokens"], 20 * 6);
  EXPECT_EQ(run["metrics_drained"], true);
  // What the server saw: 10 refused, 30 run, each hang-up cancelled unless its last token was already out.
  const std::string lab = "model_name=\"fake-model\"";
  EXPECT_EQ(metric("aipe:request_rejected_total{" + lab + ",status=\"400\"}"), 10);
  EXPECT_EQ(engine->prompts().size(), 30u);
  const double cancelled = metric("aipe:request_success_total{" + lab + ",finished_reason=\"cancelled\"}");
  EXPECT_GT(cancelled, 0);
  EXPECT_EQ(cancelled + metric("aipe:request_success_total{" + lab + ",finished_reason=\"max_tokens\"}"), 30);
  // The report reader takes the file with its new fields.
  const auto md = test::run_cli({"report", path, "--markdown", "-"});
  EXPECT_EQ(md.code, 0) << md.err;
}

// A server that is not what aipe serve must be: malformed bodies answered 200, a KV page left held.
class LaxServer {
 public:
  LaxServer() {
    http_.Get("/v1/models", [](const httplib::Request&, httplib::Response& r) {
      r.set_content(R"({"object": "list", "data": [{"id": "lax", "max_model_len": 64, "vocab_size": 100}]})",
                    "application/json");
    });
    http_.Post("/v1/completions", [](const httplib::Request&, httplib::Response& r) {
      std::string sse;
      for (int k = 0; k < 2; ++k) sse += "data: {\"choices\": [{\"index\": 0, \"token_ids\": [1], \"text\": \"\"}]}\n\n";
      sse += "data: {\"choices\": [], \"usage\": {\"prompt_tokens\": 3, \"completion_tokens\": 2}}\n\ndata: [DONE]\n\n";
      r.set_content(sse, "text/event-stream");
    });
    http_.Get("/metrics", [](const httplib::Request&, httplib::Response& r) {
      r.set_content("aipe:num_requests_running{model_name=\"lax\"} 0\naipe:num_requests_waiting{model_name=\"lax\"} 0\n"
                    "aipe:kv_cache_pages_used{model_name=\"lax\"} 3\n",
                    "text/plain; version=0.0.4");
    });
    port_ = http_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { http_.listen_after_bind(); });
    while (!http_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~LaxServer() {
    http_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  httplib::Server http_;
  int port_ = 0;
  std::thread thread_;
};

TEST(BenchServeLax, AMalformedBodyAnswered200OrAPageLeftHeldFailsTheRun) {
  LaxServer lax;
  const auto dir = std::filesystem::temp_directory_path() / ("aipe_bench_lax_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "lax.json").string();
  const auto r = test::run_cli({"bench", "serve", "--url", lax.url(), "--num-prompts", "8", "--input-len", "3",
                                "--output-len", "2", "--malformed-fraction", "0.5", "--json", path});
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("got HTTP 200, not 400"), std::string::npos) << r.err;
  std::ifstream f(path);
  const json j = json::parse(f);
  EXPECT_EQ(j["runs"][0]["malformed_unexpected"], 4);
  EXPECT_EQ(j["runs"][0]["completed"], 4);  // the valid requests still count
  EXPECT_EQ(j["runs"][0]["failed"], 0);

  // Nothing malformed, but the server keeps a page: --check-metrics names the gauge.
  const auto t0 = std::chrono::steady_clock::now();
  const auto m = test::run_cli({"bench", "serve", "--url", lax.url(), "--num-prompts", "2", "--input-len", "3",
                                "--output-len", "2", "--check-metrics", "--metrics-wait", "0.3"});
  EXPECT_EQ(m.code, 1) << m.out << m.err;
  EXPECT_NE(m.err.find("aipe:kv_cache_pages_used is 3, not 0"), std::string::npos) << m.err;
  EXPECT_EQ(m.err.find("aipe:num_requests_running"), std::string::npos) << m.err;
  EXPECT_GE(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 0.3);  // it waited
  // Without the check the same run passes.
  EXPECT_EQ(test::run_cli({"bench", "serve", "--url", lax.url(), "--num-prompts", "2", "--input-len", "3",
                           "--output-len", "2"})
                .code,
            0);
  std::filesystem::remove_all(dir);
}

#endif  // AIPE_HAVE_HTTPLIB

}  // namespace
