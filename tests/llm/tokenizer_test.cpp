// Byte-level BPE on the hand-made tests/llm/data/tiny-tokenizer.json (make_tiny_tokenizer.py: the 256 byte
// tokens, 22 merges, one vocabulary-only token, Llama 3's split regex and special tokens). The expected ids were
// produced by Hugging Face `tokenizers` 0.23 on the same file; they cover merge ranks, the Llama 3 regex
// (numbers in threes, contractions, whitespace runs, punctuation), CJK, emoji, combining marks, bytes outside
// printable ASCII, special and non-special added tokens. Then the round trip on random UTF-8 and random bytes.
#include "aipe/llm/tokenizer.hpp"

#include <gtest/gtest.h>

#include "error_of.hpp"

#include <chrono>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

using aipe::llm::Tokenizer;
using Ids = std::vector<std::int32_t>;

namespace {

std::string tiny_json() {
  std::ifstream f(std::string(AIPE_SOURCE_DIR) + "/tests/llm/data/tiny-tokenizer.json", std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

#define NEED_TOKENIZER()                                                                          \
  if (!aipe::llm::tokenizer_available())                                                          \
  GTEST_SKIP() << "aipe was built without PCRE2 (Debian: libpcre2-dev): the tokenizer is disabled"

const Tokenizer& tiny() {
  static const Tokenizer t = Tokenizer::from_json(tiny_json(), "tiny-tokenizer.json");
  return t;
}

using aipe::test::error_of;

// The tokenizer of tiny-tokenizer.json after `edit`, or its load error.
std::string load_error(const std::function<void(nlohmann::json&)>& edit) {
  auto j = nlohmann::json::parse(tiny_json());
  edit(j);
  return error_of([&] { Tokenizer::from_json(j.dump(), "t.json"); });
}

}  // namespace

TEST(Tokenizer, MatchesHuggingFaceTokenizersOnTheTinyFile) {
  NEED_TOKENIZER();
  struct Case {
    std::string text;
    Ids ids;
    bool add_special = false;
  };
  const std::vector<Case> cases = {
      {"hello world", {262, 267}},                        // he, ll, hell, hello; Ġw, or, Ġwor, ld, Ġworld
      {"hello world", {279, 262, 267}, true},             // <|begin_of_text|> from the post_processor
      {" hello", {278}},                                  // ignore_merges: a vocabulary entry is taken whole
      {"llo lll", {257, 111, 32, 257, 108}},              // ll (rank 1) before lo (rank 4); leftmost of ll ll
      {"\xe4\xbd\xa0\xe5\xa5\xbd", {275, 277}},           // 你好: three bytes merged into each character
      {"\xe4\xbd\xa0\xe5\xa5\xbd\xe4\xb8\x96\xe7\x95\x8c", {275, 277, 228, 184, 150, 231, 149, 140}},  // 你好世界
      {"\xf0\x9f\x99\x82 ok", {240, 159, 153, 130, 32, 111, 107}},  // emoji: its four bytes
      {"e\xcc\x81te\xcc\x81", {101, 204, 129, 116, 101, 204, 129}},  // combining acute: not \p{L}, its own piece
      {"1234567", {272, 52, 53, 54, 55}},                            // \p{N}{1,3}: 123 456 7
      {"x12 3456", {120, 271, 32, 51, 52, 53, 54}},
      {"\xd9\xa1\xd9\xa2\xd9\xa3\xd9\xa4", {217, 161, 217, 162, 217, 163, 217, 164}},  // Arabic-Indic digits
      {"it's", {105, 116, 268}},                                // 's
      {"IT'S we're", {73, 84, 39, 83, 263, 101, 39, 114, 101}},  // (?i:'s), 're
      {"a    b", {97, 269, 32, 32, 98}},                         // \s+(?!\S) leaves the last space to " b"
      {"\n\n\n", {273, 10}},
      {"a  ", {97, 269}},
      {"  \n  x", {269, 10, 32, 32, 120}},
      {"tab\t\tx", {116, 97, 98, 9, 9, 120}},
      {"the   the", {116, 256, 269, 259}},
      {std::string("\x00\x01\x7f", 3), {0, 1, 127}},  // control bytes: byte-alphabet characters U+0100..
      {"a\xc2\xa0" "b", {97, 194, 160, 98}},           // no-break space
      {"<|eot_id|>hello<|start_header_id|>", {283, 262, 281}},
      {"<|eot_id|<|eot_id|>", {60, 124, 101, 111, 116, 95, 105, 100, 124, 283}},
      {"x<tool>y", {120, 284, 121}},  // a non-special added token
  };
  for (const auto& c : cases) {
    EXPECT_EQ(tiny().encode(c.text, c.add_special), c.ids) << "text '" << c.text << "'";
    EXPECT_EQ(tiny().decode(c.ids, c.add_special), c.text) << "text '" << c.text << "'";
  }
}

TEST(Tokenizer, SpecialTokensAsTextAndSkipping) {
  NEED_TOKENIZER();
  const auto& t = tiny();
  // split_special_tokens: a user's "<|eot_id|>" is text; the non-special <tool> still matches.
  EXPECT_EQ(t.encode("<|eot_id|><tool>", false, true), (Ids{60, 124, 101, 111, 116, 95, 105, 100, 124, 62, 284}));
  EXPECT_EQ(t.decode({279, 262, 283, 284}, true), "hello<tool>");
  EXPECT_EQ(t.token_to_id("<|eot_id|>"), 283);
  EXPECT_EQ(t.token_to_id("hello"), 262);
  EXPECT_FALSE(t.token_to_id("nope").has_value());
  EXPECT_TRUE(t.is_special(283));
  EXPECT_FALSE(t.is_special(284));
  EXPECT_FALSE(t.is_special(262));
  EXPECT_EQ(t.id_limit(), 285);
  EXPECT_EQ(t.vocab_entries(), 285u);
  EXPECT_NE(error_of([&] { t.decode({285}); }).find("no token has id 285"), std::string::npos);
  EXPECT_NE(error_of([&] { t.decode({-1}); }).find("no token has id -1"), std::string::npos);
}

TEST(Tokenizer, MergeFormsAndIgnoreMerges) {
  NEED_TOKENIZER();
  auto j = nlohmann::json::parse(tiny_json());
  // Merges as [a, b] pairs (newer tokenizers writes them so) give the same ids.
  auto pairs = j;
  for (auto& m : pairs["model"]["merges"]) {
    const std::string s = m.get<std::string>();
    m = nlohmann::json::array({s.substr(0, s.find(' ')), s.substr(s.find(' ') + 1)});
  }
  const auto p = Tokenizer::from_json(pairs.dump());
  EXPECT_EQ(p.encode("hello world 123"), tiny().encode("hello world 123"));
  // Without ignore_merges, " hello" is built by merges only: Ġ + hello.
  j["model"]["ignore_merges"] = false;
  EXPECT_EQ(Tokenizer::from_json(j.dump()).encode(" hello"), (Ids{32, 262}));
}

TEST(Tokenizer, Gpt2StyleByteLevelPreTokenizer) {
  NEED_TOKENIZER();
  // GPT-2 layout: one ByteLevel pre_tokenizer with its own regex (' ?\p{L}+', ' ?\p{N}+': digits not in threes).
  auto j = nlohmann::json::parse(tiny_json());
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  j["post_processor"] = {{"type", "ByteLevel"}};
  const auto t = Tokenizer::from_json(j.dump());
  EXPECT_EQ(t.encode("1234567"), (Ids{272, 52, 53, 54, 55}));  // one piece; 12 then 123 merge, the rest bytes
  EXPECT_EQ(t.encode("hello world"), (Ids{262, 267}));
  EXPECT_EQ(t.encode("hello world", true), (Ids{262, 267}));  // no template: nothing added
  j["pre_tokenizer"]["add_prefix_space"] = true;
  EXPECT_EQ(Tokenizer::from_json(j.dump()).encode("hello"), (Ids{278}));  // " hello"
}

TEST(Tokenizer, StreamingDecodeHoldsSplitCharacters) {
  NEED_TOKENIZER();
  const auto& t = tiny();
  aipe::llm::StreamDecoder d(t);
  // 世 is E4 B8 96: three byte tokens; nothing is emitted until the character is whole.
  EXPECT_EQ(d.push(228), "");
  EXPECT_EQ(d.push(184), "");
  EXPECT_EQ(d.push(150), "\xe4\xb8\x96");
  EXPECT_EQ(d.push(283), "");  // special: skipped
  EXPECT_EQ(d.push(262), "hello");
  EXPECT_EQ(d.push(255), "\xef\xbf\xbd");  // 0xFF starts no character: replaced at once
  EXPECT_EQ(d.push(104), "h");
  EXPECT_EQ(d.push(228), "");  // an incomplete character at the end ...
  EXPECT_EQ(d.finish(), "\xef\xbf\xbd");  // ... is one U+FFFD
  EXPECT_EQ(d.finish(), "");
}

TEST(Tokenizer, Utf8Lossy) {
  EXPECT_EQ(aipe::llm::utf8_lossy("ok \xe4\xbd\xa0"), "ok \xe4\xbd\xa0");
  EXPECT_EQ(aipe::llm::utf8_lossy("a\xff" "b"), "a\xef\xbf\xbd" "b");
  EXPECT_EQ(aipe::llm::utf8_lossy("a\xe4\xbd"), "a\xef\xbf\xbd");             // truncated: one U+FFFD
  EXPECT_EQ(aipe::llm::utf8_lossy("\xe4\xbdx"), "\xef\xbf\xbdx");             // maximal subpart E4 BD
  EXPECT_EQ(aipe::llm::utf8_lossy("\xed\xa0\x80"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");  // a surrogate
  EXPECT_EQ(aipe::llm::utf8_lossy("\xc0\xaf"), "\xef\xbf\xbd\xef\xbf\xbd");  // overlong
}

TEST(Tokenizer, Llama3ChatFormat) {
  NEED_TOKENIZER();
  const std::vector<aipe::llm::ChatMessage> m = {{"system", " Be brief. "}, {"user", "hello <|eot_id|>"}};
  const std::string s = aipe::llm::format_llama3_chat(m);
  EXPECT_EQ(s,
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nhello <|eot_id|><|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  const auto& t = tiny();
  const Ids ids = aipe::llm::encode_llama3_chat(t, m);
  // The template's control tokens are ids; the user's "<|eot_id|>" stays text, so there is one 283 per message.
  EXPECT_EQ(ids.front(), 279);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 283), 2);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 281), 3);
  EXPECT_EQ(t.decode(ids), s);
  // Without a user-typed special token, the two paths give the same ids.
  const std::vector<aipe::llm::ChatMessage> plain = {{"user", "hello world"}};
  EXPECT_EQ(aipe::llm::encode_llama3_chat(t, plain, true), t.encode(aipe::llm::format_llama3_chat(plain, true)));
  EXPECT_NE(error_of([] { aipe::llm::format_llama3_chat({{"us<|er", "x"}}); }).find("role"), std::string::npos);
}

// Random text from a mix that exercises every rule: ASCII words and digits, whitespace runs, punctuation,
// 2/3/4-byte characters (Latin, CJK, emoji), combining marks and special tokens.
TEST(Tokenizer, RoundTripOnRandomText) {
  NEED_TOKENIZER();
  std::mt19937 rng(20261204);
  const std::vector<std::string> atoms = {"hello", " world", "'s", "'RE", "123", "4", " ", "  ", "\t", "\n", "\r\n",
                                          "!?", "...", "\xc3\xa9", "e\xcc\x81", "\xe4\xbd\xa0", "\xe5\xa5\xbd",
                                          "\xf0\x9f\x99\x82", "\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd", "<|eot_id|>",
                                          "<tool>", "<|", "\xc2\xa0", "\xd9\xa1", std::string(1, '\0')};
  auto cp_utf8 = [](std::uint32_t cp) {
    std::string s;
    if (cp < 0x80) s += static_cast<char>(cp);
    else if (cp < 0x800) s += {static_cast<char>(0xC0 | (cp >> 6)), static_cast<char>(0x80 | (cp & 63))};
    else if (cp < 0x10000)
      s += {static_cast<char>(0xE0 | (cp >> 12)), static_cast<char>(0x80 | ((cp >> 6) & 63)),
            static_cast<char>(0x80 | (cp & 63))};
    else
      s += {static_cast<char>(0xF0 | (cp >> 18)), static_cast<char>(0x80 | ((cp >> 12) & 63)),
            static_cast<char>(0x80 | ((cp >> 6) & 63)), static_cast<char>(0x80 | (cp & 63))};
    return s;
  };
  for (int n = 0; n < 2000; ++n) {
    std::string s;
    const int parts = static_cast<int>(rng() % 24);
    for (int k = 0; k < parts; ++k) {
      if (rng() % 3) {
        s += atoms[rng() % atoms.size()];
      } else {  // any scalar value (no surrogates)
        std::uint32_t cp = rng() % 0x110000;
        if (cp >= 0xD800 && cp < 0xE000) cp -= 0x800;
        s += cp_utf8(cp);
      }
    }
    const Ids ids = tiny().encode(s);
    ASSERT_EQ(tiny().decode(ids), s) << "case " << n;
    for (const auto id : ids) ASSERT_TRUE(id >= 0 && id < tiny().id_limit());
  }
}

TEST(Tokenizer, AnyBytesRoundTripAndLongRunsAreFast) {
  NEED_TOKENIZER();
  std::mt19937 rng(7);
  for (int n = 0; n < 500; ++n) {
    std::string s(rng() % 64, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    ASSERT_EQ(tiny().decode(tiny().encode(s)), s) << "case " << n;
  }
  // A 200k-space run and a 200k-letter word are single pieces; the heap BPE keeps them fast.
  const auto t0 = std::chrono::steady_clock::now();
  const std::string spaces(200000, ' '), word(200000, 'l');
  const Ids a = tiny().encode(spaces), b = tiny().encode(word);
  EXPECT_EQ(a.size(), 50000u);  // ĠĠĠĠ x 50000
  EXPECT_EQ(b.size(), 100000u);  // ll x 100000
  EXPECT_EQ(tiny().decode(a), spaces);
  // Quadratic merging would take minutes here; the bound leaves room for sanitizer builds on a loaded machine.
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 20.0);
}

TEST(Tokenizer, MalformedFilesNameTheField) {
  NEED_TOKENIZER();
  auto has = [](const std::string& e, const std::string& s) {
    EXPECT_NE(e.find(s), std::string::npos) << "'" << e << "' lacks '" << s << "'";
  };
  using J = nlohmann::json;
  has(error_of([] { Tokenizer::from_json("{", "t.json"); }), "t.json: not valid JSON");
  has(load_error([](J& j) { j["model"]["type"] = "WordPiece"; }), "t.json: model.type: must be \"BPE\"");
  has(load_error([](J& j) { j["model"].erase("vocab"); }), "model.vocab: missing");
  has(load_error([](J& j) { j["model"]["vocab"]["zz"] = -1; }), "model.vocab: 'zz' has id -1");
  has(load_error([](J& j) { j["model"]["vocab"]["zz"] = 5; }), "share id 5");
  has(load_error([](J& j) { j["model"]["vocab"].erase("\xc4\xa0"); }), "has no token for byte 0x20");
  has(load_error([](J& j) { j["model"]["merges"][3] = "a"; }), "model.merges[3]: 'a' is not two tokens");
  has(load_error([](J& j) { j["model"]["merges"][3] = 7; }), "model.merges[3]: must be \"a b\"");
  has(load_error([](J& j) { j["model"]["merges"][0] = "q zz"; }), "model.merges[0]: 'zz' is not in the vocabulary");
  has(load_error([](J& j) { j["model"]["merges"][0] = "q z"; }), "the merged token 'qz' is not in the vocabulary");
  has(load_error([](J& j) { j["model"]["dropout"] = 0.1; }), "model.dropout");
  has(load_error([](J& j) { j["model"]["continuing_subword_prefix"] = "##"; }), "model.continuing_subword_prefix");
  has(load_error([](J& j) { j["added_tokens"][0]["id"] = 5000; }),
      "added_tokens[0]: '<|begin_of_text|>' has id 5000 but tokenizers numbers it 279");
  has(load_error([](J& j) { j["added_tokens"][1]["content"] = ""; }), "added_tokens[1].content: must be a non-empty");
  has(load_error([](J& j) { j["normalizer"] = {{"type", "NFC"}}; }), "normalizer: must be null");
  has(load_error([](J& j) { j["pre_tokenizer"] = {{"type", "Metaspace"}}; }),
      "pre_tokenizer.type: 'Metaspace' is not supported");
  has(load_error([](J& j) { j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed"; }),
      "pre_tokenizer.pretokenizers[0].pattern.Regex: regex does not compile at offset 9");
  has(load_error([](J& j) { j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Sideways"; }),
      "pre_tokenizer.pretokenizers[0].behavior: unknown behavior 'Sideways'");
  has(load_error([](J& j) { j["pre_tokenizer"]["pretokenizers"].erase(1); }), "pre_tokenizer: has no ByteLevel step");
  has(load_error([](J& j) { j["decoder"] = {{"type", "Metaspace"}}; }), "decoder: must be {\"type\": \"ByteLevel\"}");
  has(load_error([](J& j) { j["post_processor"] = {{"type", "BertProcessing"}}; }),
      "post_processor.type: 'BertProcessing' is not supported");
  has(load_error([](J& j) { j["post_processor"]["processors"][1]["special_tokens"] = J::object(); }),
      "'<|begin_of_text|>' is used by the template but has no ids");
  has(error_of([] { Tokenizer::load("/nonexistent/tokenizer.json"); }), "/nonexistent/tokenizer.json: cannot open");
}

TEST(Tokenizer, SplitBehaviors) {
  NEED_TOKENIZER();
  // Split on a literal delimiter with each behavior, then ByteLevel: merges never cross pieces, so the ids show
  // where the cuts fell (he, 's and ll are merges of the tiny file).
  auto with = [](const std::string& delim, const std::string& behavior, bool invert = false) {
    auto j = nlohmann::json::parse(tiny_json());
    j["pre_tokenizer"] = {
        {"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"}, {"pattern", {{"String", delim}}}, {"behavior", behavior}, {"invert", invert}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
    return Tokenizer::from_json(j.dump());
  };
  EXPECT_EQ(with("'", "Removed").encode("it's"), (Ids{105, 116, 115}));
  EXPECT_EQ(with("'", "Isolated").encode("it's"), (Ids{105, 116, 39, 115}));
  EXPECT_EQ(with("'", "MergedWithNext").encode("it's"), (Ids{105, 116, 268}));
  EXPECT_EQ(with("e", "MergedWithPrevious").encode("hex"), (Ids{256, 120}));
  EXPECT_EQ(with("e", "Isolated").encode("hex"), (Ids{104, 101, 120}));
  EXPECT_EQ(with("l", "Contiguous").encode("lll"), (Ids{257, 108}));
  EXPECT_EQ(with("l", "Isolated").encode("lll"), (Ids{108, 108, 108}));
  EXPECT_EQ(with("-", "Removed", true).encode("ll-ll"), (Ids{45}));  // inverted: the gaps are the delimiters
}

TEST(Tokenizer, EmptyTokenizerIsAnErrorNotACrash) {
  NEED_TOKENIZER();
  const Tokenizer t;
  EXPECT_THROW(t.encode("x"), std::logic_error);
  EXPECT_THROW(t.decode({1}), std::logic_error);
}

// lstrip / rstrip swallow the whitespace beside an added token; single_word needs non-word neighbours. Expected
// ids from `tokenizers` 0.23 on the tiny file with <tool> stripping both sides and <|eot_id|> single_word.
TEST(Tokenizer, AddedTokenStripAndSingleWord) {
  NEED_TOKENIZER();
  auto j = nlohmann::json::parse(tiny_json());
  for (auto& t : j["added_tokens"]) {
    if (t["content"] == "<tool>") t["lstrip"] = t["rstrip"] = true;
    if (t["content"] == "<|eot_id|>") t["single_word"] = true;
  }
  const auto t = Tokenizer::from_json(j.dump());
  EXPECT_EQ(t.encode("a  <tool>  b"), (Ids{97, 284, 98}));
  EXPECT_EQ(t.encode("a\t<tool>\nb"), (Ids{97, 284, 98}));
  EXPECT_EQ(t.encode("x<|eot_id|>y"), (Ids{120, 60, 124, 101, 111, 116, 95, 105, 100, 124, 62, 121}));
  EXPECT_EQ(t.encode("x <|eot_id|> y"), (Ids{120, 32, 283, 32, 121}));
  EXPECT_EQ(t.encode("a.<|eot_id|>.b"), (Ids{97, 46, 283, 46, 98}));
  EXPECT_EQ(t.encode("\xc3\xa9<|eot_id|>"), (Ids{195, 169, 60, 124, 101, 111, 116, 95, 105, 100, 124, 62}));
}
