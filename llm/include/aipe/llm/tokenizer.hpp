#pragma once
// Byte-level BPE from a Hugging Face tokenizer.json (the GPT-2 / Llama 3 family), matching `tokenizers`:
//   1. added tokens (special ones like <|eot_id|>) are cut out of the text first, leftmost-longest;
//   2. each remaining segment is split by the pre_tokenizer: Split with a Regex (the Llama 3 pattern, with
//      \p{L}, \p{N} and look-ahead: PCRE2) and/or ByteLevel (its GPT-2 regex when use_regex), in a Sequence;
//   3. each piece's bytes become GPT-2's printable byte alphabet, and BPE merges them by rank (lowest first,
//      leftmost on ties); with ignore_merges (Llama 3) a piece that is already a vocabulary entry is kept whole.
// Decoding maps tokens back to bytes. Any byte string encodes (invalid UTF-8 included: its bytes are pieces of
// their own), and decode(encode(s)) == s. A malformed file is a std::invalid_argument naming the file and field.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace aipe::llm {

// False when aipe was configured without PCRE2 (Debian: libpcre2-dev): then loading a tokenizer throws
// std::runtime_error saying so.
bool tokenizer_available();

class Tokenizer {
 public:
  static Tokenizer from_json(const std::string& json_text, const std::string& where = "tokenizer.json");
  static Tokenizer load(const std::string& path);  // a tokenizer.json file

  // add_special_tokens: the post_processor's template (Llama 3: <|begin_of_text|> first).
  // split_special_tokens: special added tokens in the text are plain text (user content that must not
  // inject control tokens); non-special added tokens still match, as in `tokenizers`.
  std::vector<std::int32_t> encode(std::string_view text, bool add_special_tokens = false,
                                   bool split_special_tokens = false) const;
  // The exact bytes (not made valid UTF-8: see utf8_lossy and StreamDecoder). An unknown id throws.
  std::string decode(const std::vector<std::int32_t>& ids, bool skip_special_tokens = false) const;

  std::int32_t id_limit() const;  // largest id + 1 (vocabulary and added tokens)
  std::size_t vocab_entries() const;  // distinct tokens, added ones included (tokenizers' get_vocab_size)
  std::optional<std::int32_t> token_to_id(std::string_view token) const;  // vocabulary or added token
  bool is_special(std::int32_t id) const;
  std::string token_bytes(std::int32_t id) const;  // what decode({id}) gives

  struct Impl;

 private:
  std::shared_ptr<const Impl> impl_;
};

// Turns token bytes into text as they arrive: whole UTF-8 characters only (a character split across tokens is
// held back until complete); an invalid sequence becomes U+FFFD, as `tokenizers` decodes it.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& t, bool skip_special_tokens = true) : t_(t), skip_(skip_special_tokens) {}
  std::string push(std::int32_t id);
  std::string finish();  // flushes an incomplete tail as U+FFFD

 private:
  const Tokenizer& t_;
  bool skip_;
  std::string pending_;
};

// Invalid UTF-8 replaced by U+FFFD, one per maximal invalid subsequence (Rust's from_utf8_lossy: what
// `tokenizers` returns from decode).
std::string utf8_lossy(std::string_view bytes);

// Llama 3 chat format (the header tokens, in code; no Jinja):
//   <|begin_of_text|><|start_header_id|>ROLE<|end_header_id|>\n\nCONTENT<|eot_id|> ... and, with
//   add_generation_prompt, <|start_header_id|>assistant<|end_header_id|>\n\n. CONTENT is trimmed of surrounding
//   whitespace, as the published template does.
struct ChatMessage {
  std::string role;  // system, user, assistant, ipython, tool
  std::string content;
};
std::string format_llama3_chat(const std::vector<ChatMessage>& messages, bool add_generation_prompt = true);
// The same as ids, with message text encoded with split_special_tokens (a "<|eot_id|>" typed by a user stays
// text). Needs the Llama 3 header tokens in the vocabulary.
std::vector<std::int32_t> encode_llama3_chat(const Tokenizer& t, const std::vector<ChatMessage>& messages,
                                             bool add_generation_prompt = true);

}  // namespace aipe::llm
