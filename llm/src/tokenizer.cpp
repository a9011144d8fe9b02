#include "aipe/llm/tokenizer.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <deque>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <unordered_map>

#if AIPE_HAVE_PCRE2
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#endif

namespace aipe::llm {

// ---------------------------------------------------------------- UTF-8 helpers (no PCRE2 needed)
namespace {

// Length of the valid UTF-8 sequence at p (1..4), 0 when the bytes there are invalid (then `bad` is the length
// of the maximal invalid subpart, >= 1), or -1 when they are a valid but incomplete prefix of one.
int utf8_seq(const unsigned char* p, std::size_t n, std::size_t& bad) {
  const unsigned char c = p[0];
  bad = 1;
  if (c < 0x80) return 1;
  int len;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) len = 2;
  else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;       // no overlong 3-byte forms
    else if (c == 0xED) hi = 0x9F;  // no UTF-16 surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;       // no overlong 4-byte forms
    else if (c == 0xF4) hi = 0x8F;  // nothing past U+10FFFF
  } else {
    return 0;
  }
  for (int i = 1; i < len; ++i) {
    if (static_cast<std::size_t>(i) >= n) return -1;
    const unsigned char b = p[i];
    const unsigned char l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
    if (b < l || b > h) {
      bad = static_cast<std::size_t>(i);
      return 0;
    }
  }
  return len;
}

void put_utf8(std::string& s, std::uint32_t cp) {
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xF0 | (cp >> 18));
    s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

constexpr const char* kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Appends the valid-UTF-8 rendering of bytes[0, n) to out; returns how many bytes were consumed. With
// `hold_tail`, an incomplete sequence at the end is left unconsumed (the stream decoder waits for it).
std::size_t lossy_into(std::string& out, const unsigned char* p, std::size_t n, bool hold_tail) {
  std::size_t i = 0;
  while (i < n) {
    std::size_t bad;
    const int len = utf8_seq(p + i, n - i, bad);
    if (len > 0) {
      out.append(reinterpret_cast<const char*>(p + i), static_cast<std::size_t>(len));
      i += static_cast<std::size_t>(len);
    } else if (len < 0) {
      if (hold_tail) return i;
      out += kReplacement;  // an incomplete sequence at the very end is one maximal subpart
      return n;
    } else {
      out += kReplacement;
      i += bad;
    }
  }
  return i;
}

std::string trim_ws(const std::string& s) {
  const char* ws = " \t\n\r\f\v";
  const auto b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

}  // namespace

std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  lossy_into(out, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), false);
  return out;
}

std::string StreamDecoder::push(std::int32_t id) {
  if (skip_ && t_.is_special(id)) return "";
  pending_ += t_.token_bytes(id);
  std::string out;
  const std::size_t used =
      lossy_into(out, reinterpret_cast<const unsigned char*>(pending_.data()), pending_.size(), true);
  pending_.erase(0, used);
  return out;
}

std::string StreamDecoder::finish() {
  std::string out = utf8_lossy(pending_);
  pending_.clear();
  return out;
}

namespace {
void check_role(const std::string& role) {
  if (role.empty() || role.find("<|") != std::string::npos || role.find('\n') != std::string::npos)
    throw std::invalid_argument("chat message role '" + role +
                                "' must be a non-empty name without '<|' or newlines (system, user, assistant)");
}
}  // namespace

std::string format_llama3_chat(const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
  std::string s = "<|begin_of_text|>";
  for (const auto& m : messages) {
    check_role(m.role);
    s += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + trim_ws(m.content) + "<|eot_id|>";
  }
  if (add_generation_prompt) s += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return s;
}

std::vector<std::int32_t> encode_llama3_chat(const Tokenizer& t, const std::vector<ChatMessage>& messages,
                                             bool add_generation_prompt) {
  auto special = [&](const char* name) {
    const auto id = t.token_to_id(name);
    if (!id) throw std::invalid_argument(std::string("the tokenizer has no '") + name + "' token: not a Llama 3 tokenizer");
    return *id;
  };
  const std::int32_t bot = special("<|begin_of_text|>"), sh = special("<|start_header_id|>"),
                     eh = special("<|end_header_id|>"), eot = special("<|eot_id|>");
  std::vector<std::int32_t> ids{bot};
  auto append = [&](const std::vector<std::int32_t>& v) { ids.insert(ids.end(), v.begin(), v.end()); };
  auto header = [&](const std::string& role) {
    check_role(role);
    ids.push_back(sh);
    append(t.encode(role, false, true));
    ids.push_back(eh);
  };
  // "\n\n" and the content are one text segment of the rendered template, so they are encoded together.
  for (const auto& m : messages) {
    header(m.role);
    append(t.encode("\n\n" + trim_ws(m.content), false, true));
    ids.push_back(eot);
  }
  if (add_generation_prompt) {
    header("assistant");
    append(t.encode("\n\n", false, true));
  }
  return ids;
}

