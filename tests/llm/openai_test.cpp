// The OpenAI request parser and response formats of aipe serve (llm/openai.hpp), and its /metrics text.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "aipe/llm/openai.hpp"
#include "aipe/llm/serve_metrics.hpp"

namespace {

using namespace aipe::llm;
using namespace aipe::llm::openai;
using nlohmann::json;

// The ApiError a body gets: status, param and message.
ApiError error_for(const std::string& body, Endpoint ep = Endpoint::completions) {
  try {
    parse_request(body, ep);
  } catch (const ApiError& e) {
    return e;
  }
  ADD_FAILURE() << "no ApiError for " << body;
  return ApiError(0, "none");
}

ApiError resolve_error(const std::string& body, ModelLimits lim, Endpoint ep = Endpoint::completions) {
  try {
    to_engine_request(parse_request(body, ep), nullptr, lim, 1, 0);
  } catch (const ApiError& e) {
    return e;
  }
  ADD_FAILURE() << "no ApiError for " << body;
  return ApiError(0, "none");
}

TEST(OpenAiRequest, CompletionWithTokenIds) {
  const auto p = parse_request(R"({"model": "m", "prompt": [1, 2, 3], "max_tokens": 5, "temperature": 0,
      "top_p": 0.5, "seed": 7, "stop_token_ids": [9], "ignore_eos": true, "stream": true,
      "stream_options": {"include_usage": true}, "unknown_field": {"x": 1}})",
                               Endpoint::completions);
  EXPECT_EQ(p.model, "m");
  EXPECT_EQ(p.prompt_ids, (std::vector<TokenId>{1, 2, 3}));
  EXPECT_FALSE(p.prompt_text);
  EXPECT_EQ(*p.max_tokens, 5);
  EXPECT_EQ(p.temperature, 0.f);
  EXPECT_EQ(p.top_p, 0.5f);
  EXPECT_EQ(*p.seed, 7u);
  EXPECT_TRUE(p.ignore_eos && p.stream && p.include_usage);
  const Request r = to_engine_request(p, nullptr, {.max_model_len = 64, .vocab_size = 100}, 42, 1.5);
  EXPECT_EQ(r.id, 42);
  EXPECT_EQ(r.prompt, (std::vector<TokenId>{1, 2, 3}));
  EXPECT_EQ(r.max_tokens, 5);
  EXPECT_EQ(r.stop_ids, (std::vector<TokenId>{9}));
  EXPECT_EQ(r.sampling.seed, 7u);
  EXPECT_TRUE(r.sampling.ignore_eos);
  EXPECT_EQ(r.arrival_time, 1.5);
}

TEST(OpenAiRequest, DefaultsAndOnePromptArrays) {
  auto p = parse_request(R"({"prompt": [[4, 5]]})", Endpoint::completions);
  EXPECT_EQ(p.prompt_ids, (std::vector<TokenId>{4, 5}));
  EXPECT_FALSE(p.max_tokens);
  EXPECT_EQ(to_engine_request(p, nullptr, {.max_model_len = 64, .vocab_size = 0}, 1, 0).max_tokens, 16);
  // 16 does not fit a context of 10 with 2 prompt tokens: the default is what is left.
  EXPECT_EQ(to_engine_request(p, nullptr, {.max_model_len = 10, .vocab_size = 0}, 1, 0).max_tokens, 8);
  p = parse_request(R"({"prompt": ["hello"], "stop": "x"})", Endpoint::completions);
  EXPECT_EQ(*p.prompt_text, "hello");
  EXPECT_EQ(p.stop, std::vector<std::string>{"x"});
  // Two unseeded requests sample differently.
  const auto q = parse_request(R"({"prompt": [1]})", Endpoint::completions);
  EXPECT_NE(to_engine_request(q, nullptr, {.max_model_len = 64}, 1, 0).sampling.seed,
            to_engine_request(q, nullptr, {.max_model_len = 64}, 2, 0).sampling.seed);
}

