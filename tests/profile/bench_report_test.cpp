// `aipe report` on the recorded `aipe bench generate` / `aipe bench serve` files (docs/results): every number in
// the Markdown tables is the file's, rounded as bench_report.hpp states, rows in the file's order; the page
// places one point per run (per series for serve); malformed files are errors naming the field and the file.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <functional>
#include <limits>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "../cli/run_cli.hpp"
#include "aipe/bench_report.hpp"
#include "aipe/profile/bench_report.hpp"
#include "aipe/profile/html_report.hpp"

using namespace aipe;
using namespace aipe::profile;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const fs::path kResults = fs::path(AIPE_SOURCE_DIR) / "docs/results";
const char* kGenerateFiles[] = {"h100-bench-generate-llama-3.1-8b-f3e43f5.json", "h100-bench-generate-gpt-oss-120b-f3e43f5.json",
                                "h100-bench-generate-gpt-oss-20b-b74fbef.json", "h200-bench-generate-llama-3.1-8b.json",
                                "h100-bench-generate-llama-3.1-8b-no-pdl-f3e43f5.json"};
const char* kServe = "h100-bench-serve-llama-3.2-1b-f3e43f5.json";

json load(const std::string& name) {
  std::ifstream f(kResults / name);
  EXPECT_TRUE(f.good()) << name;
  return json::parse(f);
}

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}
std::string ms(const json& v, int digits) { return fmt(digits == 2 ? "%.2f" : "%.3f", v.get<double>() * 1e3); }

AnyReport parse(const json& j) {
  std::istringstream is(j.dump());
  return read_any_report(is);
}

std::string markdown_of(const std::vector<NamedReport>& v) {
  std::ostringstream os;
  write_report_markdown(os, v, false);
  return os.str();
}

std::string html_of(const std::vector<NamedReport>& v) {
  std::ostringstream os;
  write_html(os, v);
  return os.str();
}