// ---------------------------------------------------------------- the tokenizer
#if AIPE_HAVE_PCRE2

bool tokenizer_available() { return true; }

namespace {

using nlohmann::json;

[[noreturn]] void fail(const std::string& where, const std::string& field, const std::string& what) {
  throw std::invalid_argument(where + ": " + field + ": " + what);
}

// GPT-2's bytes_to_unicode: printable bytes stand for themselves, the other 68 are shifted to U+0100.. so every
// byte is one visible character (a space is 'Ġ', U+0120).
struct ByteAlphabet {
  std::array<std::string, 256> to_char;
  std::unordered_map<std::uint32_t, unsigned char> from_cp;
  ByteAlphabet() {
    std::uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const std::uint32_t cp = printable ? static_cast<std::uint32_t>(b) : next++;
      put_utf8(to_char[b], cp);
      from_cp[cp] = static_cast<unsigned char>(b);
    }
  }
};
const ByteAlphabet& alphabet() {
  static const ByteAlphabet a;
  return a;
}

// A token's bytes: every character mapped back through the byte alphabet; a token with a character outside it
// (an added token written in plain text, e.g. with a real space) decodes to its own UTF-8, as `tokenizers` does.
std::string token_to_bytes(const std::string& tok) {
  std::string out;
  const auto* p = reinterpret_cast<const unsigned char*>(tok.data());
  std::size_t i = 0;
  while (i < tok.size()) {
    std::size_t bad;
    const int len = utf8_seq(p + i, tok.size() - i, bad);
    if (len <= 0) return tok;
    std::uint32_t cp = len == 1 ? p[i] : static_cast<std::uint32_t>(p[i] & (0xFF >> (len + 1)));
    for (int k = 1; k < len; ++k) cp = (cp << 6) | (p[i + k] & 0x3F);
    const auto it = alphabet().from_cp.find(cp);
    if (it == alphabet().from_cp.end()) return tok;
    out += static_cast<char>(it->second);
    i += static_cast<std::size_t>(len);
  }
  return out;
}

// The GPT-2 split, which ByteLevel applies when use_regex is true.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct Regex {
  pcre2_code* code = nullptr;
  bool jit = false;
  Regex(const std::string& where, const std::string& field, const std::string& pattern, bool literal) {
    int err = 0;
    PCRE2_SIZE off = 0;
    // UCP: \s, \w, \d and POSIX classes are Unicode-aware, as in Oniguruma (what `tokenizers` uses).
    // MATCH_INVALID_UTF: invalid UTF-8 in the subject is a barrier no pattern character matches, not an error.
    // (PCRE2_LITERAL refuses UCP; a literal has no classes to make Unicode-aware.)
    const std::uint32_t opts = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
    code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), opts, &err, &off, nullptr);
    if (!code) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof msg);
      fail(where, field, "regex does not compile at offset " + std::to_string(off) + ": " +
                             reinterpret_cast<const char*>(msg));
    }
    jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  }
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  ~Regex() { pcre2_code_free(code); }
};

// BPE working state: a symbol of the piece (a doubly linked list over its bytes) and a candidate merge.
struct BpeSym {
  std::int32_t id;
  std::int32_t prev, next;
  bool alive;
};
struct MergeCand {
  std::int32_t rank, pos, new_id;
};

// The state of one encode call: PCRE2 match data, a bounded JIT stack and match limits (so a pathological pattern
// in a hostile file fails with an error instead of running for hours or blowing the stack), and the scratch
// buffers every piece reuses.
struct Matcher {
  pcre2_match_data* md = nullptr;
  pcre2_match_context* mc = nullptr;
  pcre2_jit_stack* js = nullptr;
  Matcher() {
    md = pcre2_match_data_create(1, nullptr);
    mc = pcre2_match_context_create(nullptr);
    if (!md || !mc) {
      pcre2_match_data_free(md);  // both accept NULL
      pcre2_match_context_free(mc);
      throw std::bad_alloc();
    }
    // NULL where PCRE2 was built without JIT: then the interpreter runs, under the heap and depth limits.
    js = pcre2_jit_stack_create(32 * 1024, 1024 * 1024, nullptr);
    if (js) pcre2_jit_stack_assign(mc, nullptr, js);
    pcre2_set_match_limit(mc, 10'000'000);
    pcre2_set_depth_limit(mc, 100'000);
    pcre2_set_heap_limit(mc, 64 * 1024);  // KiB
  }
  Matcher(const Matcher&) = delete;
  Matcher& operator=(const Matcher&) = delete;
  ~Matcher() {
    if (js) pcre2_jit_stack_free(js);
    pcre2_match_context_free(mc);
    pcre2_match_data_free(md);
  }
  // Non-empty matches [b, e) of re in s, in order, into `matches` (an empty match advances one byte; a UTF-8
  // continuation byte cannot start a match of a UTF pattern, so this stays on character boundaries).
  std::vector<std::pair<std::size_t, std::size_t>> matches;
  void find_all(const Regex& re, std::string_view s) {
    matches.clear();
    std::size_t at = 0;
    while (at <= s.size()) {
      const int rc = pcre2_match(re.code, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), at, 0, md, mc);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof msg);
        throw std::runtime_error(std::string("tokenizer: the pre_tokenizer regex failed on this input: ") +
                                 reinterpret_cast<const char*>(msg));
      }
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      if (ov[1] > ov[0]) {
        matches.emplace_back(ov[0], ov[1]);
        at = ov[1];
      } else {
        at = ov[0] + 1;
      }
    }
  }
  // Reused by every piece of one encode call, so a long text costs no allocation per piece.
  std::vector<std::pair<std::pair<std::size_t, std::size_t>, bool>> spans;
  std::vector<std::pair<std::size_t, std::size_t>> cuts;
  std::vector<std::string_view> cur, next;
  std::deque<std::string> prefixed;  // pieces ByteLevel gave a leading space; a deque keeps views into it valid
  std::string mapped;
  std::vector<BpeSym> sym;
  std::vector<MergeCand> heap;
};

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

