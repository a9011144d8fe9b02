// Files and inputs that cannot hurt the user (issue 17): a report that never hangs, a gate that cannot
// be switched off, results that survive a failing command, writes that are checked, names that cannot
// drive the terminal.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "aipe/device.hpp"
#include "app.hpp"
#include "run_cli.hpp"
#include "child_process.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using Out = aipe::test::CliOut;
Out run(const std::vector<std::string>& args) { return aipe::test::run_cli(args); }

bool have_gpu() { return !aipe::gpu_unavailable_reason().has_value(); }

const std::string kResults = std::string(AIPE_SOURCE_DIR) + "/docs/results/h100-ch12.json";
const fs::path kRegressions = fs::path(AIPE_SOURCE_DIR) / "tests/fuzz/regressions";

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

fs::path temp(const std::string& name) { return fs::path(::testing::TempDir()) / ("aipe-files-" + name); }

std::string write_json_file(const std::string& name, const json& j) {
  const fs::path p = temp(name);
  std::ofstream(p) << j.dump(1);
  return p.string();
}

json results() {
  std::ifstream f(kResults);
  return json::parse(f);
}

// 1. `aipe report --html` on a value that is 0, missing or huge: finishes (in a child with a deadline)
// and writes a page whose size is proportional to its input.
TEST(ReportNeverHangs, ZeroMissingOrHugeValues) {
  std::vector<fs::path> inputs;
  for (const auto& e : fs::directory_iterator(kRegressions / "report")) inputs.push_back(e.path());
  ASSERT_GE(inputs.size(), 6u);
  for (const auto& in : inputs) {
    const fs::path html = temp(in.stem().string() + ".html");
    fs::remove(html);
    const auto r = aipe::test::run_in_child([&] { return run({"report", in.string(), "--html", html.string()}).code; }, 20);
    ASSERT_FALSE(r.timed_out) << "aipe report --html hung on " << in;
    ASSERT_FALSE(r.signaled) << in;
    EXPECT_EQ(r.exit_code, 0) << in;
    ASSERT_TRUE(fs::exists(html)) << in;
    EXPECT_LT(fs::file_size(html), 64 * 1024 + 8 * fs::file_size(in)) << in;
    // What could not be drawn is said, not silently dropped.
    const std::string page = slurp(html);
    const std::set<std::string> drawable = {"escape-in-names.json", "spec-dram-1e308.json", "speedup-1e308.json"};
    if (!drawable.count(in.filename().string()))
      EXPECT_NE(page.find("not on the charts"), std::string::npos) << in;
  }
}

// 2. The regression gate: NaN cannot switch it off, and a 2x slower run is a regression.
TEST(CompareGate, NanThresholdIsRejectedAndSlowerIsARegression) {
  json slow = results();
  for (auto& r : slow["results"])
    if (r["median_ms"].is_number()) r["median_ms"] = r["median_ms"].get<double>() * 2;
  const std::string s = write_json_file("slow.json", slow);
  for (const char* bad : {"nan", "NaN", "-nan", "inf"}) {
    const Out r = run({"compare", kResults, s, "--threshold", bad});
    EXPECT_EQ(r.code, 2) << bad << ": " << r.err;
    const Out n = run({"compare", kResults, s, "--noise-factor", bad});
    EXPECT_EQ(n.code, 2) << bad << ": " << n.err;
  }
  const Out r = run({"compare", kResults, s});
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("SLOWER"), std::string::npos);
  EXPECT_EQ(run({"run", "ch01", "--min-time", "nan"}).code, 2);
}

// 3. A command that fails leaves an existing results file byte for byte as it was.
TEST(ExistingResults, UntouchedByAFailingCommand) {
  const std::string precious = "{\"yesterday's\": \"results\"}\n";
  auto check = [&](std::vector<std::string> args, const std::string& target) {
    std::ofstream(target) << precious;
    for (auto& a : args)
      if (a == "@") a = target;
    const Out r = run(args);
    std::string line;
    for (const auto& a : args) line += " " + a;
    EXPECT_NE(r.code, 0) << "aipe" << line;
    EXPECT_EQ(slurp(target), precious) << "aipe" << line << " changed " << target;
  };
  const std::string f = temp("precious.json").string();
  // Bad arguments (exit 2) anywhere:
  check({"run", "ch01", "--size", "n=abc", "--json", "@"}, f);
  check({"profile", "ch01", "--variant", "nope", "--json", "@"}, f);
  check({"trace", "ch01", "--variant", "nope", "-o", "@"}, f);
  check({"trace", "ch01/measurement_pitfalls", "--size", "n=abc", "-o", "@"}, f);
  check({"report", "@", "--markdown", "@"}, f);
  check({"report", "@", "--html", "@"}, f);
  // A bad results file as input to report, the output an existing file:
  const std::string out = temp("report-out.md").string();
  std::ofstream(f) << "not json";
  std::ofstream(out) << precious;
  EXPECT_EQ(run({"report", f, "--markdown", out}).code, 2);
  EXPECT_EQ(slurp(out), precious);
  // No GPU (exit 3) or no tool (exit 4): only where there is no GPU.
  if (have_gpu()) GTEST_SKIP() << "a GPU is present: the no-GPU failures cannot be produced here";
  for (const char* opt : {"--json", "--csv", "--markdown"}) check({"run", "ch01", opt, "@"}, f);
  check({"info", "--json", "@"}, f);
  check({"peak", "--json", "@"}, f);
  check({"profile", "ch01/measurement_pitfalls", "--json", "@"}, f);
  check({"trace", "ch01/measurement_pitfalls", "-o", "@"}, f);
}

