// Host-only logic of `aipe peak` and `aipe info`: spec peaks from recorded device properties,
// link rates, units, the sweep's sizes, peer pairs, the cached peaks, JSON. No GPU needed.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "aipe/ceilings.hpp"
#include "aipe/peak.hpp"
#include "aipe/sysinfo.hpp"
#include "fixtures/devices.hpp"

using namespace aipe;
using namespace aipe::peak;
using namespace aipe::fixtures;

namespace {

// Within `rel` of a data-sheet figure.
void near_sheet(double got, double sheet, double rel, const char* what) {
  EXPECT_NEAR(got / sheet, 1.0, rel) << what << ": derived " << got << ", data sheet " << sheet;
}

}  // namespace

// Data sheets: H100 SXM 3.35 TB/s, 989 TFLOP/s dense BF16 (at 1.83 GHz boost; aipe derives at the max
// clock the driver reports, 1.98 GHz, hence +8%), 67 TFLOP/s FP32, 34 FP64.
TEST(PeakSpec, H100Sxm) {
  const SpecPeaks p = derive_spec_peaks(h100_sxm());
  near_sheet(p.dram_gbps, 3350, 0.01, "H100 DRAM");
  near_sheet(p.bf16_tflops, 989.4 * 1980.0 / 1830.0, 0.01, "H100 BF16");
  near_sheet(p.fp8_tflops, 1978.9 * 1980.0 / 1830.0, 0.01, "H100 FP8");
  near_sheet(p.fp32_tflops, 67, 0.01, "H100 FP32");
  near_sheet(p.fp64_tflops, 34, 0.02, "H100 FP64");
  near_sheet(smem_spec_gbps(h100_sxm()), 132 * 128 * 1.98, 1e-9, "H100 shared memory");
}

TEST(PeakSpec, H200) {
  const SpecPeaks p = derive_spec_peaks(h200());
  near_sheet(p.dram_gbps, 4800, 0.03, "H200 DRAM (4.8 TB/s)");
  EXPECT_DOUBLE_EQ(p.bf16_tflops, derive_spec_peaks(h100_sxm()).bf16_tflops);  // same GH100 compute
}

// A100 SXM 80GB: 2,039 GB/s, 312 TFLOP/s BF16 dense, 156 TF32, 19.5 FP32, 9.7 FP64 (non-tensor).
TEST(PeakSpec, A100Sxm80) {
  const SpecPeaks p = derive_spec_peaks(a100_sxm_80());
  near_sheet(p.dram_gbps, 2039, 0.01, "A100 DRAM");
  near_sheet(p.bf16_tflops, 312, 0.01, "A100 BF16");
  near_sheet(p.tf32_tflops, 156, 0.01, "A100 TF32");
  near_sheet(p.fp32_tflops, 19.5, 0.01, "A100 FP32");
  near_sheet(p.fp64_tflops, 9.7, 0.01, "A100 FP64");
  near_sheet(p.int8_tops, 624, 0.01, "A100 INT8");
  EXPECT_EQ(p.fp8_tflops, 0);  // no FP8 tensor cores on Ampere
}

// B200 (HGX, 1000 W): 8 TB/s; 2.25 PFLOP/s dense BF16, 4.5 dense FP8 at its sustained clock (aipe's
// figure is at the max clock the driver reports, so within +6%).
TEST(PeakSpec, B200) {
  const SpecPeaks p = derive_spec_peaks(b200());
  near_sheet(p.dram_gbps, 8000, 0.03, "B200 DRAM");
  EXPECT_GT(p.bf16_tflops, 2250);
  EXPECT_LT(p.bf16_tflops, 2250 * 1.07);
  EXPECT_DOUBLE_EQ(p.fp8_tflops, 2 * p.bf16_tflops);
  EXPECT_EQ(DeviceInfo(b200()).arch_name(), "Blackwell");
}

TEST(PeakUnits, DecimalRates) {
  EXPECT_DOUBLE_EQ(gbps(1e9, 1000.0), 1.0);         // 1e9 bytes in 1 s = 1 GB/s (not GiB/s)
  EXPECT_DOUBLE_EQ(gbps(2.0 * (1 << 30), 1.0), 2147.483648);  // 2 GiB in 1 ms
  EXPECT_DOUBLE_EQ(tflops(2.0 * 8192.0 * 8192 * 8192, 1.0), 1099.511627776);
  EXPECT_EQ(gbps(1e9, 0), 0);
  // Bidirectional: both directions' bytes, over the time both take.
  EXPECT_DOUBLE_EQ(bidirectional_gbps(1e9, 1e9, 1000.0), 2.0);
  EXPECT_DOUBLE_EQ(bidirectional_gbps(1e9, 0, 1000.0), gbps(1e9, 1000.0));
}