struct PreStep {
  enum Kind { Split, ByteLevel } kind = Split;
  std::shared_ptr<Regex> re;  // Split, or ByteLevel with use_regex
  Behavior behavior = Behavior::Isolated;
  bool invert = false;
  bool add_prefix_space = false;  // ByteLevel
};

struct AddedToken {
  std::int32_t id;
  std::string content;
  bool special, lstrip, rstrip, single_word;
};

std::uint64_t pair_key(std::int32_t a, std::int32_t b) {
  return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
}

constexpr std::int64_t kMaxId = 1 << 24;  // far above any real vocabulary (o200k: 200k); bounds the id tables

bool is_ws(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
bool is_word(unsigned char c) { return c >= 0x80 || std::isalnum(c) || c == '_'; }

}  // namespace

struct Tokenizer::Impl {
  std::string where;
  std::unordered_map<std::string, std::int32_t> vocab;  // byte-alphabet strings -> id (the BPE model's)
  std::unordered_map<std::uint64_t, std::pair<std::int32_t, std::int32_t>> merges;  // (left, right) -> (rank, id)
  std::array<std::int32_t, 256> byte_id{};                                           // each byte's own token
  bool ignore_merges = false;
  std::vector<PreStep> steps;
  std::vector<AddedToken> added;
  std::array<std::vector<std::size_t>, 256> added_by_first;  // indices into added, longest content first
  std::vector<std::string> id_bytes;                         // decode table; empty + !present for holes
  std::vector<char> present, special;
  std::unordered_map<std::string, std::int32_t> added_ids;
  std::vector<std::int32_t> prefix, suffix;  // TemplateProcessing's single-sequence template around the text
  std::size_t entries = 0;

  void bpe(std::string_view piece, Matcher& m, std::vector<std::int32_t>& out) const;
  void pre_tokenize(std::string_view segment, Matcher& m) const;
};

namespace {

// The regex split with its delimiter behavior, as `tokenizers`' Split does it: spans of matches and gaps, then
// merged per behavior; empty pieces dropped. Pieces are views into `s`.
void split_piece(const PreStep& st, std::string_view s, Matcher& m, std::vector<std::string_view>& out) {
  auto& spans = m.spans;
  auto& pieces = m.cuts;
  spans.clear();
  pieces.clear();
  m.find_all(*st.re, s);
  std::size_t last = 0;
  for (const auto& [b, e] : m.matches) {
    if (b > last) spans.push_back({{last, b}, false});
    spans.push_back({{b, e}, true});
    last = e;
  }
  if (last < s.size()) spans.push_back({{last, s.size()}, false});
  if (st.invert)
    for (auto& sp : spans) sp.second = !sp.second;
  bool prev = false;
  switch (st.behavior) {
    case Behavior::Removed:
      for (const auto& [r, is] : spans)
        if (!is) pieces.push_back(r);
      break;
    case Behavior::Isolated:
      for (const auto& [r, is] : spans) pieces.push_back(r);
      break;
    case Behavior::MergedWithPrevious:
      for (const auto& [r, is] : spans) {
        if (is && !prev && !pieces.empty()) pieces.back().second = r.second;
        else pieces.push_back(r);
        prev = is;
      }
      break;
    case Behavior::MergedWithNext:
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->second && !prev && !pieces.empty()) pieces.back().first = it->first.first;
        else pieces.push_back(it->first);
        prev = it->second;
      }
      std::reverse(pieces.begin(), pieces.end());
      break;
    case Behavior::Contiguous:
      for (const auto& [r, is] : spans) {
        if (is == prev && !pieces.empty()) pieces.back().second = r.second;
        else pieces.push_back(r);
        prev = is;
      }
      break;
  }
  for (const auto& [b, e] : pieces)
    if (e > b) out.push_back(s.substr(b, e - b));
}

}  // namespace

