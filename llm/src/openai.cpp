#include "aipe/llm/openai.hpp"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

namespace aipe::llm::openai {

namespace {

using nlohmann::json;

ApiError bad(const std::string& param, const std::string& message) { return ApiError(400, message, param); }

// Text fields may hold any bytes a client sent; what goes back out is valid JSON (invalid UTF-8 replaced).
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

const json* field(const json& o, const char* name) {
  const auto it = o.find(name);
  return it == o.end() || it->is_null() ? nullptr : &*it;
}

bool get_bool(const json& o, const char* name, bool def) {
  const json* v = field(o, name);
  if (!v) return def;
  if (!v->is_boolean()) throw bad(name, std::string("'") + name + "' must be a boolean");
  return v->get<bool>();
}

double get_number(const json& o, const char* name, double def, double lo, double hi, bool lo_open = false) {
  const json* v = field(o, name);
  if (!v) return def;
  if (!v->is_number()) throw bad(name, std::string("'") + name + "' must be a number");
  const double x = v->get<double>();
  if (!std::isfinite(x) || x < lo || x > hi || (lo_open && x == lo))
    throw bad(name, std::string("'") + name + "' is " + v->dump() + ": it must be in " + (lo_open ? "(" : "[") +
                        json(lo).dump() + ", " + json(hi).dump() + "]");
  return x;
}

// An integer in [lo, hi] (1.0 is not an integer here: OpenAI's schema says integer).
std::optional<std::int64_t> get_int(const json& o, const char* name, std::int64_t lo, std::int64_t hi) {
  const json* v = field(o, name);
  if (!v) return std::nullopt;
  if (!v->is_number_integer()) throw bad(name, std::string("'") + name + "' must be an integer");
  if (v->is_number_unsigned() && v->get<std::uint64_t>() > std::uint64_t(hi))
    throw bad(name, std::string("'") + name + "' is " + v->dump() + ": at most " + std::to_string(hi));
  const std::int64_t x = v->is_number_unsigned() ? std::int64_t(v->get<std::uint64_t>()) : v->get<std::int64_t>();
  if (x < lo || x > hi)
    throw bad(name, std::string("'") + name + "' is " + v->dump() + ": it must be in [" + std::to_string(lo) + ", " +
                        std::to_string(hi) + "]");
  return x;
}

std::vector<TokenId> get_ids(const json& a, const std::string& param) {
  std::vector<TokenId> ids;
  for (const auto& x : a) {
    if (!x.is_number_integer() || (!x.is_number_unsigned() && x.get<std::int64_t>() < 0) ||
        (x.is_number_unsigned() && x.get<std::uint64_t>() > 0x7fffffffull) ||
        (!x.is_number_unsigned() && x.get<std::int64_t>() > 0x7fffffffll))
      throw bad(param, "'" + param + "' must hold token ids (integers >= 0), not " + x.dump().substr(0, 40));
    ids.push_back(TokenId(x.get<std::int64_t>()));
  }
  return ids;
}

void parse_prompt(const json& o, ParsedRequest& p) {
  const json* v = field(o, "prompt");
  if (!v) throw bad("prompt", "'prompt' is required (a string or an array of token ids)");
  const json* one = v;
  if (v->is_array() && !v->empty() && (v->front().is_string() || v->front().is_array())) {
    if (v->size() != 1) throw bad("prompt", "one prompt per request (got " + std::to_string(v->size()) + ")");
    one = &v->front();
  }
  if (one->is_string()) {
    p.prompt_text = one->get<std::string>();
    if (p.prompt_text->empty()) throw bad("prompt", "'prompt' is empty");
  } else if (one->is_array()) {
    p.prompt_ids = get_ids(*one, "prompt");
    if (p.prompt_ids.empty()) throw bad("prompt", "'prompt' is empty");
  } else {
    throw bad("prompt", "'prompt' must be a string or an array of token ids");
  }
}

void parse_messages(const json& o, ParsedRequest& p) {
  const json* v = field(o, "messages");
  if (!v) throw bad("messages", "'messages' is required (an array of {role, content})");
  if (!v->is_array() || v->empty()) throw bad("messages", "'messages' must be a non-empty array");
  static const char* roles[] = {"system", "user", "assistant", "tool", "ipython", "developer"};
  for (std::size_t i = 0; i < v->size(); ++i) {
    const json& m = (*v)[i];
    const std::string at = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) throw bad(at, at + " must be an object");
    const json* role = field(m, "role");
    if (!role || !role->is_string()) throw bad(at + ".role", at + ".role must be a string");
    const std::string r = role->get<std::string>();
    if (std::find(std::begin(roles), std::end(roles), r) == std::end(roles))
      throw bad(at + ".role", at + ".role '" + r.substr(0, 40) + "' is not one of system, user, assistant, tool, "
                                                             "ipython, developer");
    ChatMessage cm{.role = r == "developer" ? "system" : r, .content = ""};
    const json* c = field(m, "content");
    if (!c) throw bad(at + ".content", at + ".content is required");
    if (c->is_string()) {
      cm.content = c->get<std::string>();
    } else if (c->is_array()) {
      // Content parts: text only (this server has no image or audio input).
      for (const auto& part : *c) {
        const json* type = part.is_object() ? field(part, "type") : nullptr;
        const json* text = part.is_object() ? field(part, "text") : nullptr;
        if (!type || !type->is_string() || type->get<std::string>() != "text" || !text || !text->is_string())
          throw bad(at + ".content", at + ".content parts must be {\"type\": \"text\", \"text\": STRING}");
        cm.content += text->get<std::string>();
      }
    } else {
      throw bad(at + ".content", at + ".content must be a string or an array of text parts");
    }
    p.messages.push_back(std::move(cm));
  }
}

}  // namespace

