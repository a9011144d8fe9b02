#include "aipe/llm/harmony.hpp"

#include <stdexcept>

namespace aipe::llm {
namespace {

bool one_of(const std::string& s, std::initializer_list<const char*> names) {
  for (const char* n : names)
    if (s == n) return true;
  return false;
}

void check_message(const HarmonyMessage& m, std::size_t i) {
  const std::string at = "harmony message " + std::to_string(i) + ": ";
  if (!one_of(m.role, {"system", "developer", "user", "assistant"}))
    throw std::invalid_argument(at + "role '" + m.role + "' is not one of system, developer, user, assistant");
  if (m.role == "assistant") {
    if (!one_of(m.channel, {"analysis", "commentary", "final"}))
      throw std::invalid_argument(at + "an assistant message needs a channel (analysis, commentary, final), got '" +
                                  m.channel + "'");
  } else if (!m.channel.empty()) {
    throw std::invalid_argument(at + "a " + m.role + " message has no channel (got '" + m.channel + "')");
  }
}

}  // namespace

std::string harmony_system_content(const HarmonySystem& s) {
  if (!one_of(s.reasoning, {"low", "medium", "high"}))
    throw std::invalid_argument("harmony system message: reasoning '" + s.reasoning + "' is not low, medium or high");
  std::string c = "You are ChatGPT, a large language model trained by OpenAI.\nKnowledge cutoff: " + s.knowledge_cutoff;
  if (!s.current_date.empty()) c += "\nCurrent date: " + s.current_date;
  c += "\n\nReasoning: " + s.reasoning +
       "\n\n# Valid channels: analysis, commentary, final. Channel must be included for every message.";
  return c;
}

std::vector<HarmonyMessage> harmony_prompt(const std::string& user, const std::string& instructions,
                                           const HarmonySystem& system) {
  std::vector<HarmonyMessage> m{{.role = "system", .content = harmony_system_content(system)}};
  if (!instructions.empty()) m.push_back({.role = "developer", .content = "# Instructions\n\n" + instructions});
  m.push_back({.role = "user", .content = user});
  return m;
}

std::string format_harmony(const std::vector<HarmonyMessage>& messages, bool add_generation_prompt) {
  std::string s;
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const HarmonyMessage& m = messages[i];
    check_message(m, i);
    s += "<|start|>" + m.role;
    if (!m.channel.empty()) s += "<|channel|>" + m.channel;
    s += "<|message|>" + m.content + "<|end|>";
  }
  if (add_generation_prompt) s += "<|start|>assistant";
  return s;
}

HarmonyTokens harmony_tokens(const Tokenizer& t) {
  auto id = [&](const char* name) {
    const auto v = t.token_to_id(name);
    if (!v) throw std::invalid_argument(std::string("the tokenizer has no '") + name + "' token: not a harmony (o200k_harmony) tokenizer");
    return *v;
  };
  return {.start = id("<|start|>"), .end = id("<|end|>"), .message = id("<|message|>"), .channel = id("<|channel|>"),
          .return_ = id("<|return|>"), .call = id("<|call|>")};
}

std::vector<std::int32_t> encode_harmony(const Tokenizer& t, const std::vector<HarmonyMessage>& messages,
                                         bool add_generation_prompt) {
  const HarmonyTokens h = harmony_tokens(t);
  std::vector<std::int32_t> ids;
  auto text = [&](const std::string& s) {
    const auto v = t.encode(s, false, true);
    ids.insert(ids.end(), v.begin(), v.end());
  };
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const HarmonyMessage& m = messages[i];
    check_message(m, i);
    ids.push_back(h.start);
    text(m.role);
    if (!m.channel.empty()) {
      ids.push_back(h.channel);
      text(m.channel);
    }
    ids.push_back(h.message);
    text(m.content);
    ids.push_back(h.end);
  }
  if (add_generation_prompt) {
    ids.push_back(h.start);
    text("assistant");
  }
  return ids;
}

}  // namespace aipe::llm
