#include "aipe/llm/server.hpp"

#include <stdexcept>

#if AIPE_HAVE_HTTPLIB
#include <httplib.h>
#include <signal.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <unordered_map>

#include "aipe/llm/openai.hpp"
#include "aipe/llm/serve_metrics.hpp"
#endif

namespace aipe::llm {

#if AIPE_HAVE_HTTPLIB

bool http_available() { return true; }

namespace {

using namespace std::chrono_literals;
using openai::ApiError;
using openai::Endpoint;

// What the engine thread tells one request's HTTP thread.
struct Channel {
  std::mutex m;
  std::condition_variable cv;
  bool accepted = false;  // the engine took it (add_request did not throw)
  std::vector<TokenEvent> events;
  bool done = false;      // it ended (fin holds how) or failed (error)
  std::string error;
  int error_status = 400;
  FinishedRequest fin;

  void fail(int status, const std::string& why) {
    std::lock_guard<std::mutex> l(m);
    error = why;
    error_status = status;
    done = true;
    cv.notify_all();
  }
};

// One token's share of the output: its id and the text it completes (may be empty: part of a UTF-8 character,
// a special token, text held back by the stop matcher).
struct Piece {
  TokenId id;
  std::string text;
};

// cpp-httplib 0.11 listens with a backlog of 5: a burst of connections (a load test's first second) overflows it,
// and the kernel drops what does not fit. Listening again on the bound socket raises the backlog (POSIX allows it;
// Linux applies it).
struct HttpServer : httplib::Server {
  void raise_backlog(int n) { ::listen(svr_sock_, n); }
};

}  // namespace

struct Server::Impl {
  StepEngine& engine;
  const Tokenizer* tok;
  ServerOptions opt;
  openai::ModelLimits limits;
  ServeMetrics metrics;
  HttpServer http;
  std::thread http_thread, engine_thread;
  const std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();

  std::mutex qm;
  std::condition_variable qcv;
  std::vector<std::pair<Request, std::shared_ptr<Channel>>> adds;
  std::vector<RequestId> cancels;
  bool cancel_all = false, stop_engine = false, engine_stopped = false;

  std::atomic<bool> draining{false}, running{false};
  std::atomic<RequestId> next_id{1};
  std::atomic<int> in_flight{0};
  std::string engine_error;  // under qm

  std::unordered_map<RequestId, std::shared_ptr<Channel>> live;  // the engine thread's

  Impl(StepEngine& e, const Tokenizer* t, ServerOptions o) : engine(e), tok(t), opt(std::move(o)) {
    const SchedulerConfig& c = engine.scheduler_config();
    limits = {.max_model_len = c.max_model_len, .vocab_size = c.vocab_size > 0 ? c.vocab_size : engine.info().vocab};
    if (opt.model_name.empty()) opt.model_name = engine.info().name;
  }

  double now() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); }

  bool enqueue(Request r, std::shared_ptr<Channel> ch) {
    std::lock_guard<std::mutex> l(qm);
    if (engine_stopped) return false;
    adds.emplace_back(std::move(r), std::move(ch));
    qcv.notify_one();
    return true;
  }
  void cancel(RequestId id) {
    std::lock_guard<std::mutex> l(qm);
    cancels.push_back(id);
    qcv.notify_one();
  }

  void engine_loop();
  void fail_all(int status, const std::string& why);
  void route();
  void handle(const httplib::Request& hreq, httplib::Response& res, Endpoint ep);
};

void Server::Impl::fail_all(int status, const std::string& why) {
  for (auto& [id, ch] : live) ch->fail(status, why);
  live.clear();
  std::lock_guard<std::mutex> l(qm);
  for (auto& [r, ch] : adds) ch->fail(status, why);
  adds.clear();
  engine_stopped = true;
}