TEST(PeakUnits, FormatBytes) {
  EXPECT_EQ(format_bytes(4096), "4 KiB");
  EXPECT_EQ(format_bytes(50ull << 20), "50 MiB");
  EXPECT_EQ(format_bytes(1ull << 30), "1 GiB");
  EXPECT_EQ(format_bytes(52428800 / 4), "12.5 MiB");
  EXPECT_EQ(format_bytes(1000), "1000 B");
}

TEST(PeakLinks, Pcie) {
  EXPECT_NEAR(pcie_gbps_per_direction(5, 16), 63.02, 0.01);  // 32 GT/s x 16 x 128/130 / 8
  EXPECT_NEAR(pcie_gbps_per_direction(4, 16), 31.51, 0.01);
  EXPECT_NEAR(pcie_gbps_per_direction(3, 16), 15.75, 0.01);
  EXPECT_NEAR(pcie_gbps_per_direction(2, 16), 8.0, 1e-9);    // 8b/10b
  EXPECT_NEAR(pcie_gbps_per_direction(5, 8), pcie_gbps_per_direction(5, 16) / 2, 1e-9);
  EXPECT_EQ(pcie_gbps_per_direction(9, 16), 0);
  EXPECT_EQ(pcie_gbps_per_direction(5, 0), 0);
}

TEST(PeakLinks, NvLink) {
  EXPECT_DOUBLE_EQ(nvlink_gbps_per_direction(4, 18), 450);  // H100 SXM: 900 GB/s total
  EXPECT_DOUBLE_EQ(nvlink_gbps_per_direction(3, 12), 300);  // A100 SXM: 600 GB/s total
  EXPECT_DOUBLE_EQ(nvlink_gbps_per_direction(5, 18), 900);  // B200: 1.8 TB/s total
  EXPECT_EQ(nvlink_gbps_per_direction(4, 0), 0);
  EXPECT_EQ(nvlink_gbps_per_direction(1, 4), 0);
  // NVML answers with its enum, not the major version: an H100 (NVLink 4) answers 6.
  EXPECT_EQ(nvlink_major_from_nvml(6), 4);
  EXPECT_DOUBLE_EQ(nvlink_gbps_per_direction(nvlink_major_from_nvml(6), 18), 450);
  EXPECT_EQ(nvlink_major_from_nvml(4), 3);
  EXPECT_EQ(nvlink_major_from_nvml(7), 5);
  EXPECT_EQ(nvlink_major_from_nvml(0), 0);
  EXPECT_EQ(nvlink_major_from_nvml(42), 0);
}

TEST(PeakSweep, SizesSpanL1L2Dram) {
  const std::uint64_t l2 = 52428800;
  const auto s = sweep_sizes(l2, 1ull << 30);
  ASSERT_FALSE(s.empty());
  EXPECT_EQ(s.front(), 4096u);
  EXPECT_EQ(s.back(), 1ull << 30);
  EXPECT_TRUE(std::is_sorted(s.begin(), s.end()));
  EXPECT_EQ(std::adjacent_find(s.begin(), s.end()), s.end());
  for (std::uint64_t b : {l2 / 2, l2, 2 * l2, 4 * l2}) EXPECT_NE(std::find(s.begin(), s.end(), b), s.end()) << b;
  for (std::uint64_t b : s) EXPECT_EQ(b % 4096, 0u);
  // Memory short: nothing above the cap.
  const auto small = sweep_sizes(l2, 64ull << 20);
  EXPECT_EQ(small.back(), 64ull << 20);
  EXPECT_EQ(std::find(small.begin(), small.end(), 4 * l2), small.end());
}