ApiError::ApiError(int status_, const std::string& message, std::string param_, std::string type_, std::string code_)
    : std::invalid_argument(message), status(status_), param(std::move(param_)), type(std::move(type_)),
      code(std::move(code_)) {}

std::string error_body(const ApiError& e) {
  auto or_null = [](const std::string& s) { return s.empty() ? json(nullptr) : json(s); };
  return dump({{"error", {{"message", e.what()}, {"type", e.type}, {"param", or_null(e.param)}, {"code", or_null(e.code)}}}});
}

ParsedRequest parse_request(std::string_view body, Endpoint endpoint) {
  json o;
  try {
    o = json::parse(body);
  } catch (const json::exception& e) {
    throw bad("", std::string("the request body is not valid JSON: ") + e.what());
  }
  if (!o.is_object()) throw bad("", "the request body must be a JSON object");
  ParsedRequest p;
  p.endpoint = endpoint;
  if (const json* m = field(o, "model")) {
    if (!m->is_string()) throw bad("model", "'model' must be a string");
    p.model = m->get<std::string>();
  }
  if (endpoint == Endpoint::completions) parse_prompt(o, p);
  else parse_messages(o, p);

  constexpr std::int64_t kMaxTokens = 1 << 30;
  p.max_tokens = get_int(o, "max_tokens", 1, kMaxTokens);
  if (endpoint == Endpoint::chat && !p.max_tokens) p.max_tokens = get_int(o, "max_completion_tokens", 1, kMaxTokens);
  if (const auto n = get_int(o, "n", 1, kMaxTokens); n && *n != 1) throw bad("n", "'n' must be 1 (one choice per request)");
  if (const auto b = get_int(o, "best_of", 1, kMaxTokens); b && *b != 1) throw bad("best_of", "'best_of' must be 1");
  p.temperature = float(get_number(o, "temperature", 1.0, 0.0, 2.0));
  p.top_p = float(get_number(o, "top_p", 1.0, 0.0, 1.0, true));
  p.top_k = std::int32_t(get_int(o, "top_k", -1, 1 << 30).value_or(0));
  if (p.top_k < 0) p.top_k = 0;
  if (const json* s = field(o, "seed")) {
    if (!s->is_number_integer()) throw bad("seed", "'seed' must be an integer");
    p.seed = s->is_number_unsigned() ? s->get<std::uint64_t>() : std::uint64_t(s->get<std::int64_t>());
  }
  if (const json* s = field(o, "stop")) {
    if (s->is_string()) {
      p.stop.push_back(s->get<std::string>());
    } else if (s->is_array()) {
      for (const auto& x : *s) {
        if (!x.is_string()) throw bad("stop", "'stop' must be a string or an array of strings");
        p.stop.push_back(x.get<std::string>());
      }
    } else {
      throw bad("stop", "'stop' must be a string or an array of strings");
    }
    for (const auto& x : p.stop)
      if (x.empty()) throw bad("stop", "'stop' holds an empty string");
  }
  if (const json* s = field(o, "stop_token_ids")) {
    if (!s->is_array()) throw bad("stop_token_ids", "'stop_token_ids' must be an array of token ids");
    p.stop_token_ids = get_ids(*s, "stop_token_ids");
  }
  p.ignore_eos = get_bool(o, "ignore_eos", false);
  p.stream = get_bool(o, "stream", false);
  if (const json* so = field(o, "stream_options")) {
    if (!so->is_object()) throw bad("stream_options", "'stream_options' must be an object");
    if (!p.stream) throw bad("stream_options", "'stream_options' is only allowed with \"stream\": true");
    p.include_usage = get_bool(*so, "include_usage", false);
  }
  return p;
}