void Server::Impl::engine_loop() {
  for (;;) {
    std::vector<std::pair<Request, std::shared_ptr<Channel>>> new_adds;
    std::vector<RequestId> new_cancels;
    bool all = false;
    {
      std::unique_lock<std::mutex> l(qm);
      if (live.empty()) qcv.wait(l, [&] { return stop_engine || cancel_all || !adds.empty() || !cancels.empty(); });
      if (stop_engine) break;
      new_adds.swap(adds);
      new_cancels.swap(cancels);
      all = cancel_all;
      cancel_all = false;
    }
    try {
      for (auto& [r, ch] : new_adds) {
        const RequestId id = r.id;
        try {
          engine.add_request(std::move(r));
        } catch (const std::invalid_argument& e) {
          ch->fail(400, e.what());
          continue;
        }
        live[id] = ch;
        std::lock_guard<std::mutex> l(ch->m);
        ch->accepted = true;
        ch->cv.notify_all();
      }
      for (const RequestId id : new_cancels) engine.cancel(id);  // false: it already ended
      if (all)
        for (const auto& [id, ch] : live) engine.cancel(id);
      if (engine.has_unfinished()) {
        for (const TokenEvent& e : engine.step(now())) {
          const auto it = live.find(e.id);
          if (it == live.end()) continue;
          std::lock_guard<std::mutex> l(it->second->m);
          it->second->events.push_back(e);
          it->second->cv.notify_all();
        }
      }
      for (FinishedRequest& f : engine.take_finished()) {
        metrics.record_finished(f);
        const auto it = live.find(f.id);
        if (it == live.end()) continue;
        {
          std::lock_guard<std::mutex> l(it->second->m);
          it->second->fin = std::move(f);
          it->second->done = true;
          it->second->cv.notify_all();
        }
        live.erase(it);
      }
      // Every live request is the engine's until take_finished() returns it; one the engine no longer holds
      // would wait forever.
      if (!engine.has_unfinished() && !live.empty()) {
        for (auto& [id, ch] : live) ch->fail(500, "the engine dropped the request without finishing it");
        live.clear();
      }
      metrics.set_engine_stats(engine.stats());
    } catch (const std::exception& e) {
      // The engine's state is unknown after a failed step: answer everything and take nothing more.
      {
        std::lock_guard<std::mutex> l(qm);
        engine_error = e.what();
      }
      fail_all(500, std::string("the engine failed: ") + e.what());
      return;
    }
  }
  fail_all(503, "the server is shutting down");
}

namespace {

// One request's output as it is produced: the ids, the text (detokenized, cut at a stop string), usage, and
// the end. Its destructor runs when the HTTP exchange is over (the response, and with it the stream's provider,
// is gone): a request that has not ended by then lost its client and is cancelled.
struct RequestState {
  Server::Impl* srv;
  RequestId id;
  Endpoint ep;
  std::shared_ptr<Channel> ch;
  std::string id_str, model;
  std::int64_t created = 0;
  bool with_ids = false, stream = false, include_usage = false;
  std::optional<StreamDecoder> decoder;
  openai::StopMatcher stop;
  std::size_t next = 0;  // events taken from the channel
  std::int64_t prompt_tokens = 0, completion_tokens = 0;
  bool finished = false, engine_done = false;
  std::string finish_reason;
  bool first_chunk = true;

  RequestState(Server::Impl* s, RequestId i, Endpoint e, std::vector<std::string> stops)
      : srv(s), id(i), ep(e), stop(std::move(stops)) {}
  ~RequestState();

  // Waits up to `timeout` for new tokens; returns one piece per token (the final piece carries the flushed
  // tail). Sets `finished` at the request's end: an end event, a stop string, or the engine's verdict.
  std::vector<Piece> take(std::chrono::milliseconds timeout);
};

}  // namespace

