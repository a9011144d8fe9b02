// aipe serve's HTTP server (llm/server.hpp) on a loopback port, with a CPU stand-in engine behind it
// (fake_step_engine.hpp): completions and chat, whole and streamed; every validation error; /metrics; a client
// that goes away mid-stream; shutdown while streaming; 200 concurrent requests with malformed ones mixed in; and
// `aipe bench serve` against it.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "aipe/llm/config.hpp"
#include "aipe/llm/openai.hpp"
#include "aipe/llm/serve_bench.hpp"
#include "aipe/llm/server.hpp"
#include "aipe/device.hpp"
#include "cli/run_cli.hpp"
#include "fake_step_engine.hpp"

#if AIPE_HAVE_HTTPLIB
#include <httplib.h>
#endif

#ifndef AIPE_SOURCE_DIR
#define AIPE_SOURCE_DIR "."
#endif

namespace {

using namespace aipe;
using nlohmann::json;

#if AIPE_HAVE_HTTPLIB

struct Reply {
  int status = -1;
  std::string body;
  std::vector<json> events;  // streamed: each data payload but [DONE], parsed
  bool done = false;         // [DONE] came, and last
};

class ServeTest : public ::testing::Test {
 protected:
  void start(test::FakeStepEngine::Options o = {}, const llm::Tokenizer* tok = nullptr) {
    engine = std::make_unique<test::FakeStepEngine>(o);
    server = std::make_unique<llm::Server>(*engine, tok, llm::ServerOptions{.host = "127.0.0.1", .port = 0,
                                                                             .model_name = "fake-model"});
    port = server->start();
    ASSERT_GT(port, 0);
  }
  void TearDown() override {
    if (server) server->shutdown(5);
  }

  Reply post(const std::string& path, const std::string& body, int stop_after_events = -1) {
    httplib::Client cli("127.0.0.1", port);
    cli.set_read_timeout(30);
    httplib::Request req;
    req.method = "POST";
    req.path = path;
    req.set_header("Content-Type", "application/json");
    req.body = body;
    Reply r;
    llm::openai::SseParser sse;
    std::string raw;
    int seen = 0;
    req.content_receiver = [&](const char* d, std::size_t n, std::uint64_t, std::uint64_t) {
      raw.append(d, n);
      for (const auto& ev : sse.push(std::string_view(d, n))) {
        EXPECT_FALSE(r.done) << "an event after [DONE]";
        if (ev == "[DONE]") r.done = true;
        else r.events.push_back(json::parse(ev));
        if (stop_after_events >= 0 && ++seen >= stop_after_events) return false;
      }
      return true;
    };
    const auto res = cli.send(req);
    r.body = raw;
    if (res) r.status = res->status;
    else r.body = "(no answer: " + httplib::to_string(res.error()) + ")";
    return r;
  }
  Reply get(const std::string& path) {
    httplib::Client cli("127.0.0.1", port);
    const auto res = cli.Get(path);
    Reply r;
    if (res) r.status = res->status, r.body = res->body;
    return r;
  }
  // A counter's value in the /metrics text (-1 when absent).
  double metric(const std::string& name_and_labels) {
    const std::string t = get("/metrics").body;
    const std::string key = "\n" + name_and_labels + " ";
    const auto at = t.find(key);
    return at == std::string::npos ? -1 : std::stod(t.substr(at + key.size()));
  }

  // The engine thread records a request's end just after its last token went out: poll for what is expected.
  double wait_metric(const std::string& name_and_labels, double want) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    double v = metric(name_and_labels);
    while (v != want && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      v = metric(name_and_labels);
    }
    return v;
  }

