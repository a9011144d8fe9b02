// `aipe peak --quick` on the GPU: every measurement runs and lands in a plausible band of the spec it
// is compared with. One quick run is shared by the tests (about 30 s on an H100). Skipped with the
// reason where no GPU is usable.
#include <gtest/gtest.h>

#include <iostream>

#include "aipe/device.hpp"
#include "aipe/peak.hpp"

using namespace aipe;
using namespace aipe::peak;

namespace {

#define SKIP_WITHOUT_GPU() \
  if (auto why = gpu_unavailable_reason()) GTEST_SKIP() << *why

const Report& quick_report() {
  static const Report r = [] {
    Options o;
    o.quick = true;
    return run_peak(o);
  }();
  return r;
}

const Row& row(const std::string& name) {
  const Row* r = quick_report().find(name);
  if (!r) throw std::runtime_error("no row " + name);
  return *r;
}

void in_band(const Row& r, double lo_pct, double hi_pct) {
  SCOPED_TRACE(r.name + ": " + r.config);
  ASSERT_FALSE(r.skipped) << r.reason;
  ASSERT_GT(r.spec, 0);
  EXPECT_GE(r.pct_of_spec(), lo_pct) << r.value << " " << r.unit << " vs spec " << r.spec;
  EXPECT_LE(r.pct_of_spec(), hi_pct) << r.value << " " << r.unit << " vs spec " << r.spec;
}

}  // namespace

TEST(PeakGpu, DramBetween50And100PercentOfSpec) {
  SKIP_WITHOUT_GPU();
  in_band(row("dram_copy_sm"), 50, 100);
  in_band(row("dram_copy_memcpy"), 50, 100);
  in_band(row("dram_read_sm"), 50, 100);
  in_band(row("dram_write_sm"), 50, 100);
  // The tuned SM copy (kern::kCopyWinner among the configurations) comes within 3% of the copy engine
  // in the same run: relative, never an absolute figure. 0.97 is what a good SM copy holds on both GPUs
  // measured (0.989 on the H200, where the copy engine is still ahead); matching it is issue 16's goal,
  // not an invariant this test can assert today.
  EXPECT_GE(row("dram_copy_sm").value, 0.97 * row("dram_copy_memcpy").value);
}

TEST(PeakGpu, CachesFasterThanDram) {
  SKIP_WITHOUT_GPU();
  const Row& l2 = row("l2_read");
  ASSERT_FALSE(l2.skipped);
  EXPECT_GT(l2.value, 1.5 * row("dram_read_sm").value);  // L2 serves a set it holds well above DRAM rate
  in_band(row("smem_read"), 50, 102);
}

TEST(PeakGpu, LatencyOrderedL1L2Dram) {
  SKIP_WITHOUT_GPU();
  const double l1 = row("latency_l1").value, l2 = row("latency_l2").value, dram = row("latency_dram").value;
  EXPECT_GT(l1, 10);
  EXPECT_LT(l1, 100);   // tens of cycles
  EXPECT_GT(l2, 1.5 * l1);
  EXPECT_LT(l2, 1000);
  EXPECT_GT(dram, 1.2 * l2);
  EXPECT_LT(dram, 5000);
}

TEST(PeakGpu, FmaBetween50And102PercentOfSpec) {
  SKIP_WITHOUT_GPU();
  in_band(row("fp32_fma"), 50, 102);
  in_band(row("fp64_fma"), 50, 102);
}

// Compute ceilings are sustained figures with the clock and power beside them and the burst kept:
// sustained never meaningfully above burst, and the clock under load never above the device's max.
TEST(PeakGpu, ComputeCeilingsSustainedWithClockAndPower) {
  SKIP_WITHOUT_GPU();
  for (const char* n : {"fp32_fma", "bf16_8192x8192x8192"}) {
    const Row& r = row(n);
    SCOPED_TRACE(r.name + ": " + r.config);
    ASSERT_FALSE(r.skipped) << r.reason;
    EXPECT_GT(r.burst, 0);
    EXPECT_LE(r.value, 1.03 * r.burst);  // warm never beats cold by more than noise
    EXPECT_GT(r.extra.at("warmup_s"), 1.0);
    if (r.sm_mhz > 0) {  // NVML present
      EXPECT_LE(r.sm_mhz, quick_report().device.max_sm_clock_khz / 1000.0 + 1);
      EXPECT_GT(r.power_w, 0);
    }
  }
}

TEST(PeakGpu, TensorCoresBetween40And100PercentOfSpec) {
  SKIP_WITHOUT_GPU();
  if (quick_report().device.cc() < 90) GTEST_SKIP() << "bands set for Hopper";
  for (const char* n : {"tf32_8192x8192x8192", "bf16_8192x8192x8192", "fp16_8192x8192x8192", "fp8_8192x8192x8192",
                        "int8_8192x8192x8192"})
    in_band(row(n), 40, 100);
}

TEST(PeakGpu, HostLinkPinnedBeatsPageable) {
  SKIP_WITHOUT_GPU();
  const Row& pinned = row("h2d_pinned");
  const Row& pageable = row("h2d_pageable");
  ASSERT_FALSE(pinned.skipped);
  EXPECT_GT(pinned.value, 1.0);  // GB/s
  EXPECT_GE(pinned.value, 0.9 * pageable.value);
  if (pinned.spec > 0) in_band(pinned, 30, 100);
  EXPECT_GT(row("bidir_pinned").value, pinned.value * 0.9);  // both directions summed
}

TEST(PeakGpu, PeerRowsSkippedWithReasonOnOneGpu) {
  SKIP_WITHOUT_GPU();
  if (quick_report().gpu_count >= 2) GTEST_SKIP() << "more than one GPU: peer rows are measured";
  const Row& p = row("p2p_unidirectional");
  EXPECT_TRUE(p.skipped);
  EXPECT_NE(p.reason.find("one GPU"), std::string::npos);
}

TEST(PeakGpu, SweepShowsCacheAndDramRegimes) {
  SKIP_WITHOUT_GPU();
  const Report& r = quick_report();
  double small = 0, in_l2 = 0, beyond = 0;
  for (const Row& x : r.rows) {
    if (x.group != "sweep") continue;
    const double ws = x.extra.at("working_set_bytes");
    if (ws <= 64 * 1024) small = std::max(small, x.value);
    if (ws >= 4 << 20 && ws <= r.device.l2_bytes / 2) in_l2 = std::max(in_l2, x.value);
    if (ws >= 4.0 * r.device.l2_bytes) beyond = x.value;
  }
  EXPECT_GT(small, 1.2 * in_l2);    // L1 regime above L2
  EXPECT_GT(in_l2, 1.5 * beyond);   // L2 regime above DRAM
  EXPECT_GT(beyond, 0.4 * r.spec.dram_gbps);
  EXPECT_LT(beyond, 1.0 * r.spec.dram_gbps);
  std::ostringstream os;
  print_report(os, r);
  std::cout << os.str();
}