std::vector<Piece> RequestState::take(std::chrono::milliseconds timeout) {
  std::vector<TokenEvent> evs;
  bool done = false;
  FinishReason reason = FinishReason::none;
  std::string error;
  {
    std::unique_lock<std::mutex> l(ch->m);
    ch->cv.wait_for(l, timeout, [&] { return ch->events.size() > next || ch->done; });
    evs.assign(ch->events.begin() + std::ptrdiff_t(next), ch->events.end());
    next = ch->events.size();
    done = ch->done;
    reason = ch->fin.reason;
    error = ch->error;
  }
  std::vector<Piece> out;
  for (const TokenEvent& e : evs) {
    if (finished) break;
    ++completion_tokens;
    Piece p{.id = e.token, .text = ""};
    // The id that ended the request (eos, a stop id) is counted and listed, but not written as text.
    const bool stop_id = e.finish == FinishReason::eos || e.finish == FinishReason::stop_token;
    if (decoder && !stop_id) p.text = stop.push(decoder->push(e.token));
    if (stop.matched()) {
      finished = true;
      finish_reason = "stop";
      srv->cancel(id);  // the engine would go on to max_tokens
    } else if (e.finish != FinishReason::none) {
      finished = true;
      finish_reason = openai::finish_reason(e.finish);
    }
    out.push_back(std::move(p));
  }
  if (done) engine_done = true;
  if (!finished && done) {
    finished = true;
    finish_reason = error.empty() ? openai::finish_reason(reason) : "abort";
    if (finish_reason.empty()) finish_reason = "abort";
  }
  if (finished && finish_reason != "stop") {
    std::string tail = decoder ? stop.push(decoder->finish()) : "";
    tail += stop.finish();
    if (!tail.empty()) {
      if (out.empty()) out.push_back({.id = -1, .text = tail});
      else out.back().text += tail;
    }
  }
  return out;
}

RequestState::~RequestState() {
  if (!finished) srv->cancel(id);
  srv->in_flight.fetch_sub(1);
}

