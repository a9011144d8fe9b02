#include "aipe/report.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

using namespace aipe;

namespace {

RunReport fixture() {
  RunReport r;
  r.aipe_version = "0.1.0";
  r.git_revision = "abcdef123456";
  r.timestamp = "2026-11-25T12:00:00Z";
  r.command = "aipe run ch07/copy";
  r.seed = 24301;
  DeviceInfo d;
  d.name = "NVIDIA H100 80GB HBM3";
  d.uuid = "GPU-00000000-0000-0000-0000-000000000000";
  d.cc_major = 9;
  d.sm_count = 132;
  d.max_sm_clock_khz = 1980000;
  d.mem_clock_khz = 2619000;
  d.bus_width_bits = 5120;
  d.l2_bytes = 52428800;
  r.device = d;
  r.spec = derive_spec_peaks(d);
  SpecPeaks m;
  m.dram_gbps = 3000;
  r.measured = m;
  r.measured_source = "aipe peak 2026-11-24";

  auto base = [](std::string v, double ms) {
    Result x;
    x.example = "ch07/copy";
    x.variant = std::move(v);
    x.summary = "summary of " + x.variant;
    x.sizes = {{"n", 268435456}};
    x.status = Status::passed;
    x.timing = "standard";
    x.timed = true;
    x.samples = 50;
    x.median_ms = ms;
    x.min_ms = ms * 0.98;
    x.p90_ms = ms * 1.02;
    x.noise = 0.004;
    x.stop_reason = "converged";
    x.bytes = 2147483648.0;
    x.gbps = x.bytes / (ms / 1e3) / 1e9;
    x.pct_of_spec = 100 * x.gbps / 3352.32;
    x.pct_of_measured = 100 * x.gbps / 3000;
    x.bound = "memory";
    x.norm_rel_error = 0;
    return x;
  };
  r.results.push_back(base("scalar", 1.0));
  r.results.push_back(base("vec4", 0.75));
  r.results.push_back(base("memcpy", 0.72));
  r.results.back().metrics["overlap_pct"] = 91.5;
  Result f = base("broken", 0);
  f.status = Status::failed;
  f.timed = false;
  f.reason = "3 of 268435456 elements wrong, first at [7]: expected 1, got nan";
  f.norm_rel_error = 1;
  f.gbps = f.pct_of_spec = f.pct_of_measured = 0;
  r.results.push_back(f);
  Result s = base("wgmma", 0);
  s.example = "ch10/gemm";
  s.sizes = {{"k", 8192}, {"m", 8192}, {"n", 8192}};
  s.status = Status::skipped;
  s.timed = false;
  s.reason = "needs an sm_90a (Hopper) GPU; NVIDIA A100 is sm_80";
  s.gbps = s.pct_of_spec = s.pct_of_measured = 0;
  r.results.push_back(s);
  compute_speedups(r.results);
  return r;
}

std::string golden_path(const std::string& name) { return std::string(AIPE_GOLDEN_DIR) + "/" + name; }

void check_golden(const std::string& name, const std::string& got) {
  const std::string path = golden_path(name);
  if (std::getenv("AIPE_UPDATE_GOLDEN")) {
    std::ofstream(path) << got;
    GTEST_SKIP() << "updated " << path;
  }
  std::ifstream f(path);
  ASSERT_TRUE(f) << "missing golden file " << path << " (run with AIPE_UPDATE_GOLDEN=1 to create it)";
  std::stringstream want;
  want << f.rdbuf();
  EXPECT_EQ(got, want.str()) << "output differs from " << path;
}

}  // namespace

TEST(Report, SpeedupsWithinEachExample) {
  const RunReport r = fixture();
  EXPECT_DOUBLE_EQ(r.results[0].speedup_vs_baseline, 1.0);
  EXPECT_NEAR(r.results[1].speedup_vs_baseline, 1.0 / 0.75, 1e-12);
  EXPECT_NEAR(r.results[1].speedup_vs_library, 0.72 / 0.75, 1e-12);
  EXPECT_DOUBLE_EQ(r.results[2].speedup_vs_library, 1.0);
  EXPECT_EQ(r.results[3].speedup_vs_baseline, 0) << "a failed rung gets no ratio";
  EXPECT_EQ(r.passed(), 3);
  EXPECT_EQ(r.failed(), 1);
  EXPECT_EQ(r.skipped(), 1);
}

TEST(Report, DishonestTimingsAreNotComparedOrBaseline) {
  RunReport r = fixture();
  r.results[0].timing = "host_clock_no_sync";  // the scalar rung is no longer a valid baseline
  compute_speedups(r.results);
  EXPECT_EQ(r.results[0].speedup_vs_baseline, 0);
  EXPECT_DOUBLE_EQ(r.results[1].speedup_vs_baseline, 1.0) << "vec4 becomes the baseline";
}

TEST(Report, ComponentRungsAreNeverBaselineOrCompared) {
  RunReport r = fixture();
  r.results[0].component = true;  // e.g. "the transfers alone": a floor, not a solution
  compute_speedups(r.results);
  EXPECT_EQ(r.results[0].speedup_vs_baseline, 0);
  EXPECT_DOUBLE_EQ(r.results[1].speedup_vs_baseline, 1.0) << "the next rung becomes the baseline";
  EXPECT_FALSE(honestly_timed(r.results[0]));
  r.results[1].timing = "standard_no_flush";
  EXPECT_TRUE(honestly_timed(r.results[1]));
}

TEST(Report, GeomeansUseTheBestOwnRung) {
  const Geomeans g = geomeans(fixture().results);
  EXPECT_EQ(g.n_baseline, 1);
  EXPECT_NEAR(g.vs_baseline, 1.0 / 0.75, 1e-12);
  EXPECT_EQ(g.n_library, 1);
  EXPECT_NEAR(g.vs_library, 0.72 / 0.75, 1e-12);
}

