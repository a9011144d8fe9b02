// The regression gate on synthetic results: a real 10% slowdown is flagged; an unchanged rerun whose
// medians move within their measured noise is not.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "aipe/profile/compare.hpp"
#include "app.hpp"

using namespace aipe;
using namespace aipe::profile;

namespace {

Result timed(const std::string& ex, const std::string& v, double ms, double noise) {
  Result r;
  r.example = ex;
  r.variant = v;
  r.sizes = {{"n", 1 << 20}};
  r.status = Status::passed;
  r.timing = "standard";
  r.timed = true;
  r.median_ms = ms;
  r.noise = noise;
  r.samples = 50;
  return r;
}

RunReport run_of(std::vector<Result> rs) {
  RunReport r;
  r.aipe_version = "0.1.0";
  r.results = std::move(rs);
  return r;
}

const Change& find(const Comparison& c, const std::string& v) {
  for (const auto& ch : c.changes)
    if (ch.variant == v) return ch;
  throw std::runtime_error("no change for " + v);
}

}  // namespace

TEST(Compare, FlagsATenPercentSlowdown) {
  const auto a = run_of({timed("ch07/copy", "scalar", 1.00, 0.01), timed("ch07/copy", "vec4", 0.75, 0.01)});
  const auto b = run_of({timed("ch07/copy", "scalar", 1.00, 0.01), timed("ch07/copy", "vec4", 0.825, 0.01)});
  const auto c = compare(a, b);
  EXPECT_EQ(c.regressions(), 1);
  EXPECT_EQ(find(c, "vec4").verdict, Verdict::slower);
  EXPECT_NEAR(find(c, "vec4").change_pct, 10.0, 1e-9);
  EXPECT_EQ(find(c, "scalar").verdict, Verdict::unchanged);
}

TEST(Compare, PassesAnUnchangedRerunWithNoise) {
  // Medians drift by up to 3% in both directions; each run measured ~2% noise.
  const auto a = run_of({timed("e/x", "a", 1.00, 0.02), timed("e/x", "b", 2.00, 0.02), timed("e/y", "c", 0.10, 0.025)});
  const auto b = run_of({timed("e/x", "a", 1.03, 0.02), timed("e/x", "b", 1.95, 0.021), timed("e/y", "c", 0.1029, 0.02)});
  const auto c = compare(a, b);
  EXPECT_EQ(c.regressions(), 0);
  EXPECT_EQ(c.improvements(), 0);
  for (const auto& ch : c.changes) EXPECT_EQ(ch.verdict, Verdict::unchanged) << ch.variant;
}

TEST(Compare, ChangeMustBeatTheNoiseToo) {
  // 10% slower, but each run's noise is 8%: 2 x sqrt(2) x 8% = 22.6% > 10% -> not a regression.
  const auto c = compare(run_of({timed("e/x", "a", 1.0, 0.08)}), run_of({timed("e/x", "a", 1.1, 0.08)}));
  EXPECT_EQ(c.regressions(), 0);
  EXPECT_NEAR(find(c, "a").noise_pct, 200.0 * std::sqrt(2.0) * 0.08, 1e-9);
  // and the threshold: a 4% change with no noise is under the default 5%
  EXPECT_EQ(compare(run_of({timed("e/x", "a", 1.0, 0)}), run_of({timed("e/x", "a", 1.04, 0)})).regressions(), 0);
  CompareOptions strict;
  strict.threshold_pct = 2;
  EXPECT_EQ(compare(run_of({timed("e/x", "a", 1.0, 0)}), run_of({timed("e/x", "a", 1.04, 0)}), strict).regressions(), 1);
}

TEST(Compare, FasterFailingMissingAndSizes) {
  auto fail = timed("e/x", "b", 0, 0);
  fail.status = Status::failed;
  fail.timed = false;
  auto other = timed("e/x", "c", 1.0, 0.01);
  other.sizes = {{"n", 1000}};
  const auto c = compare(run_of({timed("e/x", "a", 1.0, 0.01), timed("e/x", "b", 1.0, 0.01), timed("e/x", "c", 1.0, 0.01),
                                 timed("e/x", "gone", 1.0, 0.01)}),
                         run_of({timed("e/x", "a", 0.5, 0.01), fail, other, timed("e/x", "new", 1.0, 0.01)}));
  EXPECT_EQ(find(c, "a").verdict, Verdict::faster);
  EXPECT_EQ(find(c, "b").verdict, Verdict::now_failing);
  EXPECT_EQ(find(c, "c").verdict, Verdict::sizes_differ);
  EXPECT_EQ(find(c, "gone").verdict, Verdict::only_old);
  EXPECT_EQ(find(c, "new").verdict, Verdict::only_new);
  EXPECT_EQ(c.regressions(), 1);
}

TEST(Compare, DeliberatelyWrongTimingsAreNotGated) {
  auto a = timed("ch01/measurement_pitfalls", "host_clock_no_sync", 0.01, 0.5);
  a.timing = "host_clock_no_sync";
  auto b = a;
  b.median_ms = 0.05;
  EXPECT_EQ(compare(run_of({a}), run_of({b})).changes[0].verdict, Verdict::not_timed);
}

TEST(Compare, CliExitCodes) {
  auto write = [](const std::string& path, const RunReport& r) {
    std::ofstream f(path);
    write_json(f, r);
  };
  const std::string dir = ::testing::TempDir();
  write(dir + "/old.json", run_of({timed("e/x", "a", 1.0, 0.01)}));
  write(dir + "/same.json", run_of({timed("e/x", "a", 1.01, 0.01)}));
  write(dir + "/slow.json", run_of({timed("e/x", "a", 1.1, 0.01)}));
  std::ofstream(dir + "/bad.json") << "{\"schema\": \"aipe.run/1\", \"results\": [";
  std::ostringstream o, e;
  EXPECT_EQ(cli::run({"compare", dir + "/old.json", dir + "/same.json"}, o, e), 0) << e.str();
  EXPECT_EQ(cli::run({"compare", dir + "/old.json", dir + "/slow.json"}, o, e), 1);
  EXPECT_NE(o.str().find("SLOWER"), std::string::npos);
  EXPECT_EQ(cli::run({"compare", dir + "/old.json", dir + "/slow.json", "--threshold", "20"}, o, e), 0);
  std::ostringstream o2, e2;
  EXPECT_EQ(cli::run({"compare", dir + "/old.json", dir + "/bad.json"}, o2, e2), 2);
  EXPECT_NE(e2.str().find("bad.json"), std::string::npos);
  EXPECT_EQ(cli::run({"compare", dir + "/old.json", dir + "/missing.json"}, o2, e2), 2);
}