// Runs the pre_tokenizer steps over one segment; the pieces (views into the segment or into m.prefixed) are left
// in m.cur.
void Tokenizer::Impl::pre_tokenize(std::string_view segment, Matcher& m) const {
  m.cur.assign(1, segment);
  for (const auto& st : steps) {
    m.next.clear();
    for (std::string_view p : m.cur) {
      if (st.kind == PreStep::ByteLevel) {
        if (st.add_prefix_space && (p.empty() || p[0] != ' ')) {
          m.prefixed.push_back(" " + std::string(p));
          p = m.prefixed.back();
        }
        if (st.re) split_piece(st, p, m, m.next);
        else m.next.push_back(p);
      } else {
        split_piece(st, p, m, m.next);
      }
    }
    m.cur.swap(m.next);
  }
}

// BPE over one piece: start from one symbol per byte, repeatedly merge the adjacent pair of lowest rank (the
// leftmost of equal ranks). A heap of candidate merges keeps this O(n log n) for long pieces (whitespace runs);
// a popped candidate is stale when either side has changed since it was pushed.
void Tokenizer::Impl::bpe(std::string_view piece, Matcher& m, std::vector<std::int32_t>& out) const {
  if (piece.empty()) return;
  if (ignore_merges) {
    std::string& mapped = m.mapped;
    mapped.clear();
    for (unsigned char c : piece) mapped += alphabet().to_char[c];
    if (const auto it = vocab.find(mapped); it != vocab.end()) {
      out.push_back(it->second);
      return;
    }
  }
  const std::size_t n = piece.size();
  if (n == 1) {
    out.push_back(byte_id[static_cast<unsigned char>(piece[0])]);
    return;
  }
  auto& sym = m.sym;
  sym.resize(n);
  for (std::size_t i = 0; i < n; ++i)
    sym[i] = {byte_id[static_cast<unsigned char>(piece[i])], static_cast<std::int32_t>(i) - 1,
              i + 1 < n ? static_cast<std::int32_t>(i + 1) : -1, true};
  // A min-heap on (rank, pos) in a reused vector.
  auto& heap = m.heap;
  heap.clear();
  const auto later = [](const MergeCand& a, const MergeCand& b) { return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos; };
  auto consider = [&](std::int32_t pos) {
    if (pos < 0 || sym[pos].next < 0) return;
    const auto it = merges.find(pair_key(sym[pos].id, sym[sym[pos].next].id));
    if (it == merges.end()) return;
    heap.push_back({it->second.first, pos, it->second.second});
    std::push_heap(heap.begin(), heap.end(), later);
  };
  for (std::size_t i = 0; i + 1 < n; ++i) consider(static_cast<std::int32_t>(i));
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    const MergeCand c = heap.back();
    heap.pop_back();
    BpeSym& l = sym[c.pos];
    if (!l.alive || l.next < 0) continue;
    BpeSym& r = sym[l.next];
    const auto it = merges.find(pair_key(l.id, r.id));
    if (it == merges.end() || it->second.second != c.new_id || it->second.first != c.rank) continue;
    l.id = c.new_id;
    r.alive = false;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = c.pos;
    consider(l.prev);
    consider(c.pos);
  }
  for (std::int32_t i = 0; i >= 0; i = sym[i].next) out.push_back(sym[i].id);
}

namespace {

Behavior parse_behavior(const std::string& where, const std::string& field, const json& v) {
  if (!v.is_string()) fail(where, field, "must be a string");
  const std::string s = v.get<std::string>();
  if (s == "Removed") return Behavior::Removed;
  if (s == "Isolated") return Behavior::Isolated;
  if (s == "MergedWithPrevious") return Behavior::MergedWithPrevious;
  if (s == "MergedWithNext") return Behavior::MergedWithNext;
  if (s == "Contiguous") return Behavior::Contiguous;
  fail(where, field, "unknown behavior '" + s + "'");
}

bool opt_bool(const std::string& where, const std::string& field, const json& obj, const char* key, bool dflt) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return dflt;
  if (!it->is_boolean()) fail(where, field + "." + key, "must be true or false");
  return it->get<bool>();
}