TEST(Report, TableGolden) {
  std::ostringstream s;
  write_table(s, fixture());
  check_golden("report_table.txt", s.str());
}

TEST(Report, JsonGolden) {
  std::ostringstream s;
  write_json(s, fixture());
  check_golden("report.json", s.str());
}

TEST(Report, CsvGolden) {
  std::ostringstream s;
  write_csv(s, fixture());
  check_golden("report.csv", s.str());
}

TEST(Report, MarkdownGolden) {
  std::ostringstream s;
  write_markdown(s, fixture());
  check_golden("report.md", s.str());
}

TEST(Report, JsonRoundTrip) {
  const RunReport a = fixture();
  std::stringstream s;
  write_json(s, a);
  const RunReport b = read_json(s);
  ASSERT_EQ(b.results.size(), a.results.size());
  EXPECT_EQ(b.results[3].status, Status::failed);
  EXPECT_EQ(b.results[3].reason, a.results[3].reason);
  EXPECT_DOUBLE_EQ(b.results[1].median_ms, a.results[1].median_ms);
  EXPECT_EQ(b.results[4].sizes, a.results[4].sizes);
  ASSERT_TRUE(b.device);
  EXPECT_EQ(b.device->name, a.device->name);
  EXPECT_DOUBLE_EQ(b.results[2].metrics.at("overlap_pct"), 91.5);
  ASSERT_TRUE(b.measured);
  EXPECT_DOUBLE_EQ(b.measured->dram_gbps, 3000);
}

TEST(Report, JsonHasTheDocumentedFields) {
  std::stringstream s;
  write_json(s, fixture());
  const auto j = nlohmann::json::parse(s.str());
  for (const char* k : {"schema", "aipe", "timestamp", "device", "ceilings", "results", "summary"}) EXPECT_TRUE(j.contains(k)) << k;
  for (const char* k : {"example", "variant", "sizes", "median_ms", "min_ms", "noise", "gbps", "tflops",
                        "speedup_vs_baseline", "max_rel_error", "status", "reason"})
    EXPECT_TRUE(j["results"][0].contains(k)) << k;
}

TEST(Report, MalformedJsonIsAClearError) {
  std::stringstream bad1("{not json");
  EXPECT_THROW(read_json(bad1), std::runtime_error);
  std::stringstream bad2(R"({"schema": "something else"})");
  try {
    read_json(bad2);
    FAIL() << "accepted a foreign schema";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("aipe.run/1"), std::string::npos);
  }
  std::stringstream bad3(R"({"schema": "aipe.run/1", "aipe": {}, "device": null, "ceilings": {"spec": {}, "measured": null},
                            "results": [{"example": "x", "variant": "y", "status": "weird"}]})");
  EXPECT_THROW(read_json(bad3), std::runtime_error);
  std::stringstream truncated(R"({"schema": "aipe.run/1", "aipe": {)");
  EXPECT_THROW(read_json(truncated), std::runtime_error);
}

TEST(Report, NonFiniteNumbersBecomeNullAndReadBackAsZero) {
  RunReport r = fixture();
  r.results[0].gbps = std::numeric_limits<double>::infinity();
  r.results[0].noise = std::numeric_limits<double>::quiet_NaN();
  std::stringstream s;
  write_json(s, r);
  const auto j = nlohmann::json::parse(s.str());
  EXPECT_TRUE(j["results"][0]["gbps"].is_null());
  s.seekg(0);
  const RunReport b = read_json(s);
  EXPECT_EQ(b.results[0].gbps, 0);
  EXPECT_EQ(b.results[0].noise, 0);
}

TEST(Report, CsvEscapesCommasAndQuotes) {
  RunReport r = fixture();
  r.results[3].reason = "bad, \"very\" bad";
  std::ostringstream s;
  write_csv(s, r);
  EXPECT_NE(s.str().find("\"bad, \"\"very\"\" bad\""), std::string::npos);
}

TEST(Report, ChoiceAxesRoundTripAndShowBesideTheSizes) {
  RunReport a = fixture();
  for (auto& r : a.results) r.choices = {{"mask", "causal"}, {"layout", "row"}};
  std::stringstream s;
  write_json(s, a);
  const auto j = nlohmann::json::parse(s.str());
  EXPECT_EQ(j["results"][0]["choices"]["mask"], "causal");
  EXPECT_EQ(j["results"][0]["sizes"].size(), 1u) << "choices are not mixed into the integer sizes";
  s.seekg(0);
  const RunReport b = read_json(s);
  EXPECT_EQ(b.results[0].choices, a.results[0].choices);
  std::ostringstream csv, table;
  write_csv(csv, a);
  EXPECT_NE(csv.str().find("layout=row;mask=causal;n=268435456"), std::string::npos) << csv.str();
  write_table(table, a);
  EXPECT_NE(table.str().find("layout=row mask=causal n=268435456"), std::string::npos) << table.str();
}

TEST(Report, FilesWithoutChoicesReadAsBefore) {
  // Written without choice axes: no "choices" key at all, so older readers and files agree.
  std::stringstream s;
  write_json(s, fixture());
  EXPECT_EQ(s.str().find("\"choices\""), std::string::npos);
  // The golden file stands for the results files written before choice axes existed.
  std::ifstream old(std::string(AIPE_GOLDEN_DIR) + "/report.json");
  ASSERT_TRUE(old) << "golden report.json missing";
  const RunReport r = read_json(old);
  ASSERT_FALSE(r.results.empty());
  for (const auto& x : r.results) EXPECT_TRUE(x.choices.empty());
  EXPECT_EQ(r.results[0].sizes.at("n"), 268435456);
}