void Server::Impl::handle(const httplib::Request& hreq, httplib::Response& res, Endpoint ep) {
  try {
    if (draining) throw ApiError(503, "the server is shutting down", "", "service_unavailable");
    const openai::ParsedRequest p = openai::parse_request(hreq.body, ep);
    if (!p.model.empty() && p.model != opt.model_name)
      throw ApiError(404, "the model '" + p.model + "' does not exist (this server serves '" + opt.model_name + "')",
                     "model", "invalid_request_error", "model_not_found");
    const RequestId id = next_id.fetch_add(1);
    Request r = openai::to_engine_request(p, tok, limits, id, now());

    in_flight.fetch_add(1);
    auto st = std::make_shared<RequestState>(this, id, ep, p.stop);
    st->ch = std::make_shared<Channel>();
    st->id_str = (ep == Endpoint::chat ? "chatcmpl-" : "cmpl-") + std::to_string(id);
    st->model = opt.model_name;
    st->created = std::int64_t(std::time(nullptr));
    st->with_ids = tok == nullptr || (ep == Endpoint::completions && !p.prompt_text);
    st->stream = p.stream;
    st->include_usage = p.include_usage;
    st->prompt_tokens = std::int64_t(r.prompt.size());
    if (tok) st->decoder.emplace(*tok, true);
    if (!enqueue(std::move(r), st->ch)) {
      st->finished = true;
      throw ApiError(503, "the engine has stopped", "", "service_unavailable");
    }
    // The engine's own checks come before any answer, so that what it refuses is a 400 too.
    {
      std::unique_lock<std::mutex> l(st->ch->m);
      st->ch->cv.wait(l, [&] { return st->ch->accepted || st->ch->done; });
      if (!st->ch->accepted) {
        st->finished = true;
        throw ApiError(st->ch->error_status, st->ch->error, "", st->ch->error_status == 400 ? "invalid_request_error"
                                                                                            : "server_error");
      }
    }

    if (!p.stream) {
      openai::Completion c;
      c.id = st->id_str;
      c.model = st->model;
      c.created = st->created;
      c.with_ids = st->with_ids;
      while (!st->finished)
        for (Piece& piece : st->take(100ms)) {
          c.text += piece.text;
          if (piece.id >= 0) c.token_ids.push_back(piece.id);
        }
      c.finish_reason = st->finish_reason;
      c.usage = {.prompt_tokens = st->prompt_tokens, .completion_tokens = st->completion_tokens};
      res.status = 200;
      res.set_content(openai::response_json(ep, c), "application/json");
      return;
    }

    res.status = 200;
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider("text/event-stream", [st](std::size_t, httplib::DataSink& sink) -> bool {
      auto chunk = [&](std::string text, std::vector<TokenId> ids, std::string reason) {
        openai::Chunk c;
        c.id = st->id_str;
        c.model = st->model;
        c.created = st->created;
        c.text = std::move(text);
        c.token_ids = std::move(ids);
        c.with_ids = st->with_ids;
        c.first = st->first_chunk;
        c.finish_reason = std::move(reason);
        st->first_chunk = false;
        return openai::chunk_event(st->ep, c);
      };
      const bool was_finished = st->finished;
      std::string out;
      if (!was_finished)
        for (Piece& piece : st->take(50ms)) {
          std::vector<TokenId> ids;
          if (piece.id >= 0) ids.push_back(piece.id);
          out += chunk(std::move(piece.text), std::move(ids), "");
        }
      if (st->finished) {
        out += chunk("", {}, st->finish_reason);
        if (st->include_usage) {
          openai::Chunk u;
          u.id = st->id_str;
          u.model = st->model;
          u.created = st->created;
          u.usage = openai::Usage{.prompt_tokens = st->prompt_tokens, .completion_tokens = st->completion_tokens};
          out += openai::chunk_event(st->ep, u);
        }
        out += openai::kDoneEvent;
      }
      // A failed write: the client is gone. Returning false ends the exchange; the state's destructor cancels.
      if (!out.empty() && !sink.write(out.data(), out.size())) return false;
      if (st->finished) sink.done();
      return true;
    });
  } catch (const ApiError& e) {
    metrics.record_rejected(e.status);
    res.status = e.status;
    res.set_content(openai::error_body(e), "application/json");
  }
}

void Server::Impl::route() {
  http.new_task_queue = [n = std::max(1, opt.http_threads)] { return new httplib::ThreadPool(std::size_t(n)); };
  http.set_payload_max_length(opt.max_body_bytes);
  http.set_keep_alive_max_count(1000);
  http.set_keep_alive_timeout(2);  // an idle keep-alive connection holds a pool thread, and shutdown waits for it
  http.set_read_timeout(30);
  http.set_write_timeout(30);
  http.Post("/v1/completions",
            [this](const httplib::Request& q, httplib::Response& r) { handle(q, r, Endpoint::completions); });
  http.Post("/v1/chat/completions",
            [this](const httplib::Request& q, httplib::Response& r) { handle(q, r, Endpoint::chat); });
  http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& r) {
    const nlohmann::json m = {{"id", opt.model_name},          {"object", "model"},
                              {"created", std::int64_t(std::time(nullptr))}, {"owned_by", "aipe"},
                              {"max_model_len", limits.max_model_len}, {"vocab_size", limits.vocab_size},
                              {"tokenizer", tok != nullptr}};
    r.set_content(nlohmann::json({{"object", "list"}, {"data", {m}}}).dump(), "application/json");
  });
  http.Get("/health", [this](const httplib::Request&, httplib::Response& r) {
    std::string err;
    {
      std::lock_guard<std::mutex> l(qm);
      err = engine_error;
    }
    if (!err.empty()) {
      r.status = 503;
      r.set_content(openai::error_body(ApiError(503, "the engine failed: " + err, "", "server_error")), "application/json");
    } else if (draining) {
      r.status = 503;
      r.set_content(openai::error_body(ApiError(503, "the server is shutting down", "", "service_unavailable")),
                    "application/json");
    } else {
      r.set_content("{}", "application/json");
    }
  });
  http.Get("/metrics", [this](const httplib::Request&, httplib::Response& r) {
    r.set_content(metrics.render(opt.model_name), "text/plain; version=0.0.4; charset=utf-8");
  });
  // Anything else (an unknown path, a body over the limit, a handler's exception): an OpenAI-style body.
  http.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request&, httplib::Response& r) {
    if (!r.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    const std::string what = r.status == 404 ? "no such route" : r.status == 413 ? "the request body is too large"
                                                                                  : "the request failed";
    r.set_content(openai::error_body(ApiError(r.status, what, "", r.status >= 500 ? "server_error" : "invalid_request_error")),
                  "application/json");
    return httplib::Server::HandlerResponse::Handled;
  }));
  http.set_exception_handler([](const httplib::Request&, httplib::Response& r, std::exception_ptr ep) {
    std::string what = "unknown error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    r.status = 500;
    r.set_content(openai::error_body(ApiError(500, what, "", "server_error")), "application/json");
  });
}