void parse_pre_tokenizer(const std::string& where, const std::string& field, const json& v,
                         std::vector<PreStep>& steps, int depth) {
  if (depth > 8) fail(where, field, "Sequence nested too deeply");
  if (!v.is_object() || !v.contains("type") || !v["type"].is_string())
    fail(where, field, "must be an object with a string 'type'");
  const std::string type = v["type"].get<std::string>();
  if (type == "Sequence") {
    if (!v.contains("pretokenizers") || !v["pretokenizers"].is_array())
      fail(where, field + ".pretokenizers", "must be an array");
    const auto& a = v["pretokenizers"];
    for (std::size_t i = 0; i < a.size(); ++i)
      parse_pre_tokenizer(where, field + ".pretokenizers[" + std::to_string(i) + "]", a[i], steps, depth + 1);
  } else if (type == "Split") {
    PreStep st;
    st.kind = PreStep::Split;
    if (!v.contains("pattern") || !v["pattern"].is_object()) fail(where, field + ".pattern", "must be an object");
    const auto& p = v["pattern"];
    if (p.contains("Regex") && p["Regex"].is_string())
      st.re = std::make_shared<Regex>(where, field + ".pattern.Regex", p["Regex"].get<std::string>(), false);
    else if (p.contains("String") && p["String"].is_string())
      st.re = std::make_shared<Regex>(where, field + ".pattern.String", p["String"].get<std::string>(), true);
    else
      fail(where, field + ".pattern", "needs a string 'Regex' or 'String'");
    st.behavior = parse_behavior(where, field + ".behavior", v.contains("behavior") ? v["behavior"] : json());
    st.invert = opt_bool(where, field, v, "invert", false);
    steps.push_back(std::move(st));
  } else if (type == "ByteLevel") {
    PreStep st;
    st.kind = PreStep::ByteLevel;
    st.add_prefix_space = opt_bool(where, field, v, "add_prefix_space", true);
    if (opt_bool(where, field, v, "use_regex", true))
      st.re = std::make_shared<Regex>(where, field, kGpt2Pattern, false);
    steps.push_back(std::move(st));
  } else {
    fail(where, field + ".type", "'" + type + "' is not supported (Sequence, Split, ByteLevel: byte-level BPE only)");
  }
}

// TemplateProcessing (possibly inside a Sequence with ByteLevel, as Llama 3 has it): the ids put around a
// single sequence when add_special_tokens is asked for.
void parse_post_processor(const std::string& where, const std::string& field, const json& v,
                          std::vector<std::int32_t>& prefix, std::vector<std::int32_t>& suffix, int depth) {
  if (v.is_null()) return;
  if (depth > 8) fail(where, field, "Sequence nested too deeply");
  if (!v.is_object() || !v.contains("type") || !v["type"].is_string())
    fail(where, field, "must be null or an object with a string 'type'");
  const std::string type = v["type"].get<std::string>();
  if (type == "ByteLevel") return;  // offsets only
  if (type == "Sequence") {
    if (!v.contains("processors") || !v["processors"].is_array()) fail(where, field + ".processors", "must be an array");
    for (std::size_t i = 0; i < v["processors"].size(); ++i)
      parse_post_processor(where, field + ".processors[" + std::to_string(i) + "]", v["processors"][i], prefix, suffix,
                           depth + 1);
    return;
  }
  if (type != "TemplateProcessing")
    fail(where, field + ".type", "'" + type + "' is not supported (TemplateProcessing, ByteLevel, Sequence)");
  if (!v.contains("single") || !v["single"].is_array()) fail(where, field + ".single", "must be an array");
  const json specials = v.contains("special_tokens") ? v["special_tokens"] : json::object();
  if (!specials.is_object()) fail(where, field + ".special_tokens", "must be an object");
  bool seen_seq = false;
  for (std::size_t i = 0; i < v["single"].size(); ++i) {
    const auto& e = v["single"][i];
    const std::string f = field + ".single[" + std::to_string(i) + "]";
    if (e.is_object() && e.contains("Sequence")) {
      if (seen_seq) fail(where, f, "a second Sequence in the single template");
      seen_seq = true;
      continue;
    }
    if (!e.is_object() || !e.contains("SpecialToken") || !e["SpecialToken"].is_object() ||
        !e["SpecialToken"].contains("id") || !e["SpecialToken"]["id"].is_string())
      fail(where, f, "must be {\"Sequence\": ...} or {\"SpecialToken\": {\"id\": NAME}}");
    const std::string name = e["SpecialToken"]["id"].get<std::string>();
    if (!specials.contains(name) || !specials[name].is_object() || !specials[name].contains("ids") ||
        !specials[name]["ids"].is_array())
      fail(where, field + ".special_tokens", "'" + name + "' is used by the template but has no ids");
    for (const auto& id : specials[name]["ids"]) {
      if (!id.is_number_unsigned() || id.get<std::uint64_t>() >= static_cast<std::uint64_t>(kMaxId))
        fail(where, field + ".special_tokens." + name + ".ids", "must be token ids");
      (seen_seq ? suffix : prefix).push_back(static_cast<std::int32_t>(id.get<std::uint64_t>()));
    }
  }
}

}  // namespace

