// The battery of bad inputs: each command line must end with its exit code and a message that starts
// with the expected words (and, for files, names the file and the field). None of these needs a GPU:
// every one is rejected before a GPU or a tool is looked for.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "app.hpp"
#include "run_cli.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using Out = aipe::test::CliOut;
Out run(const std::vector<std::string>& args) { return aipe::test::run_cli(args); }

const std::string kResults = std::string(AIPE_SOURCE_DIR) + "/docs/results/h100-ch12.json";

json base() {
  std::ifstream f(kResults);
  return json::parse(f);
}

// A results file made from the real ch12 one with one edit, in the test's temporary folder.
std::string mutated(const std::string& name, const std::function<void(json&)>& edit) {
  json j = base();
  edit(j);
  const fs::path p = fs::path(::testing::TempDir()) / ("aipe-bad-" + name + ".json");
  std::ofstream(p) << j.dump(1);
  return p.string();
}

std::string raw_file(const std::string& name, const std::string& text) {
  const fs::path p = fs::path(::testing::TempDir()) / ("aipe-bad-" + name);
  std::ofstream(p) << text;
  return p.string();
}

struct Case {
  std::vector<std::string> args;
  int code;
  std::string starts;  // the message's first words, after "aipe: "
};

std::vector<Case> cases() {
  const std::string ok = kResults;
  const std::string tmp = ::testing::TempDir();
  const std::string nodir = "/nonexistent-aipe-dir/x.json";
  auto first = [](const std::function<void(json&)>& f) { return [f](json& j) { f(j["results"][0]); }; };
  const std::string sizes = mutated("sizes", first([](json& r) { r["sizes"]["n"] = 1e99; }));
  const std::string samples = mutated("samples", first([](json& r) { r["samples"] = 1e99; }));
  const std::string sm = mutated("sm", [](json& j) { j["device"]["sm_count"] = 1e99; });
  const std::string smem = mutated("smem", [](json& j) { j["device"]["smem_per_sm_bytes"] = -1; });
  const std::string threads = mutated("threads", [](json& j) { j["device"]["max_threads_per_sm"] = 1.5; });
  const std::string cc = mutated("cc", [](json& j) { j["device"]["compute_capability"] = "abc.0"; });
  const std::string cc2 = mutated("cc2", [](json& j) { j["device"]["compute_capability"] = "9"; });
  const std::string status = mutated("status", first([](json& r) { r["status"] = "great"; }));
  const std::string median = mutated("median", first([](json& r) { r["median_ms"] = "fast"; }));
  const std::string negative = mutated("negative", first([](json& r) { r["median_ms"] = -1; }));
  const std::string noexample = mutated("noexample", first([](json& r) { r.erase("example"); }));
  const std::string results = mutated("results", [](json& j) { j["results"] = 7; });
  const std::string schema = mutated("schema", [](json& j) { j["schema"] = "other/1"; });
  const std::string metric = mutated("metric", first([](json& r) { r["metrics"]["x"] = "y"; }));
  const std::string spec = mutated("spec", [](json& j) { j["ceilings"]["spec"]["dram_gbps"] = "fast"; });
  const std::string notjson = raw_file("notjson.json", "{\"schema\": ");
  const std::string missing = tmp + "/aipe-no-such-results.json";
  return {
      // commands and options
      {{"frobnicate"}, 2, "unknown command 'frobnicate'"},
      {{"rnu"}, 2, "unknown command 'rnu'; did you mean 'run'?"},
      {{"run", "--frobnicate"}, 2, "The following argument was not expected: --frobnicate"},
      {{"run", "ch01", "--min-time", "nan"}, 2, "--min-time: 'nan' is not a finite number"},
      {{"run", "ch01", "--min-time", "-1"}, 2, "--min-time: '-1' is negative"},
      {{"run", "ch01", "--min-time", "abc"}, 2, "--min-time: 'abc' is not a number"},
      {{"run", "ch01", "--max-noise", "inf"}, 2, "--max-noise: 'inf' is not a finite number"},
      {{"run", "ch01", "--budget", "1e999"}, 2, "--budget: '1e999' is not a finite number"},
      {{"run", "ch01", "--seed", "-1"}, 2, "--seed: '-1' is negative"},
      {{"run", "ch01", "--seed", "18446744073709551616"}, 2, "--seed: '18446744073709551616' is too large"},
      {{"run", "ch01", "--seed", "1.5"}, 2, "--seed: '1.5' is not an integer"},
      {{"run", "ch01", "--seed", "x"}, 2, "--seed: 'x' is not an integer"},
      {{"run", "ch01", "--device", "-1"}, 2, "--device: '-1' is negative"},
      {{"run", "ch01", "--device", "5000"}, 2, "--device: '5000' is too large"},
      {{"run", "ch01", "--quick", "--small"}, 2, "--quick and --small are exclusive"},
      {{"run", "ch01/batched_gem"}, 2, "unknown example 'ch01/batched_gem'; did you mean: ch01/batched_gemm"},
      {{"list", "ch99"}, 2, "unknown example 'ch99'"},
      {{"run", "ch01/batched_gemm", "--variant", "strided_batch"}, 2, "unknown variant 'strided_batch'"},
      {{"run", "ch01/measurement_pitfalls", "--size", "n=abc"}, 2, "bad --size: 'abc' is not a size"},
      {{"run", "ch01/measurement_pitfalls", "--size", "bogus=4"}, 2, "no selected example has a size named 'bogus'"},
      {{"run", "ch01/measurement_pitfalls", "--size", "n=0"}, 2, "bad size:"},
      {{"run", "ch01", "--json", nodir}, 2, "cannot write '" + nodir + "': folder"},
      {{"run", "ch01", "--csv", tmp}, 2, "cannot write '" + tmp + "': it is a folder"},
      {{"info", "--json", nodir}, 2, "cannot write '" + nodir + "'"},
      {{"peak", "--only", "bogus"}, 2, "unknown group 'bogus'"},
      {{"peak", "--json", nodir}, 2, "cannot write '" + nodir + "'"},
      {{"peak", "--device", "abc"}, 2, "--device: 'abc' is not an integer"},
      {{"profile", "ch01/measurement_pitfalls", "--size", "n=abc"}, 2, "bad --size: 'abc' is not a size"},
      {{"profile", "ch01", "--variant", "nope"}, 2, "unknown variant 'nope'"},
      {{"profile", "ch01", "--metrics", "most"}, 2, "--metrics must be 'default' or 'full'"},
      {{"profile", "ch01", "--json", nodir}, 2, "cannot write '" + nodir + "'"},
      {{"trace", "ch01/measurement_pitfalls", "--size", "n=abc", "-o", tmp + "/aipe-t.json"}, 2, "bad --size"},
      {{"trace", "ch01", "--variant", "nope"}, 2, "unknown variant 'nope'"},
      {{"trace", "ch01", "-o", nodir}, 2, "cannot write '" + nodir + "'"},
      {{"trace", "ch01", "--seed", "-3"}, 2, "--seed: '-3' is negative"},
      // compare: the gate's numbers and its inputs
      // the engine's commands: a bad model, prompt or flag is usage, found before any GPU is looked for
      {{"generate", "--model", "synthetic:nope", "--prompt-ids", "1"}, 2, "no built-in model 'synthetic:nope'"},
      {{"generate", "--model", "/nonexistent-aipe-model", "--prompt-ids", "1"}, 2,
       "--model /nonexistent-aipe-model: no such folder"},
      {{"generate", "--model", "synthetic:llama-3.2-1b", "--prompt-ids", "1,x"}, 2,
       "--prompt-ids: 'x' is not a token id"},
      {{"generate", "--model", "synthetic:llama-3.2-1b", "--prompt", "hi"}, 2, "--prompt needs the model's tokenizer.json"},
      {{"generate", "--model", "synthetic:llama-3.2-1b"}, 2, "give --prompt TEXT or --prompt-ids"},
      {{"bench", "generate", "--model", "synthetic:nope"}, 2, "no built-in model 'synthetic:nope'"},
      {{"compare", ok, ok, "--threshold", "nan"}, 2, "--threshold: 'nan' is not a finite number"},
      {{"compare", ok, ok, "--threshold", "-5"}, 2, "--threshold: '-5' is negative"},
      {{"compare", ok, ok, "--noise-factor", "inf"}, 2, "--noise-factor: 'inf' is not a finite number"},
      {{"compare", missing, ok}, 2, "cannot read '" + missing + "'"},
      {{"compare", notjson, ok}, 2, notjson + ": not valid JSON"},
      {{"compare", schema, ok}, 2, schema + ": not an aipe run report"},
      {{"compare", ok, cc}, 2, cc + ": device.compute_capability: 'abc.0' is not MAJOR.MINOR"},
      {{"compare", ok, cc2}, 2, cc2 + ": device.compute_capability: '9' is not MAJOR.MINOR"},
      {{"compare", sizes, ok}, 2, sizes + ": results[0].sizes.n: 1e+99 is out of range"},
      {{"compare", ok, samples}, 2, samples + ": results[0].samples: 1e+99 is out of range"},
      {{"compare", sm, ok}, 2, sm + ": device.sm_count: 1e+99 is out of range"},
      {{"compare", smem, ok}, 2, smem + ": device.smem_per_sm_bytes: -1 is out of range"},
      {{"compare", threads, ok}, 2, threads + ": device.max_threads_per_sm: 1.5 is not an integer"},
      {{"compare", status, ok}, 2, status + ": results[0].status: unknown status 'great'"},
      {{"compare", median, ok}, 2, median + ": results[0].median_ms: expected a number"},
      {{"compare", negative, ok}, 2, negative + ": results[0].median_ms: -1 is out of range"},
      {{"compare", noexample, ok}, 2, noexample + ": results[0].example: missing"},
      {{"compare", results, ok}, 2, results + ": results: missing or not an array"},
      {{"compare", metric, ok}, 2, metric + ": results[0].metrics.x: expected a number"},
      {{"compare", spec, ok}, 2, spec + ": ceilings.spec.dram_gbps: expected a number"},
      // report
      {{"report", ok, "--markdown", ok}, 2, "cannot write '" + ok + "': it is also an input"},
      {{"report", ok, "--html", ok}, 2, "cannot write '" + ok + "': it is also an input"},
      {{"report", ok, "--html", nodir}, 2, "cannot write '" + nodir + "'"},
      {{"report", ok, "--examples", "ch99"}, 2, "--examples 'ch99' matches no result in the inputs"},
      {{"report", missing}, 2, "cannot read '" + missing + "'"},
      {{"report", cc}, 2, cc + ": device.compute_capability"},
      {{"report", sizes, "--html", "-"}, 2, sizes + ": results[0].sizes.n"},
  };
}

TEST(CliBadInputs, EachExitsWithItsCodeAndMessage) {
  const auto all = cases();
  ASSERT_GE(all.size(), 40u);
  for (const auto& c : all) {
    std::string line;
    for (const auto& a : c.args) line += " " + a;
    const Out r = run(c.args);
    EXPECT_EQ(r.code, c.code) << "aipe" << line << "\n" << r.err;
    const std::string want = "aipe: " + c.starts;
    EXPECT_EQ(r.err.substr(0, want.size()), want) << "aipe" << line;
    // A message is for people: short, one problem, no 309-digit DBL_MAX.
    EXPECT_LT(r.err.size(), 400u) << "aipe" << line << "\n" << r.err;
  }
}

}  // namespace