// 4. Write errors are failures with a message, for files and for standard output.
TEST(WriteErrors, FullDiskIsNonZeroWithAMessage) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  for (const char* opt : {"--html", "--markdown"}) {
    const Out r = run({"report", kResults, opt, "/dev/full"});
    EXPECT_EQ(r.code, 1) << opt;
    EXPECT_EQ(r.err.rfind("aipe: cannot write '/dev/full': write: No space left on device", 0), 0u) << r.err;
  }
}

// An ostream whose every write fails, like stdout on a full disk.
struct FullBuf : std::streambuf {
  int overflow(int) override { return traits_type::eof(); }
  std::streamsize xsputn(const char*, std::streamsize) override { return 0; }
};

TEST(WriteErrors, StandardOutputThatCannotBeWrittenIsAFailure) {
  FullBuf buf;
  std::ostream full(&buf);
  std::ostringstream err;
  for (std::vector<std::string> args : {std::vector<std::string>{"list"}, {"report", kResults},
                                        {"compare", kResults, kResults}}) {
    err.str("");
    full.clear();
    EXPECT_EQ(aipe::cli::run(args, full, err), 1) << args[0];
    EXPECT_EQ(err.str().rfind("aipe: cannot write the output", 0), 0u) << err.str();
  }
}

// 7. profile and trace check their arguments before the GPU and the tools, and create no file.
TEST(ArgumentsFirst, ProfileAndTraceReportBadArgumentsAsSuch) {
  const fs::path t = temp("never.json");
  fs::remove(t);
  for (const char* cmd : {"profile", "trace"}) {
    Out r = run({cmd, "ch01/measurement_pitfalls", "--size", "n=abc", cmd == std::string("trace") ? "-o" : "--json", t.string()});
    EXPECT_EQ(r.code, 2) << cmd << ": " << r.err;
    EXPECT_EQ(r.err.rfind("aipe: bad --size", 0), 0u) << r.err;
    r = run({cmd, "ch01", "--variant", "nope"});
    EXPECT_EQ(r.code, 2) << cmd << ": " << r.err;
    EXPECT_EQ(r.err.rfind("aipe: unknown variant 'nope'", 0), 0u) << r.err;
  }
  EXPECT_FALSE(fs::exists(t));
}

// 8. Escape codes in names from a results file reach the terminal escaped.
TEST(TerminalSafety, ReportAndCompareEscapeControlCharacters) {
  json j = results();
  j["device"]["name"] = "\x1b]0;title\x07GPU";
  j["results"][0]["example"] = "ch12/\x1b[2Jwipe";
  j["results"][0]["variant"] = "v\xc2\x9b" "2J";
  const std::string f = write_json_file("escapes.json", j);
  for (std::vector<std::string> args : {std::vector<std::string>{"report", f}, {"report", f, "--markdown", "-"},
                                        {"compare", f, f}, {"compare", kResults, f}}) {
    const Out r = run(args);
    EXPECT_EQ(r.code, 0) << args[0] << ": " << r.err;
    const std::string all = r.out + r.err;
    EXPECT_EQ(all.find('\x1b'), std::string::npos) << args[0] << " " << args.back();
    EXPECT_EQ(all.find("\xc2\x9b"), std::string::npos) << args[0];
    EXPECT_EQ(all.find('\x07'), std::string::npos) << args[0];
  }
  EXPECT_NE(run({"report", f}).out.find("ch12/\\x1b[2Jwipe"), std::string::npos);
}

// 9. Messages name the problem.
TEST(Messages, UnknownCommandRangeAndNotANumber) {
  Out r = run({"frobnicate"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err.rfind("aipe: unknown command 'frobnicate'", 0), 0u) << r.err;
  EXPECT_NE(r.err.find("commands: info"), std::string::npos) << r.err;
  r = run({"run", "ch01", "--budget", "-2"});
  EXPECT_EQ(r.err.find("179769"), std::string::npos) << r.err;  // DBL_MAX, 309 digits
  r = run({"run", "ch01", "--budget", "soon"});
  EXPECT_NE(r.err.find("is not a number"), std::string::npos) << r.err;
  r = run({"report", kResults, "--examples", "ch07"});
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.err.find("matches no result"), std::string::npos) << r.err;
  // A filter that does match keeps only those examples.
  r = run({"report", kResults, "--examples", "ch12/graph_replay"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("ch12/graph_replay"), std::string::npos);
  EXPECT_EQ(r.out.find("ch12/graph_update"), std::string::npos);
}

}  // namespace