Tokenizer Tokenizer::from_json(const std::string& text, const std::string& where) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw std::invalid_argument(where + ": not valid JSON: " + e.what());
  }
  if (!j.is_object()) throw std::invalid_argument(where + ": not a JSON object");
  auto im = std::make_shared<Impl>();
  im->where = where;

  // ---- model: BPE over the byte alphabet
  if (!j.contains("model") || !j["model"].is_object()) fail(where, "model", "missing or not an object");
  const json& m = j["model"];
  if (!m.contains("type") || m["type"] != "BPE")
    fail(where, "model.type", "must be \"BPE\" (only byte-level BPE tokenizers are supported)");
  if (m.contains("dropout") && !m["dropout"].is_null() && !(m["dropout"].is_number() && m["dropout"].get<double>() == 0))
    fail(where, "model.dropout", "BPE dropout is for training; it must be null");
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (m.contains(k) && !m[k].is_null() && !(m[k].is_string() && m[k].get<std::string>().empty()))
      fail(where, std::string("model.") + k, "is not supported by byte-level BPE (must be null)");
  im->ignore_merges = opt_bool(where, "model", m, "ignore_merges", false);
  if (!m.contains("vocab") || !m["vocab"].is_object()) fail(where, "model.vocab", "missing or not an object");
  std::int64_t max_id = -1;
  std::unordered_map<std::int32_t, std::string> by_id;
  for (const auto& [tok, idv] : m["vocab"].items()) {
    if (!idv.is_number_unsigned() || idv.get<std::uint64_t>() >= static_cast<std::uint64_t>(kMaxId))
      fail(where, "model.vocab", "'" + tok + "' has id " + idv.dump() + ", not an integer in [0, 2^24)");
    if (tok.empty()) fail(where, "model.vocab", "an empty token");
    const auto id = static_cast<std::int32_t>(idv.get<std::uint64_t>());
    if (const auto [it, fresh] = by_id.emplace(id, tok); !fresh)
      fail(where, "model.vocab", "'" + tok + "' and '" + it->second + "' share id " + std::to_string(id));
    im->vocab.emplace(tok, id);
    max_id = std::max<std::int64_t>(max_id, id);
  }
  for (int b = 0; b < 256; ++b) {
    const auto it = im->vocab.find(alphabet().to_char[b]);
    if (it == im->vocab.end())
      fail(where, "model.vocab", "has no token for byte 0x" + std::string(1, "0123456789abcdef"[b >> 4]) +
                                     "0123456789abcdef"[b & 15] + " ('" + alphabet().to_char[b] +
                                     "'): a byte-level vocabulary covers all 256 bytes");
    im->byte_id[b] = it->second;
  }
  if (!m.contains("merges") || !m["merges"].is_array()) fail(where, "model.merges", "missing or not an array");
  const auto& ms = m["merges"];
  for (std::size_t r = 0; r < ms.size(); ++r) {
    const std::string f = "model.merges[" + std::to_string(r) + "]";
    std::string a, b;
    if (ms[r].is_string()) {  // "a b"
      const std::string s = ms[r].get<std::string>();
      const auto sp = s.find(' ');
      if (sp == std::string::npos || sp == 0 || sp + 1 == s.size() || s.find(' ', sp + 1) != std::string::npos)
        fail(where, f, "'" + s + "' is not two tokens separated by one space");
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (ms[r].is_array() && ms[r].size() == 2 && ms[r][0].is_string() && ms[r][1].is_string()) {  // [a, b]
      a = ms[r][0].get<std::string>();
      b = ms[r][1].get<std::string>();
    } else {
      fail(where, f, "must be \"a b\" or [\"a\", \"b\"]");
    }
    const auto ia = im->vocab.find(a), ib = im->vocab.find(b), ic = im->vocab.find(a + b);
    if (ia == im->vocab.end() || ib == im->vocab.end())
      fail(where, f, "'" + (ia == im->vocab.end() ? a : b) + "' is not in the vocabulary");
    if (ic == im->vocab.end()) fail(where, f, "the merged token '" + a + b + "' is not in the vocabulary");
    // A repeated pair takes its later rank, as `tokenizers` builds its map.
    im->merges[pair_key(ia->second, ib->second)] = {static_cast<std::int32_t>(r), ic->second};
  }

  // ---- added tokens
  if (j.contains("added_tokens") && !j["added_tokens"].is_null()) {
    if (!j["added_tokens"].is_array()) fail(where, "added_tokens", "must be an array");
    const auto& at = j["added_tokens"];
    const auto vsize = static_cast<std::int64_t>(im->vocab.size());
    std::int64_t max_added = -1;
    for (std::size_t i = 0; i < at.size(); ++i) {
      const std::string f = "added_tokens[" + std::to_string(i) + "]";
      const auto& e = at[i];
      if (!e.is_object()) fail(where, f, "must be an object");
      if (!e.contains("id") || !e["id"].is_number_unsigned() || e["id"].get<std::uint64_t>() >= static_cast<std::uint64_t>(kMaxId))
        fail(where, f + ".id", "must be an integer in [0, 2^24)");
      if (!e.contains("content") || !e["content"].is_string() || e["content"].get<std::string>().empty())
        fail(where, f + ".content", "must be a non-empty string");
      AddedToken t{static_cast<std::int32_t>(e["id"].get<std::uint64_t>()), e["content"].get<std::string>(),
                   opt_bool(where, f, e, "special", false), opt_bool(where, f, e, "lstrip", false),
                   opt_bool(where, f, e, "rstrip", false), opt_bool(where, f, e, "single_word", false)};
      // `tokenizers` numbers an added token itself: its vocabulary id if it has one, else the next id after the
      // vocabulary and the tokens added before it. A file that says otherwise would give other ids here than there.
      std::int64_t expect;
      if (const auto it = im->added_ids.find(t.content); it != im->added_ids.end()) expect = it->second;
      else if (const auto iv = im->vocab.find(t.content); iv != im->vocab.end()) expect = iv->second;
      else if (max_added < 0) expect = vsize;
      else expect = (max_added >= vsize || vsize == 0) ? max_added + 1 : vsize;
      if (expect != t.id)
        fail(where, f, "'" + t.content + "' has id " + std::to_string(t.id) + " but tokenizers numbers it " +
                           std::to_string(expect) + " (added tokens follow the vocabulary, in order)");
      if (const auto it = by_id.find(t.id); it != by_id.end() && it->second != t.content)
        fail(where, f, "id " + std::to_string(t.id) + " is '" + t.content + "' here but '" + it->second +
                           "' in model.vocab");
      max_added = std::max<std::int64_t>(max_added, t.id);
      by_id.emplace(t.id, t.content);
      im->added_ids[t.content] = t.id;
      max_id = std::max<std::int64_t>(max_id, t.id);
      im->added.push_back(std::move(t));
    }
  }
  for (std::size_t i = 0; i < im->added.size(); ++i)
    im->added_by_first[static_cast<unsigned char>(im->added[i].content[0])].push_back(i);
  for (auto& v : im->added_by_first)
    std::stable_sort(v.begin(), v.end(), [&](std::size_t a, std::size_t b) {
      return im->added[a].content.size() > im->added[b].content.size();
    });

  // ---- normalizer, pre_tokenizer, decoder, post_processor
  if (j.contains("normalizer") && !j["normalizer"].is_null())
    fail(where, "normalizer", "must be null (byte-level BPE tokenizers of the Llama 3 / GPT-2 family have none)");
  if (!j.contains("pre_tokenizer") || j["pre_tokenizer"].is_null())
    fail(where, "pre_tokenizer", "missing: a byte-level BPE tokenizer needs a ByteLevel pre_tokenizer");
  parse_pre_tokenizer(where, "pre_tokenizer", j["pre_tokenizer"], im->steps, 0);
  if (std::none_of(im->steps.begin(), im->steps.end(), [](const PreStep& s) { return s.kind == PreStep::ByteLevel; }))
    fail(where, "pre_tokenizer", "has no ByteLevel step: only byte-level BPE tokenizers are supported");
  if (!j.contains("decoder") || !j["decoder"].is_object() || j["decoder"].value("type", "") != "ByteLevel")
    fail(where, "decoder", "must be {\"type\": \"ByteLevel\"}");
  if (j.contains("post_processor"))
    parse_post_processor(where, "post_processor", j["post_processor"], im->prefix, im->suffix, 0);

  // ---- the id tables: dense, as every real vocabulary is (a stray id of 2^24 - 1 must not size a 16M table)
  if (max_id >= 2 * static_cast<std::int64_t>(by_id.size()) + 256)
    fail(where, "model.vocab", "ids run to " + std::to_string(max_id) + " for only " + std::to_string(by_id.size()) +
                                   " tokens: the id space must be dense");
  im->id_bytes.assign(static_cast<std::size_t>(max_id + 1), {});
  im->present.assign(static_cast<std::size_t>(max_id + 1), 0);
  im->special.assign(static_cast<std::size_t>(max_id + 1), 0);
  for (const auto& [id, tok] : by_id) {
    im->id_bytes[id] = token_to_bytes(tok);
    im->present[id] = 1;
  }
  for (const auto& t : im->added) im->special[t.id] = t.special ? 1 : 0;
  im->entries = by_id.size();
  for (const auto id : im->prefix)
    if (id > max_id || !im->present[id]) fail(where, "post_processor", "uses id " + std::to_string(id) + ", not a token");
  for (const auto id : im->suffix)
    if (id > max_id || !im->present[id]) fail(where, "post_processor", "uses id " + std::to_string(id) + ", not a token");

  Tokenizer t;
  t.impl_ = std::move(im);
  return t;
}

