#pragma once
// The OpenAI completions and chat-completions formats as `aipe serve` speaks them, in pure functions (no server,
// no engine): a request body parsed and validated field by field (an ApiError naming the field: the 400 the
// server answers), resolved against the model's limits into a scheduler Request, and the responses, server-sent
// event chunks and error bodies formatted. The client side (`aipe bench serve`) reads events with SseParser.
//
// Extensions beyond OpenAI's fields, as vLLM names them: `stop_token_ids`, `ignore_eos`, `top_k`, and a prompt
// given as token ids (what a model without a tokenizer takes; its response carries `token_ids` and empty text).
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "aipe/llm/scheduler.hpp"
#include "aipe/llm/tokenizer.hpp"

namespace aipe::llm::openai {

// What the server answers a request it cannot run: the HTTP status and OpenAI's error body
//   {"error": {"message": ..., "type": "invalid_request_error", "param": "max_tokens", "code": null}}
struct ApiError : std::invalid_argument {
  ApiError(int status, const std::string& message, std::string param = "", std::string type = "invalid_request_error",
           std::string code = "");
  int status;
  std::string param, type, code;  // "" is written as null
};
std::string error_body(const ApiError& e);

enum class Endpoint { completions, chat };

struct ParsedRequest {
  Endpoint endpoint = Endpoint::completions;
  std::string model;                        // "" when absent
  std::optional<std::string> prompt_text;   // completions: a text prompt
  std::vector<TokenId> prompt_ids;          // completions: a token-id prompt (when prompt_text is empty)
  std::vector<ChatMessage> messages;        // chat
  std::optional<std::int32_t> max_tokens;   // absent: 16 for completions, the rest of the context for chat
  float temperature = 1.0f, top_p = 1.0f;
  std::int32_t top_k = 0;                   // 0 (or -1): off
  std::optional<std::uint64_t> seed;
  std::vector<std::string> stop;            // stop strings (need a tokenizer)
  std::vector<TokenId> stop_token_ids;
  bool ignore_eos = false;
  bool stream = false, include_usage = false;  // include_usage: stream_options.include_usage
};

// ApiError(400) for a body that is not a JSON object, a missing or wrongly typed field, a value out of range
// (temperature in [0, 2], top_p in (0, 1], max_tokens >= 1, n == 1, ...). Unknown fields are ignored.
ParsedRequest parse_request(std::string_view body, Endpoint endpoint);

// What the model allows: the context, the vocabulary and the end-of-turn id chat adds to the stop ids.
struct ModelLimits {
  std::int32_t max_model_len = 0;
  std::int32_t vocab_size = 0;  // > 0: ids are checked against it
};

// The request as the engine takes it: a text prompt encoded with the tokenizer (completions with the BOS token,
// chat in the Llama 3 format with <|eot_id|> as a stop id), max_tokens resolved. ApiError(400) for text or stop
// strings without a tokenizer, ids outside the vocabulary, a prompt that leaves no room in the context, or
// prompt + max_tokens beyond it.
Request to_engine_request(const ParsedRequest& p, const Tokenizer* tokenizer, const ModelLimits& limits, RequestId id,
                          double arrival_time);

// OpenAI's finish_reason: "stop" (eos, a stop id or string), "length" (max_tokens, the context), "abort".
const char* finish_reason(FinishReason r);

struct Usage {
  std::int64_t prompt_tokens = 0, completion_tokens = 0;
};

// A whole (non-streaming) response. token_ids is written only when `with_ids`.
struct Completion {
  std::string id, model;
  std::int64_t created = 0;
  std::string text;
  std::vector<TokenId> token_ids;
  bool with_ids = false;
  std::string finish_reason;
  Usage usage;
};
std::string response_json(Endpoint endpoint, const Completion& c);

// One server-sent event of a stream: "data: {...}\n\n". A chunk carries the new text (and ids, when with_ids);
// the last one carries finish_reason; chat's first chunk carries the assistant role. `usage` set: the final
// usage-only chunk (stream_options.include_usage), choices empty.
struct Chunk {
  std::string id, model;
  std::int64_t created = 0;
  std::string text;
  std::vector<TokenId> token_ids;
  bool with_ids = false;
  bool first = false;
  std::string finish_reason;  // "": null
  std::optional<Usage> usage;
};
std::string chunk_event(Endpoint endpoint, const Chunk& c);
inline constexpr std::string_view kDoneEvent = "data: [DONE]\n\n";

// Cuts the output text before the first stop string. Text that may be the start of a stop string is held back
// until the next push shows it is not (at most the longest stop string's length - 1 bytes, never splitting a
// UTF-8 character). After a match nothing more comes out.
class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops);
  std::string push(std::string_view text);  // what can be sent now
  std::string finish();                     // the held-back tail, at the end of a request without a match
  bool matched() const { return matched_; }

 private:
  std::vector<std::string> stops_;
  std::size_t hold_ = 0;
  std::string pending_;
  bool matched_ = false;
};

// Splits a server-sent-event byte stream (in pieces of any size) into the data of each event: lines "data: X"
// of one event joined by '\n'; comment lines (":") and other fields ignored; "\r\n" and "\n" both end a line.
class SseParser {
 public:
  std::vector<std::string> push(std::string_view bytes);

 private:
  std::string line_, data_;
  bool has_data_ = false;
};

}  // namespace aipe::llm::openai
