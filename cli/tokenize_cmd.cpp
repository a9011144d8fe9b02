// aipe tokenize --tokenizer FILE (TEXT | --jsonl IN): token ids of a text, as a JSON array, or of each JSON string
// of a JSON-lines file (one {"ids": [...], "round_trip": bool} line per input line). It is what
// scripts/tokenizer_oracle.py compares with Hugging Face `tokenizers`; it needs no GPU.
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "aipe/llm/tokenizer.hpp"
#include "app.hpp"
#include "command.hpp"

namespace aipe::cli {
namespace {

struct TokenizeArgs {
  std::string tokenizer, text, jsonl;
  bool add_special = false, split_special = false, decode = false;
};

int cmd_tokenize(const TokenizeArgs& a, std::ostream& out, std::ostream& err) {
  if (!llm::tokenizer_available()) {
    err << "aipe tokenize: aipe was built without PCRE2 (Debian: libpcre2-dev): the tokenizer is disabled\n";
    return kUsage;
  }
  if (a.text.empty() == a.jsonl.empty()) throw UsageError("give either TEXT or --jsonl FILE");
  llm::Tokenizer t;
  try {
    t = llm::Tokenizer::load(a.tokenizer);
  } catch (const std::exception& e) {
    throw UsageError(e.what());
  }
  if (!a.text.empty()) {
    if (a.decode) {  // TEXT is a JSON array of ids
      nlohmann::json ids;
      try {
        ids = nlohmann::json::parse(a.text);
        out << nlohmann::json(t.decode(ids.get<std::vector<std::int32_t>>()))
                   .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
            << "\n";
      } catch (const nlohmann::json::exception& e) {
        throw UsageError(std::string("--decode takes a JSON array of ids: ") + e.what());
      } catch (const std::invalid_argument& e) {
        throw UsageError(e.what());
      }
      return kOk;
    }
    out << nlohmann::json(t.encode(a.text, a.add_special, a.split_special)).dump() << "\n";
    return kOk;
  }
  std::ifstream in(a.jsonl, std::ios::binary);
  if (!in) throw UsageError("cannot read '" + a.jsonl + "'");
  std::string line;
  int bad = 0;
  for (std::size_t n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    std::string s;
    try {
      s = nlohmann::json::parse(line).get<std::string>();
    } catch (const nlohmann::json::exception& e) {
      throw UsageError(a.jsonl + ":" + std::to_string(n) + ": not a JSON string: " + e.what());
    }
    const auto ids = t.encode(s, a.add_special, a.split_special);
    // The round trip is checked on the plain encoding (the template's tokens are not in the text).
    const bool rt = t.decode(a.add_special ? t.encode(s, false, a.split_special) : ids) == s;
    bad += !rt;
    // error_handler replace: a decoded string is bytes, which JSON must carry as valid UTF-8.
    out << nlohmann::json{{"ids", ids}, {"round_trip", rt}}.dump(-1, ' ', false,
                                                                  nlohmann::json::error_handler_t::replace)
        << "\n";
  }
  if (bad) err << "aipe tokenize: " << bad << " line(s) did not decode back to themselves\n";
  return bad ? kFailed : kOk;
}

CLI::App* add_tokenize(CLI::App& app, Action& action) {
  auto* c = app.add_subcommand("tokenize", "token ids of a text with a Hugging Face tokenizer.json (byte-level BPE)");
  auto a = std::make_shared<TokenizeArgs>();
  c->add_option("--tokenizer", a->tokenizer, "tokenizer.json")->required();
  c->add_option("text", a->text, "the text (or, with --decode, a JSON array of ids)");
  c->add_option("--jsonl", a->jsonl, "a file of JSON strings, one a line: prints {ids, round_trip} per line");
  c->add_flag("--add-special-tokens", a->add_special, "put the post_processor's tokens around the text");
  c->add_flag("--split-special-tokens", a->split_special, "treat special tokens in the text as plain text");
  c->add_flag("--decode", a->decode, "decode TEXT, a JSON array of ids");
  action = [a](std::ostream& out, std::ostream& err) { return cmd_tokenize(*a, out, err); };
  return c;
}

AIPE_CLI_COMMAND(95, add_tokenize);

}  // namespace
}  // namespace aipe::cli