TEST(PeakPeers, EveryOrderedPairOnce) {
  auto all = [](int, int) { return true; };
  EXPECT_TRUE(peer_pairs(1, all).empty());
  const auto p4 = peer_pairs(4, all);
  EXPECT_EQ(p4.size(), 12u);  // n (n - 1)
  for (const auto& p : p4) EXPECT_NE(p.src, p.dst);
  EXPECT_EQ(p4.front().label(), "0->1");
  const auto b4 = peer_pairs_bidirectional(4, all);
  EXPECT_EQ(b4.size(), 6u);  // n (n - 1) / 2
  for (const auto& p : b4) EXPECT_LT(p.src, p.dst);
  // Access is per direction; a bidirectional pair needs both.
  auto one_way = [](int i, int j) { return i == 0 && j == 1; };
  const auto p2 = peer_pairs(2, one_way);
  ASSERT_EQ(p2.size(), 2u);
  EXPECT_TRUE(p2[0].peer_access);
  EXPECT_FALSE(p2[1].peer_access);
  EXPECT_FALSE(peer_pairs_bidirectional(2, one_way)[0].peer_access);
}

namespace {
Report sample_report() {
  Report r;
  r.device = h100_sxm();
  r.device.uuid = "GPU-00000000-1111-2222-3333-444444444444";
  r.spec = derive_spec_peaks(r.device);
  auto row = [](const char* g, const char* n, double v, double spec) {
    Row x;
    x.group = g, x.name = n, x.what = n, x.unit = "GB/s", x.value = v, x.spec = spec, x.method = std::string("m_") + n;
    return x;
  };
  r.rows = {row("dram", "dram_copy_sm", 3050, 3352), row("dram", "dram_copy_memcpy", 3010, 3352),
            row("dram", "dram_read_sm", 3100, 3352), row("compute", "fp32_fma", 60, 66.9),
            row("tensor", "bf16_4096x4096x4096", 700, 1070), row("tensor", "bf16_8192x8192x8192", 790, 1070),
            row("tensor", "fp8_8192x8192x8192", 1300, 2141), row("sweep", "sweep_4096", 20000, 0)};
  Row skipped = row("p2p", "p2p_unidirectional", 0, 0);
  skipped.skipped = true;
  skipped.reason = "one GPU";
  r.rows.push_back(skipped);
  return r;
}
}  // namespace

TEST(PeakReport, MeasuredPeaksTakeTheBestPerCeiling) {
  const Report r = sample_report();
  const SpecPeaks m = measured_peaks(r);
  EXPECT_DOUBLE_EQ(m.dram_gbps, 3100);  // best DRAM row
  EXPECT_DOUBLE_EQ(m.fp32_tflops, 60);
  EXPECT_DOUBLE_EQ(m.bf16_tflops, 790);  // best over shapes
  EXPECT_DOUBLE_EQ(m.fp8_tflops, 1300);
  EXPECT_EQ(m.int8_tops, 0);  // not measured
  SpecPeaks prev;
  prev.int8_tops = 1500;
  prev.bf16_tflops = 10;
  const SpecPeaks merged = measured_peaks(r, &prev);
  EXPECT_DOUBLE_EQ(merged.int8_tops, 1500);  // kept from the previous run
  EXPECT_DOUBLE_EQ(merged.bf16_tflops, 790);  // replaced
}

TEST(PeakReport, PercentOfSpec) {
  Row x;
  x.value = 3000, x.spec = 3352.32;
  EXPECT_NEAR(x.pct_of_spec(), 89.49, 0.01);
  x.spec = 0;
  EXPECT_EQ(x.pct_of_spec(), 0);
  x.spec = 100, x.skipped = true;
  EXPECT_EQ(x.pct_of_spec(), 0);
}

TEST(PeakReport, JsonRoundTrip) {
  const Report r = sample_report();
  const nlohmann::json j = r;
  EXPECT_EQ(j.at("rows").size(), r.rows.size());
  EXPECT_NEAR(j.at("rows")[0].at("pct_of_spec").get<double>(), 100.0 * 3050 / 3352, 1e-9);
  EXPECT_DOUBLE_EQ(j.at("measured_peaks").at("bf16_tflops").get<double>(), 790);
  EXPECT_NE(j.at("units").get<std::string>().find("1e9"), std::string::npos);
  const Report back = report_from_json(nlohmann::json::parse(j.dump()));
  ASSERT_EQ(back.rows.size(), r.rows.size());
  EXPECT_EQ(back.rows[8].skipped, true);
  EXPECT_EQ(back.rows[8].reason, "one GPU");
  EXPECT_EQ(back.device.sm_count, 132);
  EXPECT_NE(back.find("fp32_fma"), nullptr);
  EXPECT_EQ(back.find("nope"), nullptr);
}

