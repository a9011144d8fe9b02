#pragma once
// The harmony chat format of gpt-oss (openai/harmony), in code. Each message is framed by special tokens:
//   <|start|>ROLE<|message|>CONTENT<|end|>                          system, developer, user
//   <|start|>assistant<|channel|>CHANNEL<|message|>CONTENT<|end|>    an earlier assistant turn
// CHANNEL is analysis (reasoning), commentary (tool calls) or final (the answer): the system message declares
// them and every assistant message names one. A prompt for generation ends with <|start|>assistant; the model
// writes <|channel|>NAME<|message|>... itself and stops with <|return|> (done) or <|call|> (a tool call).
// The system message's content is harmony_system_content's text (model identity, knowledge cutoff, date,
// reasoning effort, the channels); instructions go in a developer message ("# Instructions\n\n...").
#include <cstdint>
#include <string>
#include <vector>

#include "aipe/llm/tokenizer.hpp"

namespace aipe::llm {

struct HarmonyMessage {
  std::string role = "";     // system, developer, user, assistant
  std::string content = "";  // as is (no trimming)
  std::string channel = "";  // assistant only: analysis, commentary, final
};

struct HarmonySystem {
  std::string knowledge_cutoff = "2024-06";
  std::string current_date = "";       // "2025-08-05"; empty: the line is left out
  std::string reasoning = "medium";    // low, medium, high
};
std::string harmony_system_content(const HarmonySystem& s);

// A system message, an optional developer message with `instructions`, and the user's prompt: what a one-turn
// chat sends (`aipe generate --chat`).
std::vector<HarmonyMessage> harmony_prompt(const std::string& user, const std::string& instructions = "",
                                           const HarmonySystem& system = {});

// The text with the framing tokens spelled out. std::invalid_argument for an unknown role, a channel on a
// non-assistant message or an assistant message without one, an unknown channel or reasoning level.
std::string format_harmony(const std::vector<HarmonyMessage>& messages, bool add_generation_prompt = true);

// The framing tokens' ids in a tokenizer (std::invalid_argument naming a missing one: not the o200k_harmony
// vocabulary). In o200k_harmony: <|return|> 200002, <|channel|> 200005, <|start|> 200006, <|end|> 200007,
// <|message|> 200008, <|call|> 200012.
struct HarmonyTokens {
  std::int32_t start = 0, end = 0, message = 0, channel = 0, return_ = 0, call = 0;
  // The ids that end an assistant turn in generation.
  std::vector<std::int32_t> stops() const { return {return_, call}; }
};
HarmonyTokens harmony_tokens(const Tokenizer& t);

// format_harmony as ids: the framing tokens as their ids, roles, channels and content encoded with
// split_special_tokens (a "<|end|>" typed by a user stays text).
std::vector<std::int32_t> encode_harmony(const Tokenizer& t, const std::vector<HarmonyMessage>& messages,
                                         bool add_generation_prompt = true);

}  // namespace aipe::llm