  // A stream's request is in flight until its HTTP exchange is torn down, just after the client saw its end.
  int wait_in_flight_zero() {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (server->in_flight() != 0 && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    return server->in_flight();
  }

  std::unique_ptr<test::FakeStepEngine> engine;
  std::unique_ptr<llm::Server> server;
  int port = 0;
};

const std::string kLab = "model_name=\"fake-model\"";

std::vector<int> expected_ids(int last_prompt_id, int n, int vocab = 1000) {
  std::vector<int> v;
  for (int k = 0; k < n; ++k) v.push_back((last_prompt_id + 1 + k) % vocab);
  return v;
}

TEST_F(ServeTest, CompletionWithTokenIds) {
  start();
  const Reply r = post("/v1/completions", R"({"model": "fake-model", "prompt": [5, 6, 998], "max_tokens": 4})");
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = json::parse(r.body);
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["choices"][0]["token_ids"], json(expected_ids(998, 4)));  // 999, 0, 1, 2: wraps at the vocabulary
  EXPECT_EQ(j["choices"][0]["text"], "");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["prompt_tokens"], 3);
  EXPECT_EQ(j["usage"]["completion_tokens"], 4);
}

TEST_F(ServeTest, StopTokenIdsAndEos) {
  start({.eos = 20});
  Reply r = post("/v1/completions", R"({"prompt": [10], "max_tokens": 50, "stop_token_ids": [13]})");
  ASSERT_EQ(r.status, 200) << r.body;
  json j = json::parse(r.body);
  EXPECT_EQ(j["choices"][0]["token_ids"], json({11, 12, 13}));
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  r = post("/v1/completions", R"({"prompt": [15], "max_tokens": 50})");
  EXPECT_EQ(json::parse(r.body)["choices"][0]["token_ids"], json({16, 17, 18, 19, 20}));
  r = post("/v1/completions", R"({"prompt": [15], "max_tokens": 8, "ignore_eos": true})");
  EXPECT_EQ(json::parse(r.body)["choices"][0]["token_ids"], json(expected_ids(15, 8)));
}

TEST_F(ServeTest, StreamedCompletionIsOneChunkPerTokenThenDone) {
  start();
  const Reply r = post("/v1/completions", R"({"prompt": [1, 2], "max_tokens": 6, "stream": true,
                                             "stream_options": {"include_usage": true}})");
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_TRUE(r.done) << r.body;
  // 6 token chunks, the finish chunk, the usage chunk.
  ASSERT_EQ(r.events.size(), 8u) << r.body;
  std::vector<int> ids;
  for (int i = 0; i < 6; ++i) {
    const json& c = r.events[i]["choices"][0];
    EXPECT_TRUE(c["finish_reason"].is_null());
    ASSERT_EQ(c["token_ids"].size(), 1u);
    ids.push_back(c["token_ids"][0]);
  }
  EXPECT_EQ(ids, expected_ids(2, 6));
  EXPECT_EQ(r.events[6]["choices"][0]["finish_reason"], "length");
  EXPECT_TRUE(r.events[7]["choices"].empty());
  EXPECT_EQ(r.events[7]["usage"]["completion_tokens"], 6);
  EXPECT_EQ(r.events[7]["usage"]["prompt_tokens"], 2);
  for (const auto& e : r.events) EXPECT_EQ(e["id"], r.events[0]["id"]);
}