TEST(PeakReport, TableStatesMeasuredSpecPercentAndMethods) {
  std::ostringstream os;
  print_report(os, sample_report());
  const std::string t = os.str();
  EXPECT_NE(t.find("% spec"), std::string::npos);
  EXPECT_NE(t.find("91.0%"), std::string::npos);  // 3050 / 3352
  EXPECT_NE(t.find("skipped: one GPU"), std::string::npos);
  EXPECT_NE(t.find("m_dram_copy_sm"), std::string::npos);  // the method is printed
  EXPECT_NE(t.find("Read bandwidth vs working set"), std::string::npos);
}

TEST(PeakReport, CacheRoundTripThroughCore) {
  const auto dir = std::filesystem::temp_directory_path() / "aipe-peak-test-cache";
  std::filesystem::remove_all(dir);
  setenv("AIPE_CACHE_DIR", dir.c_str(), 1);
  const Report r = sample_report();
  save_measured_peaks(r.device.uuid, measured_peaks(r), "test");
  std::string src;
  const auto back = load_measured_peaks(r.device.uuid, &src);
  ASSERT_TRUE(back.has_value());
  EXPECT_DOUBLE_EQ(back->bf16_tflops, 790);
  EXPECT_EQ(src, "test");
  unsetenv("AIPE_CACHE_DIR");
  std::filesystem::remove_all(dir);
}

// ---- compute ceilings: the steady-state criterion, burst/sustained fields, the spec's clock ----
namespace {
// Samples every 50 ms from 0 to `until` s; clock(t) and power(t) give the values.
template <class C, class P>
std::vector<TimedSample> series(double until, C clock, P power) {
  std::vector<TimedSample> v;
  for (double t = 0.05; t <= until + 1e-9; t += 0.05) v.push_back({t, clock(t), power(t)});
  return v;
}
}  // namespace

TEST(PeakSteady, WarmingBeforeTheMinimumEvenWhenFlat) {
  const SteadyCriterion c;  // min 1.5 s
  const auto v = series(1.0, [](double) { return 1500.0; }, [](double) { return 680.0; });
  EXPECT_EQ(steady_state(v, c), Steadiness::warming);
  EXPECT_EQ(steady_state({}, c), Steadiness::warming);
}

TEST(PeakSteady, SteadyOnceClockAndPowerAreFlat) {
  const SteadyCriterion c;
  // The power cap bites at 0.3 s: the clock falls from 1980 to 1500 MHz by 1 s and stays.
  auto clock = [](double t) { return t < 0.3 ? 1980.0 : t < 1.0 ? 1980.0 - (t - 0.3) / 0.7 * 480.0 : 1500.0; };
  auto power = [](double t) { return t < 1.0 ? 300.0 + 380.0 * t : 680.0; };
  EXPECT_EQ(steady_state(series(2.0, clock, power), c), Steadiness::steady);
}

TEST(PeakSteady, StillWarmingWhileTheClockFalls) {
  const SteadyCriterion c;
  // 5% per second down: each 0.5 s window is 2.5% under the one before (tolerance 1%).
  auto clock = [](double t) { return 1980.0 * (1.0 - 0.05 * t); };
  auto power = [](double) { return 680.0; };
  EXPECT_EQ(steady_state(series(3.0, clock, power), c), Steadiness::warming);
  // Slower than the tolerance (0.4% per window): steady.
  auto slow = [](double t) { return 1980.0 * (1.0 - 0.008 * t); };
  EXPECT_EQ(steady_state(series(3.0, slow, power), c), Steadiness::steady);
}

TEST(PeakSteady, StillWarmingWhilePowerMoves) {
  const SteadyCriterion c;
  auto clock = [](double) { return 1980.0; };
  auto rising = [](double t) { return 400.0 + 100.0 * t; };  // +50 W per window: +10%
  EXPECT_EQ(steady_state(series(3.0, clock, rising), c), Steadiness::warming);
  auto falling = [](double t) { return 700.0 - 60.0 * t; };
  EXPECT_EQ(steady_state(series(3.0, clock, falling), c), Steadiness::warming);
}

TEST(PeakSteady, TimesOutAtTheCap) {
  SteadyCriterion c;
  c.max_s = 3.9;
  auto clock = [](double t) { return 1980.0 * (1.0 - 0.05 * t); };
  EXPECT_EQ(steady_state(series(4.0, clock, [](double) { return 680.0; }), c), Steadiness::timed_out);
  EXPECT_STREQ(to_string(Steadiness::timed_out), "timed out");
}