std::size_t count(const std::string& hay, const std::string& needle) {
  std::size_t n = 0;
  for (auto p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}

// Each row, found after the previous one: the table holds the runs in the file's order.
void expect_rows_in_order(const std::string& md, const std::vector<std::string>& rows) {
  std::size_t at = 0;
  for (const auto& r : rows) {
    const auto p = md.find(r, at);
    ASSERT_NE(p, std::string::npos) << "row not found (or out of order): " << r << "\n" << md;
    at = p + r.size();
  }
}

std::string generate_row(const json& x) {
  const double bound = x.value("bound_step_s", 0.0), frac = x.value("fraction_of_bound", 0.0);
  return "| " + std::to_string(x["batch"].get<int>()) + " | " + ms(x["ttft_s"], 2) + " | " + ms(x["tpot_s"]["p50"], 3) +
         " | " + ms(x["tpot_s"]["p90"], 3) + " | " + ms(x["tpot_s"]["p99"], 3) + " | " +
         fmt("%.1f", x["decode_tokens_per_s"].get<double>()) + " | " + x.value("bound", std::string("-")) + " | " +
         (bound > 0 ? fmt("%.3f", bound * 1e3) : "-") + " | " +
         (bound > 0 ? fmt("%.1f", x["batch"].get<double>() / bound) : "-") + " | " +
         (frac > 0 ? fmt("%.1f%%", 100 * frac) : "-") + " |";
}

TEST(BenchReport, GenerateMarkdownHoldsEveryRunOfEachRecordedFile) {
  for (const char* name : kGenerateFiles) {
    SCOPED_TRACE(name);
    const json j = load(name);
    const AnyReport r = parse(j);
    ASSERT_TRUE(std::holds_alternative<BenchGenerateReport>(r));
    const std::string md = markdown_of({named_report(name, r)});
    EXPECT_NE(md.find("### Bench generate: " + j["model"]["name"].get<std::string>() + " on " + j["device"].get<std::string>()),
              std::string::npos) << md;
    EXPECT_NE(md.find(j["git_revision"].get<std::string>()), std::string::npos);
    EXPECT_NE(md.find("`" + j["command"].get<std::string>() + "`"), std::string::npos);
    EXPECT_NE(md.find(fmt("%.2f GB of weights", j["model"]["weight_bytes"].get<double>() / 1e9)), std::string::npos);
    EXPECT_NE(md.find(fmt("DRAM %.0f GB/s, ", j["dram_gbps"].get<double>()) + j["dram_source"].get<std::string>()),
              std::string::npos) << md;
    if (j.contains("bf16_tflops"))
      EXPECT_NE(md.find(fmt("BF16 %.0f TFLOP/s, ", j["bf16_tflops"].get<double>()) + j["bf16_source"].get<std::string>()),
                std::string::npos) << md;
    else
      EXPECT_NE(md.find("BF16 not recorded"), std::string::npos) << md;
    const std::string pdl = j.contains("programmatic_launch") ? (j["programmatic_launch"].get<bool>() ? "on" : "off")
                                                              : "not recorded";
    EXPECT_NE(md.find("PDL " + pdl + ", CUDA graphs " + (j["cuda_graphs"].get<bool>() ? "on" : "off")), std::string::npos)
        << md;
    std::vector<std::string> rows;
    for (const auto& x : j["runs"]) rows.push_back(generate_row(x));
    expect_rows_in_order(md, rows);
    EXPECT_EQ(count(md, "\n| "), j["runs"].size() + 2) << md;  // header, rule, one row per run
  }
}

TEST(BenchReport, ServeMarkdownHoldsEveryRateInOrder) {
  const json j = load(kServe);
  const AnyReport r = parse(j);
  ASSERT_TRUE(std::holds_alternative<BenchServeReport>(r));
  const std::string md = markdown_of({named_report(kServe, r)});
  EXPECT_NE(md.find("### Bench serve: synthetic:llama-3.2-1b at http://127.0.0.1:8123"), std::string::npos) << md;
  EXPECT_NE(md.find("SLOs: none"), std::string::npos) << md;
  std::vector<std::string> rows;
  for (const auto& x : j["runs"])
    rows.push_back("| " + fmt("%g req/s", x["rate"].get<double>()) + " | " + std::to_string(x["completed"].get<int>()) +
                   " | " + std::to_string(x["failed"].get<int>()) + " | " + fmt("%.2f", x["request_throughput"].get<double>()) +
                   " | " + fmt("%.1f", x["output_throughput"].get<double>()) + " | " + ms(x["ttft_s"]["p50"], 2) + " | " +
                   ms(x["ttft_s"]["p90"], 2) + " | " + ms(x["ttft_s"]["p99"], 2) + " | " + ms(x["tpot_s"]["p50"], 3) + " | " +
                   ms(x["tpot_s"]["p90"], 3) + " | " + ms(x["tpot_s"]["p99"], 3) + " | " + ms(x["itl_s"]["p99"], 3) + " | " +
                   fmt("%.2f", x["goodput"].get<double>()) + " |");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].substr(0, 12), "| 4 req/s | ");
  expect_rows_in_order(md, rows);
}

TEST(BenchReport, ServeLoadAndSlosAreNamed) {
  json j = load(kServe);
  j["slo_ttft_ms"] = 50;
  j["slo_tpot_ms"] = 2.5;
  j["runs"][0]["rate"] = 0;
  j["runs"][1]["concurrency"] = 8;
  const std::string md = markdown_of({named_report("s.json", parse(j))});
  EXPECT_NE(md.find("SLOs: TTFT <= 50 ms, TPOT <= 2.5 ms"), std::string::npos) << md;
  expect_rows_in_order(md, {"| all at once | 64 |", "| concurrency 8 | 64 |"});
}

