// aipe tokenize: ids of a text, of a JSON-lines file (what scripts/tokenizer_oracle.py reads), decoding, and
// its usage errors (exit 2, the problem named).
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "aipe/llm/tokenizer.hpp"
#include "app.hpp"

namespace {

struct Out {
  int code;
  std::string out, err;
};

Out run(std::vector<std::string> args) {
  std::ostringstream o, e;
  const int c = aipe::cli::run(args, o, e);
  return {c, o.str(), e.str()};
}

const std::string kTiny = std::string(AIPE_SOURCE_DIR) + "/tests/llm/data/tiny-tokenizer.json";

}  // namespace

TEST(CliTokenize, TextJsonlAndDecode) {
  if (!aipe::llm::tokenizer_available()) GTEST_SKIP() << "aipe was built without PCRE2: the tokenizer is disabled";
  Out r = run({"tokenize", "--tokenizer", kTiny, "hello world<|eot_id|>"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "[262,267,283]\n");
  r = run({"tokenize", "--tokenizer", kTiny, "--add-special-tokens", "hello"});
  EXPECT_EQ(r.out, "[279,262]\n");
  r = run({"tokenize", "--tokenizer", kTiny, "--decode", "[262,267]"});
  EXPECT_EQ(r.out, "\"hello world\"\n");
  const auto p = std::filesystem::temp_directory_path() / ("aipe_tok_" + std::to_string(::getpid()) + ".jsonl");
  std::ofstream(p) << "\"hello\"\n\"a\\u0000b \\u4f60\"\n\n\"<|eot_id|>x\"\n";
  r = run({"tokenize", "--tokenizer", kTiny, "--jsonl", p.string()});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "{\"ids\":[262],\"round_trip\":true}\n{\"ids\":[97,0,98,32,275],\"round_trip\":true}\n"
            "{\"ids\":[283,120],\"round_trip\":true}\n");
  std::ofstream(p) << "not json\n";
  r = run({"tokenize", "--tokenizer", kTiny, "--jsonl", p.string()});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find(":1: not a JSON string"), std::string::npos) << r.err;
  std::filesystem::remove(p);
}

TEST(CliTokenize, UsageErrors) {
  if (!aipe::llm::tokenizer_available()) GTEST_SKIP() << "aipe was built without PCRE2: the tokenizer is disabled";
  Out r = run({"tokenize", "--tokenizer", "/nonexistent/tokenizer.json", "x"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("/nonexistent/tokenizer.json: cannot open"), std::string::npos) << r.err;
  r = run({"tokenize", "--tokenizer", kTiny});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("give either TEXT or --jsonl FILE"), std::string::npos) << r.err;
  r = run({"tokenize", "--tokenizer", kTiny, "--decode", "[1, 9999]"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("no token has id 9999"), std::string::npos) << r.err;
  r = run({"tokenize", "x"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--tokenizer"), std::string::npos) << r.err;
}