Tokenizer Tokenizer::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::invalid_argument(path + ": cannot open");
  std::ostringstream s;
  s << in.rdbuf();
  return from_json(s.str(), path);
}

namespace {
const Tokenizer::Impl& impl_of(const std::shared_ptr<const Tokenizer::Impl>& p) {
  if (!p) throw std::logic_error("an empty Tokenizer (default-constructed): load one with Tokenizer::load");
  return *p;
}
}  // namespace

std::vector<std::int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens,
                                            bool split_special_tokens) const {
  const Impl& im = impl_of(impl_);
  std::vector<std::int32_t> ids;
  if (add_special_tokens) ids = im.prefix;
  Matcher m;
  auto run_text = [&](std::string_view seg) {
    if (seg.empty()) return;
    m.prefixed.clear();
    im.pre_tokenize(seg, m);
    for (const auto p : m.cur) im.bpe(p, m, ids);
  };
  // Added tokens first, leftmost-longest; lstrip/rstrip swallow the whitespace beside a match, single_word
  // needs non-word characters (or the text's ends) on both sides.
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  std::size_t seg_start = 0, i = 0;
  while (i < n) {
    const AddedToken* hit = nullptr;
    for (const std::size_t k : im.added_by_first[s[i]]) {
      const AddedToken& t = im.added[k];
      if (split_special_tokens && t.special) continue;
      if (text.compare(i, t.content.size(), t.content) != 0) continue;
      const std::size_t e = i + t.content.size();
      if (t.single_word && ((i > 0 && is_word(s[i - 1])) || (e < n && is_word(s[e])))) continue;
      hit = &t;
      break;
    }
    if (!hit) {
      ++i;
      continue;
    }
    std::size_t b = i, e = i + hit->content.size();
    if (hit->lstrip)
      while (b > seg_start && is_ws(s[b - 1])) --b;
    if (hit->rstrip)
      while (e < n && is_ws(s[e])) ++e;
    run_text(text.substr(seg_start, b - seg_start));
    ids.push_back(hit->id);
    seg_start = i = e;
  }
  run_text(text.substr(seg_start));
  ids.insert(ids.end(), im.suffix.begin(), im.suffix.end());
  return ids;
}