// A shared prefix is stated with the workload; hang-ups, malformed bodies and the drain check get columns of their
// own, and only in files that have them.
TEST(BenchReport, ServeMixedInWorkloadsGetTheirColumns) {
  json j = load(kServe);
  EXPECT_EQ(markdown_of({named_report("plain.json", parse(j))}).find("hung up"), std::string::npos);
  j["shared_prefix"] = 64;
  j["malformed_fraction"] = 0.1;
  j["disconnect_fraction"] = 0.2;
  j["runs"][0]["disconnected"] = 12;
  j["runs"][0]["malformed"] = 6;
  j["runs"][0]["malformed_rejected"] = 5;
  j["runs"][0]["malformed_unexpected"] = 1;
  j["runs"][0]["metrics_drained"] = false;
  const AnyReport r = parse(j);
  const auto& s = std::get<BenchServeReport>(r);
  EXPECT_EQ(s.shared_prefix, 64);
  EXPECT_EQ(s.runs[0].malformed_unexpected, 1);
  EXPECT_EQ(s.runs[1].metrics_drained, std::nullopt);
  const std::string md = markdown_of({named_report("mixed.json", r)});
  EXPECT_NE(md.find("output 64 tokens, the first 64 shared by every prompt, 0.1 of the requests malformed and 0.2 "
                    "hanging up mid-stream"), std::string::npos) << md;
  EXPECT_NE(md.find("| goodput req/s | hung up | malformed | answered 400 | drained |"), std::string::npos) << md;
  expect_rows_in_order(md, {"| 4 req/s | 64 |", fmt("| %.2f | 12 | 6 | 5 | no |", j["runs"][0]["goodput"].get<double>()),
                            "| 16 req/s | 64 |", fmt("| %.2f | 0 | 0 | 0 |  |", j["runs"][1]["goodput"].get<double>())});
  EXPECT_NE(html_of({named_report("mixed.json", r)}).find("answered 400"), std::string::npos);
}

TEST(BenchReport, SchemaTaggedFilesReadAsTheirShapeDoes) {
  json g = load(kGenerateFiles[0]);
  g["schema"] = kBenchGenerateSchema;
  EXPECT_TRUE(std::holds_alternative<BenchGenerateReport>(parse(g)));
  json s = load(kServe);
  s.erase("benchmark");
  s["schema"] = kBenchServeSchema;
  EXPECT_TRUE(std::holds_alternative<BenchServeReport>(parse(s)));
  // A generate-shaped file that says it is a serve file is read (and rejected) as one.
  g["schema"] = kBenchServeSchema;
  EXPECT_THROW(parse(g), std::runtime_error);
}

TEST(BenchReport, SideBySideGroupsOneModelAcrossFiles) {
  const char* pdl = kGenerateFiles[0];
  const char* no_pdl = kGenerateFiles[4];
  const json a = load(pdl), b = load(no_pdl);
  const std::string md = markdown_of({named_report(pdl, parse(a)), named_report(no_pdl, parse(b))});
  ASSERT_NE(md.find("### Side by side: synthetic:llama-3.1-8b on NVIDIA H100 80GB HBM3, input 512, output 128"),
            std::string::npos) << md;
  const double ta = a["runs"][0]["decode_tokens_per_s"], tb = b["runs"][0]["decode_tokens_per_s"];
  const std::string side = md.substr(md.find("### Side by side"));
  expect_rows_in_order(side, {"| 1 | " + std::string(pdl) + " | on | on | " + ms(a["runs"][0]["tpot_s"]["p50"], 3) + " | " +
                                  fmt("%.1f", ta) + " |",
                              "| 1 | " + std::string(no_pdl) + " | off | on | " + ms(b["runs"][0]["tpot_s"]["p50"], 3) +
                                  " | " + fmt("%.1f", tb) + " | " + fmt("%.1f%%", 100 * b["runs"][0]["fraction_of_bound"].get<double>()) +
                                  " | " + fmt("%.2fx", tb / ta) + " |",
                              "| 64 | " + std::string(pdl) + " | on | on |"});
  // Different models do not compare.
  const std::string other = markdown_of({named_report(pdl, parse(a)), named_report("x.json", parse(load(kGenerateFiles[1])))});
  EXPECT_EQ(other.find("Side by side"), std::string::npos);
}