TEST(OpenAiRequest, ChatMessages) {
  const auto p = parse_request(R"({"messages": [{"role": "system", "content": "be brief"},
      {"role": "user", "content": [{"type": "text", "text": "hi "}, {"type": "text", "text": "there"}]}],
      "max_completion_tokens": 3})",
                               Endpoint::chat);
  ASSERT_EQ(p.messages.size(), 2u);
  EXPECT_EQ(p.messages[1].role, "user");
  EXPECT_EQ(p.messages[1].content, "hi there");
  EXPECT_EQ(*p.max_tokens, 3);
  // Chat needs the tokenizer.
  EXPECT_EQ(resolve_error(R"({"messages": [{"role": "user", "content": "x"}]})", {.max_model_len = 64}, Endpoint::chat).param,
            "messages");
}

TEST(OpenAiRequest, EveryBadFieldIsA400NamingIt) {
  struct Case {
    const char* body;
    const char* param;
  };
  const Case cases[] = {
      {"{", ""},
      {"[1, 2]", ""},
      {"", ""},
      {R"({"max_tokens": 4})", "prompt"},
      {R"({"prompt": 5})", "prompt"},
      {R"({"prompt": ""})", "prompt"},
      {R"({"prompt": []})", "prompt"},
      {R"({"prompt": ["a", "b"]})", "prompt"},
      {R"({"prompt": [1, -2]})", "prompt"},
      {R"({"prompt": [1, 2.5]})", "prompt"},
      {R"({"prompt": [1, 99999999999]})", "prompt"},
      {R"({"prompt": [1], "model": 3})", "model"},
      {R"({"prompt": [1], "max_tokens": 0})", "max_tokens"},
      {R"({"prompt": [1], "max_tokens": 1.5})", "max_tokens"},
      {R"({"prompt": [1], "max_tokens": "10"})", "max_tokens"},
      {R"({"prompt": [1], "max_tokens": 18446744073709551615})", "max_tokens"},
      {R"({"prompt": [1], "temperature": -0.1})", "temperature"},
      {R"({"prompt": [1], "temperature": 2.5})", "temperature"},
      {R"({"prompt": [1], "temperature": "hot"})", "temperature"},
      {R"({"prompt": [1], "top_p": 0})", "top_p"},
      {R"({"prompt": [1], "top_p": 1.01})", "top_p"},
      {R"({"prompt": [1], "top_k": -2})", "top_k"},
      {R"({"prompt": [1], "n": 2})", "n"},
      {R"({"prompt": [1], "seed": "s"})", "seed"},
      {R"({"prompt": [1], "stop": 3})", "stop"},
      {R"({"prompt": [1], "stop": ["a", 3]})", "stop"},
      {R"({"prompt": [1], "stop": [""]})", "stop"},
      {R"({"prompt": [1], "stop_token_ids": 3})", "stop_token_ids"},
      {R"({"prompt": [1], "stop_token_ids": [-1]})", "stop_token_ids"},
      {R"({"prompt": [1], "ignore_eos": 1})", "ignore_eos"},
      {R"({"prompt": [1], "stream": "yes"})", "stream"},
      {R"({"prompt": [1], "stream_options": {"include_usage": true}})", "stream_options"},
      {R"({"prompt": [1], "stream": true, "stream_options": 1})", "stream_options"},
  };
  for (const auto& c : cases) {
    const ApiError e = error_for(c.body);
    EXPECT_EQ(e.status, 400) << c.body;
    EXPECT_EQ(e.param, c.param) << c.body << ": " << e.what();
    EXPECT_EQ(e.type, "invalid_request_error");
  }
  const Case chat[] = {
      {R"({"prompt": [1]})", "messages"},
      {R"({"messages": []})", "messages"},
      {R"({"messages": {"role": "user"}})", "messages"},
      {R"({"messages": [3]})", "messages[0]"},
      {R"({"messages": [{"content": "x"}]})", "messages[0].role"},
      {R"({"messages": [{"role": "king", "content": "x"}]})", "messages[0].role"},
      {R"({"messages": [{"role": "user"}]})", "messages[0].content"},
      {R"({"messages": [{"role": "user", "content": 5}]})", "messages[0].content"},
      {R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", "messages[0].content"},
  };
  for (const auto& c : chat) EXPECT_EQ(error_for(c.body, Endpoint::chat).param, c.param) << c.body;
}

TEST(OpenAiRequest, LimitsOfTheModel) {
  const ModelLimits lim{.max_model_len = 8, .vocab_size = 50};
  EXPECT_EQ(resolve_error(R"({"prompt": [1, 50]})", lim).param, "prompt");
  EXPECT_EQ(resolve_error(R"({"prompt": [1], "stop_token_ids": [50]})", lim).param, "stop_token_ids");
  EXPECT_EQ(resolve_error(R"({"prompt": [1, 2, 3, 4, 5, 6, 7, 8]})", lim).param, "prompt");  // no room for a token
  const ApiError e = resolve_error(R"({"prompt": [1, 2, 3], "max_tokens": 6})", lim);
  EXPECT_EQ(e.param, "max_tokens");
  EXPECT_NE(std::string(e.what()).find("at most 5"), std::string::npos) << e.what();
  EXPECT_EQ(resolve_error(R"({"prompt": "text"})", lim).param, "prompt");              // no tokenizer
  EXPECT_EQ(resolve_error(R"({"prompt": [1], "stop": "x"})", lim).param, "stop");      // no tokenizer
  EXPECT_EQ(to_engine_request(parse_request(R"({"prompt": [1, 2, 3], "max_tokens": 5})", Endpoint::completions), nullptr,
                              lim, 1, 0)
                .max_tokens,
            5);
}

TEST(OpenAiFormat, ErrorBody) {
  const json j = json::parse(error_body(ApiError(400, "bad \"x\"", "max_tokens")));
  EXPECT_EQ(j["error"]["message"], "bad \"x\"");
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_EQ(j["error"]["param"], "max_tokens");
  EXPECT_TRUE(j["error"]["code"].is_null());
  EXPECT_TRUE(json::parse(error_body(ApiError(400, "x")))["error"]["param"].is_null());
}

TEST(OpenAiFormat, ResponsesAndChunks) {
  Completion c{.id = "cmpl-1", .model = "m", .created = 5, .text = "ab", .token_ids = {3, 4}, .with_ids = true,
               .finish_reason = "length", .usage = {.prompt_tokens = 2, .completion_tokens = 2}};
  json j = json::parse(response_json(Endpoint::completions, c));
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["choices"][0]["text"], "ab");
  EXPECT_EQ(j["choices"][0]["token_ids"], json::array({3, 4}));
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["total_tokens"], 4);
  c.with_ids = false;
  c.text = std::string("bad \xff utf-8");
  j = json::parse(response_json(Endpoint::chat, c));  // invalid UTF-8 is replaced, not a throw
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_FALSE(j["choices"][0].contains("token_ids"));

  const std::string ev = chunk_event(Endpoint::chat, {.id = "c", .model = "m", .text = "x", .first = true});
  ASSERT_EQ(ev.rfind("data: ", 0), 0u);
  ASSERT_EQ(ev.substr(ev.size() - 2), "\n\n");
  j = json::parse(ev.substr(6));
  EXPECT_EQ(j["object"], "chat.completion.chunk");
  EXPECT_EQ(j["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["delta"]["content"], "x");
  EXPECT_TRUE(j["choices"][0]["finish_reason"].is_null());
  const std::string u = chunk_event(Endpoint::completions, {.id = "c", .usage = Usage{.prompt_tokens = 1, .completion_tokens = 2}});
  j = json::parse(u.substr(6));
  EXPECT_TRUE(j["choices"].empty());
  EXPECT_EQ(j["usage"]["completion_tokens"], 2);
  EXPECT_STREQ(finish_reason(FinishReason::eos), "stop");
  EXPECT_STREQ(finish_reason(FinishReason::context_limit), "length");
  EXPECT_STREQ(finish_reason(FinishReason::cancelled), "abort");
}

TEST(OpenAiFormat, StopMatcherCutsBeforeTheStopAcrossPieces) {
  StopMatcher m({"END", "xy"});
  std::string out;
  for (const char* piece : {"hello E", "N", "D tail"}) out += m.push(piece);
  EXPECT_TRUE(m.matched());
  EXPECT_EQ(out, "hello ");
  EXPECT_EQ(m.push("more"), "");
  StopMatcher n({"END"});
  out = n.push("abcE");
  out += n.push("Nx");
  out += n.finish();
  EXPECT_FALSE(n.matched());
  EXPECT_EQ(out, "abcENx");
  // Held-back text never splits a UTF-8 character: every piece returned is whole characters.
  StopMatcher u({"zzzz"});
  const std::string s = "\xc3\xa9\xc3\xa9\xc3\xa9";  // three two-byte characters
  std::string got;
  for (char ch : s) {
    const std::string piece = u.push(std::string(1, ch));
    if (!piece.empty()) EXPECT_NE(static_cast<unsigned char>(piece[0]) & 0xC0, 0x80u);
    got += piece;
  }
  got += u.finish();
  EXPECT_EQ(got, s);
  StopMatcher none({});
  EXPECT_EQ(none.push("abc"), "abc");
}

TEST(OpenAiFormat, SseParserSplitsEventsInAnyPieces) {
  const std::string stream = "data: {\"a\":1}\n\n: comment\n\ndata: x\r\ndata: y\r\n\r\nevent: e\ndata: [DONE]\n\n";
  for (std::size_t step : {std::size_t(1), std::size_t(3), stream.size()}) {
    SseParser p;
    std::vector<std::string> evs;
    for (std::size_t i = 0; i < stream.size(); i += step)
      for (auto& e : p.push(std::string_view(stream).substr(i, step))) evs.push_back(e);
    EXPECT_EQ(evs, (std::vector<std::string>{"{\"a\":1}", "x\ny", "[DONE]"})) << "pieces of " << step;
  }
}

TEST(ServeMetrics, HistogramBucketsAndRender) {
  Histogram h({0.1, 1.0});
  for (double x : {0.05, 0.1, 0.5, 2.0}) h.observe(x);
  EXPECT_EQ(h.counts, (std::vector<std::uint64_t>{2, 1, 1}));  // le=0.1 holds 0.1 itself
  EXPECT_EQ(h.count, 4u);

  ServeMetrics m;
  FinishedRequest f;
  f.reason = FinishReason::max_tokens;
  f.output = {1, 2, 3};
  f.num_prompt_tokens = 5;
  f.times.arrival = 1.0;
  f.times.first_scheduled = 1.1;
  f.times.first_token = 1.5;
  f.times.token_times = {1.5, 1.6, 1.8};
  f.times.finished = 1.8;
  m.record_finished(f);
  m.record_rejected(400);
  SchedulerStats s;
  s.num_running = 3;
  s.kv_usage = 0.25;
  m.set_engine_stats(s);
  const std::string t = m.render("my \"model\"");
  auto has = [&](const std::string& line) { return t.find(line + "\n") != std::string::npos; };
  const std::string lab = "model_name=\"my \\\"model\\\"\"";
  EXPECT_TRUE(has("aipe:num_requests_running{" + lab + "} 3")) << t;
  EXPECT_TRUE(has("aipe:kv_cache_usage_perc{" + lab + "} 0.25")) << t;
  EXPECT_TRUE(has("aipe:generation_tokens_total{" + lab + "} 3")) << t;
  EXPECT_TRUE(has("aipe:prompt_tokens_total{" + lab + "} 5")) << t;
  EXPECT_TRUE(has("aipe:request_success_total{" + lab + ",finished_reason=\"max_tokens\"} 1")) << t;
  EXPECT_TRUE(has("aipe:request_rejected_total{" + lab + ",status=\"400\"} 1")) << t;
  EXPECT_TRUE(has("aipe:time_to_first_token_seconds_count{" + lab + "} 1")) << t;
  EXPECT_TRUE(has("aipe:inter_token_latency_seconds_count{" + lab + "} 2")) << t;
  EXPECT_TRUE(has("aipe:time_to_first_token_seconds_bucket{" + lab + ",le=\"0.5\"} 1")) << t;
  EXPECT_TRUE(has("aipe:time_to_first_token_seconds_bucket{" + lab + ",le=\"0.25\"} 0")) << t;
  EXPECT_TRUE(has("# TYPE aipe:inter_token_latency_seconds histogram")) << t;
}

}  // namespace