std::string Tokenizer::decode(const std::vector<std::int32_t>& ids, bool skip_special_tokens) const {
  const Impl& im = impl_of(impl_);
  std::string out;
  for (const auto id : ids) {
    if (id < 0 || static_cast<std::size_t>(id) >= im.present.size() || !im.present[id])
      throw std::invalid_argument(im.where + ": no token has id " + std::to_string(id));
    if (skip_special_tokens && im.special[id]) continue;
    out += im.id_bytes[id];
  }
  return out;
}

std::int32_t Tokenizer::id_limit() const { return static_cast<std::int32_t>(impl_of(impl_).present.size()); }
std::size_t Tokenizer::vocab_entries() const { return impl_of(impl_).entries; }
std::optional<std::int32_t> Tokenizer::token_to_id(std::string_view token) const {
  const Impl& im = impl_of(impl_);
  const std::string k(token);
  if (const auto it = im.added_ids.find(k); it != im.added_ids.end()) return it->second;
  if (const auto it = im.vocab.find(k); it != im.vocab.end()) return it->second;
  return std::nullopt;
}
bool Tokenizer::is_special(std::int32_t id) const {
  const Impl& im = impl_of(impl_);
  return id >= 0 && static_cast<std::size_t>(id) < im.special.size() && im.special[id];
}
std::string Tokenizer::token_bytes(std::int32_t id) const { return decode({id}, false); }

#else  // no PCRE2

bool tokenizer_available() { return false; }

namespace {
[[noreturn]] void no_pcre2() {
  throw std::runtime_error(
      "aipe was built without PCRE2 (Debian: libpcre2-dev), so the tokenizer is disabled: install it and "
      "re-run cmake");
}
}  // namespace

struct Tokenizer::Impl {};
Tokenizer Tokenizer::from_json(const std::string&, const std::string&) { no_pcre2(); }
Tokenizer Tokenizer::load(const std::string&) { no_pcre2(); }
std::vector<std::int32_t> Tokenizer::encode(std::string_view, bool, bool) const { no_pcre2(); }
std::string Tokenizer::decode(const std::vector<std::int32_t>&, bool) const { no_pcre2(); }
std::int32_t Tokenizer::id_limit() const { no_pcre2(); }
std::size_t Tokenizer::vocab_entries() const { no_pcre2(); }
std::optional<std::int32_t> Tokenizer::token_to_id(std::string_view) const { no_pcre2(); }
bool Tokenizer::is_special(std::int32_t) const { no_pcre2(); }
std::string Tokenizer::token_bytes(std::int32_t) const { no_pcre2(); }

#endif

}  // namespace aipe::llm