TEST(BenchReport, PagePlacesOnePointPerRun) {
  const json g = load(kGenerateFiles[3]), s = load(kServe);
  const std::string html = html_of({named_report("g.json", parse(g)), named_report("s.json", parse(s))});
  EXPECT_EQ(count(html, "class=\"point\" data-batch="), g["runs"].size());
  EXPECT_EQ(count(html, "class=\"bound\" data-batch="), g["runs"].size());
  for (const auto& x : g["runs"])
    EXPECT_EQ(count(html, "class=\"point\" data-batch=\"" + std::to_string(x["batch"].get<int>()) + "\""), 1u);
  for (const char* series : {"tpot-p50", "tpot-p99", "ttft-p50", "ttft-p99"})
    EXPECT_EQ(count(html, std::string("class=\"point\" data-series=\"") + series + "\""), s["runs"].size()) << series;
  EXPECT_EQ(count(html, "<svg "), 3u);
  EXPECT_EQ(html.find("http://www.w3.org/2000/svg\"") != std::string::npos, true);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("src=\""), std::string::npos);  // no external assets
  EXPECT_EQ(placed_runs(std::get<BenchGenerateReport>(parse(g))), int(g["runs"].size()));
  EXPECT_EQ(placed_runs(std::get<BenchServeReport>(parse(s))), int(s["runs"].size()));
}

TEST(BenchReport, RunsWithNothingCompletedStillGetTheirPoints) {
  json s = load(kServe);
  for (auto& x : s["runs"]) x["output_throughput"] = 0;
  const std::string html = html_of({named_report("s.json", parse(s))});
  EXPECT_EQ(count(html, "class=\"point\" data-series=\"tpot-p50\""), s["runs"].size()) << html;
  json g = load(kGenerateFiles[2]);  // one batch size: the axis still spans it
  const std::string page = html_of({named_report("g.json", parse(g))});
  EXPECT_EQ(count(page, "class=\"point\" data-batch=\"1\""), 1u) << page;
}

// Each malformed file is rejected with the field named.
TEST(BenchReport, MalformedFilesNameTheField) {
  struct Case {
    const char* file;
    std::function<void(json&)> spoil;
    const char* field;
  };
  const std::vector<Case> cases = {
      {kGenerateFiles[0], [](json& j) { j["runs"][1]["tpot_s"].erase("p99"); }, "runs[1].tpot_s.p99: missing"},
      {kGenerateFiles[0], [](json& j) { j["runs"][0]["ttft_s"] = "fast"; }, "runs[0].ttft_s"},
      {kGenerateFiles[0], [](json& j) { j["runs"][0]["batch"] = 0; }, "runs[0].batch"},
      {kGenerateFiles[0], [](json& j) { j["runs"][0]["batch"] = 1.5; }, "runs[0].batch"},
      {kGenerateFiles[0], [](json& j) { j["runs"][1]["decode_tokens_per_s"] = -3; }, "runs[1].decode_tokens_per_s"},
      {kGenerateFiles[0], [](json& j) { j["runs"][0]["bound"] = "latency"; }, "runs[0].bound"},
      {kGenerateFiles[0], [](json& j) { j["model"] = 7; }, "model"},
      {kGenerateFiles[0], [](json& j) { j["programmatic_launch"] = "yes"; }, "programmatic_launch"},
      {kGenerateFiles[0], [](json& j) { j["schema"] = kBenchGenerateSchema; j["runs"] = 3; }, "runs: missing or not an array"},
      {kGenerateFiles[0], [](json& j) { j["schema"] = "aipe.bench.generate/9"; }, "schema: unknown"},
      {kServe, [](json& j) { j["runs"][0]["itl_s"] = nullptr; }, "runs[0].itl_s: missing"},
      {kServe, [](json& j) { j["runs"][1]["completed"] = -1; }, "runs[1].completed"},
      {kServe, [](json& j) { j["runs"][1]["ttft_s"]["p50"] = std::numeric_limits<double>::quiet_NaN(); }, "runs[1].ttft_s.p50"},
      {kServe, [](json& j) { j["runs"][0] = "x"; }, "runs[0]: not an object"},
      {kServe, [](json& j) { j = json{{"runs", json::array()}}; }, "not an aipe report"},
      {kServe, [](json& j) { j["runs"][0]["malformed"] = 2; j["runs"][0]["malformed_rejected"] = 3; }, "runs[0].malformed_rejected"},
      {kServe, [](json& j) { j["runs"][1]["malformed"] = 4; j["runs"][1]["malformed_rejected"] = 3;
                             j["runs"][1]["malformed_unexpected"] = 2; }, "runs[1].malformed_unexpected"},
      {kServe, [](json& j) { j["runs"][1]["disconnected"] = -1; }, "runs[1].disconnected"},
      {kServe, [](json& j) { j["runs"][1]["metrics_drained"] = "yes"; }, "runs[1].metrics_drained"},
      {kServe, [](json& j) { j["malformed_fraction"] = 1.5; }, "malformed_fraction"},
      {kServe, [](json& j) { j["shared_prefix"] = -2; }, "shared_prefix"},
  };
  for (const auto& c : cases) {
    json j = load(c.file);
    c.spoil(j);
    SCOPED_TRACE(j.dump().substr(0, 120));
    try {
      parse(j);
      ADD_FAILURE() << "accepted; expected an error naming " << c.field;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(c.field), std::string::npos) << e.what();
    }
  }
}