TEST(PeakSteady, TooFewSamplesInAWindowSayNothing) {
  const SteadyCriterion c;
  // One sample every 0.4 s: fewer than 3 per 0.5 s window.
  std::vector<TimedSample> v;
  for (double t = 0.4; t <= 3.0; t += 0.4) v.push_back({t, 1500, 680});
  EXPECT_EQ(steady_state(v, c), Steadiness::warming);
}

TEST(PeakSpecClock, DataSheetClockAndBasis) {
  EXPECT_EQ(datasheet_sm_clock_mhz(h100_sxm()), 1830);
  EXPECT_EQ(datasheet_sm_clock_mhz(h200()), 1830);
  EXPECT_EQ(datasheet_sm_clock_mhz(a100_sxm_80()), 1410);
  EXPECT_EQ(datasheet_sm_clock_mhz(b200()), 0);  // not in the table: said so by omission
  const SpecPeaks p = derive_spec_peaks(h200());
  const std::string b = compute_spec_basis("dense tensor-core ops/SM/clock", h200(), p.bf16_tflops, "TFLOP/s");
  EXPECT_NE(b.find("132 SMs x 1980 MHz"), std::string::npos) << b;
  EXPECT_NE(b.find("1830 MHz: 989.4 TFLOP/s"), std::string::npos) << b;  // the data sheet's figure
  EXPECT_EQ(compute_spec_basis("x", b200(), 1, "TFLOP/s").find("data sheet"), std::string::npos);
}

TEST(PeakReport, SustainedRowsKeepBurstClockAndPower) {
  Report r = sample_report();
  Row& bf = r.rows[5];  // bf16_8192x8192x8192: value is the sustained figure
  bf.value = 680, bf.burst = 794, bf.sm_mhz = 1500, bf.power_w = 681.5;
  const nlohmann::json j = r;
  const nlohmann::json& jr = j.at("rows")[5];
  EXPECT_DOUBLE_EQ(jr.at("burst").get<double>(), 794);
  EXPECT_DOUBLE_EQ(jr.at("sm_mhz").get<double>(), 1500);
  EXPECT_DOUBLE_EQ(jr.at("power_w").get<double>(), 681.5);
  EXPECT_FALSE(j.at("rows")[0].contains("burst"));  // a DRAM row has none
  // The cached ceiling is the sustained value, never the burst.
  EXPECT_DOUBLE_EQ(j.at("measured_peaks").at("bf16_tflops").get<double>(), 700);  // 4096^3 row (700) > 680
  const Report back = report_from_json(nlohmann::json::parse(j.dump()));
  EXPECT_DOUBLE_EQ(back.rows[5].burst, 794);
  EXPECT_DOUBLE_EQ(back.rows[5].sm_mhz, 1500);
  EXPECT_DOUBLE_EQ(back.rows[5].power_w, 681.5);
  std::ostringstream os;
  print_report(os, back);
  const std::string t = os.str();
  EXPECT_NE(t.find("burst"), std::string::npos);
  EXPECT_NE(t.find("794"), std::string::npos);
  EXPECT_NE(t.find("1500"), std::string::npos);
  EXPECT_NE(t.find("the data sheet's figures assume 1830 MHz"), std::string::npos) << t;
  // Every field is checked on the way back in: a count far out of range, a negative rate, a NaN-like
  // string or a row that is not an object is an error naming the field, never undefined behaviour.
  auto bad = [&](auto&& edit) {
    nlohmann::json c = nlohmann::json::parse(j.dump());
    edit(c);
    return c;
  };
  EXPECT_THROW(report_from_json(bad([](nlohmann::json& c) { c["gpu_count"] = 1e99; })), std::runtime_error);
  EXPECT_THROW(report_from_json(bad([](nlohmann::json& c) { c["rows"][5]["burst"] = -1; })), std::runtime_error);
  EXPECT_THROW(report_from_json(bad([](nlohmann::json& c) { c["rows"][0]["value"] = "fast"; })), std::runtime_error);
  EXPECT_THROW(report_from_json(bad([](nlohmann::json& c) { c["rows"][1] = 3; })), std::runtime_error);
  try {
    report_from_json(bad([](nlohmann::json& c) { c["rows"][5]["sm_mhz"] = -5; }));
    ADD_FAILURE() << "a negative clock was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("rows[5].sm_mhz"), std::string::npos) << e.what();
  }
}