Request to_engine_request(const ParsedRequest& p, const Tokenizer* tok, const ModelLimits& lim, RequestId id,
                          double arrival_time) {
  Request r;
  r.id = id;
  r.arrival_time = arrival_time;
  const char* prompt_param = p.endpoint == Endpoint::chat ? "messages" : "prompt";
  if (p.endpoint == Endpoint::chat) {
    if (!tok) throw bad("messages", "chat needs the model's tokenizer (this model has none): use /v1/completions with "
                                    "a prompt of token ids");
    try {
      r.prompt = encode_llama3_chat(*tok, p.messages, true);
    } catch (const std::invalid_argument& e) {
      throw bad("messages", std::string("the chat format cannot be applied: ") + e.what());
    }
    if (!p.ignore_eos)
      if (const auto eot = tok->token_to_id("<|eot_id|>")) r.stop_ids.push_back(*eot);
  } else if (p.prompt_text) {
    if (!tok) throw bad("prompt", "a text prompt needs the model's tokenizer (this model has none): give token ids");
    r.prompt = tok->encode(*p.prompt_text, true);
  } else {
    r.prompt = p.prompt_ids;
  }
  if (!p.stop.empty() && !tok)
    throw bad("stop", "stop strings need the model's tokenizer (this model has none): use stop_token_ids");
  if (lim.vocab_size > 0) {
    for (const TokenId t : r.prompt)
      if (t >= lim.vocab_size)
        throw bad(prompt_param, "token id " + std::to_string(t) + " is outside the vocabulary (" +
                                    std::to_string(lim.vocab_size) + " ids)");
    for (const TokenId t : p.stop_token_ids)
      if (t >= lim.vocab_size)
        throw bad("stop_token_ids", "stop token id " + std::to_string(t) + " is outside the vocabulary (" +
                                        std::to_string(lim.vocab_size) + " ids)");
  }
  const std::int64_t n = std::int64_t(r.prompt.size());
  if (r.prompt.empty()) throw bad(prompt_param, "the prompt encodes to no tokens");
  if (n >= lim.max_model_len)
    throw bad(prompt_param, "the prompt is " + std::to_string(n) + " tokens: this model's context is " +
                                std::to_string(lim.max_model_len) + " tokens, prompt and output together");
  const std::int64_t room = lim.max_model_len - n;
  const std::int64_t max_tokens = p.max_tokens ? *p.max_tokens : p.endpoint == Endpoint::chat ? room : std::min<std::int64_t>(16, room);
  if (max_tokens > room)
    throw bad("max_tokens", "max_tokens is " + std::to_string(max_tokens) + " but the prompt is " + std::to_string(n) +
                                " tokens and the context " + std::to_string(lim.max_model_len) + ": at most " +
                                std::to_string(room));
  r.max_tokens = std::int32_t(max_tokens);
  for (const TokenId t : p.stop_token_ids) r.stop_ids.push_back(t);
  r.sampling = {.temperature = p.temperature,
                .top_p = p.top_p,
                .top_k = p.top_k,
                // No seed: a different one per request (the id, scrambled), as an unseeded OpenAI request samples.
                .seed = p.seed ? *p.seed : std::uint64_t(id) * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull,
                .ignore_eos = p.ignore_eos};
  return r;
}