TEST(BenchReport, CommandDrawsBenchFilesAndRejectsBadOnes) {
  const std::string g = (kResults / kGenerateFiles[0]).string(), s = (kResults / kServe).string();
  const std::string run = (kResults / "h100-ch12.json").string();
  // Mixed with a run report: each in its own section; --examples filters the run report only.
  const auto mixed = test::run_cli({"report", g, run, s, "--markdown", "-", "--examples", "ch12/graph_replay"});
  ASSERT_EQ(mixed.code, 0) << mixed.err;
  expect_rows_in_order(mixed.out, {"### Bench generate:", "Results from `" + run + "`", "### ch12/graph_replay", "### Bench serve:"});
  EXPECT_EQ(mixed.out.find("### ch12/graph_update"), std::string::npos);
  // --examples on bench files alone is a mistake, said so.
  const auto only = test::run_cli({"report", g, "--markdown", "-", "--examples", "ch12"});
  EXPECT_EQ(only.code, 2);
  EXPECT_NE(only.err.find("aipe bench generate"), std::string::npos) << only.err;
  // The page, to a file: the command says how many runs it placed.
  const fs::path dir = fs::temp_directory_path() / ("aipe_bench_report_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const auto page = test::run_cli({"report", g, s, "--html", (dir / "p.html").string()});
  ASSERT_EQ(page.code, 0) << page.err;
  EXPECT_NE(page.out.find(g + ": 2 runs placed on the chart"), std::string::npos) << page.out;
  EXPECT_NE(page.out.find(s + ": 2 runs placed on the charts"), std::string::npos) << page.out;
  // A malformed file: exit 2, the file and the field named.
  json bad = load(kServe);
  bad["runs"][1]["output_throughput"] = "many";
  const std::string bad_path = (dir / "bad.json").string();
  std::ofstream(bad_path) << bad.dump();
  const auto b = test::run_cli({"report", bad_path, "--markdown", "-"});
  EXPECT_EQ(b.code, 2);
  EXPECT_NE(b.err.find(bad_path), std::string::npos) << b.err;
  EXPECT_NE(b.err.find("runs[1].output_throughput"), std::string::npos) << b.err;
  fs::remove_all(dir);
}

}  // namespace