Server::Server(StepEngine& engine, const Tokenizer* tokenizer, ServerOptions opt)
    : impl_(std::make_unique<Impl>(engine, tokenizer, std::move(opt))) {}

Server::~Server() { shutdown(0); }

int Server::start() {
  Impl& s = *impl_;
  if (s.running) throw std::logic_error("Server::start: already started");
  // A write to a client that closed its connection must be an error code, not the end of the process.
  ::signal(SIGPIPE, SIG_IGN);
  s.route();
  int port = s.opt.port;
  if (port == 0) {
    port = s.http.bind_to_any_port(s.opt.host);
    if (port < 0) throw std::runtime_error("aipe serve: cannot bind " + s.opt.host + " to any port");
  } else if (!s.http.bind_to_port(s.opt.host, port)) {
    throw std::runtime_error("aipe serve: cannot bind " + s.opt.host + ":" + std::to_string(port) +
                             " (in use, or not an address of this machine)");
  }
  s.http.raise_backlog(SOMAXCONN);
  s.metrics.set_engine_stats(s.engine.stats());
  s.running = true;
  s.engine_thread = std::thread([&s] { s.engine_loop(); });
  s.http_thread = std::thread([&s] { s.http.listen_after_bind(); });
  return port;
}

int Server::in_flight() const { return impl_->in_flight.load(); }

void Server::shutdown(double drain_timeout_s) {
  Impl& s = *impl_;
  if (!s.running.exchange(false)) return;
  s.draining = true;
  auto wait_idle = [&](double seconds) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (s.in_flight.load() > 0 && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(5ms);
    return s.in_flight.load() == 0;
  };
  if (!wait_idle(drain_timeout_s)) {
    {
      std::lock_guard<std::mutex> l(s.qm);
      s.cancel_all = true;
      s.qcv.notify_one();
    }
    // Cancelled streams still write their last chunk and [DONE]; a client that stopped reading is not waited for
    // past the write timeout.
    wait_idle(5.0);
  }
  {
    std::lock_guard<std::mutex> l(s.qm);
    s.stop_engine = true;
    s.qcv.notify_one();
  }
  s.engine_thread.join();
  s.http.stop();
  s.http_thread.join();
}

#else  // no cpp-httplib

bool http_available() { return false; }

struct Server::Impl {};

Server::Server(StepEngine&, const Tokenizer*, ServerOptions) : impl_(std::make_unique<Impl>()) {}
Server::~Server() = default;
int Server::start() {
  throw std::runtime_error("aipe was built without cpp-httplib (Debian: libcpp-httplib-dev): no HTTP server");
}
void Server::shutdown(double) {}
int Server::in_flight() const { return 0; }

#endif

}  // namespace aipe::llm