TEST_F(ServeTest, EveryValidationErrorIsA400WithAnOpenAiBody) {
  start({.max_model_len = 32});
  struct Case {
    const char* path;
    const char* body;
    int status;
    const char* param;  // nullptr: null
  };
  const Case cases[] = {
      {"/v1/completions", "{not json", 400, nullptr},
      {"/v1/completions", "[]", 400, nullptr},
      {"/v1/completions", R"({"max_tokens": 3})", 400, "prompt"},
      {"/v1/completions", R"({"prompt": {"a": 1}})", 400, "prompt"},
      {"/v1/completions", R"({"prompt": [1], "max_tokens": -1})", 400, "max_tokens"},
      {"/v1/completions", R"({"prompt": [1], "temperature": 9})", 400, "temperature"},
      {"/v1/completions", R"({"prompt": [1], "top_p": 0})", 400, "top_p"},
      {"/v1/completions", R"({"prompt": [1], "stream": 1})", 400, "stream"},
      {"/v1/completions", R"({"prompt": [1000]})", 400, "prompt"},  // outside the vocabulary of 1000
      {"/v1/completions", R"({"prompt": "text needs a tokenizer"})", 400, "prompt"},
      {"/v1/completions", R"({"prompt": [1], "stop": "x"})", 400, "stop"},
      {"/v1/completions",
       R"({"prompt": [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32]})", 400,
       "prompt"},  // longer than the context
      {"/v1/completions", R"({"prompt": [1, 2], "max_tokens": 31})", 400, "max_tokens"},
      {"/v1/completions", R"({"prompt": [1], "model": "other"})", 404, "model"},
      {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": "hi"}]})", 400, "messages"},  // no tokenizer
      {"/v1/chat/completions", R"({"messages": "hi"})", 400, "messages"},
  };
  for (const auto& c : cases) {
    const Reply r = post(c.path, c.body);
    EXPECT_EQ(r.status, c.status) << c.body << " -> " << r.body;
    const json j = json::parse(r.body, nullptr, false);
    ASSERT_TRUE(j.is_object() && j.contains("error")) << r.body;
    EXPECT_TRUE(j["error"]["message"].is_string() && !j["error"]["message"].get<std::string>().empty());
    EXPECT_TRUE(j["error"]["type"].is_string());
    if (c.param) EXPECT_EQ(j["error"]["param"], c.param) << r.body;
    else EXPECT_TRUE(j["error"]["param"].is_null()) << r.body;
    EXPECT_TRUE(j["error"].contains("code"));
  }
  const Reply nf = get("/v1/nothing");
  EXPECT_EQ(nf.status, 404);
  EXPECT_TRUE(json::parse(nf.body, nullptr, false).contains("error")) << nf.body;
  EXPECT_EQ(metric("aipe:request_rejected_total{" + kLab + ",status=\"400\"}"), 15);
  EXPECT_EQ(metric("aipe:request_rejected_total{" + kLab + ",status=\"404\"}"), 1);
  // The server still serves.
  EXPECT_EQ(post("/v1/completions", R"({"prompt": [1], "max_tokens": 2})").status, 200);
}

TEST_F(ServeTest, ModelsHealthAndMetricsCountersMove) {
  start();
  const json m = json::parse(get("/v1/models").body);
  EXPECT_EQ(m["data"][0]["id"], "fake-model");
  EXPECT_EQ(m["data"][0]["max_model_len"], 256);
  EXPECT_EQ(m["data"][0]["vocab_size"], 1000);
  EXPECT_EQ(get("/health").status, 200);
  EXPECT_EQ(metric("aipe:request_success_total{" + kLab + ",finished_reason=\"max_tokens\"}"), 0);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(post("/v1/completions", R"({"prompt": [1, 2, 3], "max_tokens": 5})").status, 200);
  ASSERT_EQ(post("/v1/completions", R"({"prompt": [1], "max_tokens": 4, "stream": true})").status, 200);
  EXPECT_EQ(wait_metric("aipe:request_success_total{" + kLab + ",finished_reason=\"max_tokens\"}", 4), 4);
  EXPECT_EQ(metric("aipe:generation_tokens_total{" + kLab + "}"), 19);
  EXPECT_EQ(metric("aipe:prompt_tokens_total{" + kLab + "}"), 10);
  EXPECT_EQ(metric("aipe:time_to_first_token_seconds_count{" + kLab + "}"), 4);
  EXPECT_EQ(metric("aipe:inter_token_latency_seconds_count{" + kLab + "}"), 3 * 4 + 3);
  EXPECT_EQ(wait_metric("aipe:num_requests_running{" + kLab + "}", 0), 0);
  EXPECT_EQ(wait_metric("aipe:kv_cache_usage_perc{" + kLab + "}", 0), 0);  // every page back
  EXPECT_GT(metric("aipe:engine_steps_total{" + kLab + "}"), 0);
}

