// safetensors reader on files the test writes itself: valid single-file and sharded checkpoints, then each
// malformed case, checking that the error names the file and the tensor or field.
#include "aipe/llm/safetensors.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <functional>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace fs = std::filesystem;
using aipe::llm::Checkpoint;
using aipe::llm::SafetensorsFile;

namespace {

fs::path temp_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("aipe_llm_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// Writes raw header text and a data section of data_bytes (bytes = index mod 251) after an 8-byte LE length.
void write_raw(const fs::path& p, const std::string& header, std::size_t data_bytes, std::uint64_t len_override = 0) {
  std::ofstream o(p, std::ios::binary);
  std::uint64_t n = len_override ? len_override : header.size();
  for (int i = 0; i < 8; ++i) o.put(static_cast<char>((n >> (8 * i)) & 0xff));
  o << header;
  for (std::size_t i = 0; i < data_bytes; ++i) o.put(static_cast<char>(i % 251));
}

std::string expect_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error thrown";
  return {};
}

const char* kTwo =
    R"({"__metadata__":{"format":"pt"},"a":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]},)"
    R"("b":{"dtype":"F32","shape":[5],"data_offsets":[12,32]}})";

}  // namespace

TEST(Safetensors, ReadsValidFile) {
  const auto d = temp_dir("valid");
  write_raw(d / "model.safetensors", kTwo, 32);
  SafetensorsFile f((d / "model.safetensors").string());
  EXPECT_EQ(f.metadata().at("format"), "pt");
  const auto a = f.tensor("a");
  EXPECT_EQ(a.dtype, aipe::llm::DType::BF16);
  EXPECT_EQ(a.shape, (std::vector<std::int64_t>{2, 3}));
  EXPECT_EQ(a.bytes, 12u);
  const auto b = f.tensor("b");
  EXPECT_EQ(b.bytes, 20u);
  EXPECT_EQ(static_cast<int>(b.data[0]), 12);  // the view starts at its own offset in the data section
  EXPECT_NE(expect_error([&] { f.tensor("c"); }).find("no tensor 'c'"), std::string::npos);
}

TEST(Safetensors, MalformedFilesNameTheProblem) {
  const auto d = temp_dir("bad");
  const auto p = (d / "model-00002-of-00003.safetensors").string();
  auto err = [&](const std::string& header, std::size_t data, std::uint64_t len = 0) {
    write_raw(p, header, data, len);
    return expect_error([&] { SafetensorsFile f(p); });
  };
  auto has = [](const std::string& e, const std::string& s) { return e.find(s) != std::string::npos; };
  const std::string one = R"({"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})";
  std::string e = err(one, 8);
  EXPECT_TRUE(has(e, "model-00002-of-00003.safetensors: tensor 't': data_offsets [0, 16] exceed the data section (8 bytes)")) << e;
  EXPECT_TRUE(has(err(one, 16, 1u << 20), "runs past the end")) << e;
  EXPECT_TRUE(has(err(one, 16, 200'000'000), "100 MB")) ;
  { std::ofstream o(p, std::ios::binary); o << "abc"; }
  EXPECT_TRUE(has(expect_error([&] { SafetensorsFile f(p); }), "truncated"));
  EXPECT_TRUE(has(err(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", 16), "need 12")) ;
  EXPECT_TRUE(has(err(R"({"t":{"dtype":"F33","shape":[4],"data_offsets":[0,16]}})", 16), "unknown dtype 'F33'"));
  EXPECT_TRUE(has(err(R"([1,2])", 0), "not a JSON object"));
  EXPECT_TRUE(has(err(R"({"t":5})", 0), "tensor 't': entry is not an object"));
  EXPECT_TRUE(has(err(R"({"t":{"dtype":"F32","shape":[4],"data_offsets":[8,4]}})", 16), "begin > end"));
  EXPECT_TRUE(has(err(R"({"t":{"dtype":"U8","shape":[4294967296,4294967296,16],"data_offsets":[0,0]}})", 16), "overflows"));
  EXPECT_TRUE(has(err(R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[8],"data_offsets":[4,12]}})", 16), "overlaps"));
  EXPECT_TRUE(has(err("{not json", 0), "not valid JSON"));
}

TEST(Safetensors, ShardedCheckpoint) {
  const auto d = temp_dir("shard");
  write_raw(d / "s1.safetensors", R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})", 4);
  write_raw(d / "s2.safetensors", R"({"b":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})", 8);
  auto index = [&](const nlohmann::json& wm) {
    std::ofstream(d / "model.safetensors.index.json") << nlohmann::json{{"weight_map", wm}}.dump();
  };
  index({{"a", "s1.safetensors"}, {"b", "s2.safetensors"}});
  const auto c = Checkpoint::open_dir(d.string());
  EXPECT_EQ(c.names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(c.tensor("b").bytes, 8u);
  index({{"a", "s1.safetensors"}, {"b", "s3.safetensors"}});
  EXPECT_NE(expect_error([&] { Checkpoint::open_dir(d.string()); }).find("missing file 's3.safetensors'"), std::string::npos);
  index({{"a", "s2.safetensors"}, {"b", "s2.safetensors"}});
  EXPECT_NE(expect_error([&] { Checkpoint::open_dir(d.string()); }).find("not in this shard"), std::string::npos);
  write_raw(d / "s2.safetensors", R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"I32","shape":[2],"data_offsets":[4,12]}})", 12);
  index({{"a", "s1.safetensors"}, {"b", "s2.safetensors"}});
  EXPECT_NE(expect_error([&] { Checkpoint::open_dir(d.string()); }).find("another shard"), std::string::npos);
}