const char* finish_reason(FinishReason r) {
  switch (r) {
    case FinishReason::eos:
    case FinishReason::stop_token:
      return "stop";
    case FinishReason::max_tokens:
    case FinishReason::context_limit:
      return "length";
    case FinishReason::cancelled:
      return "abort";
    case FinishReason::none:
      break;
  }
  return "";
}

namespace {
json usage_json(const Usage& u) {
  return {{"prompt_tokens", u.prompt_tokens}, {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens}};
}
json reason_json(const std::string& r) { return r.empty() ? json(nullptr) : json(r); }
}  // namespace

std::string response_json(Endpoint endpoint, const Completion& c) {
  json choice = {{"index", 0}, {"finish_reason", reason_json(c.finish_reason)}, {"logprobs", nullptr}};
  if (endpoint == Endpoint::chat) choice["message"] = {{"role", "assistant"}, {"content", c.text}};
  else choice["text"] = c.text;
  if (c.with_ids) choice["token_ids"] = c.token_ids;
  return dump({{"id", c.id},
               {"object", endpoint == Endpoint::chat ? "chat.completion" : "text_completion"},
               {"created", c.created},
               {"model", c.model},
               {"choices", json::array({choice})},
               {"usage", usage_json(c.usage)}});
}

std::string chunk_event(Endpoint endpoint, const Chunk& c) {
  json j = {{"id", c.id},
            {"object", endpoint == Endpoint::chat ? "chat.completion.chunk" : "text_completion"},
            {"created", c.created},
            {"model", c.model}};
  if (c.usage) {
    j["choices"] = json::array();
    j["usage"] = usage_json(*c.usage);
  } else {
    json choice = {{"index", 0}, {"finish_reason", reason_json(c.finish_reason)}, {"logprobs", nullptr}};
    if (endpoint == Endpoint::chat) {
      json delta = json::object();
      if (c.first) delta["role"] = "assistant";
      if (!c.text.empty() || c.finish_reason.empty()) delta["content"] = c.text;
      choice["delta"] = delta;
    } else {
      choice["text"] = c.text;
    }
    if (c.with_ids) choice["token_ids"] = c.token_ids;
    j["choices"] = json::array({choice});
  }
  return "data: " + dump(j) + "\n\n";
}

StopMatcher::StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {
  for (const auto& s : stops_) hold_ = std::max(hold_, s.size() > 0 ? s.size() - 1 : 0);
}

std::string StopMatcher::push(std::string_view text) {
  if (matched_) return "";
  pending_ += text;
  std::size_t first = std::string::npos;
  for (const auto& s : stops_) first = std::min(first, pending_.find(s));
  if (first != std::string::npos) {
    matched_ = true;
    std::string out = pending_.substr(0, first);
    pending_.clear();
    return out;
  }
  if (pending_.size() <= hold_) return "";
  std::size_t cut = pending_.size() - hold_;
  // Never between the bytes of one UTF-8 character: back up over continuation bytes (10xxxxxx).
  while (cut > 0 && (static_cast<unsigned char>(pending_[cut]) & 0xC0) == 0x80) --cut;
  std::string out = pending_.substr(0, cut);
  pending_.erase(0, cut);
  return out;
}

std::string StopMatcher::finish() {
  if (matched_) return "";
  std::string out;
  out.swap(pending_);
  return out;
}

std::vector<std::string> SseParser::push(std::string_view bytes) {
  std::vector<std::string> events;
  for (const char ch : bytes) {
    if (ch != '\n') {
      line_ += ch;
      continue;
    }
    if (!line_.empty() && line_.back() == '\r') line_.pop_back();
    if (line_.empty()) {  // a blank line ends the event
      if (has_data_) events.push_back(data_);
      data_.clear();
      has_data_ = false;
    } else if (line_.rfind("data:", 0) == 0) {
      std::string_view v(line_);
      v.remove_prefix(5);
      if (!v.empty() && v.front() == ' ') v.remove_prefix(1);
      if (has_data_) data_ += '\n';
      data_ += v;
      has_data_ = true;
    }
    line_.clear();
  }
  return events;
}

}  // namespace aipe::llm::openai
