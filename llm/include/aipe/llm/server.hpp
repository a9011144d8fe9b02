#pragma once
// `aipe serve`: an OpenAI-compatible HTTP server (cpp-httplib) in front of a StepEngine.
//
// One engine thread owns the engine and loops: take new requests and cancellations from a queue, step(), hand each
// TokenEvent to its request's channel, close the channels of requests that ended. HTTP threads (a pool) parse and
// validate requests (llm/openai.hpp), queue them, and answer: whole, or as server-sent events, one chunk per token
// and `data: [DONE]`. A streaming client that goes away cancels its request (the next write to it fails). Routes:
//   POST /v1/completions   POST /v1/chat/completions   GET /v1/models   GET /health   GET /metrics
// shutdown(): new requests get 503, requests in flight run to their end until the deadline, then are cancelled.
#include <memory>
#include <string>

#include "aipe/llm/step_engine.hpp"
#include "aipe/llm/tokenizer.hpp"

namespace aipe::llm {

// False when aipe was configured without cpp-httplib (Debian: libcpp-httplib-dev): then Server::start() and the
// bench client throw std::runtime_error saying so.
bool http_available();

struct ServerOptions {
  std::string host = "127.0.0.1";  // loopback unless asked otherwise
  int port = 8000;                 // 0: any free port (start() returns the one bound)
  std::string model_name;          // the id /v1/models lists and requests may name
  int http_threads = 128;          // connections served at once: a streaming request holds one for its lifetime
  std::size_t max_body_bytes = 16u << 20;
};

class Server {
 public:
  // The engine and the tokenizer (nullptr: none; prompts must then be token ids) must outlive the server, and
  // nothing else may call the engine while it runs.
  Server(StepEngine& engine, const Tokenizer* tokenizer, ServerOptions opt);
  ~Server();  // shutdown(0) when still running
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and starts serving; returns the bound port. std::runtime_error when the address cannot be bound.
  int start();
  // Stops taking requests (503), lets those in flight finish for up to drain_timeout_s, cancels what remains
  // (its streams end with finish_reason "abort"), then stops the threads. Idempotent.
  void shutdown(double drain_timeout_s);
  int in_flight() const;  // requests accepted and not yet answered in full

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace aipe::llm