TEST_F(ServeTest, ClientThatDisconnectsMidStreamCancelsItsRequest) {
  start({.step_delay_s = 0.005});
  // Read three events, then close the connection: the server's next write fails and it cancels.
  const Reply r = post("/v1/completions", R"({"prompt": [7], "max_tokens": 200, "stream": true})", 3);
  EXPECT_FALSE(r.done);
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (engine->cancel_calls().empty() && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(engine->cancel_calls().size(), 1u);
  EXPECT_EQ(engine->cancel_calls()[0], 1);  // the first request's id
  EXPECT_EQ(wait_metric("aipe:request_success_total{" + kLab + ",finished_reason=\"cancelled\"}", 1), 1);
  EXPECT_LT(metric("aipe:generation_tokens_total{" + kLab + "}"), 200);
  EXPECT_EQ(wait_metric("aipe:kv_cache_pages_used{" + kLab + "}", 0), 0);
  EXPECT_EQ(wait_in_flight_zero(), 0);
}

TEST_F(ServeTest, ShutdownLetsStreamsFinishWithinTheDeadline) {
  start({.step_delay_s = 0.002});
  Reply r;
  std::thread client([&] { r = post("/v1/completions", R"({"prompt": [1], "max_tokens": 60, "stream": true})"); });
  while (server->in_flight() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  server->shutdown(20);
  client.join();
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.done);
  ASSERT_EQ(r.events.size(), 61u);
  EXPECT_EQ(r.events.back()["choices"][0]["finish_reason"], "length");
}

TEST_F(ServeTest, ShutdownPastTheDeadlineCancelsAndEndsStreamsCleanly) {
  start({.step_delay_s = 0.005});
  Reply r;
  std::thread client([&] { r = post("/v1/completions", R"({"prompt": [1], "max_tokens": 240, "stream": true})"); });
  while (server->in_flight() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  const auto t0 = std::chrono::steady_clock::now();
  server->shutdown(0.1);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
  client.join();
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.done) << r.body.substr(r.body.size() > 300 ? r.body.size() - 300 : 0);
  ASSERT_FALSE(r.events.empty());
  EXPECT_EQ(r.events.back()["choices"][0]["finish_reason"], "abort");
  EXPECT_LT(r.events.size(), 241u);
  EXPECT_FALSE(engine->cancel_calls().empty());
  // Stopped: nothing answers any more.
  EXPECT_EQ(post("/v1/completions", R"({"prompt": [1]})").status, -1);
}

TEST_F(ServeTest, TwoHundredConcurrentRequestsWithMalformedOnesAllAnswered) {
  start({.max_num_seqs = 32, .step_delay_s = 0.0005});
  constexpr int kN = 200;
  std::vector<Reply> replies(kN);
  std::vector<std::thread> threads;
  for (int i = 0; i < kN; ++i)
    threads.emplace_back([&, i] {
      std::string body;
      switch (i % 5) {
        case 0: body = "{\"prompt\": [1, 2"; break;                                   // malformed JSON
        case 1: body = "{\"prompt\": [" + std::to_string(i) + "], \"max_tokens\": 0}"; break;  // out of range
        case 2: body = "{\"prompt\": [" + std::to_string(i) + "], \"max_tokens\": 5, \"stream\": true}"; break;
        default: body = "{\"prompt\": [" + std::to_string(i) + "], \"max_tokens\": 7}";
      }
      replies[i] = post("/v1/completions", body);
    });
  for (auto& t : threads) t.join();
  for (int i = 0; i < kN; ++i) {
    const Reply& r = replies[i];
    if (i % 5 < 2) {
      EXPECT_EQ(r.status, 400) << i << " " << r.body;
      EXPECT_TRUE(json::parse(r.body, nullptr, false).contains("error")) << i;
    } else if (i % 5 == 2) {
      ASSERT_EQ(r.status, 200) << i;
      EXPECT_TRUE(r.done) << i;
      std::vector<int> ids;
      for (const auto& e : r.events)
        if (!e["choices"].empty() && !e["choices"][0]["token_ids"].empty()) ids.push_back(e["choices"][0]["token_ids"][0]);
      EXPECT_EQ(ids, expected_ids(i, 5)) << i;
    } else {
      ASSERT_EQ(r.status, 200) << i << " " << r.body;
      EXPECT_EQ(json::parse(r.body)["choices"][0]["token_ids"], json(expected_ids(i, 7))) << i;
    }
  }
  EXPECT_EQ(wait_metric("aipe:request_success_total{" + kLab + ",finished_reason=\"max_tokens\"}", 120), 120);
  EXPECT_EQ(wait_metric("aipe:kv_cache_pages_used{" + kLab + "}", 0), 0);
}

// Clients that go away mid-stream, malformed bodies and whole requests at once: every valid request completes, every
// abandoned one is cancelled, and no KV page stays held.
TEST_F(ServeTest, DisconnectsAndMalformedBodiesMixedLeakNoPage) {
  start({.max_num_seqs = 16, .num_pages = 256, .step_delay_s = 0.001});
  constexpr int kN = 120;
  std::vector<Reply> replies(kN);
  std::vector<std::thread> threads;
  for (int i = 0; i < kN; ++i)
    threads.emplace_back([&, i] {
      const std::string id = std::to_string(i);
      if (i % 4 == 0) replies[i] = post("/v1/completions", "{\"prompt\": [" + id + "], \"max_tokens\": 100, \"stream\": true}", 2);
      else if (i % 4 == 1) replies[i] = post("/v1/completions", "{\"prompt\": [" + id + "], \"top_p\": -1}");
      else if (i % 4 == 2) replies[i] = post("/v1/completions", "{\"prompt\": [" + id + "], \"max_tokens\": 9, \"stream\": true}");
      else replies[i] = post("/v1/completions", "{\"prompt\": [" + id + "], \"max_tokens\": 9}");
    });
  for (auto& t : threads) t.join();
  for (int i = 0; i < kN; ++i) {
    if (i % 4 == 1) EXPECT_EQ(replies[i].status, 400) << i;
    if (i % 4 == 2) EXPECT_TRUE(replies[i].done) << i << " " << replies[i].body;
    if (i % 4 == 3) EXPECT_EQ(json::parse(replies[i].body)["usage"]["completion_tokens"], 9) << i;
  }
  EXPECT_EQ(wait_metric("aipe:request_success_total{" + kLab + ",finished_reason=\"cancelled\"}", kN / 4), kN / 4);
  EXPECT_EQ(wait_metric("aipe:request_success_total{" + kLab + ",finished_reason=\"max_tokens\"}", kN / 2), kN / 2);
  EXPECT_EQ(wait_metric("aipe:kv_cache_pages_used{" + kLab + "}", 0), 0);
  EXPECT_EQ(wait_metric("aipe:num_requests_waiting{" + kLab + "}", 0), 0);
  EXPECT_EQ(engine->cancel_calls().size(), std::size_t(kN / 4));
  EXPECT_EQ(wait_in_flight_zero(), 0);
}

TEST_F(ServeTest, ChatAndStopStringsWithATokenizer) {
  if (!llm::tokenizer_available()) GTEST_SKIP() << "aipe was built without PCRE2 (Debian: libpcre2-dev)";
  const llm::Tokenizer tok = llm::Tokenizer::load(std::string(AIPE_SOURCE_DIR) + "/tests/llm/data/tiny-tokenizer.json");
  start({.vocab = tok.id_limit(), .max_model_len = 512}, &tok);
  const Reply r = post("/v1/chat/completions",
                       R"({"messages": [{"role": "user", "content": "hello there"}], "max_tokens": 6})");
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = json::parse(r.body);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_FALSE(j["choices"][0].contains("token_ids"));
  const auto prompt = llm::encode_llama3_chat(tok, {{"user", "hello there"}}, true);
  EXPECT_EQ(j["usage"]["prompt_tokens"], prompt.size());
  // What the stand-in produced, decoded as the server decodes it (special tokens skipped).
  std::vector<std::int32_t> out;
  for (int k = 0; k < int(j["usage"]["completion_tokens"]); ++k) out.push_back((prompt.back() + 1 + k) % tok.id_limit());
  const std::string text = llm::utf8_lossy(tok.decode(out, true));
  EXPECT_EQ(j["choices"][0]["message"]["content"], text);

  const Reply s = post("/v1/chat/completions",
                       R"({"messages": [{"role": "user", "content": "hello there"}], "max_tokens": 6, "stream": true})");
  ASSERT_EQ(s.status, 200);
  ASSERT_TRUE(s.done);
  EXPECT_EQ(s.events.front()["choices"][0]["delta"]["role"], "assistant");
  std::string streamed;
  for (const auto& e : s.events)
    if (e["choices"][0]["delta"].contains("content")) streamed += e["choices"][0]["delta"]["content"].get<std::string>();
  EXPECT_EQ(streamed, text);

  // A text completion cut at a stop string: the text up to it, finish_reason stop, the request cancelled.
  const Reply c = post("/v1/completions", R"({"prompt": "hello", "max_tokens": 40})");
  ASSERT_EQ(c.status, 200) << c.body;
  const std::string full = json::parse(c.body)["choices"][0]["text"];
  if (full.size() >= 4) {
    const std::string stop = full.substr(2, 2);
    const Reply cut = post("/v1/completions", json({{"prompt", "hello"}, {"max_tokens", 40}, {"stop", stop}}).dump());
    const json cj = json::parse(cut.body);
    EXPECT_EQ(cj["choices"][0]["text"], full.substr(0, full.find(stop)));
    EXPECT_EQ(cj["choices"][0]["finish_reason"], "stop");
  }
}

// The same answers as another HTTP client reads them (curl, where it is installed): the SSE framing line by line.
TEST_F(ServeTest, CurlReadsTheStreamAndTheErrors) {
  if (std::system("command -v curl >/dev/null 2>&1") != 0) GTEST_SKIP() << "curl is not installed";
  start();
  auto run = [](const std::string& cmd) {
    std::string out;
    FILE* p = ::popen(cmd.c_str(), "r");
    if (!p) return out;
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
    ::pclose(p);
    return out;
  };
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/v1/completions";
  const std::string sse = run("curl -sN -X POST " + url + " -H 'Content-Type: application/json' -d "
                              "'{\"prompt\": [3], \"max_tokens\": 3, \"stream\": true}'");
  std::vector<std::string> lines;
  std::size_t at = 0;
  for (std::size_t nl; (nl = sse.find('\n', at)) != std::string::npos; at = nl + 1) lines.push_back(sse.substr(at, nl - at));
  EXPECT_EQ(at, sse.size()) << "the stream does not end with a newline";
  // 3 token events, the finish event, [DONE]: each a data line and a blank line.
  ASSERT_EQ(lines.size(), 10u) << sse;
  for (std::size_t i = 0; i < lines.size(); i += 2) {
    EXPECT_EQ(lines[i].rfind("data: ", 0), 0u) << lines[i];
    EXPECT_EQ(lines[i + 1], "");
  }
  EXPECT_EQ(lines[8], "data: [DONE]");
  EXPECT_EQ(json::parse(lines[0].substr(6))["choices"][0]["token_ids"], json({4}));
  EXPECT_EQ(json::parse(lines[6].substr(6))["choices"][0]["finish_reason"], "length");
  const std::string err = run("curl -s -w ' %{http_code}' -X POST " + url + " -d '{\"prompt\": [1], \"top_p\": 2}'");
  ASSERT_GT(err.size(), 4u);
  EXPECT_EQ(err.substr(err.size() - 4), " 400") << err;
  EXPECT_EQ(json::parse(err.substr(0, err.size() - 4))["error"]["param"], "top_p") << err;
}

TEST_F(ServeTest, BenchServeCountsEveryRequestAndToken) {
  start({.step_delay_s = 0.0005});
  const std::string url = "http://127.0.0.1:" + std::to_string(port);
  llm::BenchServeOptions o;
  o.url = url;
  o.num_prompts = 12;
  o.input_len = 9;
  o.output_len = 6;
  const llm::ServerInfo info = llm::query_server(url);
  EXPECT_EQ(info.model, "fake-model");
  EXPECT_EQ(info.vocab_size, 1000);
  const auto prompts = llm::make_prompts(o, info);
  ASSERT_EQ(prompts.size(), 12u);
  for (const double rate : {0.0, 200.0}) {
    const llm::BenchServeResult r = llm::run_bench_serve(o, info, prompts, rate, 0);
    EXPECT_EQ(r.completed, 12) << (r.errors.empty() ? "" : r.errors[0]);
    EXPECT_EQ(r.failed, 0);
    EXPECT_EQ(r.output_tokens, 72);
    EXPECT_EQ(r.input_tokens, 108);
    EXPECT_GT(r.ttft.p50, 0);
    EXPECT_GT(r.tpot.p50, 0);
    EXPECT_GE(r.ttft.p99, r.ttft.p50);
    EXPECT_EQ(r.good, 12);  // no SLO given
  }
  const llm::BenchServeResult c = llm::run_bench_serve(o, info, prompts, 0, 3);
  EXPECT_EQ(c.completed, 12);
  EXPECT_EQ(c.concurrency, 3);

  // The command, with a JSON report; then an SLO no request can meet: goodput 0.
  const auto dir = std::filesystem::temp_directory_path() / ("aipe_bench_serve_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "serve.json").string();
  const auto out = test::run_cli({"bench", "serve", "--url", url, "--num-prompts", "8", "--input-len", "5",
                                  "--output-len", "7", "--sweep", "0,100", "--slo-ttft-ms", "0.000001", "--json", path});
  ASSERT_EQ(out.code, 0) << out.err;
  std::ifstream f(path);
  const json j = json::parse(f);
  EXPECT_EQ(j["benchmark"], "serve");
  EXPECT_EQ(j["model"], "fake-model");
  ASSERT_EQ(j["runs"].size(), 2u);
  for (const auto& run : j["runs"]) {
    EXPECT_EQ(run["completed"], 8);
    EXPECT_EQ(run["output_tokens"], 56);
    EXPECT_EQ(run["input_tokens"], 40);
    EXPECT_EQ(run["good"], 0);
  }
  EXPECT_EQ(j["runs"][1]["rate"], 100.0);
  // Schema-tagged, and `aipe report` draws it: one row per rate, in order.
  EXPECT_EQ(j["schema"], "aipe.bench.serve/1");
  const auto md = test::run_cli({"report", path, "--markdown", "-"});
  ASSERT_EQ(md.code, 0) << md.err;
  const auto all_at_once = md.out.find("| all at once | 8 | 0 |"), at_100 = md.out.find("| 100 req/s | 8 | 0 |");
  EXPECT_NE(all_at_once, std::string::npos) << md.out;
  EXPECT_NE(at_100, std::string::npos) << md.out;
  EXPECT_LT(all_at_once, at_100) << md.out;
  std::filesystem::remove_all(dir);
}

#endif  // AIPE_HAVE_HTTPLIB

TEST(BenchServe, UrlsAndSummaries) {
  EXPECT_EQ(llm::parse_http_url("http://localhost:8000/").port, 8000);
  EXPECT_EQ(llm::parse_http_url("http://h").port, 80);
  for (const char* bad : {"https://h:1", "h:80", "http://:80", "http://h:0", "http://h:99999", "http://h:8x",
                          "http://h:80/v1"})
    EXPECT_THROW(llm::parse_http_url(bad), std::invalid_argument) << bad;

  llm::BenchServeOptions o;
  o.slo_ttft_ms = 100;
  o.slo_tpot_ms = 10;
  std::vector<llm::RequestRecord> recs(4);
  recs[0] = {.ok = true, .error = "", .prompt_tokens = 3, .output_tokens = 5, .start_s = 0, .ttft_s = 0.05,
             .latency_s = 0.09, .itl_s = {0.01, 0.01, 0.01, 0.01},
             .malformed = false, .disconnected = false};  // TPOT 10 ms: good
  recs[1] = {.ok = true, .error = "", .prompt_tokens = 3, .output_tokens = 5, .start_s = 0, .ttft_s = 0.2,
             .latency_s = 0.24, .itl_s = {0.01, 0.01, 0.01, 0.01},
             .malformed = false, .disconnected = false};  // TTFT over
  recs[2] = {.ok = true, .error = "", .prompt_tokens = 3, .output_tokens = 3, .start_s = 0, .ttft_s = 0.05,
             .latency_s = 0.15, .itl_s = {0.05, 0.05},
             .malformed = false, .disconnected = false};  // TPOT 50 ms over
  recs[3] = {.ok = false, .error = "HTTP 400: x", .prompt_tokens = 0, .output_tokens = 0, .start_s = 0, .ttft_s = 0,
             .latency_s = 0, .itl_s = {},
             .malformed = false, .disconnected = false};
  const llm::BenchServeResult r = llm::summarize(recs, 2.0, o, 1.0, 0);
  EXPECT_EQ(r.completed, 3);
  EXPECT_EQ(r.failed, 1);
  EXPECT_EQ(r.errors, std::vector<std::string>{"HTTP 400: x"});
  EXPECT_EQ(r.output_tokens, 13);
  EXPECT_EQ(r.good, 1);
  EXPECT_DOUBLE_EQ(r.goodput, 0.5);
  EXPECT_DOUBLE_EQ(r.request_throughput, 1.5);
  EXPECT_DOUBLE_EQ(r.output_throughput, 6.5);
  EXPECT_DOUBLE_EQ(r.ttft.max, 0.2);
  EXPECT_DOUBLE_EQ(r.ttft.p50, 0.05);
  EXPECT_NEAR(r.tpot.mean, (0.01 + 0.01 + 0.05) / 3, 1e-12);
  EXPECT_EQ(llm::to_json(r)["completed"], 3);
}

TEST(ServeCli, BadArgumentsAreUsageErrorsFoundBeforeAnythingRuns) {
  const std::vector<std::vector<std::string>> bad = {
      {"bench", "serve", "--rate", "1", "--concurrency", "2"},
      {"bench", "serve", "--rate", "1", "--sweep", "1,2"},
      {"bench", "serve", "--rate", "-1"},
      {"bench", "serve", "--sweep", "1,x"},
      {"bench", "serve", "--url", "https://127.0.0.1:1"},
      {"bench", "serve", "--url", "http://127.0.0.1:1/v1"},
      {"bench", "serve", "--dataset", "/nonexistent/prompts.jsonl"},
      {"bench", "serve", "--num-prompts", "0"},
      {"serve", "--model", "/nonexistent/model"},
      {"serve", "--model", "synthetic:no-such-model"},
      {"serve", "--model", "synthetic:" + llm::synthetic_names().front(), "--port", "0"},
      {"serve"},
  };
  for (const auto& args : bad) {
    const auto r = test::run_cli(args);
    std::string line;
    for (const auto& a : args) line += a + " ";
    EXPECT_EQ(r.code, 2) << line << "\n" << r.err;
    EXPECT_FALSE(r.err.empty()) << line;
  }
}

TEST(ServeCli, NoServerOrNoGpuIsSaidAsSuch) {
  // Nothing listens on port 1: the server cannot be asked (exit 1, naming the URL).
  const auto b = test::run_cli({"bench", "serve", "--url", "http://127.0.0.1:1", "--num-prompts", "1"});
  EXPECT_EQ(b.code, 1) << b.err;
  EXPECT_NE(b.err.find("127.0.0.1:1"), std::string::npos) << b.err;
  if (!aipe::gpu_unavailable_reason()) GTEST_SKIP() << "a GPU is present: aipe serve would start";
  const auto s = test::run_cli({"serve", "--model", "synthetic:" + llm::synthetic_names().front()});
  EXPECT_EQ(s.code, 3) << s.err;
}

TEST(BenchServe, DatasetLinesAreCheckedAndUsedInTurn) {
  const auto dir = std::filesystem::temp_directory_path() / ("aipe_dataset_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "d.jsonl").string();
  std::ofstream(path) << "{\"prompt\": [1, 2, 3], \"max_tokens\": 4}\n\n{\"prompt\": \"text\"}\n";
  llm::BenchServeOptions o;
  o.dataset = path;
  o.num_prompts = 5;
  o.output_len = 9;
  const auto p = llm::make_prompts(o, {});
  ASSERT_EQ(p.size(), 5u);
  EXPECT_EQ(p[0].ids, (std::vector<llm::TokenId>{1, 2, 3}));
  EXPECT_EQ(p[0].max_tokens, 4);
  EXPECT_EQ(p[1].text, "text");
  EXPECT_EQ(p[1].max_tokens, 9);
  EXPECT_EQ(p[4].ids, p[0].ids);
  for (const char* bad : {"{\"prompt\": 3}\n", "not json\n", "{\"prompt\": [1], \"max_tokens\": 0}\n", "\n"}) {
    std::ofstream(path) << bad;
    try {
      llm::make_prompts(o, {});
      ADD_FAILURE() << "accepted " << bad;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  }
  o.dataset.clear();
  EXPECT_THROW(llm::make_prompts(o, {}), std::invalid_argument);  // random ids need the server's vocab_size
  std::filesystem::remove_all(dir);
}

}  // namespace
