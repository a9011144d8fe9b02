// The ncu raw-page CSV parser on recorded output (tests/fixtures/ncu_*.csv, captured on an H100 by
// `aipe profile --raw-dir`), and on malformed and truncated variants of it.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "aipe/profile/ncu.hpp"

using namespace aipe::profile;
namespace fs = std::filesystem;

namespace {

std::vector<fs::path> fixtures() {
  std::vector<fs::path> v;
  for (const auto& e : fs::directory_iterator(AIPE_FIXTURE_DIR))
    if (e.path().filename().string().rfind("ncu_", 0) == 0 && e.path().extension() == ".csv") v.push_back(e.path());
  std::sort(v.begin(), v.end());
  return v;
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

NcuReport parse(const std::string& text) {
  std::istringstream s(text);
  return parse_ncu_csv(s);
}

// A hand-written raw page in ncu's layout (header, units row, one kernel), with scaled units.
const char* kSmall =
    "==PROF== Connected to process 123 (/usr/bin/aipe)\n"
    "\"ID\",\"Process ID\",\"Process Name\",\"Host Name\",\"Kernel Name\",\"Context\",\"Stream\",\"Block Size\","
    "\"Grid Size\",\"Device\",\"CC\",\"dram__bytes_read.sum\",\"dram__bytes_write.sum\","
    "\"gpu__time_duration.sum\",\"gpu__dram_throughput.avg.pct_of_peak_sustained_elapsed\","
    "\"sm__throughput.avg.pct_of_peak_sustained_elapsed\",\"lts__t_sector_hit_rate.pct\","
    "\"smsp__average_warps_issue_stalled_long_scoreboard_per_issue_active.ratio\","
    "\"smsp__average_warps_issue_stalled_barrier_per_issue_active.ratio\",\"device__attribute_display_name\"\n"
    "\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"Mbyte\",\"Kbyte\",\"usecond\",\"%\",\"%\",\"%\",\"inst\","
    "\"inst\",\"\"\n"
    "\"0\",\"123\",\"aipe\",\"127.0.0.1\",\"void (anonymous namespace)::copy_kernel<4>(const float *, float *, "
    "unsigned long)\",\"1\",\"13\",\"(256, 1, 1)\",\"(1056, 1, 1)\",\"0\",\"9.0\",\"1,073.74\",\"1,073,741.82\","
    "\"712.5\",\"88.1\",\"21.5\",\"1.2\",\"30.5\",\"0.5\",\"NVIDIA H100 80GB HBM3\"\n"
    "==PROF== Disconnected from process 123\n";

}  // namespace

TEST(NcuParser, HandWrittenPageAndUnits) {
  const NcuReport r = parse(kSmall);
  ASSERT_EQ(r.kernels.size(), 1u);
  const NcuKernel& k = r.kernels[0];
  EXPECT_EQ(k.stream, "13");
  EXPECT_NEAR(*k.get("gpu__time_duration.sum"), 712500.0, 1e-6);             // us -> ns
  EXPECT_NEAR(*k.get("dram__bytes_read.sum"), 1073.74e6, 1.0);                 // Mbyte -> byte, "1,073.74"
  EXPECT_FALSE(k.get("device__attribute_display_name").has_value());           // text, not a number
  const NcuSummary s = summarize(r);
  EXPECT_EQ(s.kernels, 1);
  EXPECT_NEAR(s.dram_bytes, 1073.74e6 + 1073741.82e3, 1.0);  // Mbyte + Kbyte
  EXPECT_NEAR(s.dram_gbps, (1073.74e6 + 1073741.82e3) / 712500.0, 1e-6);
  EXPECT_DOUBLE_EQ(s.dram_pct, 88.1);
  EXPECT_DOUBLE_EQ(s.sm_pct, 21.5);
  EXPECT_DOUBLE_EQ(s.l2_hit_pct, 1.2);
  EXPECT_TRUE(std::isnan(s.l1_hit_pct));  // not in this page
  ASSERT_EQ(s.stalls.size(), 2u);
  EXPECT_EQ(s.stalls[0].first, "long_scoreboard");
  EXPECT_EQ(s.kernel_names, "copy_kernel<4>");
  std::map<std::string, double> m;
  add_metrics(s, m);
  EXPECT_DOUBLE_EQ(m.at("ncu_dram_pct"), 88.1);
  EXPECT_EQ(m.count("ncu_l1_hit_pct"), 0u);
  EXPECT_DOUBLE_EQ(m.at("ncu_stall_long_scoreboard"), 30.5);
  EXPECT_EQ(m.count("ncu_l2_bytes"), 0u);  // no L2 sector counts in this page
  EXPECT_EQ(m.count("ncu_l2_fabric_bytes"), 0u);
}

// L2 traffic: sectors of 32 bytes, summed over the kernels of the range; a total only when every
// kernel has the metric (a partial sum would read as a smaller number, not a missing one).
TEST(NcuParser, L2SectorsBecomeBytes) {
  NcuReport r;
  NcuKernel a, b;
  a.name = "a";
  a.metrics = {{"gpu__time_duration.sum", 1000}, {"lts__t_sectors.sum", 1000}, {"lts__t_sectors_srcunit_ltcfabric.sum", 250}};
  b.name = "b";
  b.metrics = {{"gpu__time_duration.sum", 3000}, {"lts__t_sectors.sum", 3000}};
  r.kernels = {a};
  NcuSummary s = summarize(r);
  EXPECT_DOUBLE_EQ(s.l2_bytes, 32000);
  EXPECT_DOUBLE_EQ(s.l2_fabric_bytes, 8000);
  std::map<std::string, double> m;
  add_metrics(s, m);
  EXPECT_DOUBLE_EQ(m.at("ncu_l2_bytes"), 32000);
  EXPECT_DOUBLE_EQ(m.at("ncu_l2_fabric_bytes"), 8000);
  r.kernels = {a, b};
  s = summarize(r);
  EXPECT_DOUBLE_EQ(s.l2_bytes, 128000);
  EXPECT_TRUE(std::isnan(s.l2_fabric_bytes));  // b has no fabric count
}

TEST(NcuParser, RecordedFixturesParse) {
  const auto fx = fixtures();
  ASSERT_FALSE(fx.empty()) << "no tests/fixtures/ncu_*.csv";
  int with_kernels = 0;
  for (const auto& p : fx) {
    SCOPED_TRACE(p.string());
    const NcuReport r = parse_ncu_csv_file(p.string());
    if (r.kernels.empty()) continue;  // a rung with no kernel (a copy-engine memcpy)
    ++with_kernels;
    const NcuSummary s = summarize(r);
    EXPECT_GT(s.duration_ns, 0);
    EXPECT_GT(s.dram_bytes, 0);
    EXPECT_GT(s.dram_pct, 0);
    EXPECT_LE(s.dram_pct, 100.5);
    EXPECT_GT(s.sm_pct, 0);
    EXPECT_GT(s.occupancy_pct, 0);
    EXPECT_GE(s.l2_hit_pct, 0);
    EXPECT_FALSE(s.stalls.empty());
    for (const auto& k : r.kernels) EXPECT_FALSE(k.name.empty());
  }
  EXPECT_GT(with_kernels, 0);
}

TEST(NcuParser, TruncatedFixtureIsAClearError) {
  const auto fx = fixtures();
  ASSERT_FALSE(fx.empty());
  for (const auto& p : fx) {
    const std::string text = slurp(p);
    const auto header = text.find("\"ID\"");
    if (header == std::string::npos) continue;
    const auto last_row = text.rfind("\n\"", text.size() - 2);
    // Cut the last data row in half (mid-quote) and after a comma: both must be reported, not crash.
    for (std::size_t cut : {last_row + (text.size() - last_row) / 2, text.rfind("\",\"") + 2}) {
      SCOPED_TRACE(p.string() + " cut at " + std::to_string(cut));
      try {
        parse(text.substr(0, cut));
        ADD_FAILURE() << "truncated input parsed without error";
      } catch (const NcuParseError& e) {
        EXPECT_NE(std::string(e.what()).find("line"), std::string::npos) << e.what();
      }
    }
  }
}

TEST(NcuParser, MalformedInputs) {
  EXPECT_THROW(parse(""), NcuParseError);
  EXPECT_THROW(parse("hello\nworld\n"), NcuParseError);                            // no table
  EXPECT_THROW(parse("==ERROR== the application returned an error code (1)\n"), NcuParseError);
  EXPECT_THROW(parse("\"ID\",\"Process ID\"\n\"0\",\"1\"\n"), NcuParseError);       // no Kernel Name column
  std::string bad = kSmall;
  bad.replace(bad.find("\"712.5\""), 7, "\"7x2.5\"");
  try {
    parse(bad);
    ADD_FAILURE();
  } catch (const NcuParseError& e) {
    EXPECT_NE(std::string(e.what()).find("gpu__time_duration.sum"), std::string::npos) << e.what();
  }
  std::string extra = kSmall;
  extra.insert(extra.find("\"NVIDIA H100"), "\"1\",");  // one field too many
  EXPECT_THROW(parse(extra), NcuParseError);
  EXPECT_THROW(parse_ncu_csv_file("/nonexistent/ncu.csv"), NcuParseError);
  // ncu saying that nothing was profiled is not an error: the rung launched no kernel.
  EXPECT_TRUE(parse("==PROF== Connected\n==WARNING== No kernels were profiled.\n").kernels.empty());
}

TEST(NcuParser, CommandLine) {
  const auto a = ncu_args("default", "aipe_profile", "/tmp/x.csv");
  auto has = [&](const std::string& s) { return std::find(a.begin(), a.end(), s) != a.end(); };
  EXPECT_TRUE(has("--clock-control"));
  EXPECT_TRUE(has("none"));
  EXPECT_TRUE(has("aipe_profile/"));
  EXPECT_TRUE(has("raw"));
  EXPECT_FALSE(has("full"));
  auto metrics = [](const std::vector<std::string>& v) {
    const auto it = std::find(v.begin(), v.end(), "--metrics");
    return it == v.end() || it + 1 == v.end() ? std::string() : *(it + 1);
  };
  EXPECT_NE(metrics(a).find("lts__t_sectors.sum"), std::string::npos);
  EXPECT_EQ(metrics(a).find("ltcfabric"), std::string::npos);  // only where the GPU has the metric
  const auto h = ncu_args("default", "aipe_profile", "/tmp/x.csv", true);
  EXPECT_NE(metrics(h).find("lts__t_sectors_srcunit_ltcfabric.sum"), std::string::npos);
  const auto f = ncu_args("full", "aipe_profile", "/tmp/x.csv");
  EXPECT_NE(std::find(f.begin(), f.end(), "full"), f.end());
}