TEST(PeakReport, OldFilesWithoutSustainedFieldsStillRead) {
  // A row as `aipe peak` wrote it before sustained ceilings: no burst, sm_mhz or power_w.
  const auto j = nlohmann::json::parse(R"({"group": "tensor", "name": "bf16_8192x8192x8192", "what": "BF16",
      "unit": "TFLOP/s", "value": 794.0, "spec": 1070.5, "config": "best of 8", "skipped": false,
      "extra": {"median_ms": 1.38}})");
  const Row r = j.get<Row>();
  EXPECT_DOUBLE_EQ(r.value, 794.0);
  EXPECT_EQ(r.burst, 0);
  EXPECT_EQ(r.sm_mhz, 0);
  EXPECT_EQ(r.power_w, 0);
  std::ostringstream os;
  Report rep = sample_report();
  rep.rows = {r};
  print_report(os, rep);
  EXPECT_EQ(os.str().find("Compute ceilings are sustained"), std::string::npos);  // nothing claimed for it
}

TEST(PeakGroups, Known) {
  EXPECT_TRUE(valid_group("dram"));
  EXPECT_TRUE(valid_group("tensor"));
  EXPECT_FALSE(valid_group("dramm"));
}

// sysfs: a fake tree stands in for /sys.
TEST(SysInfo, NumaFromSysfs) {
  const auto root = std::filesystem::temp_directory_path() / "aipe-fake-sys";
  std::filesystem::remove_all(root);
  const std::string bus = "0000:19:00.0";
  const auto dev = root / "bus/pci/devices" / bus;
  std::filesystem::create_directories(dev);
  std::ofstream(dev / "numa_node") << "1\n";
  std::ofstream(dev / "local_cpulist") << "48-95,144-191\n";
  const auto n = read_numa_node(root.string(), bus);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 1);
  const auto c = read_local_cpulist(root.string(), bus);
  ASSERT_TRUE(c);
  EXPECT_EQ(*c, "48-95,144-191");
  std::ofstream(dev / "numa_node") << "-1\n";
  const auto none = read_numa_node(root.string(), bus);
  EXPECT_FALSE(none);
  EXPECT_NE(none.why.find("no NUMA affinity"), std::string::npos);
  const auto missing = read_numa_node(root.string(), "0000:aa:00.0");
  EXPECT_FALSE(missing);
  EXPECT_NE(to_text(missing).find("n/a (cannot read"), std::string::npos);
  std::filesystem::remove_all(root);
}

// Without NVML (or without its GPU) every NVML field is n/a with a reason; nothing throws.
TEST(SysInfo, DegradesWithoutNvml) {
  DeviceInfo d = h100_sxm();
  d.uuid = "GPU-ffffffff-0000-0000-0000-000000000000";
  d.pci_bus_id = "0000:ff:1f.0";
  GpuSystemInfo g;
  ASSERT_NO_THROW(g = query_gpu_system(d, "/nonexistent-sysfs"));
  EXPECT_FALSE(g.numa_node);
  EXPECT_FALSE(g.sm_clock_mhz);  // no NVML here, or NVML without this UUID
  EXPECT_FALSE(g.sm_clock_mhz.why.empty());
  EXPECT_FALSE(g.pcie_gbps_per_direction);
  const nlohmann::json j = g;
  EXPECT_TRUE(j.at("sm_clock_mhz").is_null());
  EXPECT_FALSE(j.at("sm_clock_mhz_na").get<std::string>().empty());
  std::ostringstream os;
  print_gpu_system(os, g);
  EXPECT_NE(os.str().find("n/a ("), std::string::npos);
}

TEST(PeakReport, EveryRecordedPeakFileReadsBack) {
  // The files `aipe peak --json` wrote on the H100 and the H200, old format and new, pass the checked reader.
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(std::string(AIPE_SOURCE_DIR) + "/docs/results")) {
    const std::string name = e.path().filename().string();
    if (!e.is_regular_file() || name.find("peak") == std::string::npos || e.path().extension() != ".json") continue;
    std::ifstream f(e.path());
    const Report r = report_from_json(nlohmann::json::parse(f));
    EXPECT_FALSE(r.rows.empty()) << name;
    ++n;
  }
  EXPECT_GE(n, 2);
}
